//! Logs (through `tracing`) and the Prometheus metrics served at `/metrics`. The metrics are
//! plain atomics rendered by hand: a handful of counters, gauges and two histograms do not
//! justify a metrics framework in the dependency tree.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use tracing::level_filters::LevelFilter;

/// Parses a log level name.
pub fn parse_level(name: &str) -> Option<LevelFilter> {
    match name.trim().to_ascii_lowercase().as_str() {
        "error" => Some(LevelFilter::ERROR),
        "warn" => Some(LevelFilter::WARN),
        "info" => Some(LevelFilter::INFO),
        "debug" => Some(LevelFilter::DEBUG),
        "trace" => Some(LevelFilter::TRACE),
        "off" => Some(LevelFilter::OFF),
        _ => None,
    }
}

/// Installs the log subscriber once; later calls (tests start many servers) do nothing.
pub fn init_logging(level: &str) {
    let level = parse_level(level).unwrap_or(LevelFilter::INFO);
    let _ = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init();
}

/// A histogram with fixed upper bounds, in the unit its name says.
pub struct Histogram {
    bounds: &'static [f64],
    buckets: Vec<AtomicU64>,
    count: AtomicU64,
    /// Sum in millionths of the unit, so it stays an integer.
    sum_micro: AtomicU64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Histogram {
            bounds,
            buckets: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum_micro: AtomicU64::new(0),
        }
    }

    /// Records one observation.
    pub fn observe(&self, value: f64) {
        if let Some(i) = self.bounds.iter().position(|b| value <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micro
            .fetch_add((value * 1e6).max(0.0) as u64, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (bound, bucket) in self.bounds.iter().zip(&self.buckets) {
            cumulative += bucket.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let sum = self.sum_micro.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum {sum}\n{name}_count {count}");
    }
}

const BATCH_BOUNDS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0,
];
const LATENCY_BOUNDS: &[f64] = &[
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// Every metric the server exports.
pub struct Metrics {
    /// Open visitor websockets.
    pub visitor_connections: AtomicI64,
    /// Open operator websockets.
    pub operator_connections: AtomicI64,
    /// Messages accepted from clients (before persistence).
    pub messages_received: AtomicU64,
    /// Messages committed to the database.
    pub messages_persisted: AtomicU64,
    /// Requests waiting in the persister's queue.
    pub persist_queue_depth: AtomicI64,
    /// Requests refused because the persister's queue was full.
    pub persist_rejected: AtomicU64,
    /// Batches that failed to commit.
    pub persist_failures: AtomicU64,
    /// Conversation actors alive.
    pub conversations_active: AtomicI64,
    /// Error frames and HTTP errors sent to clients.
    pub client_errors: AtomicU64,
    /// Writes per committed batch.
    pub batch_size: Histogram,
    /// Time to commit one batch, in seconds.
    pub commit_seconds: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            visitor_connections: AtomicI64::new(0),
            operator_connections: AtomicI64::new(0),
            messages_received: AtomicU64::new(0),
            messages_persisted: AtomicU64::new(0),
            persist_queue_depth: AtomicI64::new(0),
            persist_rejected: AtomicU64::new(0),
            persist_failures: AtomicU64::new(0),
            conversations_active: AtomicI64::new(0),
            client_errors: AtomicU64::new(0),
            batch_size: Histogram::new(BATCH_BOUNDS),
            commit_seconds: Histogram::new(LATENCY_BOUNDS),
        }
    }
}

impl Metrics {
    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        let gauge = |out: &mut String, name: &str, help: &str, v: i64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        };
        let counter = |out: &mut String, name: &str, help: &str, v: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
            );
        };
        let _ = writeln!(
            out,
            "# HELP charla_connections_open Open websocket connections by kind.\n# TYPE charla_connections_open gauge"
        );
        let _ = writeln!(
            out,
            "charla_connections_open{{kind=\"visitor\"}} {}",
            self.visitor_connections.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "charla_connections_open{{kind=\"operator\"}} {}",
            self.operator_connections.load(Ordering::Relaxed)
        );
        counter(
            &mut out,
            "charla_messages_received_total",
            "Messages accepted from clients.",
            self.messages_received.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "charla_messages_persisted_total",
            "Messages committed to the database.",
            self.messages_persisted.load(Ordering::Relaxed),
        );
        gauge(
            &mut out,
            "charla_persist_queue_depth",
            "Requests waiting for the persister.",
            self.persist_queue_depth.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "charla_persist_rejected_total",
            "Requests refused with `busy` because the persister queue was full.",
            self.persist_rejected.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "charla_persist_failures_total",
            "Batches that failed to commit.",
            self.persist_failures.load(Ordering::Relaxed),
        );
        gauge(
            &mut out,
            "charla_conversations_active",
            "Conversation actors in memory.",
            self.conversations_active.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "charla_client_errors_total",
            "Error frames and HTTP errors sent to clients.",
            self.client_errors.load(Ordering::Relaxed),
        );
        self.batch_size.render(
            &mut out,
            "charla_persist_batch_size",
            "Writes committed per batch.",
        );
        self.commit_seconds.render(
            &mut out,
            "charla_persist_commit_seconds",
            "Time to commit one batch.",
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let m = Metrics::default();
        m.batch_size.observe(1.0);
        m.batch_size.observe(3.0);
        m.batch_size.observe(100_000.0);
        let text = m.render();
        assert!(text.contains("charla_persist_batch_size_bucket{le=\"1\"} 1"));
        assert!(text.contains("charla_persist_batch_size_bucket{le=\"4\"} 2"));
        assert!(text.contains("charla_persist_batch_size_bucket{le=\"+Inf\"} 3"));
        assert!(text.contains("charla_persist_batch_size_count 3"));
    }
}
