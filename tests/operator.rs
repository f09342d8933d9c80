//! The operator's side over HTTP and websocket: login, tokens, the permission matrix, and a
//! conversation handled end to end with its events in the history (OC1, OC12, OC22; invariant
//! 5's permission half).

// A failed expectation in a test is the test failing; panicking is the point.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{TestDb, TestServer};
use serde_json::json;

async fn login_logout_and_expiry(db: TestDb) {
    let srv = TestServer::start(&db).await;
    let (token, _) = srv.operator("Ana@Example.com", false).await;
    let (status, me) = srv.get("/api/me", Some(&token)).await;
    assert_eq!(status, 200);
    assert_eq!(
        me["email"], "ana@example.com",
        "e-mails are stored lower-case"
    );
    assert!(me.get("password_hash").is_none());

    let (status, err) = srv
        .post(
            "/api/login",
            None,
            json!({"email": "ana@example.com", "password": "wrong"}),
        )
        .await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (401, Some("unauthorized"))
    );
    let (status, _) = srv
        .post(
            "/api/login",
            None,
            json!({"email": "nobody@example.com", "password": "secret-password"}),
        )
        .await;
    assert_eq!(status, 401);
    let (status, err) = srv.get("/api/me", None).await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (401, Some("unauthorized"))
    );
    let (status, _) = srv.get("/api/me", Some("made-up-token")).await;
    assert_eq!(status, 401);

    // The token is stored as a digest only.
    let store = srv.runtime().core.store.clone();
    let t = token.clone();
    let now = srv.clock.clone();
    let raw = store
        .call(move |s| s.operator_by_token(&t, charla::clock::Clock::now_ms(&now)))
        .await
        .expect("query");
    assert!(raw.is_none());

    let (status, _) = srv.post("/api/logout", Some(&token), json!({})).await;
    assert_eq!(status, 204);
    let (status, _) = srv.get("/api/me", Some(&token)).await;
    assert_eq!(status, 401, "a logged-out token stops working");

    // Expiry: twelve hours later the token is refused over HTTP and websocket.
    let (status, body) = srv
        .post(
            "/api/login",
            None,
            json!({"email": "ana@example.com", "password": "secret-password"}),
        )
        .await;
    assert_eq!(status, 200);
    let token = body["token"].as_str().expect("token").to_string();
    let mut ws = srv.operator_ws(&token).await;
    srv.clock.advance(43_200_000 + 1000);
    let (status, _) = srv.get("/api/me", Some(&token)).await;
    assert_eq!(status, 401);
    // An open socket is told and closed at its next frame.
    ws.send(json!({"type": "typing", "conversation_id": 1, "on": true}))
        .await;
    assert_eq!(ws.next().await["code"], "unauthorized");
    assert_eq!(ws.wait_close().await, Some(1008));
    let mut ws = srv.ws("/ws/operator").await;
    ws.send(json!({"type": "auth", "token": token})).await;
    assert_eq!(ws.next().await["code"], "unauthorized");
    srv.stop().await;
}
both_backends!(login, login_logout_and_expiry);

