//! What the console relies on, over the real HTTP API and websockets: drafts kept per
//! operator (XB3, OC13), the filtered list and full-text search (OC7, OC9, OC11), notes and
//! quotes (OC10, XB15), delivery states (OC15), internal chats (OC21), the resumable
//! operator feed (XB14), first-run set-up and display preferences (OC2).

// A failed expectation in a test is the test failing; panicking is the point.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{TestDb, TestServer, Ws};
use serde_json::{json, Value};
use std::time::Duration;

async fn visitor_with_conversation(srv: &TestServer, text: &str) -> (Ws, i64) {
    let (mut ws, _) = srv.new_visitor().await;
    let cid = ws.say("first", text).await["conversation_id"]
        .as_i64()
        .expect("id");
    (ws, cid)
}

fn ids(list: &Value) -> Vec<i64> {
    list.as_array()
        .expect("list")
        .iter()
        .filter_map(|c| c["id"].as_i64())
        .collect()
}

fn row(list: &Value, cid: i64) -> Value {
    list.as_array()
        .expect("list")
        .iter()
        .find(|c| c["id"] == cid)
        .cloned()
        .unwrap_or(Value::Null)
}

async fn drafts_follow_their_operator_and_no_one_else(db: TestDb) {
    let srv = TestServer::start(&db).await;
    let (ana, _) = srv.named_operator("ana@example.com", "Ana", false).await;
    let (luis, _) = srv.named_operator("luis@example.com", "Luis", false).await;
    let (mut visitor, cid) = visitor_with_conversation(&srv, "¿Tienen envío a Lima?").await;
    srv.take(cid, &ana).await;
    let mut phone = srv.operator_ws(&ana).await;
    let mut colleague = srv.operator_ws(&luis).await;
    let mut laptop = srv.operator_ws(&ana).await;

    // Typed on the laptop: stored, shown on the phone, not on the colleague's console.
    laptop
        .send(json!({"type": "draft", "conversation_id": cid, "body": "Sí, enviamos a"}))
        .await;
    let d = phone.next_of("draft").await;
    assert_eq!(
        (d["conversation_id"].as_i64(), d["body"].as_str()),
        (Some(cid), Some("Sí, enviamos a"))
    );
    let (_, list) = srv.get("/api/conversations", Some(&ana)).await;
    assert_eq!(
        row(&list, cid)["draft"],
        "Sí, enviamos a",
        "the list shows the draft (OC13)"
    );
    let (_, list) = srv.get("/api/conversations", Some(&luis)).await;
    assert!(
        row(&list, cid)["draft"].is_null(),
        "never a colleague's draft"
    );
    let (_, conv) = srv
        .get(&format!("/api/conversations/{cid}"), Some(&luis))
        .await;
    assert!(conv["draft"].is_null());
    while let Some(f) = colleague.try_next(Duration::from_millis(200)).await {
        assert_ne!(f["type"], "draft", "leaked: {f}");
    }
    // A reload (a fresh GET) finds it, over HTTP too.
    let (status, saved) = srv
        .put(
            &format!("/api/conversations/{cid}/draft"),
            Some(&ana),
            json!({"body": "Sí, enviamos a Lima", "reply_to": 2}),
        )
        .await;
    assert_eq!(status, 200, "{saved}");
    let (_, conv) = srv
        .get(&format!("/api/conversations/{cid}"), Some(&ana))
        .await;
    assert_eq!(conv["draft"]["body"], "Sí, enviamos a Lima");
    assert_eq!(conv["draft"]["reply_to"], 2);
    let d = laptop.next_of("draft").await;
    assert_eq!(d["body"], "Sí, enviamos a Lima");

    // Sending the reply spends the draft, on every device.
    laptop
        .send(json!({"type": "message", "conversation_id": cid, "client_id": "r1", "body": "Sí, enviamos a Lima", "reply_to": 2}))
        .await;
    assert_eq!(laptop.next_of("ack").await["client_id"], "r1");
    // (The phone heard of the HTTP save first.)
    assert_eq!(phone.next_of("draft").await["body"], "Sí, enviamos a Lima");
    let cleared = phone.next_of("draft").await;
    assert_eq!(cleared["body"], "");
    let (_, draft) = srv
        .get(&format!("/api/conversations/{cid}/draft"), Some(&ana))
        .await;
    assert!(draft.is_null());
    // The visitor sees the quote.
    let m = visitor.next_text().await;
    assert_eq!(m["meta"]["reply_to"], 2);

    // Limits: too long, or someone else's internal chat.
    let (status, err) = srv
        .put(
            &format!("/api/conversations/{cid}/draft"),
            Some(&ana),
            json!({"body": "x".repeat(5000)}),
        )
        .await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (413, Some("too_large"))
    );
    srv.stop().await;
}
both_backends!(drafts, drafts_follow_their_operator_and_no_one_else);

