//! A client that stops reading must neither stall others nor make the server buffer without
//! bound: the server closes its socket with 1008 once its unread backlog passes the limit,
//! and the client resumes from its last sequence number later (RT5, XB8's `slow` scenario).

// A failed expectation in a test is the test failing; panicking is the point.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{TestDb, TestServer};
use serde_json::json;

async fn a_client_that_stops_reading_is_shed_and_others_go_on(db: TestDb) {
    let srv = TestServer::start_with(&db, |c| c.max_send_backlog_bytes = 256 * 1024).await;
    let (token, _) = srv.operator("ana@example.com", false).await;
    let mut op = srv.operator_ws(&token).await;
    let (mut slow, welcome) = srv.new_visitor().await;
    let vtoken = welcome["visitor_token"]
        .as_str()
        .expect("token")
        .to_string();
    let slow_cid = slow.say("s1", "I will stop reading").await["conversation_id"]
        .as_i64()
        .expect("id");
    let (mut healthy, _) = srv.new_visitor().await;
    let healthy_cid = healthy.say("h1", "I keep reading").await["conversation_id"]
        .as_i64()
        .expect("id");

    // Far more than the kernel's socket buffers hold, to the reader who stopped reading.
    let body = "x".repeat(3900);
    const FLOOD: usize = 6000;
    for i in 0..FLOOD {
        op.send(json!({"type": "message", "conversation_id": slow_cid, "client_id": format!("f{i}"), "body": body}))
            .await;
    }
    let mut acked = 0;
    while acked < FLOOD {
        let f = op.next().await;
        if f["type"] == "ack" && f["conversation_id"] == slow_cid {
            acked += 1;
        }
    }
    // The healthy visitor is served as usual while that happens.
    op.send(json!({"type": "message", "conversation_id": healthy_cid, "client_id": "h-reply", "body": "hello"}))
        .await;
    let m = healthy.next_text().await;
    assert_eq!(m["body"], "hello");

    // The slow socket ends with 1008 after what had been written before the cut.
    let mut received = 0;
    while slow.try_next(common::FRAME_TIMEOUT).await.is_some() {
        received += 1;
    }
    assert_eq!(
        slow.closed,
        Some(1008),
        "shed with policy violation after {received} frames"
    );
    assert!(received < FLOOD, "the server stopped queueing for it");

    // Resuming from its last sequence number, it gets the rest exactly once.
    let mut again = srv.ws("/ws/visitor").await;
    again
        .send(json!({"type": "hello", "token": vtoken, "last_seq": 2}))
        .await;
    let w = again.next_of("welcome").await;
    let last = w["conversation"]["last_seq"].as_i64().expect("last");
    let mut expect = 3;
    while expect <= last {
        let m = again.next_of("message").await;
        assert_eq!(m["seq"], expect);
        expect += 1;
    }
    srv.stop().await;
}
both_backends!(
    slow_reader,
    a_client_that_stops_reading_is_shed_and_others_go_on
);
