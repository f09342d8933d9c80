//! The `slow` scenario: V visitors open a conversation each; a share of them (spread
//! evenly) then stop reading their socket altogether, with a small kernel receive buffer so
//! the backlog lands on the server. One operator writes ~1 KiB messages to every
//! conversation at a steady rate. Reports delivery to the healthy visitors (which must lose
//! nothing), what became of the slow sockets (close code, end of stream, or still open),
//! and the server's RSS each second, so a reader sees whether memory grows without bound.

use super::{rate, Ticker};
use crate::args::Options;
use crate::client::{self, Dial, Event, Ws, BUSY_READ_BUFFER, SMALL_READ_BUFFER};
use crate::net::Endpoint;
use crate::report::Report;
use crate::server::Target;
use crate::stats::{Hist, Live, OrderCheck, Tally};
use crate::tracking::{Inbox, Outbox};
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::time::MissedTickBehavior;

/// Kernel receive buffer of a slow visitor's socket (turns autotuning off).
const SLOW_RECV_BUFFER: u32 = 4096;
/// How long the run waits, after sending stops, for deliveries to the healthy visitors.
const DRAIN: Duration = Duration::from_secs(5);
/// While probing a slow socket: longest silence before it counts as still open.
const PROBE_IDLE: Duration = Duration::from_secs(2);
/// Longest time spent probing the slow sockets.
const PROBE_LIMIT: Duration = Duration::from_secs(20);
/// How long visitors may take to connect and open their conversations.
const SETUP_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Phase {
    Setup,
    Run,
    Drain,
    Stop,
}

struct Shared {
    live: Live,
    outstanding: AtomicI64,
    /// Operator messages acked in the healthy visitors' conversations.
    healthy_acked: AtomicU64,
}

/// Whether visitor `i` is one of the slow ones: spreads `share` of them evenly.
fn is_slow(i: usize, share: f64) -> bool {
    ((i + 1) as f64 * share).floor() > (i as f64 * share).floor()
}

/// What a visitor task hands back.
enum VisitorEnd {
    Failed(String),
    /// A slow visitor's socket, never read since its first ack.
    Slow {
        conversation: i64,
        ws: Box<Ws>,
    },
    Healthy(Box<Healthy>),
}

#[derive(Default)]
struct Healthy {
    conversation: i64,
    inbox: Inbox,
    misrouted: u64,
    ended: Option<String>,
}

/// What reading a slow socket after the run found.
#[derive(Default)]
struct Probe {
    frames: u64,
    order: OrderCheck,
    outcome: String,
    close_code: Option<u16>,
}

