//! The `connections` scenario: open N idle visitor websockets (hello → welcome) with
//! bounded concurrency, from loopback source addresses in rotation, hold them while still
//! reading (so the server's pings are answered), and report connect latency and the
//! server's memory per connection. When N is more than one process can hold (its open-file
//! limit minus a margin), the work is split across worker processes: this binary
//! re-executed with the hidden `__connections-worker` subcommand, which reports JSON lines
//! on stdout and stops when told on stdin.

use super::{mib, rate, secs, Ticker};
use crate::args::{Options, WorkerArgs};
use crate::client::{self, Dial, Event, SMALL_READ_BUFFER};
use crate::net::Endpoint;
use crate::procfs;
use crate::report::Report;
use crate::server::Target;
use crate::stats::{Hist, Tally};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

/// File descriptors a process keeps for itself besides its connections.
const FD_MARGIN: u64 = 200;
/// Longest time one connection may take from TCP connect to `welcome`.
const OPEN_TIMEOUT: Duration = Duration::from_secs(60);
/// Time the server gets to settle before its memory is read.
const SETTLE: Duration = Duration::from_secs(1);

/// Counts of one process's connections (also the worker's progress line).
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Snapshot {
    /// Attempts finished, successfully or not.
    pub finished: u64,
    /// Connections that reached `welcome`.
    pub opened: u64,
    /// Connections open now.
    pub open: u64,
    /// Attempts that failed.
    pub failed: u64,
    /// Connections that ended after opening, before the hold was over.
    pub dropped: u64,
}

impl Snapshot {
    fn add(&mut self, o: &Snapshot) {
        self.finished += o.finished;
        self.opened += o.opened;
        self.open += o.open;
        self.failed += o.failed;
        self.dropped += o.dropped;
    }
}

/// Everything one process measured, sent back at the end.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Final {
    /// Counts at the end of the hold.
    pub counts: Snapshot,
    /// Connect latency histogram as `[µs, count]` pairs.
    pub latency: Vec<(u64, u64)>,
    /// Why attempts failed.
    pub failures: BTreeMap<String, u64>,
    /// Why open connections ended early.
    pub drops: BTreeMap<String, u64>,
}

/// One line a worker prints on stdout.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum WorkerLine {
    Progress(Snapshot),
    Final(Final),
}

#[derive(Default)]
struct Counters {
    finished: AtomicU64,
    opened: AtomicU64,
    open: AtomicU64,
    failed: AtomicU64,
    dropped: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> Snapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Snapshot {
            finished: get(&self.finished),
            opened: get(&self.opened),
            open: get(&self.open),
            failed: get(&self.failed),
            dropped: get(&self.dropped),
        }
    }
}

enum Outcome {
    Failed(String),
    Held {
        latency: Duration,
        dropped: Option<String>,
    },
}

/// The connections of one process.
struct Fleet {
    counters: Arc<Counters>,
    stop: watch::Sender<bool>,
    tasks: JoinSet<Outcome>,
}

impl Fleet {
    fn start(ep: Endpoint, count: usize, src_offset: usize, concurrency: usize) -> Fleet {
        let counters = Arc::new(Counters::default());
        let (stop, stop_rx) = watch::channel(false);
        let gate = Arc::new(Semaphore::new(concurrency.max(1)));
        let mut tasks = JoinSet::new();
        for k in 0..count {
            tasks.spawn(hold_one(
                ep.clone(),
                src_offset + k,
                gate.clone(),
                counters.clone(),
                stop_rx.clone(),
            ));
        }
        Fleet {
            counters,
            stop,
            tasks,
        }
    }

    async fn finish(mut self) -> Final {
        let counts = self.counters.snapshot();
        let _ = self.stop.send(true);
        let mut hist = Hist::new();
        let (mut failures, mut drops) = (Tally::default(), Tally::default());
        while let Some(res) = self.tasks.join_next().await {
            match res {
                Ok(Outcome::Failed(why)) => failures.add(why),
                Ok(Outcome::Held { latency, dropped }) => {
                    hist.record(latency);
                    if let Some(why) = dropped {
                        drops.add(why);
                    }
                }
                Err(e) => failures.add(format!("harness task failed: {e}")),
            }
        }
        Final {
            counts,
            latency: hist.to_pairs(),
            failures: failures.0,
            drops: drops.0,
        }
    }
}

