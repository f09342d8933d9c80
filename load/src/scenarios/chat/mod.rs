//! The `chat` scenario: O operator sockets, then V visitors that each open a conversation
//! and keep writing (a window of unacked messages, or paced to a total `--rate`); operator
//! j answers every visitor message of the conversations whose id % O == j. Measures ack
//! and delivery latency and throughput, and checks that every acknowledged message reaches
//! its intended receiver exactly once and that every socket sees each conversation's
//! messages in increasing seq order.

mod check;

use super::{rate, secs, Ticker};
use crate::args::Options;
use crate::client::{self, Dial, Event, Frame, Ws, BUSY_READ_BUFFER};
use crate::report::Report;
use crate::server::Target;
use crate::stats::Live;
use crate::tracking::{Inbox, Outbox};
use futures_util::FutureExt;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::time::MissedTickBehavior;

/// How long the run waits, after sending stops, for in-flight acks and deliveries.
const DRAIN: Duration = Duration::from_secs(5);
/// How long visitors may take to connect and open their conversations.
const SETUP_TIMEOUT: Duration = Duration::from_secs(120);
/// Most unacked messages a paced visitor keeps; beyond it, sends are skipped and counted.
const PACED_IN_FLIGHT_CAP: usize = 1024;
/// Connection attempts in flight during setup.
const CONNECT_CONCURRENCY: usize = 256;
/// Frames handled in one go before the socket's pending sends are flushed.
const READ_BATCH: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Phase {
    Setup,
    Run,
    Drain,
    Stop,
}

/// What every client task shares.
struct Shared {
    live: Live,
    /// Messages sent and neither acked nor rejected, over all sockets.
    outstanding: AtomicI64,
    /// Deliveries that happened after the measured phase began.
    delivered_in_run: AtomicU64,
    run_start: OnceLock<Instant>,
    /// The same moment on the clock message stamps use.
    run_start_us: OnceLock<u64>,
    visitors: usize,
    operators: usize,
    /// Messages per second per visitor, when paced.
    per_visitor_rate: Option<f64>,
    window: usize,
}

impl Shared {
    /// Messages stamped before the measured phase (the conversation-opening ones of the
    /// setup, and the replies to them) are checked and counted but not timed: they
    /// measure a burst of openings, which `burst` reports on its own.
    fn timed_from_us(&self) -> u64 {
        self.run_start_us.get().copied().unwrap_or(u64::MAX)
    }