/// Runs the scenario.
pub async fn run(opts: &Options, target: &Target) -> Result<Report, String> {
    let v = opts.visitors;
    let duration = Duration::from_secs_f64(opts.duration);
    let sh = Arc::new(Shared {
        live: Live::default(),
        outstanding: AtomicI64::new(0),
        healthy_acked: AtomicU64::new(0),
    });
    let token = target.operator_token().await?;
    let op_ws = client::operator(&target.ep, &token, Dial::from_source(0, BUSY_READ_BUFFER))
        .await
        .map_err(|e| format!("the operator could not connect: {e}"))?;
    sh.live.open.fetch_add(1, Ordering::Relaxed);
    let line_source = sh.clone();
    let ticker = Ticker::start(target.pid, move |t| line_source.live.line(t));
    let (phase_tx, phase_rx) = watch::channel(Phase::Setup);

    let gate = Arc::new(Semaphore::new(256));
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel::<Option<(i64, bool)>>();
    let mut tasks = Vec::new();
    for i in 0..v {
        tasks.push(tokio::spawn(visitor(
            i + 1,
            is_slow(i, opts.slow_share),
            target.ep.clone(),
            gate.clone(),
            sh.clone(),
            phase_rx.clone(),
            ready_tx.clone(),
        )));
    }
    drop(ready_tx);
    let mut conversations = Vec::new();
    let deadline = tokio::time::Instant::now() + SETUP_TIMEOUT;
    let mut answered = 0;
    while answered < v {
        match tokio::time::timeout_at(deadline, ready_rx.recv()).await {
            Ok(Some(Some(conv))) => conversations.push(conv),
            Ok(Some(None)) => {}
            Ok(None) | Err(_) => break,
        }
        answered += 1;
    }
    if conversations.is_empty() {
        let _ = phase_tx.send(Phase::Stop);
        ticker.stop().await;
        return Err("no visitor could open a conversation".into());
    }
    let n_slow = conversations.iter().filter(|c| c.1).count();
    let per_conversation = opts
        .per_conversation_rate
        .min(opts.rate.unwrap_or(5000.0) / conversations.len() as f64);
    let total_rate = per_conversation * conversations.len() as f64;
    eprintln!(
        "{} conversations ({n_slow} slow); the operator sends {per_conversation:.1} msg/s to each \
         ({total_rate:.0} msg/s, {} B bodies) for {} s",
        conversations.len(),
        opts.body_bytes,
        opts.duration
    );
    let rss_start = target.rss();
    let operator_task = tokio::spawn(operator(
        op_ws,
        conversations.clone(),
        total_rate,
        opts.body_bytes,
        sh.clone(),
        phase_rx.clone(),
    ));

    let _ = phase_tx.send(Phase::Run);
    let run_start = Instant::now();
    tokio::time::sleep(duration).await;
    let _ = phase_tx.send(Phase::Drain);
    let drain_start = Instant::now();
    while drain_start.elapsed() < DRAIN {
        if sh.outstanding.load(Ordering::Relaxed) <= 0
            && Live::get(&sh.live.delivered) >= sh.healthy_acked.load(Ordering::Relaxed)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let rss_end = target.rss();
    let open_end = sh.live.open.load(Ordering::Relaxed);
    let _ = phase_tx.send(Phase::Stop);
    let operator = operator_task
        .await
        .map_err(|e| format!("the operator task failed: {e}"))?;
    let mut healthy = Vec::new();
    let mut slow = Vec::new();
    let mut failures = Tally::default();
    for t in tasks {
        match t.await.map_err(|e| format!("a visitor task failed: {e}"))? {
            VisitorEnd::Failed(why) => failures.add(why),
            VisitorEnd::Slow { conversation, ws } => slow.push((conversation, ws)),
            VisitorEnd::Healthy(h) => healthy.push(*h),
        }
    }
    let probes = probe_all(slow).await;
    let samples = ticker.stop().await;

    let mut report = Report::new("slow");
    report.set("visitors", v);
    report.set("operators", 1);
    report.set("duration_s", opts.duration);
    let (op_outbox, op_ended) = operator;
    fill(&mut report, &op_outbox, &healthy, &probes, &conversations);
    let mut ended_early = Tally::default();
    for h in &healthy {
        if let Some(why) = &h.ended {
            ended_early.add(why.clone());
        }
    }
    if let Some(why) = op_ended {
        ended_early.add(format!("operator: {why}"));
    }
    let errors = op_outbox.codes.total() + failures.total() + ended_early.total();
    report.set("errors", errors);
    report.set(
        "msgs_per_sec",
        rate(
            Live::get(&sh.live.delivered),
            run_start.elapsed().min(duration),
        ),
    );
    report.set("connections_open", open_end);
    report.set("server_rss_bytes", rss_end);
    report.set("server_rss_start_bytes", rss_start);
    report.set(
        "server_rss_min_bytes",
        samples.iter().copied().chain(rss_end).min(),
    );
    report.set(
        "server_rss_max_bytes",
        samples.iter().copied().chain(rss_end).max(),
    );
    report.set("server_rss_series_bytes", json!(samples));
    report.set(
        "per_conversation_rate",
        (per_conversation * 10.0).round() / 10.0,
    );
    report.set("operator_rate", total_rate.round());
    report.set("body_bytes", opts.body_bytes);
    report.set("error_codes", op_outbox.codes.json());
    report.set("setup_failures", failures.json());
    report.set("sockets_ended_early", ended_early.json());
    Ok(report)
}

/// Counts, latencies, the healthy visitors' loss check and the slow sockets' fate.
fn fill(
    report: &mut Report,
    op: &Outbox,
    healthy: &[Healthy],
    probes: &[Probe],
    conversations: &[(i64, bool)],
) {
    let owner: HashMap<i64, usize> = healthy
        .iter()
        .enumerate()
        .map(|(i, h)| (h.conversation, i))
        .collect();
    let slow_conversations: HashSet<i64> =
        conversations.iter().filter(|c| c.1).map(|c| c.0).collect();
    let (mut lost, mut to_slow) = (0u64, 0u64);
    let mut lost_examples = Vec::new();
    for (cid, conv) in &op.acked {
        match owner.get(conv) {
            Some(&i) if healthy[i].inbox.times(cid) > 0 => {}
            Some(_) => {
                lost += 1;
                if lost_examples.len() < 10 {
                    lost_examples.push(format!("{cid} (conversation {conv})"));
                }
            }
            None if slow_conversations.contains(conv) => to_slow += 1,
            None => {}
        }
    }
    let mut delivery = Hist::new();
    let (mut delivered, mut duplicated, mut reordered, mut misrouted) = (0u64, 0, 0, 0);
    for h in healthy {
        delivery.merge(&h.inbox.delivery_latency);
        delivered += h.inbox.delivery_latency.len();
        duplicated += h.inbox.order.duplicated + h.inbox.stored_twice;
        reordered += h.inbox.order.reordered;
        misrouted += h.misrouted;
    }
    let mut close_codes = Tally::default();
    let mut fates = Tally::default();
    let mut backlog = 0u64;
    for p in probes {
        duplicated += p.order.duplicated;
        reordered += p.order.reordered;
        backlog += p.frames;
        fates.add(p.outcome.clone());
        if let Some(code) = p.close_code {
            close_codes.add(code.to_string());
        }
    }
    let closed = probes.iter().filter(|p| p.outcome != "still open").count();
    report.set(
        "sent",
        (op.acked.len() + op.in_flight()) as u64 + op.rejected,
    );
    report.set("acked", op.acked.len());
    report.set("delivered", delivered);
    report.set("lost", lost);
    report.set("duplicated", duplicated);
    report.set("reordered", reordered);
    report.set("ack_p50_ms", op.ack_latency.ms(0.50));
    report.set("ack_p99_ms", op.ack_latency.ms(0.99));
    report.set("delivery_p50_ms", delivery.ms(0.50));
    report.set("delivery_p99_ms", delivery.ms(0.99));
    report.set("delivery_max_ms", delivery.max_ms());
    report.set("healthy_visitors", healthy.len());
    report.set("slow_visitors", probes.len());
    report.set("acked_to_slow_visitors", to_slow);
    report.set("slow_closed_by_server", closed);
    report.set("slow_still_open", probes.len() - closed);
    report.set("slow_close_codes", close_codes.json());
    report.set("slow_outcomes", fates.json());
    report.set("slow_backlog_frames_read", backlog);
    report.set("misrouted", misrouted);
    report.set("unacked_at_end", op.in_flight());
    report.set("busy_retries", op.retries);
    report.set("lost_examples", json!(lost_examples));
}

async fn visitor(
    i: usize,
    slow: bool,
    ep: Endpoint,
    gate: Arc<Semaphore>,
    sh: Arc<Shared>,
    mut phase: watch::Receiver<Phase>,
    ready: mpsc::UnboundedSender<Option<(i64, bool)>>,
) -> VisitorEnd {
    let dial = Dial {
        source: Some(i),
        recv_buffer: slow.then_some(SLOW_RECV_BUFFER),
        read_buffer: if slow {
            SMALL_READ_BUFFER
        } else {
            BUSY_READ_BUFFER
        },
    };
    let opened = async {
        let _slot = gate
            .acquire()
            .await
            .map_err(|_| "the setup was abandoned".to_string())?;
        let mut ws = client::connect(&ep, "/ws/visitor", dial).await?;
        client::hello(&mut ws).await?;
        let body = client::stamped_body(&format!("slow-test v={i}"));
        let conv = client::first_message(&mut ws, &client::client_id("w-"), &body).await?;
        Ok::<_, String>((ws, conv))
    };
    let (mut ws, conversation) = match opened.await {
        Ok(x) => x,
        Err(why) => {
            Live::bump(&sh.live.errors);
            let _ = ready.send(None);
            return VisitorEnd::Failed(why);
        }
    };
    sh.live.open.fetch_add(1, Ordering::Relaxed);
    let _ = ready.send(Some((conversation, slow)));
    if slow {
        // From here on nobody polls this socket until the probe after the run.
        return VisitorEnd::Slow {
            conversation,
            ws: Box::new(ws),
        };
    }
    let mut h = Healthy {
        conversation,
        ..Healthy::default()
    };
    loop {
        if *phase.borrow_and_update() == Phase::Stop {
            client::close(&mut ws).await;
            break;
        }
        tokio::select! {
            ev = client::next_event(&mut ws) => match ev {
                Event::Frame(f) if f.ty == "message" => {
                    h.inbox.check_order(&f);
                    if f.conversation_id != Some(conversation) {
                        h.misrouted += 1;
                    }
                    if f.is_operator_text() && h.inbox.deliver(&f) {
                        Live::bump(&sh.live.delivered);
                    }
                }
                Event::Frame(_) | Event::Garbled => {}
                other => {
                    Live::bump(&sh.live.errors);
                    h.ended = Some(client::why_ended(other));
                    break;
                }
            },
            changed = phase.changed() => {
                if changed.is_err() {
                    break;
                }
            }
        }
    }
    sh.live.open.fetch_sub(1, Ordering::Relaxed);
    VisitorEnd::Healthy(Box::new(h))
}

/// The operator: paced round-robin writes to every conversation while the run lasts.
async fn operator(
    mut ws: Ws,
    conversations: Vec<(i64, bool)>,
    total_rate: f64,
    body_bytes: usize,
    sh: Arc<Shared>,
    mut phase: watch::Receiver<Phase>,
) -> (Outbox, Option<String>) {
    let healthy: HashSet<i64> = conversations.iter().filter(|c| !c.1).map(|c| c.0).collect();
    let mut outbox = Outbox::default();
    let mut ticker = tokio::time::interval(Duration::from_millis(10));
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut started: Option<Instant> = None;
    let (mut n, mut next) = (0u64, 0usize);
    let mut ended_why = None;
    loop {
        let now_phase = *phase.borrow_and_update();
        if now_phase == Phase::Stop {
            client::close(&mut ws).await;
            break;
        }
        let mut out = outbox.due_retries();
        if now_phase == Phase::Run {
            let start = *started.get_or_insert_with(Instant::now);
            let due = (start.elapsed().as_secs_f64() * total_rate).floor() as u64 + 1;
            while n < due {
                let conv = conversations[next % conversations.len()].0;
                next += 1;
                let cid = client::client_id("o-");
                let mut body = client::stamped_body(&format!("slow-test n={n} c={conv}"));
                body.push(' ');
                while body.len() < body_bytes {
                    body.push('x');
                }
                n += 1;
                let frame = client::operator_message(conv, &cid, &body);
                out.push(outbox.send(cid, frame, &sh.live, &sh.outstanding));
            }
        }
        if let Err(e) = client::send_all(&mut ws, out).await {
            ended_why = Some(e);
            break;
        }
        tokio::select! {
            ev = client::next_event(&mut ws) => match ev {
                Event::Frame(f) => match f.ty.as_str() {
                    "ack" => {
                        if let Some(conv) = outbox.on_ack(&f, &sh.live, &sh.outstanding) {
                            if healthy.contains(&conv) {
                                sh.healthy_acked.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                    "error" => outbox.on_error(&f, &sh.live, &sh.outstanding),
                    _ => {}
                },
                Event::Garbled => {}
                other => {
                    Live::bump(&sh.live.errors);
                    ended_why = Some(client::why_ended(other));
                    break;
                }
            },
            changed = phase.changed() => {
                if changed.is_err() {
                    break;
                }
            }
            _ = ticker.tick() => {}
        }
    }
    sh.live.open.fetch_sub(1, Ordering::Relaxed);
    (outbox, ended_why)
}

/// Reads every slow socket until the server's close, end of stream, or silence.
async fn probe_all(slow: Vec<(i64, Box<Ws>)>) -> Vec<Probe> {
    let tasks: Vec<_> = slow
        .into_iter()
        .map(|(conv, ws)| tokio::spawn(probe(conv, ws)))
        .collect();
    let mut probes = Vec::new();
    for t in tasks {
        if let Ok(p) = t.await {
            probes.push(p);
        }
    }
    probes
}

async fn probe(conversation: i64, mut ws: Box<Ws>) -> Probe {
    let mut p = Probe::default();
    let limit = Instant::now() + PROBE_LIMIT;
    loop {
        let wait = PROBE_IDLE.min(limit.saturating_duration_since(Instant::now()));
        match tokio::time::timeout(wait, client::next_event(&mut *ws)).await {
            Err(_) => {
                p.outcome = "still open".into();
                break;
            }
            Ok(Event::Frame(f)) => {
                if f.ty == "message" && f.conversation_id == Some(conversation) {
                    p.order.check(conversation, f.seq.unwrap_or(0));
                }
                p.frames += 1;
            }
            Ok(Event::Garbled) => p.frames += 1,
            Ok(Event::Closed(code)) => {
                p.close_code = code;
                p.outcome = match code {
                    Some(c) => format!("close frame {c}"),
                    None => "close frame without code".into(),
                };
                break;
            }
            Ok(Event::Eof) => {
                p.outcome = "end of stream without close frame".into();
                break;
            }
            Ok(Event::Error(e)) => {
                p.outcome = format!("read error: {e}");
                break;
            }
        }
    }
    p
}

#[cfg(test)]
mod tests {
    use super::is_slow;

    #[test]
    fn slow_visitors_are_spread_evenly() {
        let slow: Vec<usize> = (0..10).filter(|&i| is_slow(i, 0.2)).collect();
        assert_eq!(slow, vec![4, 9]);
        assert_eq!((0..200).filter(|&i| is_slow(i, 0.2)).count(), 40);
        assert_eq!((0..7).filter(|&i| is_slow(i, 0.0)).count(), 0);
        assert_eq!((0..7).filter(|&i| is_slow(i, 1.0)).count(), 7);
    }
}
