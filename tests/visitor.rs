//! The visitor's websocket: opening, ordering, resume, idempotency, and bad input (RT4, RT5,
//! CF11; invariants 2, 3, 4 of ARCHITECTURE.md).

// A failed expectation in a test is the test failing; panicking is the point.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{TestDb, TestServer};
use serde_json::json;
use std::time::Duration;

async fn a_new_visitor_gets_a_token_and_a_numbered_conversation(db: TestDb) {
    let srv = TestServer::start(&db).await;
    let (mut ws, welcome) = srv.new_visitor().await;
    let token = welcome["visitor_token"].as_str().expect("token issued");
    assert!(token.len() >= 40, "token is long and random: {token}");
    assert!(
        welcome["conversation"].is_null(),
        "no conversation before the first message"
    );

    ws.send(json!({"type": "message", "client_id": "c1", "body": "Hola"}))
        .await;
    let conv = ws.next_of("conversation").await;
    let number = conv["conversation"]["number"].as_i64().expect("number");
    assert!(number >= 1);
    let ack = ws.next_of("ack").await;
    assert_eq!(ack["client_id"], "c1");
    assert_eq!(ack["seq"], 2, "seq 1 is the `opened` event");
    assert_eq!(ack["conversation_id"], conv["conversation"]["id"]);

    // The token is stored hashed, never in clear.
    let store = srv.runtime().core.store.clone();
    let t = token.to_string();
    let found = store
        .call(move |s| s.visitor_by_token(&t))
        .await
        .expect("query");
    assert!(found.is_none(), "the raw token must not be a stored value");
    srv.stop().await;
}
both_backends!(
    new_visitor,
    a_new_visitor_gets_a_token_and_a_numbered_conversation
);

async fn messages_arrive_in_order_each_once(db: TestDb) {
    let srv = TestServer::start(&db).await;
    let (token, _) = srv.operator("ana@example.com", true).await;
    let mut op = srv.operator_ws(&token).await;
    let (mut ws, _) = srv.new_visitor().await;
    const N: usize = 300;
    // Pipelined: every frame sent before any ack is read.
    for i in 0..N {
        ws.send(
            json!({"type": "message", "client_id": format!("m{i}"), "body": format!("msg {i}")}),
        )
        .await;
    }
    let mut acked = Vec::new();
    while acked.len() < N {
        let f = ws.next().await;
        if f["type"] == "ack" {
            acked.push((
                f["client_id"].as_str().expect("id").to_string(),
                f["seq"].as_i64().expect("seq"),
            ));
        }
        assert_ne!(f["type"], "error", "{f}");
    }
    for (i, (cid, seq)) in acked.iter().enumerate() {
        assert_eq!(cid, &format!("m{i}"), "acks come in sending order");
        assert_eq!(*seq, i as i64 + 2, "sequence numbers follow sending order");
    }
    // The operator sees the opened event and every message, in sequence order, once.
    let mut seen = Vec::new();
    while seen.len() < N + 1 {
        let f = op.next().await;
        if f["type"] == "message" {
            seen.push(f["seq"].as_i64().expect("seq"));
        }
    }
    let expected: Vec<i64> = (1..=(N as i64 + 1)).collect();
    assert_eq!(seen, expected);
    assert!(op
        .try_next(Duration::from_millis(300))
        .await
        .is_none_or(|f| f["type"] != "message"));
    srv.stop().await;
}
both_backends!(ordering, messages_arrive_in_order_each_once);

