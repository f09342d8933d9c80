//! The `burst` scenario: N visitors are spawned together and released at the same moment;
//! each connects, says hello (time to `welcome`), then sends one message (time to its
//! `ack`, which includes opening the conversation). Every socket stays open until all are
//! done, so the server carries the whole burst at once.

use super::{secs, Ticker};
use crate::args::Options;
use crate::client::{self, Dial, Ws, SMALL_READ_BUFFER};
use crate::report::Report;
use crate::server::Target;
use crate::stats::{Hist, Live, Tally};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Longest time one visitor may take for each step.
const STEP_TIMEOUT: Duration = Duration::from_secs(60);

/// What one visitor of the burst saw.
struct Outcome {
    welcome: Option<Duration>,
    first_ack: Option<Duration>,
    failure: Option<String>,
    /// Kept open until every visitor is done.
    _socket: Option<Ws>,
}

/// Runs the scenario.
pub async fn run(opts: &Options, target: &Target) -> Result<Report, String> {
    let n = opts.visitors;
    let live = Arc::new(Live::default());
    let (go_tx, go_rx) = watch::channel(false);
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        tasks.push(tokio::spawn(visitor(
            i,
            target.ep.clone(),
            live.clone(),
            go_rx.clone(),
        )));
    }
    let rss_baseline = target.rss();
    let line_source = live.clone();
    let ticker = Ticker::start(target.pid, move |t| line_source.line(t));
    let started = Instant::now();
    let _ = go_tx.send(true);
    let mut outcomes = Vec::with_capacity(n);
    for t in tasks {
        outcomes.push(t.await.map_err(|e| format!("a visitor task failed: {e}"))?);
    }
    let total = started.elapsed();
    let rss_all = target.rss();
    let open = live.open.load(Ordering::Relaxed);
    ticker.stop().await;

    let (mut welcome, mut first_ack) = (Hist::new(), Hist::new());
    let mut failures = Tally::default();
    for o in &outcomes {
        if let Some(d) = o.welcome {
            welcome.record(d);
        }
        if let Some(d) = o.first_ack {
            first_ack.record(d);
        }
        if let Some(why) = &o.failure {
            failures.add(why.clone());
        }
    }
    drop(outcomes);

    let mut report = Report::new("burst");
    report.set("visitors", n);
    report.set("operators", 0);
    report.set("duration_s", secs(total));
    report.set("sent", Live::get(&live.sent));
    report.set("acked", Live::get(&live.acked));
    report.set("errors", failures.total());
    report.set("ack_p50_ms", first_ack.ms(0.50));
    report.set("ack_p99_ms", first_ack.ms(0.99));
    report.set("connections_open", open);
    report.set("server_rss_bytes", rss_all);
    report.set("server_rss_baseline_bytes", rss_baseline);
    report.set("welcomed", welcome.len());
    report.set("time_to_welcome_p50_ms", welcome.ms(0.50));
    report.set("time_to_welcome_p99_ms", welcome.ms(0.99));
    report.set("time_to_welcome_max_ms", welcome.max_ms());
    report.set("time_to_first_ack_p50_ms", first_ack.ms(0.50));
    report.set("time_to_first_ack_p99_ms", first_ack.ms(0.99));
    report.set("time_to_first_ack_max_ms", first_ack.max_ms());
    report.set("greeting_p99_ms", serde_json::Value::Null);
    report.set("assignment_p99_ms", serde_json::Value::Null);
    report.set(
        "note",
        "greeting_p99_ms and assignment_p99_ms are null: the server has no automatic \
         greeting (CF1) and no operator assignment (OC4) yet",
    );
    report.set("failure_reasons", failures.json());
    Ok(report)
}

async fn visitor(
    i: usize,
    ep: crate::net::Endpoint,
    live: Arc<Live>,
    mut go: watch::Receiver<bool>,
) -> Outcome {
    let mut out = Outcome {
        welcome: None,
        first_ack: None,
        failure: None,
        _socket: None,
    };
    if go.wait_for(|released| *released).await.is_err() {
        out.failure = Some("never released".into());
        return out;
    }
    let started = Instant::now();
    let opened = tokio::time::timeout(STEP_TIMEOUT, async {
        let mut ws =
            client::connect(&ep, "/ws/visitor", Dial::from_source(i, SMALL_READ_BUFFER)).await?;
        client::hello(&mut ws).await?;
        Ok::<_, String>(ws)
    })
    .await
    .unwrap_or_else(|_| Err(format!("no welcome within {} s", STEP_TIMEOUT.as_secs())));
    let mut ws = match opened {
        Ok(ws) => ws,
        Err(why) => {
            Live::bump(&live.errors);
            out.failure = Some(why);
            return out;
        }
    };
    out.welcome = Some(started.elapsed());
    live.open.fetch_add(1, Ordering::Relaxed);
    let cid = format!("b{i}");
    let body = client::stamped_body(&format!("burst v={i}"));
    let sent = Instant::now();
    Live::bump(&live.sent);
    match tokio::time::timeout(STEP_TIMEOUT, client::first_message(&mut ws, &cid, &body)).await {
        Ok(Ok(_)) => {
            out.first_ack = Some(sent.elapsed());
            Live::bump(&live.acked);
        }
        Ok(Err(why)) => out.failure = Some(why),
        Err(_) => out.failure = Some(format!("no ack within {} s", STEP_TIMEOUT.as_secs())),
    }
    if out.failure.is_some() {
        Live::bump(&live.errors);
    }
    out._socket = Some(ws);
    out
}