async fn filters_and_search_find_the_right_conversations(db: TestDb) {
    let srv = TestServer::start(&db).await;
    let (admin, _) = srv.named_operator("admin@example.com", "Adela", true).await;
    let (ana, ana_id) = srv.named_operator("ana@example.com", "Ana", false).await;
    let (luis, luis_id) = srv.named_operator("luis@example.com", "Luis", false).await;
    let (status, _) = srv
        .post(
            "/api/channels",
            Some(&admin),
            json!({"name": "wa", "title": "WhatsApp tienda", "kind": "whatsapp"}),
        )
        .await;
    assert_eq!(status, 201);
    let (_v1, refund) = visitor_with_conversation(&srv, "Quiero un reembolso de mi pedido").await;
    let (_v2, shipping) =
        visitor_with_conversation(&srv, "Where is my parcel? Tracking says delayed").await;
    let mut wa = srv.ws("/ws/visitor").await;
    wa.send(json!({"type": "hello", "channel": "wa"})).await;
    wa.next_of("welcome").await;
    let whatsapp = wa.say("w1", "Hola desde WhatsApp, café con leche").await["conversation_id"]
        .as_i64()
        .expect("id");

    // Ana saves the refund visitor as her customer; Luis links the parcel one to his.
    srv.take(refund, &ana).await;
    let (status, contact) = srv
        .post(
            &format!("/api/conversations/{refund}/contact"),
            Some(&ana),
            json!({"name": "María López"}),
        )
        .await;
    assert_eq!(status, 200, "{contact}");
    assert_eq!(contact["owner_id"], ana_id);
    let (status, _) = srv
        .post(
            &format!("/api/conversations/{shipping}/contact"),
            Some(&luis),
            json!({"name": "John Smith"}),
        )
        .await;
    assert_eq!(status, 200);

    let list = |q: &str| {
        let path = format!("/api/conversations?status=all&{q}");
        let srv = &srv;
        let ana = ana.clone();
        async move {
            let (status, body) = srv.get(&path, Some(&ana)).await;
            assert_eq!(status, 200, "{path}: {body}");
            let mut v = ids(&body);
            v.sort_unstable();
            v
        }
    };
    assert_eq!(list("").await, vec![refund, shipping, whatsapp]);
    assert_eq!(
        list("with=customers").await,
        vec![refund, shipping],
        "known to the CRM"
    );
    assert_eq!(list("with=mine").await, vec![refund], "Ana's customers");
    assert_eq!(list("channel=wa").await, vec![whatsapp]);
    assert_eq!(list("assignee=me").await, vec![refund]);
    assert_eq!(list("assignee=unassigned").await, vec![shipping, whatsapp]);
    // Search: words by prefix through the full-text index, numbers, contact names.
    assert_eq!(list("q=reembols").await, vec![refund]);
    assert_eq!(list("q=tracking%20delayed").await, vec![shipping]);
    assert_eq!(
        list("q=parcel%20refund").await,
        Vec::<i64>::new(),
        "every word must match"
    );
    assert_eq!(list(&format!("q=%23{whatsapp}")).await, vec![whatsapp]);
    assert_eq!(list("q=smith").await, vec![shipping]);
    assert_eq!(
        list("q=CAF%C3%89").await,
        vec![whatsapp],
        "case-insensitive"
    );
    // Query syntax is neutralised, never an error.
    assert_eq!(list("q=%22pedido%22%20*%20(%20-").await, vec![refund]);
    let (status, hits) = srv.get("/api/search?q=pedido", Some(&luis)).await;
    assert_eq!(status, 200);
    assert_eq!(hits["terms"], json!(["pedido"]));
    assert_eq!(hits["hits"][0]["conversation_id"], refund);
    assert_eq!(hits["hits"][0]["body"], "Quiero un reembolso de mi pedido");
    let (_, hits) = srv
        .get(
            &format!("/api/search?q=pedido&conversation_id={shipping}"),
            Some(&luis),
        )
        .await;
    assert_eq!(hits["hits"], json!([]));
    let (status, err) = srv
        .get(
            &format!("/api/conversations?q={}", "a".repeat(300)),
            Some(&ana),
        )
        .await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (400, Some("bad_request"))
    );
    let (status, _) = srv.get("/api/conversations?with=friends", Some(&ana)).await;
    assert_eq!(status, 400);

    // The list line: the customer's name, the channel, unread count, the last message.
    let (_, all) = srv.get("/api/conversations?status=all", Some(&ana)).await;
    let r = row(&all, refund);
    assert_eq!(r["contact"]["name"], "María López");
    assert_eq!(r["unread"], 1);
    assert_eq!(
        r["last_message"]["body"],
        "Quiero un reembolso de mi pedido"
    );
    assert_eq!(row(&all, whatsapp)["channel"], "wa");
    let (_, channels) = srv.get("/api/channels", Some(&ana)).await;
    assert!(channels
        .as_array()
        .expect("channels")
        .iter()
        .any(|c| c["name"] == "wa" && c["kind"] == "whatsapp"));
    let _ = luis_id;
    srv.stop().await;
}
both_backends!(
    filters_and_search,
    filters_and_search_find_the_right_conversations
);

