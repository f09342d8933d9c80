//! Measurement helpers: latency histograms (recorded in microseconds, reported in
//! milliseconds), the per-conversation sequence order check, error-code tallies, and the
//! live counters behind the once-a-second progress line.

use hdrhistogram::Histogram;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

/// Highest latency recorded, in µs (10 minutes); higher values are clamped.
const MAX_US: u64 = 600_000_000;

/// A latency histogram in microseconds.
#[derive(Clone)]
pub struct Hist(Histogram<u64>);

impl Default for Hist {
    fn default() -> Self {
        Hist::new()
    }
}

impl Hist {
    /// An empty histogram with 3 significant digits.
    pub fn new() -> Hist {
        // Fixed, valid bounds: this cannot fail.
        #[allow(clippy::expect_used)]
        let h = Histogram::new_with_bounds(1, MAX_US, 3).expect("valid histogram bounds");
        Hist(h)
    }

    /// Records one latency.
    pub fn record(&mut self, d: Duration) {
        self.record_us(d.as_micros().min(u128::from(MAX_US)) as u64);
    }

    /// Records one latency given in microseconds.
    pub fn record_us(&mut self, us: u64) {
        self.0.saturating_record(us.clamp(1, MAX_US));
    }

    /// Adds another histogram's samples.
    pub fn merge(&mut self, other: &Hist) {
        // Both have the same bounds, so adding cannot fail; ignore the impossible error.
        let _ = self.0.add(&other.0);
    }

    /// Samples recorded.
    pub fn len(&self) -> u64 {
        self.0.len()
    }

    /// The latency at quantile `q` (0..=1), in ms, or `null` when empty.
    pub fn ms(&self, q: f64) -> Value {
        if self.0.is_empty() {
            return Value::Null;
        }
        ms_value(self.0.value_at_quantile(q))
    }

    /// The highest latency, in ms, or `null` when empty.
    pub fn max_ms(&self) -> Value {
        if self.0.is_empty() {
            return Value::Null;
        }
        ms_value(self.0.max())
    }

    /// `[value_us, count]` pairs, to carry a histogram between processes.
    pub fn to_pairs(&self) -> Vec<(u64, u64)> {
        self.0
            .iter_recorded()
            .map(|v| (v.value_iterated_to(), v.count_at_value()))
            .collect()
    }

    /// Adds pairs made by [`Hist::to_pairs`].
    pub fn add_pairs(&mut self, pairs: &[(u64, u64)]) {
        for &(value, count) in pairs {
            let _ = self.0.record_n(value.clamp(1, MAX_US), count);
        }
    }
}

fn ms_value(us: u64) -> Value {
    json!(us as f64 / 1000.0)
}

/// Outcome of checking one `message` frame's sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// Higher than every seq seen before in that conversation.
    Fresh,
    /// Equal to the last one: the same message twice.
    Duplicated,
    /// Lower than the last one.
    Reordered,
}

/// Per-conversation order check for one receiving socket.
#[derive(Default)]
pub struct OrderCheck {
    last: HashMap<i64, i64>,
    /// Frames with a seq equal to the previous one.
    pub duplicated: u64,
    /// Frames with a seq below the previous one.
    pub reordered: u64,
}

impl OrderCheck {
    /// Checks a `message` frame's seq in its conversation and remembers it.
    pub fn check(&mut self, conversation: i64, seq: i64) -> Order {
        let last = self.last.entry(conversation).or_insert(i64::MIN);
        if seq > *last {
            *last = seq;
            Order::Fresh
        } else if seq == *last {
            self.duplicated += 1;
            Order::Duplicated
        } else {
            self.reordered += 1;
            Order::Reordered
        }
    }
}

/// Counts by a string key (error codes, close codes, failure reasons).
#[derive(Default, Clone, Debug)]
pub struct Tally(pub BTreeMap<String, u64>);

impl Tally {
    /// Counts one.
    pub fn add(&mut self, key: impl Into<String>) {
        *self.0.entry(key.into()).or_insert(0) += 1;
    }

    /// Adds another tally.
    pub fn merge(&mut self, other: &Tally) {
        for (k, n) in &other.0 {
            *self.0.entry(k.clone()).or_insert(0) += n;
        }
    }

    /// The sum of all counts.
    pub fn total(&self) -> u64 {
        self.0.values().sum()
    }

    /// As a JSON object.
    pub fn json(&self) -> Value {
        json!(self.0)
    }
}

/// Counters every client task bumps, read by the progress line.
#[derive(Default)]
pub struct Live {
    /// Messages sent (first sends, not retries).
    pub sent: AtomicU64,
    /// Acks received.
    pub acked: AtomicU64,
    /// Messages that reached the receiver they were meant for.
    pub delivered: AtomicU64,
    /// Sockets open now.
    pub open: AtomicI64,
    /// Error frames, failed connections and sockets that ended unexpectedly.
    pub errors: AtomicU64,
}

impl Live {
    /// Adds one to a counter.
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Reads a counter.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    /// The progress line for second `t`.
    pub fn line(&self, t: u64) -> String {
        format!(
            "t={t}s sent={} acked={} delivered={} open={} errors={}",
            Live::get(&self.sent),
            Live::get(&self.acked),
            Live::get(&self.delivered),
            self.open.load(Ordering::Relaxed),
            Live::get(&self.errors),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_check_tells_duplicates_from_reorders() {
        let mut c = OrderCheck::default();
        assert_eq!(c.check(1, 1), Order::Fresh);
        assert_eq!(c.check(1, 3), Order::Fresh);
        assert_eq!(c.check(2, 2), Order::Fresh);
        assert_eq!(c.check(1, 3), Order::Duplicated);
        assert_eq!(c.check(1, 2), Order::Reordered);
        assert_eq!((c.duplicated, c.reordered), (1, 1));
    }

    #[test]
    fn histograms_survive_the_trip_between_processes() {
        let mut a = Hist::new();
        for ms in 1..=100 {
            a.record(Duration::from_millis(ms));
        }
        let mut b = Hist::new();
        b.add_pairs(&a.to_pairs());
        assert_eq!(b.len(), 100);
        assert_eq!(a.ms(0.99), b.ms(0.99));
        assert_eq!(Hist::new().ms(0.5), Value::Null);
    }
}