async fn a_reconnecting_visitor_gets_exactly_what_it_missed(db: TestDb) {
    let srv = TestServer::start(&db).await;
    let (token, _) = srv.operator("ana@example.com", false).await;
    let (mut ws, welcome) = srv.new_visitor().await;
    let vtoken = welcome["visitor_token"]
        .as_str()
        .expect("token")
        .to_string();
    let ack = ws.say("v1", "I need help").await;
    let cid = ack["conversation_id"].as_i64().expect("id");
    // The operator takes it; the visitor sees the `assigned` event before leaving.
    srv.take(cid, &token).await;
    let assigned = ws.next_of("message").await;
    assert_eq!(assigned["body"], "assigned");
    let last_seen = assigned["seq"].as_i64().expect("seq");
    drop(ws);

    // While the visitor is away, the operator answers five times.
    for i in 0..5 {
        let (status, body) = srv
            .post(
                &format!("/api/conversations/{cid}/messages"),
                Some(&token),
                json!({"client_id": format!("o{i}"), "body": format!("answer {i}")}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }

    let mut ws = srv.ws("/ws/visitor").await;
    ws.send(json!({"type": "hello", "token": vtoken, "last_seq": last_seen}))
        .await;
    let welcome = ws.next_of("welcome").await;
    assert!(
        welcome.get("visitor_token").is_none(),
        "no new token on resume"
    );
    assert_eq!(welcome["conversation"]["id"], cid);
    let mut got = Vec::new();
    for _ in 0..5 {
        let m = ws.next_of("message").await;
        assert_eq!(m["author"]["kind"], "operator");
        got.push((
            m["seq"].as_i64().expect("seq"),
            m["body"].as_str().expect("body").to_string(),
        ));
    }
    let expected: Vec<(i64, String)> = (0..5)
        .map(|i| (last_seen + 1 + i, format!("answer {i}")))
        .collect();
    assert_eq!(got, expected);
    // Nothing more: no duplicates of what it had.
    assert!(ws.try_next(Duration::from_millis(300)).await.is_none());

    // Far behind the in-memory tail: replay from the database, from the start.
    let mut ws = srv.ws("/ws/visitor").await;
    ws.send(json!({"type": "hello", "token": vtoken, "last_seq": 0}))
        .await;
    ws.next_of("welcome").await;
    let mut seqs = Vec::new();
    for _ in 0..8 {
        seqs.push(ws.next_of("message").await["seq"].as_i64().expect("seq"));
    }
    assert_eq!(seqs, (1..=8).collect::<Vec<_>>());
    srv.stop().await;
}
both_backends!(resume, a_reconnecting_visitor_gets_exactly_what_it_missed);

async fn resume_from_the_database_after_the_actor_stopped(db: TestDb) {
    // A conversation whose actor went idle is reloaded from the database; a visitor far
    // behind gets the gap from storage, then live messages, with nothing twice.
    let srv = TestServer::start_with(&db, |c| c.conversation_idle_secs = 1).await;
    let (token, _) = srv.operator("ana@example.com", false).await;
    let (mut ws, welcome) = srv.new_visitor().await;
    let vtoken = welcome["visitor_token"]
        .as_str()
        .expect("token")
        .to_string();
    let cid = ws.say("v1", "hello").await["conversation_id"]
        .as_i64()
        .expect("id");
    drop(ws);
    srv.take(cid, &token).await;
    for i in 0..300 {
        let (status, _) = srv
            .post(
                &format!("/api/conversations/{cid}/messages"),
                Some(&token),
                json!({"client_id": format!("o{i}"), "body": format!("n{i}")}),
            )
            .await;
        assert_eq!(status, 200);
    }
    // Let the actor stop for idleness.
    let mut stopped = false;
    for _ in 0..60 {
        actix_rt::time::sleep(Duration::from_millis(100)).await;
        if srv.runtime().live_conversation(cid).is_none() {
            stopped = true;
            break;
        }
    }
    assert!(stopped, "the idle conversation actor stopped");
    let mut ws = srv.ws("/ws/visitor").await;
    ws.send(json!({"type": "hello", "token": vtoken, "last_seq": 1}))
        .await;
    ws.next_of("welcome").await;
    let mut seqs = Vec::new();
    while seqs.len() < 302 {
        seqs.push(ws.next_of("message").await["seq"].as_i64().expect("seq"));
    }
    // Its message, the `assigned` event, and the 300 answers.
    assert_eq!(seqs, (2..=303).collect::<Vec<_>>());
    // The reloaded actor continues the sequence.
    let ack = ws.say("v2", "still there?").await;
    assert_eq!(ack["seq"], 304);
    srv.stop().await;
}
both_backends!(
    resume_after_idle,
    resume_from_the_database_after_the_actor_stopped
);

async fn the_same_client_id_is_stored_once(db: TestDb) {
    let srv = TestServer::start(&db).await;
    let (mut ws, welcome) = srv.new_visitor().await;
    let vtoken = welcome["visitor_token"]
        .as_str()
        .expect("token")
        .to_string();
    let first = ws.say("same", "once").await;
    assert_eq!(first["duplicate"], false);
    let again = ws.say("same", "once").await;
    assert_eq!(again["seq"], first["seq"]);
    assert_eq!(again["duplicate"], true);
    // Two copies in flight at once: one stored, both acked with the same seq.
    ws.send(json!({"type": "message", "client_id": "twin", "body": "x"}))
        .await;
    ws.send(json!({"type": "message", "client_id": "twin", "body": "x"}))
        .await;
    let a = ws.next_of("ack").await;
    let b = ws.next_of("ack").await;
    assert_eq!(a["seq"], b["seq"]);
    drop(ws);
    // After reconnecting, and after a restart of the whole server, still once.
    srv.stop().await;
    let srv = TestServer::start(&db).await;
    let mut ws = srv.ws("/ws/visitor").await;
    ws.send(json!({"type": "hello", "token": vtoken, "last_seq": 100}))
        .await;
    ws.next_of("welcome").await;
    let retry = ws.say("same", "once").await;
    assert_eq!(retry["seq"], first["seq"]);
    assert_eq!(retry["duplicate"], true);
    let cid = first["conversation_id"].as_i64().expect("id");
    let store = srv.runtime().core.store.clone();
    let stored = store
        .call(move |s| s.messages_between(cid, 0, i64::MAX, 100, false))
        .await
        .expect("history");
    let texts: Vec<_> = stored
        .iter()
        .filter(|m| m.client_id.is_some())
        .map(|m| m.client_id.clone().unwrap_or_default())
        .collect();
    assert_eq!(texts, vec!["same".to_string(), "twin".to_string()]);
    srv.stop().await;
}
both_backends!(idempotency, the_same_client_id_is_stored_once);

async fn bad_input_gets_an_error_and_the_session_stays_usable(db: TestDb) {
    let srv = TestServer::start(&db).await;
    let mut ws = srv.ws("/ws/visitor").await;
    // Before hello.
    ws.send(json!({"type": "message", "client_id": "a", "body": "hi"}))
        .await;
    assert_eq!(ws.next().await["code"], "hello_required");
    ws.send(json!({"type": "hello"})).await;
    ws.next_of("welcome").await;

    let cases: Vec<(String, &str)> = vec![
        ("{not json".into(), "bad_json"),
        ("[1,2,3]".into(), "bad_request"),
        (r#"{"type":"teleport"}"#.into(), "unknown_type"),
        (r#"{"type":"message","body":"no id"}"#.into(), "bad_request"),
        (
            r#"{"type":"message","client_id":"e","body":"   "}"#.into(),
            "bad_request",
        ),
        (
            json!({"type": "message", "client_id": "x".repeat(65), "body": "long id"}).to_string(),
            "bad_request",
        ),
        (
            json!({"type": "message", "client_id": "big", "body": "a".repeat(17_000)}).to_string(),
            "too_large",
        ),
        (
            json!({"type": "message", "client_id": "chars", "body": "ñ".repeat(4001)}).to_string(),
            "too_large",
        ),
        (r#"{"type":"hello"}"#.into(), "bad_request"),
    ];
    for (frame, code) in cases {
        ws.send_text(&frame).await;
        let err = ws.next().await;
        assert_eq!(err["type"], "error", "{frame:.60}: {err}");
        assert_eq!(err["code"], code, "{frame:.60}: {err}");
        assert!(err["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    ws.send_binary(b"\x00\x01").await;
    assert_eq!(ws.next().await["code"], "bad_json");
    // Still usable.
    let ack = ws.say("after", "still works").await;
    assert_eq!(ack["type"], "ack");

    // A frame above the hard codec limit ends this socket (the server stops reading it and
    // answers nothing more); the server and every other session stay up.
    ws.send_text(&"x".repeat(200_000)).await;
    let after = ws.try_next(Duration::from_secs(2)).await;
    assert!(
        after.is_none(),
        "no answer on a socket that sent an oversized frame: {after:?}"
    );
    let (mut other, _) = srv.new_visitor().await;
    other.say("fine", "server still up").await;
    srv.stop().await;
}
both_backends!(
    bad_input,
    bad_input_gets_an_error_and_the_session_stays_usable
);

async fn a_wrong_token_or_someone_elses_conversation_is_refused(db: TestDb) {
    let srv = TestServer::start(&db).await;
    let (mut alice, _) = srv.new_visitor().await;
    let cid = alice.say("a1", "private").await["conversation_id"]
        .as_i64()
        .expect("id");

    let mut ws = srv.ws("/ws/visitor").await;
    ws.send(json!({"type": "hello", "token": "forged-token-value"}))
        .await;
    assert_eq!(ws.next().await["code"], "unauthorized");
    // Bob is a real visitor but asks for Alice's conversation.
    ws.send(json!({"type": "hello", "conversation_id": cid}))
        .await;
    let err = ws.next().await;
    assert_eq!(err["code"], "forbidden", "{err}");
    // A conversation that does not exist looks the same, so ids cannot be probed.
    ws.send(json!({"type": "hello", "conversation_id": 999_999}))
        .await;
    assert_eq!(ws.next().await["code"], "forbidden");
    // Nothing of Alice's leaked to Bob, and Bob can still start his own conversation.
    ws.send(json!({"type": "hello"})).await;
    let welcome = ws.next_of("welcome").await;
    assert!(welcome["conversation"].is_null());
    let ack = ws.say("b1", "mine").await;
    assert_ne!(ack["conversation_id"], cid);
    srv.stop().await;
}
both_backends!(
    visitor_permissions,
    a_wrong_token_or_someone_elses_conversation_is_refused
);

async fn typing_and_read_receipts_cross_sides(db: TestDb) {
    let srv = TestServer::start(&db).await;
    let (token, _) = srv.operator("ana@example.com", false).await;
    let mut op = srv.operator_ws(&token).await;
    let (mut ws, _) = srv.new_visitor().await;
    let ack = ws.say("v1", "hi").await;
    let cid = ack["conversation_id"].as_i64().expect("id");
    ws.send(json!({"type": "typing", "on": true})).await;
    let t = op.next_of("typing").await;
    assert_eq!(t["from"], "visitor");
    assert_eq!(t["conversation_id"], cid);
    op.send(json!({"type": "typing", "conversation_id": cid, "on": true}))
        .await;
    assert_eq!(ws.next_of("typing").await["from"], "operator");
    op.send(json!({"type": "read", "conversation_id": cid, "seq": 2}))
        .await;
    let r = ws.next_of("read").await;
    assert_eq!(
        (r["by"].as_str(), r["seq"].as_i64()),
        (Some("operator"), Some(2))
    );
    op.send(json!({"type": "message", "conversation_id": cid, "client_id": "o1", "body": "hello"}))
        .await;
    let m = ws.next_text().await;
    ws.send(json!({"type": "read", "seq": m["seq"]})).await;
    // Read marks reach every session of both sides (an operator's other tabs too).
    let r = loop {
        let r = op.next_of("read").await;
        if r["by"] == "visitor" {
            break r;
        }
    };
    assert_eq!(r["seq"], m["seq"]);
    // A read mark beyond what exists is clamped.
    ws.send(json!({"type": "read", "seq": 10_000})).await;
    // The read mark is stored.
    actix_rt::time::sleep(Duration::from_millis(200)).await;
    let (_, conv) = srv
        .get(&format!("/api/conversations/{cid}"), Some(&token))
        .await;
    assert_eq!(conv["conversation"]["visitor_read_seq"], m["seq"]);
    assert_eq!(conv["conversation"]["operator_read_seq"], 2);
    srv.stop().await;
}
both_backends!(typing_and_read, typing_and_read_receipts_cross_sides);

async fn floods_are_rate_limited(db: TestDb) {
    let srv = TestServer::start_with(&db, |c| {
        c.rate_per_sec = 2;
        c.rate_burst = 5;
    })
    .await;
    let (mut ws, _) = srv.new_visitor().await;
    for i in 0..20 {
        ws.send(json!({"type": "typing", "on": i % 2 == 0})).await;
    }
    let err = ws.next_of("error").await;
    assert_eq!(err["code"], "rate_limited");
    assert_eq!(err["retryable"], true);
    assert!(err["retry_after_ms"].as_u64().is_some());
    srv.stop().await;
}
both_backends!(rate_limit, floods_are_rate_limited);

async fn a_retry_older_than_the_remembered_ids_is_still_stored_once(db: TestDb) {
    // The conversation actor remembers the last few thousand client ids; a retry of an
    // older one must still be recognised (the database refuses the copy) and answered with
    // the sequence number it was stored under.
    let srv = TestServer::start(&db).await;
    let (mut ws, welcome) = srv.new_visitor().await;
    let vtoken = welcome["visitor_token"]
        .as_str()
        .expect("token")
        .to_string();
    let first = ws.say("old", "the first message").await;
    let n = charla::runtime::conversation::CLIENT_IDS_REMEMBERED + 10;
    for i in 0..n {
        ws.send(json!({"type": "message", "client_id": format!("f{i}"), "body": "filler"}))
            .await;
    }
    let mut acks = 0;
    while acks < n {
        if ws.next().await["type"] == "ack" {
            acks += 1;
        }
    }
    drop(ws);
    srv.stop().await;
    let srv = TestServer::start(&db).await;
    let mut ws = srv.ws("/ws/visitor").await;
    ws.send(json!({"type": "hello", "token": vtoken, "last_seq": 1_000_000}))
        .await;
    ws.next_of("welcome").await;
    let retry = ws.say("old", "the first message").await;
    assert_eq!(retry["seq"], first["seq"]);
    assert_eq!(retry["duplicate"], true);
    // And the conversation goes on normally afterwards.
    let next = ws.say("new", "after the retry").await;
    assert_eq!(next["duplicate"], false);
    let cid = first["conversation_id"].as_i64().expect("id");
    let store = srv.runtime().core.store.clone();
    let all = store
        .call(move |s| s.messages_between(cid, 0, i64::MAX, 100_000, false))
        .await
        .expect("history");
    assert_eq!(
        all.iter()
            .filter(|m| m.client_id.as_deref() == Some("old"))
            .count(),
        1
    );
    assert_eq!(all.last().map(|m| m.body.as_str()), Some("after the retry"));
    srv.stop().await;
}
both_backends!(
    old_retry,
    a_retry_older_than_the_remembered_ids_is_still_stored_once
);
