//! Per-socket bookkeeping for the chat-like scenarios. An [`Outbox`] follows the messages a
//! socket sent until their `ack` (latency, `busy` retries with the same `client_id`,
//! rejections); an [`Inbox`] follows the messages a socket received (order per
//! conversation, exactly-once per `client_id`, delivery latency from the body's stamp).

use crate::client::{body_sent_us, now_us, Frame};
use crate::stats::{Hist, Live, Order, OrderCheck, Tally};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

/// Error codes after which the same frame is sent again (protocol section 4).
const RETRYABLE: &[&str] = &["busy", "storage_unavailable"];

struct Sent {
    at: Instant,
    frame: String,
    timed: bool,
}

/// Messages sent and not yet acknowledged.
#[derive(Default)]
pub struct Outbox {
    pending: HashMap<String, Sent>,
    retry: VecDeque<(Instant, String)>,
    /// Send → ack latency (from the first send, retries included) of timed messages.
    pub ack_latency: Hist,
    /// While set, new messages are counted but not timed (a scenario's warm-up, such as
    /// the messages that open conversations before the measured phase).
    pub warming_up: bool,
    /// Acknowledged messages: `(client_id, conversation_id)`.
    pub acked: Vec<(String, i64)>,
    /// `error` frames by code.
    pub codes: Tally,
    /// Frames sent again after a retryable error.
    pub retries: u64,
    /// Messages refused for good (a non-retryable error naming their `client_id`).
    pub rejected: u64,
    /// Acks with `duplicate: true`.
    pub duplicate_acks: u64,
    /// Acks for no pending message.
    pub unexpected_acks: u64,
}

impl Outbox {
    /// Records a new message; returns the frame to send. `outstanding` counts messages in
    /// flight across all sockets.
    pub fn send(
        &mut self,
        client_id: String,
        frame: String,
        live: &Live,
        outstanding: &AtomicI64,
    ) -> String {
        Live::bump(&live.sent);
        outstanding.fetch_add(1, Ordering::Relaxed);
        self.pending.insert(
            client_id,
            Sent {
                at: Instant::now(),
                frame: frame.clone(),
                timed: !self.warming_up,
            },
        );
        frame
    }

    /// Messages waiting for their ack.
    pub fn in_flight(&self) -> usize {
        self.pending.len()
    }

    /// Handles an `ack`; returns the conversation id when it acknowledged a pending message.
    pub fn on_ack(&mut self, f: &Frame, live: &Live, outstanding: &AtomicI64) -> Option<i64> {
        let cid = f.client_id.as_deref()?;
        let Some(sent) = self.pending.remove(cid) else {
            self.unexpected_acks += 1;
            return None;
        };
        if sent.timed {
            self.ack_latency.record(sent.at.elapsed());
        }
        if f.duplicate == Some(true) {
            self.duplicate_acks += 1;
        }
        let conversation = f.conversation_id.unwrap_or(0);
        self.acked.push((cid.to_string(), conversation));
        Live::bump(&live.acked);
        outstanding.fetch_sub(1, Ordering::Relaxed);
        Some(conversation)
    }

