//! The `burst` scenario: N visitors are spawned together and released at the same moment
//! (a marketing campaign); each does what the widget does: fetches its channel's
//! configuration, which carries the greeting (time to greeting, CF1), connects and says
//! hello (time to `welcome`), then sends one message (time to its `ack`, which includes
//! opening the conversation) and, with `--operators` online, waits for the `assigned`
//! event (assignment latency, OC4). Every socket stays open until all are done, so the
//! server carries the whole burst at once.

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
    greeting: Option<Duration>,
    welcome: Option<Duration>,
    first_ack: Option<Duration>,
    assigned: Option<Duration>,
    failure: Option<String>,
    /// Kept open until every visitor is done.
    _socket: Option<Ws>,
}

/// Runs the scenario.
pub async fn run(opts: &Options, target: &Target) -> Result<Report, String> {
    let n = opts.visitors;
    let live = Arc::new(Live::default());
    // Operators online with room for the whole crowd, so every conversation is assigned
    // at once and the figure is the distribution's own latency.
    let mut operators = Vec::new();
    if opts.operators > 0 {
        let token = target.operator_token().await?;
        let me = crate::net::http_as(&target.ep, "GET", "/api/me", None, Some(&token)).await?;
        let me: serde_json::Value =
            serde_json::from_str(&me.body).map_err(|e| format!("/api/me is not JSON: {e}"))?;
        let id = me["id"].as_i64().ok_or("/api/me has no id")?;
        let body = serde_json::json!({"capacity": 10_000.min(n + 1)}).to_string();
        let res = crate::net::http_as(
            &target.ep,
            "PATCH",
            &format!("/api/operators/{id}"),
            Some(&body),
            Some(&token),
        )
        .await?;
        if res.status != 200 {
            return Err(format!(
                "cannot raise the operator's capacity: HTTP {} {}",
                res.status, res.body
            ));
        }
        for j in 0..opts.operators {
            let dial = Dial::from_source(n + j, SMALL_READ_BUFFER);
            operators.push(
                client::operator(&target.ep, &token, dial)
                    .await
                    .map_err(|e| format!("operator {j} could not connect: {e}"))?,
            );
        }
    }
    let expect_assignment = opts.operators > 0;
    let (go_tx, go_rx) = watch::channel(false);
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        tasks.push(tokio::spawn(visitor(
            i,
            target.ep.clone(),
            live.clone(),
            go_rx.clone(),
            expect_assignment,
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
    let (mut greeting, mut assigned) = (Hist::new(), Hist::new());
    let mut failures = Tally::default();
    for o in &outcomes {
        if let Some(d) = o.greeting {
            greeting.record(d);
        }
        if let Some(d) = o.assigned {
            assigned.record(d);
        }
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
    report.set("operators", opts.operators);
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
    report.set("greeted", greeting.len());
    report.set("greeting_p50_ms", greeting.ms(0.50));
    report.set("greeting_p99_ms", greeting.ms(0.99));
    report.set("assigned", assigned.len());
    report.set("assignment_p50_ms", assigned.ms(0.50));
    report.set("assignment_p99_ms", assigned.ms(0.99));
    report.set("assignment_max_ms", assigned.max_ms());
    if !expect_assignment {
        report.set(
            "note",
            "assignment_* are null: no operator was online (give --operators 1 or more)",
        );
    }
    drop(operators);
    report.set("failure_reasons", failures.json());
    Ok(report)
}

async fn visitor(
    i: usize,
    ep: crate::net::Endpoint,
    live: Arc<Live>,
    mut go: watch::Receiver<bool>,
    expect_assignment: bool,
) -> Outcome {
    let mut out = Outcome {
        greeting: None,
        welcome: None,
        first_ack: None,
        assigned: None,
        failure: None,
        _socket: None,
    };
    if go.wait_for(|released| *released).await.is_err() {
        out.failure = Some("never released".into());
        return out;
    }
    let started = Instant::now();
    // The widget first reads its channel's configuration: the greeting shows then.
    match crate::net::http(&ep, "GET", "/api/widget/web", None).await {
        Ok(res) if res.status == 200 => out.greeting = Some(started.elapsed()),
        Ok(res) => out.failure = Some(format!("widget configuration: HTTP {}", res.status)),
        Err(e) => out.failure = Some(e),
    }
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
    let cid = client::client_id("w-");
    let body = client::stamped_body(&format!("burst v={i}"));
    let sent = Instant::now();
    Live::bump(&live.sent);
    // The ack and the `assigned` event come in either order (distribution may commit
    // before the message does): watch for both.
    let (mut acked, mut assigned) = (None, None);
    let watched = tokio::time::timeout(STEP_TIMEOUT, async {
        client::send(&mut ws, client::visitor_message(&cid, &body)).await?;
        while acked.is_none() || (expect_assignment && assigned.is_none()) {
            let f = client::next_frame(&mut ws).await?;
            if f.ty == "ack" && f.client_id.as_deref() == Some(cid.as_str()) {
                acked = Some(sent.elapsed());
            } else if f.ty == "message"
                && f.kind.as_deref() == Some("event")
                && f.body.as_deref() == Some("assigned")
            {
                assigned = Some(sent.elapsed());
            } else if f.ty == "error" {
                return Err(format!("error frame `{}`", f.code.unwrap_or_default()));
            }
        }
        Ok::<_, String>(())
    })
    .await;
    out.first_ack = acked;
    out.assigned = assigned;
    if acked.is_some() {
        Live::bump(&live.acked);
    }
    match watched {
        Ok(Ok(())) => {}
        Ok(Err(why)) => out.failure = Some(why),
        Err(_) if acked.is_none() => {
            out.failure = Some(format!("no ack within {} s", STEP_TIMEOUT.as_secs()))
        }
        Err(_) => out.failure = Some(format!("not assigned within {} s", STEP_TIMEOUT.as_secs())),
    }
    if out.failure.is_some() {
        Live::bump(&live.errors);
    }
    out._socket = Some(ws);
    out
}
