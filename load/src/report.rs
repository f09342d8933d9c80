//! The run's report: the common fields every scenario fills (null where a figure does not
//! apply) plus scenario-specific ones, printed as a small table on stderr and, with
//! `--json`, as exactly one JSON object on stdout. It also decides the exit status.

use serde_json::{Map, Value};
use std::io::Write;

/// The fields every report has, in the order the table shows them.
const COMMON: &[&str] = &[
    "scenario",
    "visitors",
    "operators",
    "duration_s",
    "sent",
    "acked",
    "delivered",
    "lost",
    "duplicated",
    "reordered",
    "errors",
    "msgs_per_sec",
    "ack_p50_ms",
    "ack_p99_ms",
    "delivery_p50_ms",
    "delivery_p99_ms",
    "connections_open",
    "server_rss_bytes",
    "rss_per_connection_bytes",
];

/// Fields of a report, in insertion order.
#[derive(Debug, Clone)]
pub struct Report {
    fields: Vec<(String, Value)>,
}

impl Report {
    /// A report with every common field present and null.
    pub fn new(scenario: &str) -> Report {
        let mut r = Report {
            fields: COMMON
                .iter()
                .map(|k| (k.to_string(), Value::Null))
                .collect(),
        };
        r.set("scenario", scenario);
        r
    }

    /// Sets a field, keeping its place if it exists.
    pub fn set(&mut self, key: &str, value: impl Into<Value>) {
        let value = value.into();
        match self.fields.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value,
            None => self.fields.push((key.to_string(), value)),
        }
    }

    /// A field's value.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.fields.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// Why the run failed its correctness checks; empty when it did not.
    pub fn violations(&self) -> Vec<String> {
        let mut found: Vec<String> = ["lost", "duplicated", "reordered"]
            .iter()
            .filter_map(|k| {
                let n = self.get(k).and_then(Value::as_u64).unwrap_or(0);
                (n > 0).then(|| format!("{n} message(s) {k}"))
            })
            .collect();
        // A spawned server that crashed or would not stop is a failed run too.
        if let Some(exit) = self.get("server_exit").and_then(Value::as_str) {
            if exit != "ok" {
                found.push(exit.to_string());
            }
        }
        found
    }

    /// The report as one JSON object.
    pub fn json(&self) -> Value {
        Value::Object(self.fields.iter().cloned().collect::<Map<String, Value>>())
    }

    /// The human table, one `field  value` line each.
    pub fn table(&self) -> String {
        let width = self.fields.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        let mut out = String::new();
        for (k, v) in &self.fields {
            let shown = match v {
                Value::Null => "-".to_string(),
                Value::String(s) => s.clone(),
                Value::Array(items) if items.len() > 12 => {
                    format!("[{} values, see --json]", items.len())
                }
                other => other.to_string(),
            };
            out.push_str(&format!("  {k:<width$}  {shown}\n"));
        }
        out
    }

    /// Prints the table on stderr and, if asked, the JSON object on stdout.
    pub fn print(&self, json: bool) {
        eprintln!("\n{}", self.table());
        if json {
            let mut stdout = std::io::stdout().lock();
            // Nothing sensible to do if stdout is gone; the table is on stderr anyway.
            let _ = writeln!(stdout, "{}", self.json());
            let _ = stdout.flush();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_fields_are_always_there() {
        let mut r = Report::new("chat");
        r.set("lost", 0);
        r.set("extra", "x");
        let v = r.json();
        for k in COMMON {
            assert!(v.get(*k).is_some(), "{k}");
        }
        assert_eq!(v["scenario"], "chat");
        assert!(r.violations().is_empty());
        r.set("reordered", 2);
        assert_eq!(r.violations(), vec!["2 message(s) reordered".to_string()]);
    }
}