    /// Handles an `error` frame: schedules a retry, or gives the message up.
    pub fn on_error(&mut self, f: &Frame, live: &Live, outstanding: &AtomicI64) {
        let code = f.code.as_deref().unwrap_or("unknown");
        self.codes.add(code);
        Live::bump(&live.errors);
        let Some(cid) = f.client_id.as_deref() else {
            return;
        };
        if !self.pending.contains_key(cid) {
            return;
        }
        if RETRYABLE.contains(&code) {
            let wait = Duration::from_millis(f.retry_after_ms.unwrap_or(50));
            self.retry
                .push_back((Instant::now() + wait, cid.to_string()));
        } else {
            self.pending.remove(cid);
            self.rejected += 1;
            outstanding.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Frames whose retry time has come (the same frame, same `client_id`).
    pub fn due_retries(&mut self) -> Vec<String> {
        let now = Instant::now();
        let mut due = Vec::new();
        while let Some((at, _)) = self.retry.front() {
            if *at > now {
                break;
            }
            if let Some((_, cid)) = self.retry.pop_front() {
                if let Some(sent) = self.pending.get(&cid) {
                    self.retries += 1;
                    due.push(sent.frame.clone());
                }
            }
        }
        due
    }
}

/// Messages one socket received.
#[derive(Default)]
pub struct Inbox {
    /// Order per conversation, over every `message` frame.
    pub order: OrderCheck,
    /// Every `message` frame this socket received (including ones it does not answer for).
    pub frames: u64,
    /// `client_id` → (times received, first seq), for the messages this socket answers for.
    received: HashMap<String, (u32, i64)>,
    /// Stamp in the body → receipt, for messages stamped at or after `timed_from_us`.
    pub delivery_latency: Hist,
    /// Messages stamped earlier (a scenario's warm-up) are delivered but not timed.
    pub timed_from_us: u64,
    /// The same `client_id` received again under a different seq (stored twice).
    pub stored_twice: u64,
}

impl Inbox {
    /// Checks a `message` frame's order; returns `None` for frames without seq.
    pub fn check_order(&mut self, f: &Frame) -> Option<Order> {
        self.frames += 1;
        Some(self.order.check(f.conversation_id?, f.seq?))
    }

    /// Records a message this socket is the intended receiver of; returns whether it is the
    /// first copy (only first copies count as deliveries and are timed).
    pub fn deliver(&mut self, f: &Frame) -> bool {
        let (Some(cid), Some(seq)) = (f.client_id.as_deref(), f.seq) else {
            return false;
        };
        let entry = self.received.entry(cid.to_string()).or_insert((0, seq));
        entry.0 += 1;
        if entry.0 > 1 {
            if entry.1 != seq {
                self.stored_twice += 1;
            }
            return false;
        }
        let stamp = f.body.as_deref().and_then(body_sent_us);
        if let Some(sent) = stamp.filter(|&t| t >= self.timed_from_us) {
            self.delivery_latency
                .record_us(now_us().saturating_sub(sent));
        }
        true
    }

    /// How many times a message was received.
    pub fn times(&self, client_id: &str) -> u32 {
        self.received.get(client_id).map_or(0, |e| e.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(json: &str) -> Frame {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn busy_is_retried_with_the_same_frame_and_acks_close_the_loop() {
        let live = Live::default();
        let out = AtomicI64::new(0);
        let mut ob = Outbox::default();
        ob.send("c1".into(), "F1".into(), &live, &out);
        ob.on_error(
            &frame(r#"{"type":"error","code":"busy","client_id":"c1","retry_after_ms":0}"#),
            &live,
            &out,
        );
        assert_eq!(ob.due_retries(), vec!["F1".to_string()]);
        let conv = ob.on_ack(
            &frame(
                r#"{"type":"ack","client_id":"c1","conversation_id":7,"seq":2,"duplicate":false}"#,
            ),
            &live,
            &out,
        );
        assert_eq!(conv, Some(7));
        assert_eq!((ob.in_flight(), out.load(Ordering::Relaxed)), (0, 0));
        assert_eq!(ob.codes.total(), 1);
    }

    #[test]
    fn warm_up_messages_are_counted_but_not_timed() {
        let live = Live::default();
        let out = AtomicI64::new(0);
        let mut ob = Outbox {
            warming_up: true,
            ..Outbox::default()
        };
        ob.send("opener".into(), "F0".into(), &live, &out);
        ob.warming_up = false;
        ob.send("measured".into(), "F1".into(), &live, &out);
        for cid in ["opener", "measured"] {
            let ack = format!(
                r#"{{"type":"ack","client_id":"{cid}","conversation_id":7,"seq":2,"duplicate":false}}"#
            );
            assert_eq!(ob.on_ack(&frame(&ack), &live, &out), Some(7));
        }
        assert_eq!((ob.acked.len(), ob.ack_latency.len()), (2, 1));

        let mut ib = Inbox {
            timed_from_us: 100,
            ..Inbox::default()
        };
        let early = frame(
            r#"{"type":"message","conversation_id":1,"seq":1,"client_id":"a","body":"x t=99"}"#,
        );
        let late = frame(
            r#"{"type":"message","conversation_id":1,"seq":2,"client_id":"b","body":"x t=100"}"#,
        );
        assert!(ib.deliver(&early) && ib.deliver(&late));
        assert_eq!(ib.delivery_latency.len(), 1);
    }

    #[test]
    fn inbox_counts_copies() {
        let mut ib = Inbox::default();
        let m = frame(
            r#"{"type":"message","conversation_id":1,"seq":3,"client_id":"x","body":"a t=1"}"#,
        );
        assert_eq!(ib.check_order(&m), Some(Order::Fresh));
        assert!(ib.deliver(&m));
        assert_eq!(ib.check_order(&m), Some(Order::Duplicated));
        assert!(!ib.deliver(&m));
        assert_eq!((ib.times("x"), ib.stored_twice), (2, 0));
    }
}