async fn hold_one(
    ep: Endpoint,
    index: usize,
    gate: Arc<Semaphore>,
    counters: Arc<Counters>,
    mut stop: watch::Receiver<bool>,
) -> Outcome {
    let opened = {
        let Ok(_slot) = gate.acquire().await else {
            return Outcome::Failed("abandoned".into());
        };
        let started = Instant::now();
        let attempt = async {
            let mut ws = client::connect(
                &ep,
                "/ws/visitor",
                Dial::from_source(index, SMALL_READ_BUFFER),
            )
            .await?;
            client::hello(&mut ws).await?;
            Ok::<_, String>(ws)
        };
        match tokio::time::timeout(OPEN_TIMEOUT, attempt).await {
            Ok(Ok(ws)) => Ok((ws, started.elapsed())),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(format!("not open within {} s", OPEN_TIMEOUT.as_secs())),
        }
    };
    counters.finished.fetch_add(1, Ordering::Relaxed);
    let (mut ws, latency) = match opened {
        Ok(x) => x,
        Err(why) => {
            counters.failed.fetch_add(1, Ordering::Relaxed);
            return Outcome::Failed(why);
        }
    };
    counters.opened.fetch_add(1, Ordering::Relaxed);
    counters.open.fetch_add(1, Ordering::Relaxed);
    // Idle, but reading: tungstenite answers the server's pings while it reads.
    let mut dropped = None;
    while !*stop.borrow_and_update() {
        tokio::select! {
            ev = client::next_event(&mut ws) => match ev {
                Event::Frame(_) | Event::Garbled => {}
                other => {
                    dropped = Some(client::why_ended(other));
                    break;
                }
            },
            changed = stop.changed() => {
                if changed.is_err() {
                    break;
                }
            }
        }
    }
    counters.open.fetch_sub(1, Ordering::Relaxed);
    if dropped.is_some() {
        counters.dropped.fetch_add(1, Ordering::Relaxed);
    }
    Outcome::Held { latency, dropped }
}

/// A worker process and what it last reported.
struct Worker {
    child: tokio::process::Child,
    stdin: Option<tokio::process::ChildStdin>,
    latest: Arc<Mutex<Snapshot>>,
    /// Set when the worker's stdout ends (it exited).
    gone: Arc<AtomicBool>,
    last: tokio::sync::oneshot::Receiver<Final>,
}

impl Worker {
    fn spawn(
        url: &str,
        count: usize,
        src_offset: usize,
        concurrency: usize,
    ) -> Result<Worker, String> {
        let exe = std::env::current_exe()
            .map_err(|e| format!("cannot find this program to re-execute it: {e}"))?;
        let mut child = tokio::process::Command::new(exe)
            .arg("__connections-worker")
            .args(["--count", &count.to_string()])
            .args(["--src-offset", &src_offset.to_string()])
            .args(["--url", url])
            .args(["--concurrency", &concurrency.to_string()])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start a worker process: {e}"))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| "the worker has no stdout".to_string())?;
        let latest: Arc<Mutex<Snapshot>> = Arc::default();
        let (tx, last) = tokio::sync::oneshot::channel();
        let sink = latest.clone();
        let gone = Arc::new(AtomicBool::new(false));
        let gone_flag = gone.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            let mut tx = Some(tx);
            while let Ok(Some(line)) = lines.next_line().await {
                match serde_json::from_str::<WorkerLine>(&line) {
                    Ok(WorkerLine::Progress(s)) => {
                        if let Ok(mut l) = sink.lock() {
                            *l = s;
                        }
                    }
                    Ok(WorkerLine::Final(f)) => {
                        if let Some(tx) = tx.take() {
                            let _ = tx.send(f);
                        }
                    }
                    Err(_) => eprintln!("worker: {line}"),
                }
            }
            gone_flag.store(true, Ordering::Relaxed);
        });
        Ok(Worker {
            stdin: child.stdin.take(),
            child,
            latest,
            gone,
            last,
        })
    }

    fn snapshot(&self) -> Snapshot {
        self.latest.lock().map(|s| s.clone()).unwrap_or_default()
    }

    async fn finish(mut self) -> Result<Final, String> {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = stdin.write_all(b"stop\n").await;
        }
        let last = tokio::time::timeout(Duration::from_secs(120), self.last)
            .await
            .map_err(|_| "a worker did not report within 120 s".to_string())?
            .map_err(|_| "a worker ended without its final report".to_string());
        let _ = tokio::time::timeout(Duration::from_secs(30), self.child.wait()).await;
        last
    }
}

/// Where the connections live: in this process, or in worker processes.
enum Opener {
    Local(Fleet),
    Workers(Vec<Worker>),
}

impl Opener {
    fn snapshot(&self) -> Snapshot {
        match self {
            Opener::Local(f) => f.counters.snapshot(),
            Opener::Workers(ws) => {
                let mut total = Snapshot::default();
                for w in ws {
                    total.add(&w.snapshot());
                }
                total
            }
        }
    }

    async fn finish(self) -> Result<Final, String> {
        match self {
            Opener::Local(f) => Ok(f.finish().await),
            Opener::Workers(ws) => {
                let mut total = Final::default();
                let mut hist = Hist::new();
                let (mut failures, mut drops) = (Tally::default(), Tally::default());
                for w in ws {
                    let f = w.finish().await?;
                    total.counts.add(&f.counts);
                    hist.add_pairs(&f.latency);
                    failures.merge(&Tally(f.failures));
                    drops.merge(&Tally(f.drops));
                }
                total.latency = hist.to_pairs();
                total.failures = failures.0;
                total.drops = drops.0;
                Ok(total)
            }
        }
    }
}