async fn the_permission_matrix_holds_over_http_and_websocket(db: TestDb) {
    let srv = TestServer::start(&db).await;
    let (admin, _) = srv.operator("admin@example.com", true).await;
    let (chatter, _) = srv.operator("chat@example.com", false).await;
    let (muted, muted_id) = srv.operator("muted@example.com", false).await;
    // Out of every group, so no group gives the chat permission (OC1).
    let (status, _) = srv
        .patch(
            &format!("/api/operators/{muted_id}"),
            Some(&admin),
            json!({"groups": []}),
        )
        .await;
    assert_eq!(status, 200);

    let (mut v, _) = srv.new_visitor().await;
    let cid = v.say("v1", "hello").await["conversation_id"]
        .as_i64()
        .expect("id");

    // Administrator-only endpoints.
    for token in [&chatter, &muted] {
        let (status, err) = srv
            .post(
                "/api/operators",
                Some(token),
                json!({"email": "new@example.com", "name": "New", "password": "long-enough"}),
            )
            .await;
        assert_eq!(
            (status, err["error"]["code"].as_str()),
            (403, Some("forbidden"))
        );
        let (status, _) = srv
            .patch(
                &format!("/api/operators/{muted_id}"),
                Some(token),
                json!({"groups": [1]}),
            )
            .await;
        assert_eq!(status, 403);
    }
    // The operator list serves the reassignment dialog: chat operators see it, an operator
    // without the chat permission does not.
    assert_eq!(srv.get("/api/operators", Some(&chatter)).await.0, 200);
    assert_eq!(srv.get("/api/operators", Some(&muted)).await.0, 403);
    let (status, created) = srv
        .post(
            "/api/operators",
            Some(&admin),
            json!({"email": "new@example.com", "name": "New", "password": "long-enough"}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let (status, err) = srv
        .post(
            "/api/operators",
            Some(&admin),
            json!({"email": "NEW@example.com", "name": "Again", "password": "long-enough"}),
        )
        .await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (409, Some("conflict"))
    );
    let (status, err) = srv
        .post(
            "/api/operators",
            Some(&admin),
            json!({"email": "x@example.com", "name": "X", "password": "short"}),
        )
        .await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (400, Some("bad_request"))
    );

    // Chat actions: allowed for the administrator and the operator with the permission,
    // refused for the one without it, over HTTP...
    let actions = |cid: i64, n: &str| {
        vec![
            (
                format!("/api/conversations/{cid}/messages"),
                json!({"client_id": format!("r{n}"), "body": "reply"}),
            ),
            (format!("/api/conversations/{cid}/close"), json!({})),
            (format!("/api/conversations/{cid}/reopen"), json!({})),
        ]
    };
    for (path, body) in actions(cid, "m") {
        let (status, err) = srv.post(&path, Some(&muted), body).await;
        assert_eq!(
            (status, err["error"]["code"].as_str()),
            (403, Some("forbidden")),
            "{path}"
        );
    }
    for path in [
        "/api/conversations".to_string(),
        format!("/api/conversations/{cid}"),
    ] {
        let (status, _) = srv.get(&path, Some(&muted)).await;
        assert_eq!(status, 403, "{path}");
    }
    // Each in a conversation of their own: answering takes it, and only the responsible
    // operator writes (the ownership matrix is in tests/routing.rs).
    let mut own = Vec::new();
    for (who, token) in [("admin", &admin), ("chatter", &chatter)] {
        let (mut v, _) = srv.new_visitor().await;
        let cid = v.say("v1", "hello").await["conversation_id"]
            .as_i64()
            .expect("id");
        for (path, body) in actions(cid, who) {
            let (status, body) = srv.post(&path, Some(token), body).await;
            assert_eq!(status, 200, "{who} {path}: {body}");
        }
        let (status, _) = srv
            .get(&format!("/api/conversations/{cid}"), Some(token))
            .await;
        assert_eq!(status, 200);
        own.push(cid);
    }
    let chatter_cid = own[1];
    // ...and over the websocket, where it also receives nothing of the live feed.
    let mut ws = srv.operator_ws(&muted).await;
    v.say("v2", "not for the muted operator").await;
    while let Some(f) = ws.try_next(std::time::Duration::from_millis(500)).await {
        assert!(
            f["type"] != "message" && f["type"] != "conversation",
            "leaked: {f}"
        );
    }
    ws.send(json!({"type": "message", "conversation_id": cid, "client_id": "w1", "body": "no"}))
        .await;
    let err = ws.next_of("error").await;
    assert_eq!(
        (err["code"].as_str(), err["client_id"].as_str()),
        (Some("forbidden"), Some("w1"))
    );
    ws.send(json!({"type": "close", "conversation_id": cid, "client_id": "w-close"}))
        .await;
    assert_eq!(ws.next_of("error").await["code"], "forbidden");
    let mut ws = srv.operator_ws(&chatter).await;
    ws.send(json!({"type": "message", "conversation_id": chatter_cid, "client_id": "w2", "body": "yes"}))
        .await;
    assert_eq!(ws.next_of_any(&["ack", "error"]).await["type"], "ack");

    // An administrator in no group still may chat (OC1).
    let (status, me) = srv.get("/api/me", Some(&admin)).await;
    assert_eq!(status, 200);
    let admin_id = me["id"].as_i64().expect("id");
    let (status, me) = srv
        .patch(
            &format!("/api/operators/{admin_id}"),
            Some(&admin),
            json!({"groups": []}),
        )
        .await;
    assert_eq!((status, &me["can_chat"]), (200, &json!(false)));
    let (status, _) = srv.get("/api/conversations", Some(&admin)).await;
    assert_eq!(status, 200);
    // The refused actions stored nothing.
    let (_, conv) = srv
        .get(&format!("/api/conversations/{cid}"), Some(&chatter))
        .await;
    let bodies: Vec<&str> = conv["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter_map(|m| m["body"].as_str())
        .collect();
    assert!(!bodies.contains(&"no"));
    srv.stop().await;
}
both_backends!(
    permissions,
    the_permission_matrix_holds_over_http_and_websocket
);

async fn an_operator_handles_a_conversation_end_to_end(db: TestDb) {
    let srv = TestServer::start(&db).await;
    let (token, op_id) = srv.operator("ana@example.com", false).await;
    let mut op = srv.operator_ws(&token).await;
    let (mut v, _) = srv.new_visitor().await;
    let cid = v.say("v1", "Where is my order?").await["conversation_id"]
        .as_i64()
        .expect("id");

    // The console learns of the new conversation and its messages live.
    let announced = op.next_of("conversation").await;
    assert_eq!(announced["conversation"]["id"], cid);
    let (status, list) = srv.get("/api/conversations", Some(&token)).await;
    assert_eq!(status, 200);
    let row = list
        .as_array()
        .expect("list")
        .iter()
        .find(|c| c["id"] == cid)
        .expect("listed")
        .clone();
    assert_eq!(row["unread"], 1);
    assert_eq!(row["last_message"]["body"], "Where is my order?");
    assert_eq!(row["status"], "open");

    op.send(json!({"type": "message", "conversation_id": cid, "client_id": "o1", "body": "Let me check"})).await;
    let ack = op.next_of("ack").await;
    assert_eq!(ack["client_id"], "o1");
    let m = v.next_text().await;
    assert_eq!(m["body"], "Let me check");
    assert_eq!(m["author"]["kind"], "operator");
    assert_eq!(m["author"]["name"], "Op");
    assert_eq!(m["author"]["id"], op_id);

    op.send(json!({"type": "close", "conversation_id": cid, "client_id": "close-1"}))
        .await;
    assert_eq!(op.next_of("ack").await["client_id"], "close-1");
    // Headers come on every change (the assignment first); the last one says closed.
    let c = loop {
        let c = v.next_of("conversation").await;
        if c["conversation"]["status"] == "closed" {
            break c;
        }
    };
    assert_eq!(c["conversation"]["assignee"]["id"], op_id);
    // Closed: the operator cannot write until reopening.
    op.send(json!({"type": "message", "conversation_id": cid, "client_id": "o2", "body": "late"}))
        .await;
    let err = op.next_of("error").await;
    assert_eq!(
        (err["code"].as_str(), err["client_id"].as_str()),
        (Some("conversation_closed"), Some("o2"))
    );
    let (status, err) = srv
        .post(
            &format!("/api/conversations/{cid}/messages"),
            Some(&token),
            json!({"client_id": "o3", "body": "late"}),
        )
        .await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (409, Some("conversation_closed"))
    );
    let (status, _) = srv
        .post(
            &format!("/api/conversations/{cid}/reopen"),
            Some(&token),
            json!({}),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = srv
        .post(
            &format!("/api/conversations/{cid}/messages"),
            Some(&token),
            json!({"client_id": "o4", "body": "back"}),
        )
        .await;
    assert_eq!(status, 200);
    srv.post(
        &format!("/api/conversations/{cid}/close"),
        Some(&token),
        json!({}),
    )
    .await;
    // A visitor who writes after the close reopens the conversation.
    v.say("v2", "one more thing").await;

    let (_, conv) = srv
        .get(&format!("/api/conversations/{cid}"), Some(&token))
        .await;
    assert_eq!(conv["conversation"]["status"], "open");
    let history: Vec<(String, String, String)> = conv["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| {
            (
                m["kind"].as_str().unwrap_or_default().to_string(),
                m["author"]["kind"].as_str().unwrap_or_default().to_string(),
                m["body"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    let t = |k: &str, a: &str, b: &str| (k.to_string(), a.to_string(), b.to_string());
    assert_eq!(
        history,
        vec![
            t("event", "visitor", "opened"),
            t("text", "visitor", "Where is my order?"),
            // Answering an unassigned conversation took it (OC8, OC12).
            t("event", "operator", "assigned"),
            t("text", "operator", "Let me check"),
            t("event", "operator", "closed"),
            t("event", "operator", "reopened"),
            t("text", "operator", "back"),
            t("event", "operator", "closed"),
            t("event", "visitor", "reopened"),
            t("text", "visitor", "one more thing"),
        ]
    );
    let seqs: Vec<i64> = conv["messages"]
        .as_array()
        .expect("m")
        .iter()
        .map(|m| m["seq"].as_i64().unwrap_or(0))
        .collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "history is in sequence order: {seqs:?}"
    );
    // Who closed it is kept.
    assert_eq!(conv["messages"][4]["author"]["name"], "Op");
    // Paging: after_seq.
    let (_, page) = srv
        .get(
            &format!("/api/conversations/{cid}?after_seq=8"),
            Some(&token),
        )
        .await;
    assert_eq!(page["messages"].as_array().map(Vec::len), Some(2));
    srv.stop().await;
}
both_backends!(end_to_end, an_operator_handles_a_conversation_end_to_end);

async fn bad_http_input_gets_stable_codes(db: TestDb) {
    let srv = TestServer::start(&db).await;
    let (token, _) = srv.operator("ana@example.com", false).await;
    let (status, err) = srv.post_raw("/api/login", None, "{nope").await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (400, Some("bad_json"))
    );
    let (status, err) = srv.post_raw("/api/login", None, r#"{"email": 3}"#).await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (400, Some("bad_request"))
    );
    let (status, err) = srv.get("/api/conversations/999999", Some(&token)).await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
    let (status, err) = srv
        .post(
            "/api/conversations/999999/messages",
            Some(&token),
            json!({"client_id": "a", "body": "b"}),
        )
        .await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
    let (status, err) = srv
        .get("/api/conversations/not-a-number", Some(&token))
        .await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (400, Some("bad_request"))
    );
    let (status, err) = srv
        .get("/api/conversations?status=sideways", Some(&token))
        .await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (400, Some("bad_request"))
    );
    let (status, err) = srv.get("/api/nothing-here", Some(&token)).await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
    let (mut v, _) = srv.new_visitor().await;
    let cid = v.say("v1", "hi").await["conversation_id"]
        .as_i64()
        .expect("id");
    let (status, err) = srv
        .post_raw(
            &format!("/api/conversations/{cid}/close"),
            Some(&token),
            "{oops",
        )
        .await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (400, Some("bad_json"))
    );
    let (status, err) = srv
        .post(
            &format!("/api/conversations/{cid}/close"),
            Some(&token),
            json!({"client_id": ""}),
        )
        .await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (400, Some("bad_request"))
    );
    let (_, conv) = srv
        .get(&format!("/api/conversations/{cid}"), Some(&token))
        .await;
    assert_eq!(
        conv["conversation"]["status"], "open",
        "a refused close changed nothing"
    );
    let big = json!({"email": "a@b.c", "password": "x".repeat(100_000)});
    let (status, err) = srv.post("/api/login", None, big).await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (413, Some("too_large"))
    );

    // The operator socket: frames before auth, bad frames, and it stays usable.
    let mut ws = srv.ws("/ws/operator").await;
    ws.send(json!({"type": "message", "conversation_id": 1, "client_id": "a", "body": "b"}))
        .await;
    assert_eq!(ws.next().await["code"], "hello_required");
    ws.send_text("{{{").await;
    assert_eq!(ws.next().await["code"], "bad_json");
    ws.send(json!({"type": "auth", "token": token})).await;
    assert_eq!(ws.next().await["type"], "ready");
    ws.send(json!({"type": "jump"})).await;
    assert_eq!(ws.next().await["code"], "unknown_type");
    ws.send(json!({"type": "message", "conversation_id": 424242, "client_id": "a", "body": "b"}))
        .await;
    let err = ws.next().await;
    assert_eq!(
        (err["code"].as_str(), err["client_id"].as_str()),
        (Some("not_found"), Some("a"))
    );
    ws.send(json!({"type": "ping"})).await;
    assert_eq!(ws.next().await["type"], "pong");
    srv.stop().await;
}
both_backends!(bad_http_input, bad_http_input_gets_stable_codes);