    fn delivered(&self) {
        Live::bump(&self.live.delivered);
        if self.run_start.get().is_some() {
            self.delivered_in_run.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// One visitor's record.
#[derive(Default)]
pub(super) struct VisitorResult {
    conversation: Option<i64>,
    outbox: Outbox,
    inbox: Inbox,
    /// Messages of another conversation seen on this visitor's socket.
    misrouted: u64,
    /// Paced sends skipped because too many were unacked.
    skipped: u64,
    /// Frames that were not JSON.
    garbled: u64,
    /// Why the socket ended before the run did.
    ended: Option<String>,
    /// Why the visitor never started.
    failed: Option<String>,
}

/// One operator socket's record.
#[derive(Default)]
pub(super) struct OperatorResult {
    outbox: Outbox,
    inbox: Inbox,
    garbled: u64,
    ended: Option<String>,
}

/// Runs the scenario.
pub async fn run(opts: &Options, target: &Target) -> Result<Report, String> {
    let shared = Arc::new(Shared {
        live: Live::default(),
        outstanding: AtomicI64::new(0),
        delivered_in_run: AtomicU64::new(0),
        run_start: OnceLock::new(),
        run_start_us: OnceLock::new(),
        visitors: opts.visitors,
        operators: opts.operators,
        per_visitor_rate: opts.rate.map(|r| r / 2.0 / opts.visitors as f64),
        window: opts.window,
    });
    let duration = Duration::from_secs_f64(opts.duration);
    let token = target.operator_token().await?;
    let (phase_tx, phase_rx) = watch::channel(Phase::Setup);
    let line_source = shared.clone();
    let ticker = Ticker::start(target.pid, move |t| line_source.live.line(t));

    let mut operator_tasks = Vec::new();
    for j in 0..opts.operators {
        let dial = Dial::from_source(j, BUSY_READ_BUFFER);
        let ws = client::operator(&target.ep, &token, dial)
            .await
            .map_err(|e| format!("operator {j} could not connect: {e}"))?;
        shared.live.open.fetch_add(1, Ordering::Relaxed);
        operator_tasks.push(tokio::spawn(operator(
            j,
            ws,
            shared.clone(),
            phase_rx.clone(),
        )));
    }

    let gate = Arc::new(Semaphore::new(CONNECT_CONCURRENCY));
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel::<bool>();
    let mut visitor_tasks = Vec::new();
    for i in 0..opts.visitors {
        visitor_tasks.push(tokio::spawn(visitor(
            i,
            target.ep.clone(),
            gate.clone(),
            shared.clone(),
            phase_rx.clone(),
            ready_tx.clone(),
        )));
    }
    drop(ready_tx);
    let setup_deadline = tokio::time::Instant::now() + SETUP_TIMEOUT;
    let (mut ready, mut failed) = (0usize, 0usize);
    while ready + failed < opts.visitors {
        match tokio::time::timeout_at(setup_deadline, ready_rx.recv()).await {
            Ok(Some(true)) => ready += 1,
            Ok(Some(false)) => failed += 1,
            Ok(None) | Err(_) => break,
        }
    }
    eprintln!(
        "{ready} of {} visitors have a conversation ({failed} failed); measuring for {} s",
        opts.visitors, opts.duration
    );
    if ready == 0 {
        let _ = phase_tx.send(Phase::Stop);
        ticker.stop().await;
        return Err("no visitor could open a conversation".into());
    }

    let _ = shared.run_start_us.set(client::now_us());
    let _ = shared.run_start.set(Instant::now());
    let _ = phase_tx.send(Phase::Run);
    tokio::time::sleep(duration).await;
    let _ = phase_tx.send(Phase::Drain);
    let drain_start = Instant::now();
    while drain_start.elapsed() < DRAIN {
        let done = shared.outstanding.load(Ordering::Relaxed) <= 0
            && Live::get(&shared.live.delivered) >= Live::get(&shared.live.acked);
        if done {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let drain = drain_start.elapsed();
    let rss_end = target.rss();
    let open_end = shared.live.open.load(Ordering::Relaxed);
    let _ = phase_tx.send(Phase::Stop);

    let mut visitors = Vec::new();
    for t in visitor_tasks {
        visitors.push(t.await.map_err(|e| format!("a visitor task failed: {e}"))?);
    }
    let mut operators = Vec::new();
    for t in operator_tasks {
        operators.push(
            t.await
                .map_err(|e| format!("an operator task failed: {e}"))?,
        );
    }
    let rss_samples = ticker.stop().await;

    let mut report = Report::new("chat");
    report.set("visitors", opts.visitors);
    report.set("operators", opts.operators);
    report.set("duration_s", opts.duration);
    report.set(
        "mode",
        if opts.rate.is_some() {
            "rate"
        } else {
            "window"
        },
    );
    report.set("rate_offered", opts.rate);
    report.set("window", opts.rate.is_none().then_some(opts.window));
    report.set("visitors_ready", ready);
    check::fill(&mut report, &visitors, &operators, opts.operators);
    report.set(
        "msgs_per_sec",
        rate(shared.delivered_in_run.load(Ordering::Relaxed), duration),
    );
    report.set("connections_open", open_end);
    report.set("server_rss_bytes", rss_end);
    report.set(
        "server_rss_max_bytes",
        rss_samples.iter().copied().chain(rss_end).max(),
    );
    report.set("drain_s", secs(drain));
    Ok(report)
}

/// Connects a visitor, says hello, and spends one connection slot while doing so.
async fn connect_visitor(
    i: usize,
    ep: &crate::net::Endpoint,
    gate: &Semaphore,
) -> Result<Ws, String> {
    let _slot = gate
        .acquire()
        .await
        .map_err(|_| "the setup was abandoned".to_string())?;
    let mut ws = client::connect(ep, "/ws/visitor", Dial::from_source(i, BUSY_READ_BUFFER)).await?;
    client::hello(&mut ws).await?;
    Ok(ws)
}

async fn visitor(
    i: usize,
    ep: crate::net::Endpoint,
    gate: Arc<Semaphore>,
    sh: Arc<Shared>,
    mut phase: watch::Receiver<Phase>,
    ready: mpsc::UnboundedSender<bool>,
) -> VisitorResult {
    let mut r = VisitorResult::default();
    let mut ws = match connect_visitor(i, &ep, &gate).await {
        Ok(ws) => ws,
        Err(e) => {
            Live::bump(&sh.live.errors);
            r.failed = Some(e);
            let _ = ready.send(false);
            return r;
        }
    };
    sh.live.open.fetch_add(1, Ordering::Relaxed);
    let mut ready = Some(ready);
    let mut n = 0u64;
    let mut new_message = |r: &mut VisitorResult| {
        let cid = client::client_id("w-");
        let body = client::stamped_body(&format!("v={i} n={n}"));
        n += 1;
        let frame = client::visitor_message(&cid, &body);
        r.outbox.send(cid, frame, &sh.live, &sh.outstanding)
    };
    // The first message opens the conversation; the window opens once it is acked.
    r.outbox.warming_up = true;
    let opener = vec![new_message(&mut r)];
    let mut result = client::send_all(&mut ws, opener).await;
    let tick = match sh.per_visitor_rate {
        Some(rate) => Duration::from_secs_f64((1.0 / rate).clamp(0.002, 0.05)),
        None => Duration::from_millis(20),
    };
    let mut ticker = tokio::time::interval(tick);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    // Paced visitors start evenly spread over one send interval.
    let offset = sh
        .per_visitor_rate
        .map_or(0.0, |rate| i as f64 / sh.visitors as f64 / rate);
    let mut sent_in_run = 0u64;
    while result.is_ok() {
        let now_phase = *phase.borrow_and_update();
        if now_phase == Phase::Stop {
            break;
        }
        r.outbox.warming_up = now_phase < Phase::Run;
        r.inbox.timed_from_us = sh.timed_from_us();
        let mut out = r.outbox.due_retries();
        if let (Phase::Run, Some(_)) = (now_phase, r.conversation) {
            match (sh.per_visitor_rate, sh.run_start.get()) {
                (None, _) => {
                    while r.outbox.in_flight() < sh.window {
                        out.push(new_message(&mut r));
                    }
                }
                (Some(rate), Some(start)) => {
                    let elapsed = start.elapsed().as_secs_f64() - offset;
                    let due = if elapsed < 0.0 {
                        0
                    } else {
                        (elapsed * rate).floor() as u64 + 1
                    };
                    while sent_in_run < due {
                        sent_in_run += 1;
                        if r.outbox.in_flight() >= PACED_IN_FLIGHT_CAP {
                            r.skipped += 1;
                        } else {
                            out.push(new_message(&mut r));
                        }
                    }
                }
                (Some(_), None) => {}
            }
        }
        if let Err(e) = client::send_all(&mut ws, out).await {
            result = Err(e);
            break;
        }
        tokio::select! {
            ev = client::next_event(&mut ws) => {
                result = visitor_event(&mut r, ev, &sh, &mut ready);
                let mut batch = 1;
                while result.is_ok() && batch < READ_BATCH {
                    let Some(ev) = client::next_event(&mut ws).now_or_never() else { break };
                    result = visitor_event(&mut r, ev, &sh, &mut ready);
                    batch += 1;
                }
            }
            changed = phase.changed() => {
                if changed.is_err() {
                    break;
                }
            }
            _ = ticker.tick() => {}
        }
    }
    if let Err(why) = result {
        Live::bump(&sh.live.errors);
        r.ended = Some(why);
    } else {
        client::close(&mut ws).await;
    }
    sh.live.open.fetch_sub(1, Ordering::Relaxed);
    if let Some(ready) = ready {
        let _ = ready.send(false);
    }
    r
}

fn visitor_event(
    r: &mut VisitorResult,
    ev: Event,
    sh: &Shared,
    ready: &mut Option<mpsc::UnboundedSender<bool>>,
) -> Result<(), String> {
    let f = match ev {
        Event::Frame(f) => f,
        Event::Garbled => {
            r.garbled += 1;
            return Ok(());
        }
        other => return Err(client::why_ended(other)),
    };
    match f.ty.as_str() {
        "ack" => {
            if let Some(conv) = r.outbox.on_ack(&f, &sh.live, &sh.outstanding) {
                if r.conversation.is_none() {
                    r.conversation = Some(conv);
                    if let Some(tx) = ready.take() {
                        let _ = tx.send(true);
                    }
                }
            }
        }
        "message" => {
            r.inbox.check_order(&f);
            if let (Some(c), Some(own)) = (f.conversation_id, r.conversation) {
                if c != own {
                    r.misrouted += 1;
                }
            }
            if f.is_operator_text() && r.inbox.deliver(&f) {
                sh.delivered();
            }
        }
        "error" => r.outbox.on_error(&f, &sh.live, &sh.outstanding),
        _ => {}
    }
    Ok(())
}

async fn operator(
    j: usize,
    mut ws: Ws,
    sh: Arc<Shared>,
    mut phase: watch::Receiver<Phase>,
) -> OperatorResult {
    let mut r = OperatorResult::default();
    let mut replies: Vec<String> = Vec::new();
    let mut n = 0u64;
    let mut ticker = tokio::time::interval(Duration::from_millis(20));
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut result = Ok(());
    loop {
        let now_phase = *phase.borrow_and_update();
        if now_phase == Phase::Stop {
            break;
        }
        r.inbox.timed_from_us = sh.timed_from_us();
        let mut out = r.outbox.due_retries();
        out.append(&mut replies);
        if let Err(e) = client::send_all(&mut ws, out).await {
            result = Err(e);
            break;
        }
        tokio::select! {
            ev = client::next_event(&mut ws) => {
                let mut ev = Some(ev);
                let mut batch = 0;
                while let Some(e) = ev.take() {
                    let now_phase = *phase.borrow();
                    let replying = now_phase < Phase::Drain;
                    r.outbox.warming_up = now_phase < Phase::Run;
                    match operator_event(j, &mut r, e, &sh) {
                        Ok(Some(answer)) if replying => {
                            let cid = client::client_id("o-");
                            let body = client::stamped_body(&format!("o={j} n={n} re={}", answer.1));
                            n += 1;
                            let frame = client::operator_message(answer.0, &cid, &body);
                            replies.push(r.outbox.send(cid, frame, &sh.live, &sh.outstanding));
                        }
                        Ok(_) => {}
                        Err(e) => {
                            result = Err(e);
                            break;
                        }
                    }
                    batch += 1;
                    if batch < READ_BATCH {
                        ev = client::next_event(&mut ws).now_or_never();
                    }
                }
                if result.is_err() {
                    break;
                }
            }
            changed = phase.changed() => {
                if changed.is_err() {
                    break;
                }
            }
            _ = ticker.tick() => {}
        }
    }
    match result {
        Err(why) => {
            Live::bump(&sh.live.errors);
            r.ended = Some(why);
        }
        Ok(()) => client::close(&mut ws).await,
    }
    sh.live.open.fetch_sub(1, Ordering::Relaxed);
    r
}

/// Handles one event on operator socket `j`; returns `(conversation, client_id)` of a
/// visitor message this operator should answer.
fn operator_event(
    j: usize,
    r: &mut OperatorResult,
    ev: Event,
    sh: &Shared,
) -> Result<Option<(i64, String)>, String> {
    let f: Frame = match ev {
        Event::Frame(f) => f,
        Event::Garbled => {
            r.garbled += 1;
            return Ok(None);
        }
        other => return Err(client::why_ended(other)),
    };
    match f.ty.as_str() {
        "message" => {
            r.inbox.check_order(&f);
            let Some(conv) = f.conversation_id else {
                return Ok(None);
            };
            let mine = conv.rem_euclid(sh.operators as i64) as usize == j;
            if mine && f.is_visitor_text() && r.inbox.deliver(&f) {
                sh.delivered();
                return Ok(f.client_id.map(|cid| (conv, cid)));
            }
        }
        "ack" => {
            r.outbox.on_ack(&f, &sh.live, &sh.outstanding);
        }
        "error" => r.outbox.on_error(&f, &sh.live, &sh.outstanding),
        _ => {}
    }
    Ok(None)
}
