//! The scenarios, and what they share: preparing the server, the once-a-second ticker that
//! prints progress and samples the server's memory, and finishing the report (server exit
//! status, RSS).

pub mod burst;
pub mod chat;
pub mod connections;
pub mod echo;
pub mod slow;

use crate::args::{Options, Scenario};
use crate::report::Report;
use crate::server::Target;
use serde_json::Value;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

/// Runs the chosen scenario against the chosen server and returns its report.
pub async fn run(opts: &Options) -> Result<Report, String> {
    let needs_operator = matches!(opts.scenario, Scenario::Chat | Scenario::Slow)
        || (opts.scenario == Scenario::Burst && opts.operators > 0);
    let mut target = Target::prepare(opts, needs_operator).await?;
    let result = match opts.scenario {
        Scenario::Connections => connections::run(opts, &target).await,
        Scenario::Chat => chat::run(opts, &target).await,
        Scenario::Burst => burst::run(opts, &target).await,
        Scenario::Slow => slow::run(opts, &target).await,
        Scenario::Echo => echo::run(opts, &target).await,
    };
    let crashed = target.crashed();
    let spawned = opts.spawn;
    let stopped = target.stop();
    let mut report = result?;
    if spawned {
        let exit = match (crashed, stopped) {
            (Some(why), _) => why,
            (None, Err(why)) => why,
            (None, Ok(())) => "ok".to_string(),
        };
        report.set("server_exit", exit);
    } else {
        report.set("server_exit", Value::Null);
    }
    Ok(report)
}

/// Prints a progress line on stderr every second and samples the server's RSS.
pub struct Ticker {
    started: Instant,
    samples: Arc<Mutex<Vec<u64>>>,
    task: JoinHandle<()>,
}

impl Ticker {
    /// Starts ticking; `line(t)` makes the progress line for second `t`.
    pub fn start(pid: Option<u32>, line: impl Fn(u64) -> String + Send + 'static) -> Ticker {
        let samples: Arc<Mutex<Vec<u64>>> = Arc::default();
        let sink = samples.clone();
        let started = Instant::now();
        let task = tokio::spawn(async move {
            let mut every = tokio::time::interval_at(
                tokio::time::Instant::now() + Duration::from_secs(1),
                Duration::from_secs(1),
            );
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                let t = started.elapsed().as_secs();
                let rss = pid.and_then(crate::procfs::rss_bytes);
                if let Some(bytes) = rss {
                    if let Ok(mut s) = sink.lock() {
                        s.push(bytes);
                    }
                }
                match rss {
                    Some(b) => eprintln!("{} rss={}", line(t), mib(b)),
                    None => eprintln!("{}", line(t)),
                }
            }
        });
        Ticker {
            started,
            samples,
            task,
        }
    }

    /// Seconds since the ticker started.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Stops ticking (the line closure is dropped before this returns) and returns the RSS
    /// samples, one per second.
    pub async fn stop(self) -> Vec<u64> {
        self.task.abort();
        let _ = self.task.await;
        self.samples.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

/// Bytes as MiB with one decimal, for humans.
pub fn mib(bytes: u64) -> String {
    format!("{:.1}MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// Rounds seconds to milliseconds for the report.
pub fn secs(d: Duration) -> Value {
    serde_json::json!((d.as_secs_f64() * 1000.0).round() / 1000.0)
}

/// Rounds a rate to one decimal for the report.
pub fn rate(count: u64, over: Duration) -> Value {
    let s = over.as_secs_f64();
    if s <= 0.0 {
        return Value::Null;
    }
    serde_json::json!((count as f64 / s * 10.0).round() / 10.0)
}