/// Runs the scenario.
pub async fn run(opts: &Options, target: &Target) -> Result<Report, String> {
    let n = opts.visitors;
    let limit = procfs::open_file_limit();
    let per_process = opts.per_process.unwrap_or_else(|| {
        limit.map_or(1000, |l| {
            l.saturating_sub(FD_MARGIN).max(1).min(usize::MAX as u64) as usize
        })
    });
    let hold = Duration::from_secs_f64(opts.hold.unwrap_or(opts.duration));
    let processes = n.div_ceil(per_process);
    eprintln!(
        "open-file limit of this process: {}; up to {per_process} connections per process; \
         {n} connections in {}",
        limit.map_or("unknown".to_string(), |l| l.to_string()),
        if processes > 1 {
            format!("{processes} worker processes")
        } else {
            "this process".to_string()
        }
    );
    let rss_baseline = target.rss();
    let opener = if processes > 1 {
        let base = format!("http://{}", target.ep.authority);
        let concurrency = (opts.concurrency / processes).max(1);
        let mut workers = Vec::new();
        for p in 0..processes {
            let first = p * n / processes;
            let count = (p + 1) * n / processes - first;
            workers.push(Worker::spawn(&base, count, first, concurrency)?);
        }
        Opener::Workers(workers)
    } else {
        Opener::Local(Fleet::start(target.ep.clone(), n, 0, opts.concurrency))
    };
    let opener = Arc::new(opener);
    let view = opener.clone();
    let ticker = Ticker::start(target.pid, move |t| {
        let s = view.snapshot();
        format!(
            "t={t}s open={} opened={} failed={} dropped={} of {n}",
            s.open, s.opened, s.failed, s.dropped
        )
    });
    while (opener.snapshot().finished as usize) < n {
        if let Opener::Workers(ws) = opener.as_ref() {
            if ws.iter().any(|w| w.gone.load(Ordering::Relaxed)) {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let open_time = ticker.elapsed();
    let at_open = opener.snapshot();
    eprintln!(
        "{} of {n} connections open after {:.1} s ({} failed); holding for {:.0} s",
        at_open.open,
        open_time.as_secs_f64(),
        at_open.failed,
        hold.as_secs_f64()
    );
    tokio::time::sleep(SETTLE.max(hold)).await;
    let rss_open = target.rss();
    let held = opener.snapshot();
    let samples = ticker.stop().await;
    let opener = Arc::try_unwrap(opener)
        .map_err(|_| "the progress ticker still holds the connections".to_string())?;
    let last = opener.finish().await?;
    let mut latency = Hist::new();
    latency.add_pairs(&last.latency);

    let mut report = Report::new("connections");
    report.set("visitors", n);
    report.set("operators", 0);
    report.set("duration_s", hold.as_secs_f64());
    report.set("requested", n);
    report.set("connections_open", held.open);
    report.set("opened", held.opened);
    report.set("failed", held.failed);
    report.set("dropped", held.dropped);
    report.set("errors", held.failed + held.dropped);
    report.set("connect_p50_ms", latency.ms(0.50));
    report.set("connect_p99_ms", latency.ms(0.99));
    report.set("connect_max_ms", latency.max_ms());
    report.set("open_duration_s", secs(open_time));
    report.set("connects_per_sec", rate(at_open.opened, open_time));
    report.set("server_rss_baseline_bytes", rss_baseline);
    report.set("server_rss_bytes", rss_open);
    report.set(
        "server_rss_max_bytes",
        samples.iter().copied().chain(rss_open).max(),
    );
    let per_connection = match (rss_baseline, rss_open, held.open) {
        (Some(b), Some(o), open) if open > 0 => Some(o.saturating_sub(b) / open),
        _ => None,
    };
    report.set("rss_per_connection_bytes", per_connection);
    report.set("open_file_limit", limit);
    report.set(
        "worker_processes",
        if processes > 1 { processes } else { 0 },
    );
    report.set("failure_reasons", Tally(last.failures).json());
    report.set("drop_reasons", Tally(last.drops).json());
    if let (Some(b), Some(o)) = (rss_baseline, rss_open) {
        eprintln!(
            "server RSS: {} before, {} with the connections open",
            mib(b),
            mib(o)
        );
    }
    Ok(report)
}

/// The hidden `__connections-worker` subcommand: opens its share of connections, prints
/// progress lines, and on `stop` (or end of input) prints its final report and exits.
pub async fn worker(args: WorkerArgs) -> Result<(), String> {
    let ep = Endpoint::resolve(&args.url).await?;
    let fleet = Fleet::start(ep, args.count, args.src_offset, args.concurrency);
    let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
    // Standard input is read on a plain thread: tokio's stdin needs another feature.
    std::thread::spawn(move || {
        let mut line = String::new();
        loop {
            line.clear();
            match std::io::stdin().read_line(&mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) if line.trim() == "stop" => break,
                Ok(_) => {}
            }
        }
        let _ = stop_tx.send(());
    });
    let mut every = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            _ = every.tick() => print_line(&WorkerLine::Progress(fleet.counters.snapshot())),
            _ = &mut stop_rx => break,
        }
    }
    print_line(&WorkerLine::Final(fleet.finish().await));
    Ok(())
}

fn print_line(line: &WorkerLine) {
    if let Ok(text) = serde_json::to_string(line) {
        println!("{text}");
    }
}
