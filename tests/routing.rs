//! Routing and ownership: the permission matrix of every routing action over HTTP and
//! websocket (OC1, OC8, OC14, XB12; invariant 5 of ARCHITECTURE.md), distribution with
//! capacity and a first-in-first-out queue (OC4, XB13), the default assignee and auto-close
//! that survives a restart (OC3; invariant 6).

// A failed expectation in a test is the test failing; panicking is the point.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use charla::clock::Clock;
use common::{RoutingSettings, TestDb, TestServer, Ws};
use serde_json::{json, Value};
use std::time::Duration;

fn routed(distribution: bool) -> RoutingSettings {
    RoutingSettings {
        distribution,
        default_assignee_id: None,
        auto_close_minutes: 0,
    }
}

/// Polls `GET /api/conversations/{cid}` until `check` holds on its header.
async fn header_until(
    srv: &TestServer,
    token: &str,
    cid: i64,
    what: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    for _ in 0..250 {
        let (status, body) = srv
            .get(&format!("/api/conversations/{cid}"), Some(token))
            .await;
        assert_eq!(status, 200, "{body}");
        if check(&body["conversation"]) {
            return body["conversation"].clone();
        }
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("conversation {cid} never got {what}");
}

fn assignee(h: &Value) -> Option<i64> {
    h["assignee"]["id"].as_i64()
}

/// A visitor with a conversation (its first message sent and acked).
async fn visitor_with_conversation(srv: &TestServer, text: &str) -> (Ws, i64) {
    let (ws, cid, _) = visitor_seeing(srv, text).await;
    (ws, cid)
}

/// [`visitor_with_conversation`], keeping the places in the queue the visitor was told
/// before the ack.
async fn visitor_seeing(srv: &TestServer, text: &str) -> (Ws, i64, Vec<Value>) {
    let (mut ws, _) = srv.new_visitor().await;
    ws.send(json!({"type": "message", "client_id": "first", "body": text}))
        .await;
    let mut places = Vec::new();
    loop {
        let f = ws.next().await;
        match f["type"].as_str() {
            Some("queue") => places.push(f["position"].clone()),
            Some("ack") => {
                let cid = f["conversation_id"].as_i64().expect("id");
                return (ws, cid, places);
            }
            Some("error") => panic!("{f}"),
            _ => {}
        }
    }
}

/// The queue's promise (XB13): while a conversation waits, every operator who could take
/// it (online, available, with the chat permission, in its team) is at capacity.
async fn assert_no_idle_capacity(srv: &TestServer, token: &str, step: &str) {
    let (_, routing) = srv.get("/api/routing", Some(token)).await;
    let queue = routing["queue"].as_array().expect("queue").clone();
    if queue.is_empty() {
        return;
    }
    let (_, accounts) = srv.get("/api/operators", Some(token)).await;
    let accounts = accounts.as_array().expect("operators").clone();
    for cid in queue {
        let (_, c) = srv
            .get(&format!("/api/conversations/{cid}"), Some(token))
            .await;
        let team = c["conversation"]["team_id"].as_i64();
        for op in routing["online"].as_array().expect("online") {
            let account = accounts
                .iter()
                .find(|a| a["id"] == op["id"])
                .expect("an online operator exists");
            let may_chat = account["is_admin"] == true || account["can_chat"] == true;
            let in_team = team.is_none_or(|t| {
                account["teams"]
                    .as_array()
                    .is_some_and(|ts| ts.iter().any(|x| x.as_i64() == Some(t)))
            });
            if op["available"] == true && may_chat && in_team {
                assert!(
                    op["load"].as_i64() >= op["capacity"].as_i64(),
                    "{step}: conversation {cid} waits while {} has room: {routing}",
                    op["name"]
                );
            }
        }
    }
}

/// The next place in the queue a visitor is told.
async fn place(v: &mut Ws) -> Value {
    v.next_of("queue").await["position"].clone()
}

/// What a routing action answered: `Ok` or the error code.
type Outcome = Result<(), String>;

fn outcome(status: u16, body: &Value) -> Outcome {
    if status == 200 {
        Ok(())
    } else {
        Err(body["error"]["code"].as_str().unwrap_or("?").to_string())
    }
}

/// One routing action, over HTTP or over an operator websocket.
async fn act(
    srv: &TestServer,
    token: &str,
    over_ws: bool,
    cid: i64,
    action: &str,
    n: usize,
) -> Outcome {
    let client_id = format!("{action}-{n}-{}", if over_ws { "ws" } else { "http" });
    let (path, body, frame) = match action {
        "reply" => (
            "messages",
            json!({"client_id": client_id, "body": "reply"}),
            json!({"type": "message", "conversation_id": cid, "client_id": client_id, "body": "reply"}),
        ),
        "note" => (
            "messages",
            json!({"client_id": client_id, "body": "a note", "kind": "note"}),
            json!({"type": "message", "conversation_id": cid, "client_id": client_id, "body": "a note", "kind": "note"}),
        ),
        "close" => (
            "close",
            json!({"client_id": client_id}),
            json!({"type": "close", "conversation_id": cid, "client_id": client_id}),
        ),
        "reopen" => (
            "reopen",
            json!({"client_id": client_id}),
            json!({"type": "reopen", "conversation_id": cid, "client_id": client_id}),
        ),
        "take" => (
            "take",
            json!({"client_id": client_id}),
            json!({"type": "take", "conversation_id": cid, "client_id": client_id}),
        ),
        other => panic!("no action {other}"),
    };
    if !over_ws {
        let (status, answer) = srv
            .post(
                &format!("/api/conversations/{cid}/{path}"),
                Some(token),
                body,
            )
            .await;
        return outcome(status, &answer);
    }
    let mut ws = srv.ws("/ws/operator").await;
    ws.send(json!({"type": "auth", "token": token})).await;
    ws.next_of("ready").await;
    ws.send(frame).await;
    loop {
        let f = ws.next_of_any(&["ack", "error"]).await;
        if f["client_id"] == client_id.as_str() {
            return if f["type"] == "ack" {
                Ok(())
            } else {
                Err(f["code"].as_str().unwrap_or("?").to_string())
            };
        }
    }
}

/// Reassigns over HTTP or websocket.
async fn reassign(
    srv: &TestServer,
    token: &str,
    over_ws: bool,
    cid: i64,
    to: Option<i64>,
    n: usize,
) -> Outcome {
    let client_id = format!("assign-{n}-{over_ws}");
    if !over_ws {
        let (status, answer) = srv
            .post(
                &format!("/api/conversations/{cid}/assign"),
                Some(token),
                json!({"operator_id": to, "reason": "matrix", "client_id": client_id}),
            )
            .await;
        return outcome(status, &answer);
    }
    let mut ws = srv.ws("/ws/operator").await;
    ws.send(json!({"type": "auth", "token": token})).await;
    ws.next_of("ready").await;
    ws.send(json!({"type": "assign", "conversation_id": cid, "client_id": client_id, "operator_id": to, "reason": "matrix"}))
        .await;
    let f = ws.next_of_any(&["ack", "error"]).await;
    if f["type"] == "ack" {
        Ok(())
    } else {
        Err(f["code"].as_str().unwrap_or("?").to_string())
    }
}

async fn the_permission_matrix_of_routing_actions(db: TestDb) {
    let srv = TestServer::start(&db).await;
    let started_at = srv.clock.now_ms();
    let (admin, admin_id) = srv.named_operator("admin@example.com", "Adela", true).await;
    let (owner, owner_id) = srv.named_operator("owner@example.com", "Olga", false).await;
    let (other, other_id) = srv
        .named_operator("other@example.com", "Oscar", false)
        .await;
    let (muted, muted_id) = srv.named_operator("muted@example.com", "Mudo", false).await;
    // The administrator is in no user group at all, so only being an administrator gives
    // them the chat permission (OC1); the muted operator is in none either.
    for id in [admin_id, muted_id] {
        let (status, op) = srv
            .patch(
                &format!("/api/operators/{id}"),
                Some(&admin),
                json!({"groups": []}),
            )
            .await;
        assert_eq!(status, 200, "{op}");
        assert_eq!(op["can_chat"], false, "{op}");
    }
    let (_visitor, cid) = visitor_with_conversation(&srv, "help").await;
    srv.take(cid, &owner).await;

    let forbidden = || Err("forbidden".to_string());
    let not_assigned = || Err("not_assigned".to_string());
    let mut n = 0;
    for over_ws in [false, true] {
        // Writing: only the responsible operator writes text; notes are open to every
        // operator with the chat permission. Taking a conversation someone has is refused
        // to colleagues; the owner has it already; an administrator's take is a
        // reassignment to themselves.
        for (token, reply, note, take) in [
            (&owner, Ok(()), Ok(()), Ok(())),
            (&admin, not_assigned(), Ok(()), Ok(())),
            (&other, not_assigned(), Ok(()), not_assigned()),
            (&muted, forbidden(), forbidden(), forbidden()),
        ] {
            n += 1;
            assert_eq!(
                act(&srv, token, over_ws, cid, "reply", n).await,
                reply,
                "reply ws={over_ws}"
            );
            assert_eq!(
                act(&srv, token, over_ws, cid, "note", n).await,
                note,
                "note ws={over_ws}"
            );
            assert_eq!(
                act(&srv, token, over_ws, cid, "take", n).await,
                take,
                "take ws={over_ws}"
            );
            if token == &admin {
                let h = header_until(&srv, &admin, cid, "the administrator", |h| {
                    assignee(h) == Some(admin_id)
                })
                .await;
                assert_eq!(h["assignee"]["name"], "Adela");
                // Handed back, so the owner's rows below stay the owner's.
                assert_eq!(
                    reassign(&srv, &admin, over_ws, cid, Some(owner_id), n).await,
                    Ok(())
                );
                header_until(&srv, &admin, cid, "the owner", |h| {
                    assignee(h) == Some(owner_id)
                })
                .await;
            }
        }
        // Closing and reopening: the responsible operator or an administrator.
        for (token, allowed) in [
            (&other, not_assigned()),
            (&muted, forbidden()),
            (&owner, Ok(())),
            (&admin, Ok(())),
        ] {
            n += 1;
            let closed = act(&srv, token, over_ws, cid, "close", n).await;
            assert_eq!(closed, allowed, "close ws={over_ws}");
            if closed.is_ok() {
                // While closed, the others may not reopen it either.
                assert_eq!(
                    act(&srv, &other, over_ws, cid, "reopen", n).await,
                    not_assigned()
                );
                assert_eq!(
                    act(&srv, &muted, over_ws, cid, "reopen", n).await,
                    forbidden()
                );
                assert_eq!(
                    act(&srv, token, over_ws, cid, "reopen", n).await,
                    Ok(()),
                    "reopen ws={over_ws}"
                );
            }
        }
        // Unassigning (`operator_id: null`, back to routing): the responsible operator or
        // an administrator; each time the owner takes it again.
        n += 1;
        assert_eq!(
            reassign(&srv, &other, over_ws, cid, None, n).await,
            not_assigned(),
            "unassign ws={over_ws}"
        );
        assert_eq!(
            reassign(&srv, &muted, over_ws, cid, None, n).await,
            forbidden(),
            "unassign ws={over_ws}"
        );
        for token in [&owner, &admin] {
            n += 1;
            assert_eq!(
                reassign(&srv, token, over_ws, cid, None, n).await,
                Ok(()),
                "unassign ws={over_ws}"
            );
            header_until(&srv, &admin, cid, "nobody", |h| h["assignee"].is_null()).await;
            assert_eq!(act(&srv, &owner, over_ws, cid, "take", n).await, Ok(()));
            header_until(&srv, &admin, cid, "the owner", |h| {
                assignee(h) == Some(owner_id)
            })
            .await;
        }
        // Reassigning: the responsible operator or an administrator (OC8).
        n += 1;
        assert_eq!(
            reassign(&srv, &other, over_ws, cid, Some(other_id), n).await,
            not_assigned()
        );
        assert_eq!(
            reassign(&srv, &muted, over_ws, cid, Some(muted_id), n).await,
            forbidden()
        );
        n += 1;
        assert_eq!(
            reassign(&srv, &owner, over_ws, cid, Some(other_id), n).await,
            Ok(())
        );
        // The former owner is read-only at once (OC14).
        assert_eq!(
            act(&srv, &owner, over_ws, cid, "reply", n).await,
            not_assigned()
        );
        assert_eq!(
            reassign(&srv, &owner, over_ws, cid, Some(owner_id), n + 1000).await,
            not_assigned()
        );
        assert_eq!(act(&srv, &other, over_ws, cid, "reply", n).await, Ok(()));
        // An administrator may move anyone's conversation; a target without the chat
        // permission is refused.
        n += 1;
        assert_eq!(
            reassign(&srv, &admin, over_ws, cid, Some(muted_id), n).await,
            Err("bad_request".to_string())
        );
        assert_eq!(
            reassign(&srv, &admin, over_ws, cid, Some(owner_id), n).await,
            Ok(())
        );
    }
    // Nothing refused was stored: the history holds only the allowed writes.
    let (_, conv) = srv
        .get(&format!("/api/conversations/{cid}"), Some(&admin))
        .await;
    let texts: Vec<(String, Option<i64>)> = conv["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter(|m| m["kind"] == "text" && m["author"]["kind"] == "operator")
        .map(|m| {
            (
                m["body"].as_str().unwrap_or("").to_string(),
                m["author"]["id"].as_i64(),
            )
        })
        .collect();
    assert!(texts
        .iter()
        .all(|(_, by)| *by == Some(owner_id) || *by == Some(other_id)));
    // The audit trail names who decided, why and when, in order (XB12).
    let (_, trail) = srv
        .get(
            &format!("/api/conversations/{cid}/assignments"),
            Some(&owner),
        )
        .await;
    let trail = trail.as_array().expect("trail");
    let finished_at = srv.clock.now_ms();
    let times: Vec<i64> = trail
        .iter()
        .map(|a| a["at"].as_i64().expect("every entry says when"))
        .collect();
    assert!(
        times
            .iter()
            .all(|at| (started_at..=finished_at).contains(at)),
        "{times:?} within {started_at}..={finished_at}"
    );
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
    type Step = (Option<i64>, Option<i64>, Option<i64>, String);
    let trail: Vec<Step> = trail
        .iter()
        .map(|a| {
            (
                a["from"]["id"].as_i64(),
                a["to"]["id"].as_i64(),
                a["by"]["id"].as_i64(),
                a["reason"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let step = |from: Option<i64>, to: Option<i64>, by: i64, why: &str| {
        (from, to, Some(by), why.to_string())
    };
    let (owner_, other_, admin_) = (Some(owner_id), Some(other_id), Some(admin_id));
    let per_transport = [
        step(owner_, admin_, admin_id, "took the conversation"),
        step(admin_, owner_, admin_id, "matrix"),
        step(owner_, None, owner_id, "matrix"),
        step(None, owner_, owner_id, "took the conversation"),
        step(owner_, None, admin_id, "matrix"),
        step(None, owner_, owner_id, "took the conversation"),
        step(owner_, other_, owner_id, "matrix"),
        step(other_, owner_, admin_id, "matrix"),
    ];
    let mut expected = vec![step(None, owner_, owner_id, "took the conversation")];
    expected.extend(per_transport.iter().cloned());
    expected.extend(per_transport.iter().cloned());
    assert_eq!(trail, expected);
    srv.stop().await;
}
both_backends!(permission_matrix, the_permission_matrix_of_routing_actions);

async fn answering_an_unassigned_conversation_takes_it_and_reassignment_shows_in_the_history(
    db: TestDb,
) {
    let srv = TestServer::start(&db).await;
    let (ana, ana_id) = srv.named_operator("ana@example.com", "Ana", false).await;
    let (luis, luis_id) = srv.named_operator("luis@example.com", "Luis", false).await;
    let mut luis_ws = srv.operator_ws(&luis).await;
    let (mut visitor, cid) = visitor_with_conversation(&srv, "hola").await;
    let mut ana_ws = srv.operator_ws(&ana).await;
    ana_ws
        .send(json!({"type": "message", "conversation_id": cid, "client_id": "a1", "body": "Hola, soy Ana"}))
        .await;
    assert_eq!(ana_ws.next_of("ack").await["client_id"], "a1");
    // The visitor sees who took it, then the answer.
    let assigned = visitor.next_of("message").await;
    assert_eq!(assigned["body"], "assigned");
    assert_eq!(assigned["meta"]["to"]["name"], "Ana");
    assert_eq!(visitor.next_text().await["body"], "Hola, soy Ana");

    // Ana hands it to Luis; her next message fails with the reason, Luis's goes through.
    ana_ws
        .send(json!({"type": "assign", "conversation_id": cid, "client_id": "as1", "operator_id": luis_id, "reason": "habla portugués"}))
        .await;
    assert_eq!(ana_ws.next_of("ack").await["client_id"], "as1");
    // Luis's console hears of every change; the last says the conversation is his.
    loop {
        let header = luis_ws.next_of("conversation").await;
        if assignee(&header["conversation"]) == Some(luis_id) {
            break;
        }
    }
    ana_ws
        .send(json!({"type": "message", "conversation_id": cid, "client_id": "a2", "body": "¿sigues ahí?"}))
        .await;
    let err = ana_ws.next_of("error").await;
    assert_eq!(
        (err["code"].as_str(), err["client_id"].as_str()),
        (Some("not_assigned"), Some("a2"))
    );
    assert!(err["message"]
        .as_str()
        .unwrap_or("")
        .contains("not assigned to you"));
    luis_ws
        .send(json!({"type": "message", "conversation_id": cid, "client_id": "l1", "body": "Olá"}))
        .await;
    assert_eq!(luis_ws.next_of("ack").await["client_id"], "l1");
    let (_, conv) = srv
        .get(&format!("/api/conversations/{cid}"), Some(&ana))
        .await;
    let events: Vec<(String, Option<String>, Option<String>)> = conv["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter(|m| m["body"] == "assigned")
        .map(|m| {
            (
                m["author"]["name"].as_str().unwrap_or("").to_string(),
                m["meta"]["from"]["name"].as_str().map(str::to_string),
                m["meta"]["to"]["name"].as_str().map(str::to_string),
            )
        })
        .collect();
    assert_eq!(
        events,
        vec![
            ("Ana".into(), None, Some("Ana".into())),
            ("Ana".into(), Some("Ana".into()), Some("Luis".into())),
        ]
    );
    assert!(!conv["messages"]
        .as_array()
        .expect("m")
        .iter()
        .any(|m| m["body"] == "¿sigues ahí?"));
    let _ = ana_id;
    srv.stop().await;
}
both_backends!(
    takeover_and_reassignment,
    answering_an_unassigned_conversation_takes_it_and_reassignment_shows_in_the_history
);

async fn distribution_respects_capacity_and_the_queue_is_first_in_first_out(db: TestDb) {
    let srv = TestServer::start_routed(&db, routed(true)).await;
    let (admin, _) = srv.named_operator("admin@example.com", "Adela", true).await;
    let (ana, ana_id) = srv.named_operator("ana@example.com", "Ana", false).await;
    let (bea, bea_id) = srv.named_operator("bea@example.com", "Bea", false).await;
    let (carla, carla_id) = srv
        .named_operator("carla@example.com", "Carla", false)
        .await;
    // The administrator is away, so only Ana (2) and Bea (1) take conversations.
    for (id, cap) in [(ana_id, 2), (bea_id, 1), (carla_id, 1)] {
        let (status, _) = srv
            .patch(
                &format!("/api/operators/{id}"),
                Some(&admin),
                json!({"capacity": cap}),
            )
            .await;
        assert_eq!(status, 200);
    }
    let (status, _) = srv
        .patch("/api/me", Some(&admin), json!({"available": false}))
        .await;
    assert_eq!(status, 200);
    let _admin_ws = srv.operator_ws(&admin).await;
    let _ana_ws = srv.operator_ws(&ana).await;
    let _bea_ws = srv.operator_ws(&bea).await;

    let mut visitors = Vec::new();
    let mut places = Vec::new();
    for i in 0..5 {
        let (ws, cid, seen) = visitor_seeing(&srv, &format!("visitor {i}")).await;
        visitors.push((ws, cid));
        places.push(seen);
    }
    let cids: Vec<i64> = visitors.iter().map(|(_, c)| *c).collect();
    for cid in &cids[..3] {
        header_until(&srv, &admin, *cid, "an assignee", |h| assignee(h).is_some()).await;
    }
    let owners: Vec<Option<i64>> = {
        let mut v = Vec::new();
        for cid in &cids {
            let (_, c) = srv
                .get(&format!("/api/conversations/{cid}"), Some(&admin))
                .await;
            v.push(assignee(&c["conversation"]));
        }
        v
    };
    let count = |id: i64| owners.iter().filter(|o| **o == Some(id)).count();
    assert_eq!((count(ana_id), count(bea_id)), (2, 1), "{owners:?}");
    assert_eq!(&owners[3..], &[None, None], "the last two wait");
    // The waiting visitors know their places, in arrival order.
    let (_, routing) = srv.get("/api/routing", Some(&admin)).await;
    assert_eq!(routing["queue"], json!([cids[3], cids[4]]));
    assert_eq!(places[3], vec![json!(1)]);
    assert_eq!(places[4], vec![json!(2)]);
    assert!(places[..3].iter().all(Vec::is_empty), "{places:?}");
    assert_no_idle_capacity(&srv, &admin, "five visitors").await;

    // Bea closes hers: the oldest waiting conversation is hers at once, and the last one
    // moves up to first place.
    let bea_cid = cids[owners
        .iter()
        .position(|o| *o == Some(bea_id))
        .expect("bea's")];
    let (status, _) = srv
        .post(
            &format!("/api/conversations/{bea_cid}/close"),
            Some(&bea),
            json!({}),
        )
        .await;
    assert_eq!(status, 200);
    header_until(&srv, &admin, cids[3], "Bea", |h| {
        assignee(h) == Some(bea_id)
    })
    .await;
    assert_eq!(place(&mut visitors[3].0).await, Value::Null);
    assert_eq!(place(&mut visitors[4].0).await, json!(1));
    assert_no_idle_capacity(&srv, &admin, "Bea closed one").await;

    // Carla comes online: the last one is hers.
    let _carla_ws = srv.operator_ws(&carla).await;
    header_until(&srv, &admin, cids[4], "Carla", |h| {
        assignee(h) == Some(carla_id)
    })
    .await;
    let (_, routing) = srv.get("/api/routing", Some(&admin)).await;
    assert_eq!(routing["queue"], json!([]));
    assert_no_idle_capacity(&srv, &admin, "Carla came online").await;

    // Everyone is full now: a new visitor waits; raising a capacity hands it out.
    let (_v6, cid6) = visitor_with_conversation(&srv, "visitor 6").await;
    header_until(&srv, &admin, cid6, "the queue", |h| h["queued"] == true).await;
    assert_no_idle_capacity(&srv, &admin, "a sixth visitor").await;
    srv.patch(
        &format!("/api/operators/{ana_id}"),
        Some(&admin),
        json!({"capacity": 3}),
    )
    .await;
    header_until(&srv, &admin, cid6, "Ana", |h| assignee(h) == Some(ana_id)).await;
    assert_no_idle_capacity(&srv, &admin, "Ana has more room").await;
    // No conversation waits while someone online has room (the administrator is away).
    let (_, routing) = srv.get("/api/routing", Some(&admin)).await;
    for op in routing["online"].as_array().expect("online") {
        if op["available"] == true {
            assert!(op["load"].as_i64() >= op["capacity"].as_i64(), "{routing}");
        }
    }
    srv.stop().await;
}
both_backends!(
    capacity_and_queue,
    distribution_respects_capacity_and_the_queue_is_first_in_first_out
);

async fn the_queue_survives_a_restart_and_drains_when_someone_comes_online(mut db: TestDb) {
    let _ = db.scratch();
    let srv = TestServer::start_routed(&db, routed(true)).await;
    let (ana, ana_id) = srv.named_operator("ana@example.com", "Ana", false).await;
    let (_v1, first) = visitor_with_conversation(&srv, "uno").await;
    let (_v2, second) = visitor_with_conversation(&srv, "dos").await;
    header_until(&srv, &ana, second, "the queue", |h| h["queued"] == true).await;
    srv.stop().await;

    let srv = TestServer::start_routed(&db, routed(true)).await;
    let (_, routing) = srv.get("/api/routing", Some(&ana)).await;
    assert_eq!(
        routing["queue"],
        json!([first, second]),
        "same order after a restart"
    );
    let (status, _) = srv
        .patch("/api/me", Some(&ana), json!({"available": true}))
        .await;
    assert_eq!(status, 200);
    let _ana_ws = srv.operator_ws(&ana).await;
    header_until(&srv, &ana, first, "Ana", |h| assignee(h) == Some(ana_id)).await;
    header_until(&srv, &ana, second, "Ana", |h| assignee(h) == Some(ana_id)).await;
    srv.stop().await;
}
both_backends!(
    queue_restart,
    the_queue_survives_a_restart_and_drains_when_someone_comes_online
);

async fn teams_availability_and_the_default_assignee(db: TestDb) {
    let srv = TestServer::start_routed(&db, routed(true)).await;
    let (admin, _) = srv.named_operator("admin@example.com", "Adela", true).await;
    let (ana, ana_id) = srv.named_operator("ana@example.com", "Ana", false).await;
    let (bea, bea_id) = srv.named_operator("bea@example.com", "Bea", false).await;
    srv.patch("/api/me", Some(&admin), json!({"available": false}))
        .await;
    let (status, team) = srv
        .post("/api/teams", Some(&admin), json!({"name": "Ventas"}))
        .await;
    assert_eq!(status, 201, "{team}");
    let team_id = team["id"].as_i64().expect("id");
    srv.patch(
        &format!("/api/operators/{bea_id}"),
        Some(&admin),
        json!({"teams": [team_id]}),
    )
    .await;
    let (status, ch) = srv
        .post(
            "/api/channels",
            Some(&admin),
            json!({"name": "shop", "title": "Tienda", "kind": "whatsapp", "team_id": team_id}),
        )
        .await;
    assert_eq!(status, 201, "{ch}");
    let _ana_ws = srv.operator_ws(&ana).await;
    let mut bea_ws = srv.operator_ws(&bea).await;

    // A conversation on the team's channel goes to the team's member, not to Ana.
    let mut v = srv.ws("/ws/visitor").await;
    v.send(json!({"type": "hello", "channel": "shop"})).await;
    v.next_of("welcome").await;
    let cid = v.say("s1", "quiero comprar").await["conversation_id"]
        .as_i64()
        .expect("id");
    let h = header_until(&srv, &admin, cid, "Bea", |h| assignee(h) == Some(bea_id)).await;
    assert_eq!(
        (h["channel"].as_str(), h["team_id"].as_i64()),
        (Some("shop"), Some(team_id))
    );
    // An unknown channel is refused with a clear error.
    let mut v = srv.ws("/ws/visitor").await;
    v.send(json!({"type": "hello", "channel": "nope"})).await;
    let err = v.next_of("error").await;
    assert_eq!(err["code"], "bad_request");
    assert!(err["message"]
        .as_str()
        .unwrap_or("")
        .contains("unknown channel"));

    // Bea goes away: the team's next conversation waits instead of going to Ana.
    bea_ws
        .send(json!({"type": "availability", "available": false}))
        .await;
    actix_rt::time::sleep(Duration::from_millis(200)).await;
    let mut v = srv.ws("/ws/visitor").await;
    v.send(json!({"type": "hello", "channel": "shop"})).await;
    v.next_of("welcome").await;
    let waiting = v.say("s2", "¿hay alguien?").await["conversation_id"]
        .as_i64()
        .expect("id");
    header_until(&srv, &admin, waiting, "the queue", |h| h["queued"] == true).await;
    bea_ws
        .send(json!({"type": "availability", "available": true}))
        .await;
    header_until(&srv, &admin, waiting, "Bea", |h| {
        assignee(h) == Some(bea_id)
    })
    .await;

    // Distribution off: new conversations go to the default assignee, online or not.
    let (status, _) = srv
        .put(
            "/api/settings/routing",
            Some(&ana),
            json!({"distribution": false, "default_assignee_id": ana_id, "auto_close_minutes": 0}),
        )
        .await;
    assert_eq!(status, 403, "only administrators change routing");
    let (status, s) = srv
        .put(
            "/api/settings/routing",
            Some(&admin),
            json!({"distribution": false, "default_assignee_id": ana_id, "auto_close_minutes": 0}),
        )
        .await;
    assert_eq!(status, 200, "{s}");
    let (_v, cid) = visitor_with_conversation(&srv, "web").await;
    header_until(&srv, &admin, cid, "Ana", |h| assignee(h) == Some(ana_id)).await;
    let (_, trail) = srv
        .get(
            &format!("/api/conversations/{cid}/assignments"),
            Some(&admin),
        )
        .await;
    assert_eq!(trail[0]["reason"], "default assignee");
    assert!(trail[0]["by"].is_null(), "decided by routing, not a person");
    // Without a default, it stays unassigned for anyone to take.
    srv.put(
        "/api/settings/routing",
        Some(&admin),
        json!({"distribution": false, "default_assignee_id": null, "auto_close_minutes": 0}),
    )
    .await;
    let (_v, cid) = visitor_with_conversation(&srv, "nadie").await;
    actix_rt::time::sleep(Duration::from_millis(200)).await;
    let (_, c) = srv
        .get(&format!("/api/conversations/{cid}"), Some(&admin))
        .await;
    assert!(c["conversation"]["assignee"].is_null() && c["conversation"]["queued"] == false);
    srv.stop().await;
}
both_backends!(
    teams_and_defaults,
    teams_availability_and_the_default_assignee
);

async fn an_inactive_conversation_closes_itself_even_across_a_restart(mut db: TestDb) {
    let _ = db.scratch();
    let settings = RoutingSettings {
        distribution: false,
        default_assignee_id: None,
        auto_close_minutes: 10,
    };
    let srv = TestServer::start_routed(&db, settings.clone()).await;
    let (ana, _) = srv.operator("ana@example.com", false).await;
    let (mut v, cid) = visitor_with_conversation(&srv, "hola").await;
    // Not yet due.
    srv.clock.advance(9 * 60_000);
    srv.runtime()
        .router
        .do_send(charla::runtime::router::SweepNow);
    actix_rt::time::sleep(Duration::from_millis(200)).await;
    let (_, c) = srv
        .get(&format!("/api/conversations/{cid}"), Some(&ana))
        .await;
    assert_eq!(c["conversation"]["status"], "open");
    // Due: closed by the server, with the reason in the history and a frame to the visitor.
    srv.clock.advance(2 * 60_000);
    srv.runtime()
        .router
        .do_send(charla::runtime::router::SweepNow);
    let h = header_until(&srv, &ana, cid, "closed", |h| h["status"] == "closed").await;
    assert_eq!(h["status"], "closed");
    let closed = loop {
        let m = v.next_of("message").await;
        if m["body"] == "closed" {
            break m;
        }
    };
    assert_eq!(closed["author"]["kind"], "system");
    assert_eq!(closed["meta"]["reason"], "inactivity");

    // A second conversation falls due while the server is down: it closes once it is back.
    let (_v2, other) = visitor_with_conversation(&srv, "otra").await;
    srv.stop().await;
    // The first server's clock ran 11 minutes ahead; the second starts 11 more later.
    let srv = TestServer::start_routed_at(&db, settings, 22 * 60_000 + 5_000).await;
    let h = header_until(&srv, &ana, other, "closed", |h| h["status"] == "closed").await;
    assert_eq!(h["status"], "closed");
    let (_, conv) = srv
        .get(&format!("/api/conversations/{other}"), Some(&ana))
        .await;
    let closes = conv["messages"]
        .as_array()
        .expect("m")
        .iter()
        .filter(|m| m["body"] == "closed")
        .count();
    assert_eq!(closes, 1, "closed exactly once");
    srv.stop().await;
}
both_backends!(
    auto_close,
    an_inactive_conversation_closes_itself_even_across_a_restart
);

async fn conversations_opened_while_distribution_was_off_are_routed_when_it_comes_on(db: TestDb) {
    let srv = TestServer::start_routed(&db, routed(false)).await;
    let (admin, _) = srv.named_operator("admin@example.com", "Adela", true).await;
    let (ana, ana_id) = srv.named_operator("ana@example.com", "Ana", false).await;
    let (bea, bea_id) = srv.named_operator("bea@example.com", "Bea", false).await;
    for id in [ana_id, bea_id] {
        srv.patch(
            &format!("/api/operators/{id}"),
            Some(&admin),
            json!({"capacity": 1}),
        )
        .await;
    }
    srv.patch("/api/me", Some(&admin), json!({"available": false}))
        .await;
    let _admin_ws = srv.operator_ws(&admin).await;
    let _ana_ws = srv.operator_ws(&ana).await;
    let _bea_ws = srv.operator_ws(&bea).await;

    // Distribution off and no default assignee: three conversations open and nobody has
    // them, although Ana and Bea have room.
    let mut visitors = Vec::new();
    for i in 0..3 {
        visitors.push(visitor_with_conversation(&srv, &format!("visitor {i}")).await);
    }
    let cids: Vec<i64> = visitors.iter().map(|(_, c)| *c).collect();
    actix_rt::time::sleep(Duration::from_millis(200)).await;
    for cid in &cids {
        let (_, c) = srv
            .get(&format!("/api/conversations/{cid}"), Some(&admin))
            .await;
        let h = &c["conversation"];
        assert!(h["assignee"].is_null() && h["queued"] == false, "{h}");
    }

    // Switched on: they are routed in the order they arrived; the first two get the two
    // free places, the third waits first in the queue.
    let (status, body) = srv
        .put(
            "/api/settings/routing",
            Some(&admin),
            json!({"distribution": true, "default_assignee_id": null, "auto_close_minutes": 0}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    header_until(&srv, &admin, cids[0], "Ana", |h| {
        assignee(h) == Some(ana_id)
    })
    .await;
    header_until(&srv, &admin, cids[1], "Bea", |h| {
        assignee(h) == Some(bea_id)
    })
    .await;
    header_until(&srv, &admin, cids[2], "the queue", |h| h["queued"] == true).await;
    assert_eq!(place(&mut visitors[2].0).await, json!(1));
    let (_, routing) = srv.get("/api/routing", Some(&admin)).await;
    assert_eq!(routing["queue"], json!([cids[2]]));
    assert_no_idle_capacity(&srv, &admin, "distribution switched on").await;

    // And it drains like any other: Ana closes hers, the third is hers.
    let (status, _) = srv
        .post(
            &format!("/api/conversations/{}/close", cids[0]),
            Some(&ana),
            json!({}),
        )
        .await;
    assert_eq!(status, 200);
    header_until(&srv, &admin, cids[2], "Ana", |h| {
        assignee(h) == Some(ana_id)
    })
    .await;
    srv.stop().await;
}
both_backends!(
    distribution_switched_on,
    conversations_opened_while_distribution_was_off_are_routed_when_it_comes_on
);

async fn at_start_every_open_conversation_without_an_operator_waits_in_arrival_order(
    mut db: TestDb,
) {
    let _ = db.scratch();
    let srv = TestServer::start_routed(&db, routed(false)).await;
    let (ana, ana_id) = srv.named_operator("ana@example.com", "Ana", false).await;
    let mut cids = Vec::new();
    for i in 0..4 {
        cids.push(
            visitor_with_conversation(&srv, &format!("visitor {i}"))
                .await
                .1,
        );
    }
    // One closed and one taken: neither waits for an operator.
    let (status, _) = srv
        .post(
            &format!("/api/conversations/{}/close", cids[1]),
            Some(&ana),
            json!({}),
        )
        .await;
    assert_eq!(status, 200);
    srv.take(cids[3], &ana).await;
    srv.stop().await;

    // The server comes back with distribution on: the other two wait, oldest first.
    let srv = TestServer::start_routed(&db, routed(true)).await;
    let (_, routing) = srv.get("/api/routing", Some(&ana)).await;
    assert_eq!(routing["queue"], json!([cids[0], cids[2]]));
    // Ana (room for five, one taken) comes online: both are hers.
    let _ana_ws = srv.operator_ws(&ana).await;
    header_until(&srv, &ana, cids[0], "Ana", |h| assignee(h) == Some(ana_id)).await;
    header_until(&srv, &ana, cids[2], "Ana", |h| assignee(h) == Some(ana_id)).await;
    let (_, c) = srv
        .get(&format!("/api/conversations/{}", cids[1]), Some(&ana))
        .await;
    assert!(
        c["conversation"]["assignee"].is_null(),
        "a closed one stays as it was"
    );
    let (_, routing) = srv.get("/api/routing", Some(&ana)).await;
    assert_eq!(routing["queue"], json!([]));
    srv.stop().await;
}
both_backends!(
    routed_at_start,
    at_start_every_open_conversation_without_an_operator_waits_in_arrival_order
);

/// Asks a conversation to close for inactivity the way the sweep does, with the cutoff
/// the sweep read the database with.
async fn close_for_inactivity(srv: &TestServer, cid: i64, cutoff: i64) -> Value {
    use charla::runtime::conversation::{Reply, Requester, SetStatus};
    let rt = srv.runtime();
    let addr = rt.conversation(cid).await.expect("conversation");
    let (tx, rx) = tokio::sync::oneshot::channel();
    rt.deliver(
        &addr,
        SetStatus {
            by: Requester::System,
            status: charla::model::ConversationStatus::Closed,
            client_id: None,
            reason: Some("inactivity"),
            inactive_before: Some(cutoff),
            reply: Reply::Http(tx),
            from_session: None,
        },
    )
    .expect("delivered");
    let posted = rx.await.expect("answered").expect("accepted");
    serde_json::to_value(posted).expect("json")
}

async fn a_message_after_the_sweep_read_the_database_keeps_the_conversation_open(db: TestDb) {
    let srv = TestServer::start_routed(
        &db,
        RoutingSettings {
            distribution: false,
            default_assignee_id: None,
            auto_close_minutes: 10,
        },
    )
    .await;
    let (ana, _) = srv.operator("ana@example.com", false).await;
    let (mut v, cid) = visitor_with_conversation(&srv, "hola").await;
    // Eleven quiet minutes: a sweep now reads the conversation as due...
    srv.clock.advance(11 * 60_000);
    let cutoff = srv.clock.now_ms() - 10 * 60_000;
    // ...but the visitor writes before the sweep's request reaches the conversation, which
    // comes a few seconds later (the sweep asks one conversation after another).
    v.say("again", "¿sigue ahí?").await;
    srv.clock.advance(5_000);
    let outcome = close_for_inactivity(&srv, cid, cutoff).await;
    assert_eq!(outcome["duplicate"], true, "nothing recorded: {outcome}");
    let (_, c) = srv
        .get(&format!("/api/conversations/{cid}"), Some(&ana))
        .await;
    assert_eq!(c["conversation"]["status"], "open");
    assert!(!c["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .any(|m| m["body"] == "closed"));

    // Ten quiet minutes after that message, it is due and closes.
    srv.clock.advance(10 * 60_000);
    let cutoff = srv.clock.now_ms() - 10 * 60_000;
    let outcome = close_for_inactivity(&srv, cid, cutoff).await;
    assert_eq!(outcome["duplicate"], false, "{outcome}");
    header_until(&srv, &ana, cid, "closed", |h| h["status"] == "closed").await;
    srv.stop().await;
}
both_backends!(
    auto_close_race,
    a_message_after_the_sweep_read_the_database_keeps_the_conversation_open
);

async fn a_group_without_the_chat_permission_locks_its_members_out(db: TestDb) {
    let srv = TestServer::start_routed(&db, routed(true)).await;
    let (admin, _) = srv.named_operator("admin@example.com", "Adela", true).await;
    srv.patch("/api/me", Some(&admin), json!({"available": false}))
        .await;
    let (nora, nora_id) = srv.named_operator("nora@example.com", "Nora", false).await;
    let (status, group) = srv
        .post(
            "/api/groups",
            Some(&admin),
            json!({"name": "Soporte", "can_chat": true}),
        )
        .await;
    assert_eq!(status, 201, "{group}");
    let group_id = group["id"].as_i64().expect("id");
    let (status, _) = srv
        .patch(
            &format!("/api/operators/{nora_id}"),
            Some(&admin),
            json!({"groups": [group_id]}),
        )
        .await;
    assert_eq!(status, 200);
    let _admin_ws = srv.operator_ws(&admin).await;
    let mut console = srv.operator_ws(&nora).await;

    // While her group may chat, Nora is given conversations and answers them.
    let (_v1, first) = visitor_with_conversation(&srv, "uno").await;
    header_until(&srv, &admin, first, "Nora", |h| {
        assignee(h) == Some(nora_id)
    })
    .await;
    console
        .send(json!({"type": "message", "conversation_id": first, "client_id": "before", "body": "hola"}))
        .await;
    assert_eq!(console.next_of_any(&["ack", "error"]).await["type"], "ack");

    // The group loses the permission.
    let (status, g) = srv
        .patch(
            &format!("/api/groups/{group_id}"),
            Some(&admin),
            json!({"can_chat": false}),
        )
        .await;
    assert_eq!((status, g["can_chat"].clone()), (200, json!(false)), "{g}");
    // Over HTTP and a new socket...
    for over_ws in [false, true] {
        for action in ["reply", "note", "close"] {
            assert_eq!(
                act(&srv, &nora, over_ws, first, action, 1).await,
                Err("forbidden".to_string()),
                "{action} ws={over_ws}"
            );
        }
    }
    let (status, _) = srv.get("/api/conversations", Some(&nora)).await;
    assert_eq!(status, 403);
    // ...and over the console she had open, from its next frame on.
    console
        .send(json!({"type": "message", "conversation_id": first, "client_id": "after", "body": "¿sigo?"}))
        .await;
    let refused = console.next_of_any(&["ack", "error"]).await;
    assert_eq!(
        (refused["code"].as_str(), refused["client_id"].as_str()),
        (Some("forbidden"), Some("after")),
        "{refused}"
    );
    // Distribution leaves her out: the next conversation waits.
    let (_v2, second) = visitor_with_conversation(&srv, "dos").await;
    header_until(&srv, &admin, second, "the queue", |h| h["queued"] == true).await;
    assert_no_idle_capacity(&srv, &admin, "the group lost the permission").await;
    let mut gone = false;
    for _ in 0..100 {
        let (_, routing) = srv.get("/api/routing", Some(&admin)).await;
        let online = routing["online"].as_array().expect("online");
        if !online.iter().any(|o| o["id"] == nora_id) {
            gone = true;
            break;
        }
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(gone, "her console left the live feed");

    // Given back, her open console rejoins at once and takes the one waiting.
    let (status, _) = srv
        .patch(
            &format!("/api/groups/{group_id}"),
            Some(&admin),
            json!({"can_chat": true}),
        )
        .await;
    assert_eq!(status, 200);
    header_until(&srv, &admin, second, "Nora", |h| {
        assignee(h) == Some(nora_id)
    })
    .await;
    srv.stop().await;
}
both_backends!(
    group_permission_revoked,
    a_group_without_the_chat_permission_locks_its_members_out
);