async fn notes_stay_among_operators_and_mentions_reach_the_colleague(db: TestDb) {
    let srv = TestServer::start(&db).await;
    let (ana, _) = srv.named_operator("ana@example.com", "Ana", false).await;
    let (luis, luis_id) = srv.named_operator("luis@example.com", "Luis", false).await;
    let (mut visitor, cid) = visitor_with_conversation(&srv, "Tengo un problema").await;
    srv.take(cid, &ana).await;
    let mut luis_ws = srv.operator_ws(&luis).await;
    // Luis is not responsible, but may leave a note mentioning Ana; she is told live.
    let (status, _) = srv
        .post(
            &format!("/api/conversations/{cid}/messages"),
            Some(&luis),
            json!({"client_id": "n1", "body": "@Ana mira su pedido anterior", "kind": "note", "mentions": [luis_id, 999]}),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = srv
        .post(
            &format!("/api/conversations/{cid}/messages"),
            Some(&ana),
            json!({"client_id": "t1", "body": "Ya lo reviso"}),
        )
        .await;
    assert_eq!(status, 200);
    let note = luis_ws.next_of("message").await;
    let note = if note["kind"] == "note" {
        note
    } else {
        luis_ws.next_of("message").await
    };
    assert_eq!(note["kind"], "note");
    assert!(
        note["eid"].as_u64().is_some(),
        "operator frames carry an event id"
    );
    assert_eq!(note["meta"]["mentions"], json!([luis_id, 999]));
    // The visitor never sees it live (replays: `notes_replay`); its next message is the
    // reply, and operators have the note in the history.
    let m = visitor.next_of("message").await;
    let m = if m["kind"] == "event" {
        visitor.next_of("message").await
    } else {
        m
    };
    assert_eq!(
        (m["kind"].as_str(), m["body"].as_str()),
        (Some("text"), Some("Ya lo reviso"))
    );
    let (_, conv) = srv
        .get(&format!("/api/conversations/{cid}"), Some(&ana))
        .await;
    let kinds: Vec<&str> = conv["messages"]
        .as_array()
        .expect("m")
        .iter()
        .filter_map(|m| m["kind"].as_str())
        .collect();
    assert!(kinds.contains(&"note"), "operators see it in the history");
    srv.stop().await;
}
both_backends!(
    notes,
    notes_stay_among_operators_and_mentions_reach_the_colleague
);

async fn notes_are_not_replayed_to_the_visitor(db: TestDb) {
    let srv = TestServer::start(&db).await;
    let (ana, _) = srv.named_operator("ana@example.com", "Ana", false).await;
    let (mut v, welcome) = srv.new_visitor().await;
    let vtoken = welcome["visitor_token"].as_str().expect("t").to_string();
    let cid = v.say("v1", "hola").await["conversation_id"]
        .as_i64()
        .expect("id");
    drop(v);
    for (i, kind) in ["note", "text", "note"].iter().enumerate() {
        let (status, body) = srv
            .post(
                &format!("/api/conversations/{cid}/messages"),
                Some(&ana),
                json!({"client_id": format!("m{i}"), "body": format!("{kind} {i}"), "kind": kind}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    // From the in-memory tail...
    let mut ws = srv.ws("/ws/visitor").await;
    ws.send(json!({"type": "hello", "token": vtoken, "last_seq": 0}))
        .await;
    ws.next_of("welcome").await;
    let mut bodies = Vec::new();
    while let Some(f) = ws.try_next(Duration::from_millis(300)).await {
        if f["type"] == "message" {
            bodies.push(f["body"].as_str().unwrap_or("").to_string());
        }
    }
    assert!(!bodies.iter().any(|b| b.starts_with("note")), "{bodies:?}");
    assert!(bodies.contains(&"text 1".to_string()));
    srv.stop().await;

    // ...and from the database after a restart.
    let srv = TestServer::start(&db).await;
    let mut ws = srv.ws("/ws/visitor").await;
    ws.send(json!({"type": "hello", "token": vtoken, "last_seq": 0}))
        .await;
    ws.next_of("welcome").await;
    let mut bodies = Vec::new();
    while let Some(f) = ws.try_next(Duration::from_millis(300)).await {
        if f["type"] == "message" {
            bodies.push(f["body"].as_str().unwrap_or("").to_string());
        }
    }
    assert!(!bodies.iter().any(|b| b.starts_with("note")), "{bodies:?}");
    assert!(bodies.contains(&"text 1".to_string()));
    srv.stop().await;
}
both_backends!(notes_replay, notes_are_not_replayed_to_the_visitor);

async fn delivery_states_reach_the_operator(db: TestDb) {
    let srv = TestServer::start(&db).await;
    let (ana, _) = srv.named_operator("ana@example.com", "Ana", false).await;
    let (mut v, welcome) = srv.new_visitor().await;
    let vtoken = welcome["visitor_token"].as_str().expect("t").to_string();
    let cid = v.say("v1", "hola").await["conversation_id"]
        .as_i64()
        .expect("id");
    srv.take(cid, &ana).await;
    let mut op = srv.operator_ws(&ana).await;
    // Visitor online: a reply committed now is delivered with it (the console knows from
    // `visitor_online`), then read.
    let (_, c) = srv
        .get(&format!("/api/conversations/{cid}"), Some(&ana))
        .await;
    assert_eq!(c["conversation"]["visitor_online"], true);
    op.send(json!({"type": "message", "conversation_id": cid, "client_id": "o1", "body": "hola"}))
        .await;
    let seq = op.next_of("ack").await["seq"].as_i64().expect("seq");
    let m = v.next_text().await;
    v.send(json!({"type": "read", "seq": m["seq"]})).await;
    let r = op.next_of("read").await;
    assert_eq!(
        (r["by"].as_str(), r["seq"].as_i64()),
        (Some("visitor"), Some(seq))
    );

    // The visitor leaves: consoles are told, and the delivered mark is stored.
    drop(v);
    let gone = loop {
        let h = op.next_of("conversation").await;
        if h["conversation"]["visitor_online"] == false {
            break h;
        }
    };
    assert_eq!(
        gone["conversation"]["visitor_delivered_seq"].as_i64(),
        Some(seq)
    );
    actix_rt::time::sleep(Duration::from_millis(200)).await;
    let (_, c) = srv
        .get(&format!("/api/conversations/{cid}"), Some(&ana))
        .await;
    assert_eq!(
        c["conversation"]["visitor_delivered_seq"].as_i64(),
        Some(seq),
        "stored"
    );
    assert_eq!(c["conversation"]["visitor_online"], false);
    // Away: a reply is only sent; delivered once the widget comes back and is replayed.
    op.send(
        json!({"type": "message", "conversation_id": cid, "client_id": "o2", "body": "¿sigues?"}),
    )
    .await;
    let seq2 = op.next_of("ack").await["seq"].as_i64().expect("seq");
    while let Some(f) = op.try_next(Duration::from_millis(300)).await {
        assert_ne!(f["type"], "delivered", "nobody received it yet: {f}");
    }
    let mut v = srv.ws("/ws/visitor").await;
    v.send(json!({"type": "hello", "token": vtoken, "last_seq": seq}))
        .await;
    v.next_of("welcome").await;
    let d = op.next_of("delivered").await;
    assert_eq!(d["seq"].as_i64(), Some(seq2));
    drop(v);
    actix_rt::time::sleep(Duration::from_millis(300)).await;
    let (_, c) = srv
        .get(&format!("/api/conversations/{cid}"), Some(&ana))
        .await;
    assert_eq!(
        c["conversation"]["visitor_delivered_seq"].as_i64(),
        Some(seq2),
        "stored"
    );
    srv.stop().await;
}
both_backends!(delivery, delivery_states_reach_the_operator);

async fn internal_chats_are_for_their_members_only(db: TestDb) {
    let srv = TestServer::start(&db).await;
    let (admin, _) = srv.named_operator("admin@example.com", "Adela", true).await;
    let (ana, ana_id) = srv.named_operator("ana@example.com", "Ana", false).await;
    let (luis, luis_id) = srv.named_operator("luis@example.com", "Luis", false).await;
    let (eva, _) = srv.named_operator("eva@example.com", "Eva", false).await;
    let mut luis_ws = srv.operator_ws(&luis).await;
    let mut eva_ws = srv.operator_ws(&eva).await;
    let (status, chat) = srv
        .post("/api/internal", Some(&ana), json!({"operator_id": luis_id}))
        .await;
    assert_eq!(status, 200, "{chat}");
    let chat = chat["conversation_id"].as_i64().expect("id");
    // The same pair gets the same chat, whichever side asks.
    let (_, again) = srv
        .post("/api/internal", Some(&luis), json!({"operator_id": ana_id}))
        .await;
    assert_eq!(again["conversation_id"], chat);
    let mut ana_ws = srv.operator_ws(&ana).await;
    ana_ws
        .send(json!({"type": "message", "conversation_id": chat, "client_id": "i1", "body": "¿comemos?"}))
        .await;
    assert_eq!(ana_ws.next_of("ack").await["client_id"], "i1");
    let m = luis_ws.next_of("message").await;
    assert_eq!(
        (m["body"].as_str(), m["author"]["name"].as_str()),
        (Some("¿comemos?"), Some("Ana"))
    );
    // Eva is not in it: nothing reaches her, she cannot read or write it, and it is not in
    // her list or her searches.
    while let Some(f) = eva_ws.try_next(Duration::from_millis(300)).await {
        assert!(
            f["conversation_id"] != chat && f["conversation"]["id"] != chat,
            "leaked: {f}"
        );
    }
    let (status, _) = srv
        .get(&format!("/api/conversations/{chat}"), Some(&eva))
        .await;
    assert_eq!(status, 404);
    eva_ws
        .send(
            json!({"type": "message", "conversation_id": chat, "client_id": "e1", "body": "hola"}),
        )
        .await;
    assert_eq!(eva_ws.next_of("error").await["code"], "forbidden");
    let (_, list) = srv
        .get("/api/conversations?with=colleagues", Some(&eva))
        .await;
    assert_eq!(ids(&list), Vec::<i64>::new());
    let (_, hits) = srv.get("/api/search?q=comemos", Some(&eva)).await;
    assert_eq!(hits["hits"], json!([]));
    let (_, list) = srv
        .get("/api/conversations?with=colleagues", Some(&luis))
        .await;
    let r = row(&list, chat);
    assert_eq!(r["kind"], "direct");
    assert_eq!(r["unread"], 1);
    let names: Vec<&str> = r["members"]
        .as_array()
        .expect("members")
        .iter()
        .filter_map(|m| m["name"].as_str())
        .collect();
    assert_eq!(names, vec!["Ana", "Luis"]);
    // Read marks are per member.
    luis_ws
        .send(json!({"type": "read", "conversation_id": chat, "seq": m["seq"]}))
        .await;
    actix_rt::time::sleep(Duration::from_millis(200)).await;
    let (_, list) = srv
        .get("/api/conversations?with=colleagues", Some(&luis))
        .await;
    assert_eq!(row(&list, chat)["unread"], 0);
    // Internal chats are never closed or assigned.
    let (status, err) = srv
        .post(
            &format!("/api/conversations/{chat}/close"),
            Some(&ana),
            json!({}),
        )
        .await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (400, Some("bad_request"))
    );

    // A team chat: its members, following the team's membership.
    let (_, team) = srv
        .post("/api/teams", Some(&admin), json!({"name": "Soporte"}))
        .await;
    let team_id = team["id"].as_i64().expect("id");
    let (status, _) = srv
        .post("/api/internal", Some(&ana), json!({"team_id": team_id}))
        .await;
    assert_eq!(status, 403, "only members open their team's chat");
    for id in [ana_id, luis_id] {
        srv.patch(
            &format!("/api/operators/{id}"),
            Some(&admin),
            json!({"teams": [team_id]}),
        )
        .await;
    }
    let (status, tc) = srv
        .post("/api/internal", Some(&ana), json!({"team_id": team_id}))
        .await;
    assert_eq!(status, 200);
    let tc = tc["conversation_id"].as_i64().expect("id");
    let (_, c) = srv
        .get(&format!("/api/conversations/{tc}"), Some(&luis))
        .await;
    assert_eq!(c["conversation"]["title"], "Soporte");
    assert_eq!(c["conversation"]["kind"], "team");
    srv.patch(
        &format!("/api/operators/{luis_id}"),
        Some(&admin),
        json!({"teams": []}),
    )
    .await;
    let (status, _) = srv
        .get(&format!("/api/conversations/{tc}"), Some(&luis))
        .await;
    assert_eq!(status, 404, "left the team, left its chat");
    srv.stop().await;
}
both_backends!(internal_chats, internal_chats_are_for_their_members_only);

async fn a_console_resumes_from_its_last_event_and_misses_nothing(db: TestDb) {
    let srv = TestServer::start(&db).await;
    let (ana, _) = srv.named_operator("ana@example.com", "Ana", false).await;
    let mut op = srv.ws("/ws/operator").await;
    op.send(json!({"type": "auth", "token": ana})).await;
    let ready = op.next_of("ready").await;
    assert_eq!(ready["resumed"], false);
    let epoch = ready["epoch"].as_str().expect("epoch").to_string();
    let (mut v, cid) = visitor_with_conversation(&srv, "uno").await;
    let mut last_eid = 0;
    loop {
        let f = op.next().await;
        if let Some(eid) = f["eid"].as_u64() {
            assert!(eid > last_eid, "event ids increase");
            last_eid = eid;
        }
        if f["type"] == "message" && f["body"] == "uno" {
            break;
        }
    }
    // The network drops; the visitor goes on writing.
    drop(op);
    for i in 0..3 {
        v.say(&format!("d{i}"), &format!("durante {i}")).await;
    }
    let mut op = srv.ws("/ws/operator").await;
    op.send(
        json!({"type": "auth", "token": ana, "resume": {"epoch": epoch, "last_eid": last_eid}}),
    )
    .await;
    let ready = op.next_of("ready").await;
    assert_eq!(ready["resumed"], true);
    let mut missed = Vec::new();
    while let Some(f) = op.try_next(Duration::from_millis(300)).await {
        if f["type"] == "message" {
            missed.push(f["body"].as_str().unwrap_or("").to_string());
        }
    }
    assert_eq!(
        missed,
        vec!["durante 0", "durante 1", "durante 2"],
        "each once, in order"
    );
    // An epoch from another process (a restart) cannot resume: reload.
    let mut op = srv.ws("/ws/operator").await;
    op.send(json!({"type": "auth", "token": ana, "resume": {"epoch": "elsewhere", "last_eid": 1}}))
        .await;
    assert_eq!(op.next_of("ready").await["resumed"], false);
    let _ = cid;
    srv.stop().await;
}
both_backends!(
    resume,
    a_console_resumes_from_its_last_event_and_misses_nothing
);

async fn first_run_setup_and_preferences(db: TestDb) {
    let srv = TestServer::start(&db).await;
    let (_, state) = srv.get("/api/setup", None).await;
    assert_eq!(state["needed"], true);
    let (status, err) = srv
        .post(
            "/api/setup",
            None,
            json!({"email": "boss@example.com", "name": "Boss", "password": "short"}),
        )
        .await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (400, Some("bad_request"))
    );
    let (status, login) = srv
        .post(
            "/api/setup",
            None,
            json!({"email": "boss@example.com", "name": "Boss", "password": "a long password"}),
        )
        .await;
    assert_eq!(status, 200, "{login}");
    assert_eq!(login["operator"]["is_admin"], true);
    let token = login["token"].as_str().expect("token").to_string();
    // Once set up, nobody can use it to make themselves an administrator.
    let (status, _) = srv
        .post(
            "/api/setup",
            None,
            json!({"email": "evil@example.com", "name": "Evil", "password": "a long password"}),
        )
        .await;
    assert_eq!(status, 403);
    let (_, state) = srv.get("/api/setup", None).await;
    assert_eq!(state["needed"], false);
    // Display preference and availability (OC2).
    let (status, me) = srv
        .patch(
            "/api/me",
            Some(&token),
            json!({"display_mode": "popup", "available": false}),
        )
        .await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(
        (me["display_mode"].as_str(), me["available"].as_bool()),
        (Some("popup"), Some(false))
    );
    let (status, _) = srv
        .patch("/api/me", Some(&token), json!({"display_mode": "floating"}))
        .await;
    assert_eq!(status, 400);
    let (status, _) = srv
        .patch("/api/me", Some(&token), json!({"is_admin": true}))
        .await;
    assert_eq!(status, 400, "no other field");
    srv.stop().await;
}
both_backends!(setup, first_run_setup_and_preferences);
