//! The `echo` scenario: V visitors each keep `--window` messages in flight for the
//! duration and count acks, against Charla (each ack means the message is durable and
//! fanned out) or, with `--against echo`, against the bare echo server on the same stack
//! (`__echo`), which acks at once and stores nothing: the ceiling of the transport.

use super::{secs, Ticker};
use crate::args::Options;
use crate::client::{self, Dial, Event, Ws, SMALL_READ_BUFFER};
use crate::report::Report;
use crate::server::Target;
use crate::stats::{Hist, Live};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long outstanding acks may take once sending stops.
const DRAIN: Duration = Duration::from_secs(5);

/// What one visitor counted.
#[derive(Default)]
struct Tally {
    sent: u64,
    acked: u64,
    acked_in_window: u64,
    latency: Option<Hist>,
    failure: Option<String>,
}

/// Runs the scenario.
pub async fn run(opts: &Options, target: &Target) -> Result<Report, String> {
    let live = Arc::new(Live::default());
    let duration = Duration::from_secs_f64(opts.duration);
    let line_source = live.clone();
    let ticker = Ticker::start(target.pid, move |t| line_source.line(t));
    let mut sockets = Vec::with_capacity(opts.visitors);
    for i in 0..opts.visitors {
        let mut ws = client::connect(
            &target.ep,
            "/ws/visitor",
            Dial::from_source(i, SMALL_READ_BUFFER),
        )
        .await?;
        client::hello(&mut ws).await?;
        if !opts.against_echo {
            // The first message opens the conversation; it is not part of the timed phase.
            client::first_message(&mut ws, &client::client_id("w-"), "open").await?;
        }
        live.open.fetch_add(1, Ordering::Relaxed);
        sockets.push(ws);
    }
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = Vec::with_capacity(sockets.len());
    for ws in sockets {
        tasks.push(tokio::spawn(visitor(
            ws,
            opts.window.max(1),
            deadline,
            live.clone(),
        )));
    }
    let mut total = Tally::default();
    let mut latency = Hist::new();
    let mut failures = crate::stats::Tally::default();
    for t in tasks {
        let v = t.await.map_err(|e| format!("a visitor task failed: {e}"))?;
        total.sent += v.sent;
        total.acked += v.acked;
        total.acked_in_window += v.acked_in_window;
        if let Some(h) = v.latency {
            latency.merge(&h);
        }
        if let Some(why) = v.failure {
            failures.add(why);
        }
    }
    ticker.stop().await;
    let mut report = Report::new("echo");
    report.set("against", if opts.against_echo { "echo" } else { "charla" });
    report.set("visitors", opts.visitors);
    report.set("operators", 0);
    report.set("window", opts.window);
    report.set("duration_s", secs(duration));
    report.set("sent", total.sent);
    report.set("acked", total.acked);
    report.set("delivered", serde_json::Value::Null);
    report.set("lost", total.sent - total.acked.min(total.sent));
    report.set("duplicated", serde_json::Value::Null);
    report.set("reordered", serde_json::Value::Null);
    report.set("errors", failures.total());
    report.set(
        "msgs_per_sec",
        total.acked_in_window as f64 / duration.as_secs_f64(),
    );
    report.set("ack_p50_ms", latency.ms(0.50));
    report.set("ack_p99_ms", latency.ms(0.99));
    report.set("ack_max_ms", latency.max_ms());
    report.set("delivery_p50_ms", serde_json::Value::Null);
    report.set("delivery_p99_ms", serde_json::Value::Null);
    report.set("connections_open", live.open.load(Ordering::Relaxed));
    report.set("server_rss_bytes", target.rss());
    report.set("rss_per_connection_bytes", serde_json::Value::Null);
    report.set("failure_reasons", failures.json());
    Ok(report)
}

async fn visitor(mut ws: Ws, window: usize, deadline: Instant, live: Arc<Live>) -> Tally {
    let mut tally = Tally::default();
    let mut latency = Hist::new();
    let mut in_flight: HashMap<String, Instant> = HashMap::with_capacity(window);
    let body = "x".repeat(64);
    loop {
        let sending = Instant::now() < deadline;
        if sending {
            let mut frames = Vec::new();
            while in_flight.len() < window {
                let cid = client::client_id("w-");
                frames.push(client::visitor_message(&cid, &body));
                in_flight.insert(cid, Instant::now());
            }
            tally.sent += frames.len() as u64;
            for _ in 0..frames.len() {
                Live::bump(&live.sent);
            }
            if let Err(e) = client::send_all(&mut ws, frames).await {
                tally.failure = Some(e);
                break;
            }
        } else if in_flight.is_empty() {
            break;
        }
        let wait = if sending {
            Duration::from_secs(10)
        } else {
            (deadline + DRAIN).saturating_duration_since(Instant::now())
        };
        match tokio::time::timeout(wait, client::next_event(&mut ws)).await {
            Ok(Event::Frame(f)) if f.ty == "ack" => {
                if let Some(sent) = f.client_id.as_deref().and_then(|c| in_flight.remove(c)) {
                    latency.record(sent.elapsed());
                    tally.acked += 1;
                    if Instant::now() <= deadline {
                        tally.acked_in_window += 1;
                    }
                    Live::bump(&live.acked);
                }
            }
            Ok(Event::Frame(f)) if f.ty == "error" => {
                Live::bump(&live.errors);
                tally.failure = Some(format!("error frame {}", f.code.unwrap_or_default()));
                break;
            }
            Ok(Event::Frame(_)) | Ok(Event::Garbled) => {}
            Ok(other) => {
                tally.failure = Some(client::why_ended(other));
                break;
            }
            Err(_) => {
                tally.failure = Some("no ack in time".into());
                break;
            }
        }
    }
    client::close(&mut ws).await;
    tally.latency = Some(latency);
    tally
}
