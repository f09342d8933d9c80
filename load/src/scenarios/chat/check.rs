//! The chat scenario's bookkeeping at the end: merges every socket's record into the
//! report's counts and latencies, and checks exactly-once delivery of every acknowledged
//! message to its intended receiver (visitor message → responsible operator, operator reply
//! → the conversation's visitor) and per-conversation order on every socket.

use super::{OperatorResult, VisitorResult};
use crate::report::Report;
use crate::stats::{Hist, Tally};
use serde_json::json;
use std::collections::HashMap;

/// Fills the counts, latencies and correctness checks from every socket's record.
pub(super) fn fill(
    report: &mut Report,
    visitors: &[VisitorResult],
    operators: &[OperatorResult],
    o: usize,
) {
    let owner: HashMap<i64, usize> = visitors
        .iter()
        .enumerate()
        .filter_map(|(i, v)| v.conversation.map(|c| (c, i)))
        .collect();
    let mut lost_examples = Vec::new();
    let mut lost = 0u64;
    let mut note_lost = |what: String| {
        lost += 1;
        if lost_examples.len() < 10 {
            lost_examples.push(what);
        }
    };
    for v in visitors {
        for (cid, conv) in &v.outbox.acked {
            let j = conv.rem_euclid(o as i64) as usize;
            if operators[j].inbox.times(cid) == 0 {
                note_lost(format!(
                    "{cid} (conversation {conv}) never reached operator {j}"
                ));
            }
        }
    }
    for (j, op) in operators.iter().enumerate() {
        for (cid, conv) in &op.outbox.acked {
            match owner.get(conv) {
                Some(&i) if visitors[i].inbox.times(cid) > 0 => {}
                Some(&i) => note_lost(format!(
                    "{cid} from operator {j} (conversation {conv}) never reached visitor {i}"
                )),
                None => note_lost(format!("{cid} was acked in unknown conversation {conv}")),
            }
        }
    }

    let (mut ack, mut v_ack, mut o_ack) = (Hist::new(), Hist::new(), Hist::new());
    let (mut delivery, mut to_op, mut to_visitor) = (Hist::new(), Hist::new(), Hist::new());
    let mut codes = Tally::default();
    let mut ended = Tally::default();
    let mut failures = Tally::default();
    let (mut v_sent, mut v_acked, mut o_acked, mut unacked) = (0u64, 0u64, 0u64, 0u64);
    let (mut retries, mut rejected, mut dup_acks, mut unexpected) = (0u64, 0u64, 0u64, 0u64);
    let (mut duplicated, mut reordered, mut garbled) = (0u64, 0u64, 0u64);
    let (mut misrouted, mut skipped, mut delivered) = (0u64, 0u64, 0u64);
    let (mut o_sent, mut feed) = (0u64, 0u64);
    for v in visitors {
        v_ack.merge(&v.outbox.ack_latency);
        to_visitor.merge(&v.inbox.delivery_latency);
        v_sent += (v.outbox.acked.len() + v.outbox.in_flight()) as u64 + v.outbox.rejected;
        v_acked += v.outbox.acked.len() as u64;
        misrouted += v.misrouted;
        skipped += v.skipped;
        garbled += v.garbled;
        if let Some(why) = &v.failed {
            failures.add(why.clone());
        }
        if let Some(why) = &v.ended {
            ended.add(why.clone());
        }
    }
    for op in operators {
        o_ack.merge(&op.outbox.ack_latency);
        to_op.merge(&op.inbox.delivery_latency);
        o_sent += (op.outbox.acked.len() + op.outbox.in_flight()) as u64 + op.outbox.rejected;
        o_acked += op.outbox.acked.len() as u64;
        feed += op.inbox.frames;
        garbled += op.garbled;
        if let Some(why) = &op.ended {
            ended.add(why.clone());
        }
    }
    let outboxes = visitors
        .iter()
        .map(|v| &v.outbox)
        .chain(operators.iter().map(|o| &o.outbox));
    for ob in outboxes {
        codes.merge(&ob.codes);
        retries += ob.retries;
        rejected += ob.rejected;
        dup_acks += ob.duplicate_acks;
        unexpected += ob.unexpected_acks;
        unacked += ob.in_flight() as u64;
    }
    let inboxes = visitors
        .iter()
        .map(|v| &v.inbox)
        .chain(operators.iter().map(|o| &o.inbox));
    for ib in inboxes {
        duplicated += ib.order.duplicated + ib.stored_twice;
        reordered += ib.order.reordered;
        delivered += ib.delivery_latency.len();
    }
    ack.merge(&v_ack);
    ack.merge(&o_ack);
    delivery.merge(&to_op);
    delivery.merge(&to_visitor);

    report.set("sent", v_sent + o_sent);
    report.set("acked", v_acked + o_acked);
    report.set("delivered", delivered);
    report.set("lost", lost);
    report.set("duplicated", duplicated);
    report.set("reordered", reordered);
    report.set(
        "errors",
        codes.total() + failures.total() + ended.total() + garbled,
    );
    report.set("ack_p50_ms", ack.ms(0.50));
    report.set("ack_p99_ms", ack.ms(0.99));
    report.set("delivery_p50_ms", delivery.ms(0.50));
    report.set("delivery_p99_ms", delivery.ms(0.99));
    report.set("ack_max_ms", ack.max_ms());
    report.set("delivery_max_ms", delivery.max_ms());
    report.set("visitor_sent", v_sent);
    report.set("visitor_acked", v_acked);
    report.set("operator_replies_sent", o_sent);
    report.set("operator_replies_acked", o_acked);
    report.set("visitor_ack_p50_ms", v_ack.ms(0.50));
    report.set("visitor_ack_p99_ms", v_ack.ms(0.99));
    report.set("operator_ack_p50_ms", o_ack.ms(0.50));
    report.set("operator_ack_p99_ms", o_ack.ms(0.99));
    report.set("to_operator_delivery_p50_ms", to_op.ms(0.50));
    report.set("to_operator_delivery_p99_ms", to_op.ms(0.99));
    report.set("to_visitor_delivery_p50_ms", to_visitor.ms(0.50));
    report.set("to_visitor_delivery_p99_ms", to_visitor.ms(0.99));
    report.set("operator_feed_messages", feed);
    report.set("unacked_at_end", unacked);
    report.set("busy_retries", retries);
    report.set("rejected", rejected);
    report.set("duplicate_acks", dup_acks);
    report.set("unexpected_acks", unexpected);
    report.set("misrouted", misrouted);
    report.set("paced_sends_skipped", skipped);
    report.set("unreadable_frames", garbled);
    report.set("error_codes", codes.json());
    report.set("connect_failures", failures.json());
    report.set("sockets_ended_early", ended.json());
    report.set("lost_examples", json!(lost_examples));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::Frame;

    fn message(conv: i64, seq: i64, cid: &str, author: &str) -> Frame {
        serde_json::from_str(&format!(
            r#"{{"type":"message","conversation_id":{conv},"seq":{seq},"kind":"text","author":{{"kind":"{author}"}},"client_id":"{cid}","body":"x t=1"}}"#
        ))
        .unwrap()
    }

    #[test]
    fn loss_duplicates_and_reorders_are_found() {
        // Two operators: conversation 4 belongs to operator 0.
        let mut v = VisitorResult {
            conversation: Some(4),
            ..VisitorResult::default()
        };
        v.outbox.acked = vec![("v0-0".into(), 4), ("v0-1".into(), 4)];
        let mut ops = vec![OperatorResult::default(), OperatorResult::default()];
        ops[1].outbox.acked = vec![("o1-0".into(), 4), ("o1-1".into(), 4)];

        // Operator 0 gets v0-0 twice under the same seq and never gets v0-1: one duplicate,
        // one lost. Operator 1 sees the same frames out of order.
        let first = message(4, 2, "v0-0", "visitor");
        for _ in 0..2 {
            ops[0].inbox.check_order(&first);
            ops[0].inbox.deliver(&first);
        }
        ops[1].inbox.check_order(&message(4, 3, "v0-1", "visitor"));
        ops[1].inbox.check_order(&first);
        // The visitor gets o1-0 only.
        let reply = message(4, 5, "o1-0", "operator");
        v.inbox.check_order(&reply);
        v.inbox.deliver(&reply);

        let mut r = Report::new("chat");
        fill(&mut r, &[v], &ops, 2);
        assert_eq!(r.get("lost"), Some(&json!(2)), "v0-1 and o1-1");
        assert_eq!(r.get("duplicated"), Some(&json!(1)));
        assert_eq!(r.get("reordered"), Some(&json!(1)));
        assert_eq!(r.get("delivered"), Some(&json!(2)));
    }
}
