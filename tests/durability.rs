//! Durability: an acknowledged message survives a graceful restart and a `kill -9` of the
//! real binary, exactly once (RT4, RT6; invariant 1 of ARCHITECTURE.md), and shutdown closes
//! every socket with 1001.

// A failed expectation in a test is the test failing; panicking is the point.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{SmtpSink, TestDb, TestServer, Ws};
use serde_json::{json, Value};
use std::cell::RefCell;
use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::rc::Rc;
use std::time::Duration;

async fn shutdown_closes_sockets_and_keeps_every_ack(db: TestDb) {
    let srv = TestServer::start(&db).await;
    let (token, _) = srv.operator("ana@example.com", false).await;
    let mut op = srv.operator_ws(&token).await;
    let (mut ws, welcome) = srv.new_visitor().await;
    let vtoken = welcome["visitor_token"]
        .as_str()
        .expect("token")
        .to_string();
    let mut acked = Vec::new();
    for i in 0..50 {
        acked.push(
            ws.say(&format!("c{i}"), &format!("m{i}")).await["seq"]
                .as_i64()
                .expect("seq"),
        );
    }
    srv.stop().await;
    assert_eq!(
        ws.wait_close().await,
        Some(1001),
        "visitor socket closed with going-away"
    );
    assert_eq!(
        op.wait_close().await,
        Some(1001),
        "operator socket closed with going-away"
    );

    let srv = TestServer::start(&db).await;
    let mut ws = srv.ws("/ws/visitor").await;
    ws.send(json!({"type": "hello", "token": vtoken, "last_seq": 0}))
        .await;
    ws.next_of("welcome").await;
    let mut replayed = Vec::new();
    for _ in 0..51 {
        let m = ws.next_of("message").await;
        replayed.push(m["seq"].as_i64().expect("seq"));
    }
    assert_eq!(&replayed[1..], &acked[..]);
    srv.stop().await;
}
both_backends!(
    graceful_restart,
    shutdown_closes_sockets_and_keeps_every_ack
);

/// A free port on loopback.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn spawn_binary(db_url: &str, port: u16, dir: &std::path::Path) -> Child {
    spawn_binary_with(db_url, port, dir, &[])
}

fn spawn_binary_with(
    db_url: &str,
    port: u16,
    dir: &std::path::Path,
    env: &[(&str, String)],
) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_charla"));
    cmd.arg("serve")
        .current_dir(dir)
        .env("CHARLA_ADDR", format!("127.0.0.1:{port}"))
        .env("CHARLA_DATABASE_URL", db_url)
        .env("CHARLA_RATE_PER_SEC", "0")
        .env("CHARLA_LOG", "warn");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("charla starts")
}

async fn wait_healthy(port: u16) {
    assert!(
        common::healthy_within_30s(port).await,
        "the server did not become healthy"
    );
}

const VISITORS: usize = 6;
const PER_VISITOR: usize = 1500;
const KILL_AFTER_ACKS: usize = 3000;
const WINDOW: usize = 64;

/// One visitor sending as fast as acks come back, recording every ack, until the server dies.
async fn chatter(
    port: u16,
    n: usize,
    acks: Rc<RefCell<Vec<(String, i64, i64)>>>,
) -> Option<String> {
    let mut ws = Ws::connect(&format!("ws://127.0.0.1:{port}/ws/visitor")).await;
    ws.send(json!({"type": "hello"})).await;
    let welcome = ws.try_next(Duration::from_secs(10)).await?;
    let token = welcome["visitor_token"].as_str()?.to_string();
    let mut sent = 0;
    let mut outstanding = 0;
    loop {
        while outstanding < WINDOW && sent < PER_VISITOR {
            let frame = json!({"type": "message", "client_id": format!("v{n}-{sent}"), "body": format!("visitor {n} message {sent}")});
            if !ws.try_send_text(&frame.to_string()).await {
                return Some(token);
            }
            sent += 1;
            outstanding += 1;
        }
        let Some(f) = ws.try_next(Duration::from_secs(10)).await else {
            break;
        };
        if f["type"] == "ack" {
            outstanding -= 1;
            acks.borrow_mut().push((
                f["client_id"].as_str().unwrap_or_default().to_string(),
                f["conversation_id"].as_i64().unwrap_or(0),
                f["seq"].as_i64().unwrap_or(0),
            ));
            if outstanding == 0 && sent == PER_VISITOR {
                break;
            }
        }
    }
    Some(token)
}

async fn acknowledged_messages_survive_kill_dash_nine(mut db: TestDb) {
    let dir = db.scratch();
    let port = free_port();
    let mut child = spawn_binary(&db.url, port, &dir);
    wait_healthy(port).await;

    let acks: Rc<RefCell<Vec<(String, i64, i64)>>> = Rc::default();
    let mut tasks = Vec::new();
    for n in 0..VISITORS {
        tasks.push(actix_rt::spawn(chatter(port, n, acks.clone())));
    }
    // Kill the process mid-stream, with messages in flight.
    for _ in 0..600 {
        if acks.borrow().len() >= KILL_AFTER_ACKS {
            break;
        }
        actix_rt::time::sleep(Duration::from_millis(10)).await;
    }
    let at_kill = acks.borrow().len();
    child.kill().expect("kill -9");
    let _ = child.wait();
    let mut tokens = Vec::new();
    for t in tasks {
        tokens.push(t.await.expect("task"));
    }
    let acked: Vec<(String, i64, i64)> = acks.borrow().clone();
    assert!(
        at_kill >= KILL_AFTER_ACKS,
        "enough traffic before the kill ({at_kill})"
    );
    assert!(
        acked.len() < VISITORS * PER_VISITOR,
        "the kill happened mid-stream"
    );
    eprintln!(
        "[{}] {} messages acknowledged before kill -9",
        db.backend,
        acked.len()
    );

    // Restart on the same database: every acked message is there exactly once, under the
    // sequence number its ack gave, and a resuming visitor replays them in order.
    let port = free_port();
    let mut child = spawn_binary(&db.url, port, &dir);
    wait_healthy(port).await;
    let mut stored: HashMap<String, Vec<(i64, i64)>> = HashMap::new();
    let mut replayed_per_visitor = Vec::new();
    for token in tokens.into_iter().flatten() {
        let mut ws = Ws::connect(&format!("ws://127.0.0.1:{port}/ws/visitor")).await;
        ws.send(json!({"type": "hello", "token": token, "last_seq": 0}))
            .await;
        let welcome: Value = ws.next_of("welcome").await;
        let cid = welcome["conversation"]["id"]
            .as_i64()
            .expect("conversation resumed");
        let last = welcome["conversation"]["last_seq"]
            .as_i64()
            .expect("last_seq");
        let mut seqs = Vec::new();
        while seqs.last().copied().unwrap_or(0) < last {
            let m = ws.next_of("message").await;
            let seq = m["seq"].as_i64().expect("seq");
            seqs.push(seq);
            if let Some(c) = m["client_id"].as_str() {
                stored.entry(c.to_string()).or_default().push((cid, seq));
            }
        }
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "replay in order");
        replayed_per_visitor.push(seqs.len());
    }
    for (client_id, cid, seq) in &acked {
        let found = stored.get(client_id).cloned().unwrap_or_default();
        assert_eq!(
            found,
            vec![(*cid, *seq)],
            "acked message {client_id} stored exactly once under its seq"
        );
    }
    assert!(
        stored.values().all(|v| v.len() == 1),
        "no message stored twice"
    );
    child.kill().expect("kill");
    let _ = child.wait();
}
both_backends!(crash, acknowledged_messages_survive_kill_dash_nine);

/// Holds the database's write lock from outside the server, as a slow or stuck database
/// would, until dropped.
enum WriteLock {
    Sqlite(diesel::SqliteConnection),
    Postgres(diesel::PgConnection),
}

impl WriteLock {
    fn take(db: &TestDb) -> WriteLock {
        use diesel::connection::SimpleConnection;
        use diesel::Connection;
        if db.backend == "sqlite" {
            let mut c = diesel::SqliteConnection::establish(&db.url).expect("open");
            c.batch_execute("BEGIN EXCLUSIVE").expect("lock");
            WriteLock::Sqlite(c)
        } else {
            let mut c = diesel::PgConnection::establish(&db.url).expect("open");
            c.batch_execute("BEGIN; LOCK TABLE messages IN EXCLUSIVE MODE")
                .expect("lock");
            WriteLock::Postgres(c)
        }
    }

    fn release(self) {
        use diesel::connection::SimpleConnection;
        match self {
            WriteLock::Sqlite(mut c) => c.batch_execute("COMMIT").expect("unlock"),
            WriteLock::Postgres(mut c) => c.batch_execute("COMMIT").expect("unlock"),
        }
    }
}

async fn a_stalled_database_slows_senders_and_loses_nothing(db: TestDb) {
    let srv = TestServer::start_with(&db, |c| c.persist_queue = 4).await;
    let (mut ws, _) = srv.new_visitor().await;
    let cid = ws.say("first", "before the stall").await["conversation_id"]
        .as_i64()
        .expect("id");

    let lock = WriteLock::take(&db);
    const N: usize = 40;
    for i in 0..N {
        ws.send(json!({"type": "message", "client_id": format!("s{i}"), "body": format!("stalled {i}")}))
            .await;
    }
    let mut acked: Vec<String> = Vec::new();
    let mut busy: Vec<String> = Vec::new();
    // While the database is stuck nothing is acknowledged, and what does not fit in the
    // bounded queue is refused at once with a retryable `busy`.
    while let Some(f) = ws.try_next(Duration::from_millis(1500)).await {
        assert_ne!(
            f["type"], "ack",
            "nothing is acked while the database is stuck: {f}"
        );
        if f["type"] == "error" {
            assert_eq!(f["code"], "busy", "{f}");
            assert_eq!(f["retryable"], true);
            busy.push(f["client_id"].as_str().expect("client id").to_string());
        }
    }
    assert!(!busy.is_empty(), "the bounded queue pushed back");
    lock.release();
    while acked.len() + busy.len() < N {
        let f = ws.next().await;
        match f["type"].as_str() {
            Some("ack") => acked.push(f["client_id"].as_str().expect("id").to_string()),
            Some("error") => {
                assert_eq!(f["code"], "busy", "{f}");
                busy.push(f["client_id"].as_str().expect("id").to_string());
            }
            _ => {}
        }
    }
    // The refused ones succeed when sent again.
    for id in &busy {
        let n: usize = id[1..].parse().expect("n");
        ws.say(id, &format!("stalled {n}")).await;
    }
    let store = srv.runtime().core.store.clone();
    let stored = store
        .call(move |s| s.messages_between(cid, 0, i64::MAX, 1000, false))
        .await
        .expect("history");
    let mut ids: Vec<String> = stored.iter().filter_map(|m| m.client_id.clone()).collect();
    ids.sort();
    let mut expected: Vec<String> = (0..N)
        .map(|i| format!("s{i}"))
        .chain(["first".to_string()])
        .collect();
    expected.sort();
    assert_eq!(ids, expected, "every message stored exactly once");
    srv.stop().await;
}
both_backends!(
    backpressure,
    a_stalled_database_slows_senders_and_loses_nothing
);

async fn a_notification_pending_at_a_kill_is_sent_once_after_restart(mut db: TestDb) {
    let dir = db.scratch();
    let smtp = SmtpSink::start().await;
    let env = [
        ("CHARLA_SMTP_URL", smtp.url()),
        (
            "CHARLA_MAIL_FROM",
            "Tienda <admin@tienda.example>".to_string(),
        ),
        ("CHARLA_UNREAD_EMAIL_SECS", "2".to_string()),
    ];
    let port = free_port();
    let mut child = spawn_binary_with(&db.url, port, &dir, &env);
    wait_healthy(port).await;
    let base = format!("http://127.0.0.1:{port}");
    let mut res = awc::Client::new()
        .post(format!("{base}/api/setup"))
        .send_json(
            &json!({"email": "boss@tienda.example", "name": "Boss", "password": "a long password"}),
        )
        .await
        .expect("setup");
    let login: Value = res.json().await.expect("login");
    let token = login["token"].as_str().expect("token").to_string();
    let mut v = Ws::connect(&format!("ws://127.0.0.1:{port}/ws/visitor")).await;
    v.send(json!({"type": "hello"})).await;
    v.next_of("welcome").await;
    let cid = v.say("q", "¿Hay envío gratis?").await["conversation_id"]
        .as_i64()
        .expect("id");
    v.send(json!({"type": "form", "client_id": "f", "form": "name", "fields": {"name": "Ana", "email": "ana@example.com"}}))
        .await;
    v.next_of("ack").await;
    drop(v);
    let mut res = awc::Client::new()
        .post(format!("{base}/api/conversations/{cid}/messages"))
        .insert_header(("Authorization", format!("Bearer {token}")))
        .send_json(&json!({"client_id": "r1", "body": "Sí, desde 30 euros."}))
        .await
        .expect("reply");
    assert_eq!(res.status().as_u16(), 200, "{:?}", res.body().await);
    // Killed with the notification pending (due in 2 s).
    child.kill().expect("kill -9");
    let _ = child.wait();
    actix_rt::time::sleep(Duration::from_secs(3)).await;
    assert!(
        smtp.messages().is_empty(),
        "nobody sent it while the server was down"
    );
    // Back up: the timer that fell due meanwhile fires, once.
    let port = free_port();
    let mut child = spawn_binary_with(&db.url, port, &dir, &env);
    wait_healthy(port).await;
    let mails = smtp.wait_for(1).await;
    let text = String::from_utf8_lossy(&mails[0]).into_owned();
    assert!(text.contains("ana@example.com") && text.contains(&format!("#{cid}")));
    actix_rt::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(smtp.messages().len(), 1, "sent once");
    child.kill().expect("kill");
    let _ = child.wait();
}
both_backends!(
    pending_notification_survives_kill,
    a_notification_pending_at_a_kill_is_sent_once_after_restart
);

/// `(transactions, writes)` the persister has committed so far, from `/metrics`.
async fn batches_so_far(srv: &TestServer) -> (f64, f64) {
    let (_, text) = srv.get("/metrics", None).await;
    let text = text.as_str().expect("text").to_string();
    let read = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse::<f64>().ok())
            .unwrap_or_else(|| panic!("{name} in:\n{text}"))
    };
    (
        read("charla_persist_batch_size_count "),
        read("charla_persist_batch_size_sum "),
    )
}

async fn writes_that_arrive_together_share_a_transaction(db: TestDb) {
    const VISITORS: usize = 4;
    const EACH: usize = 25;
    let srv = TestServer::start(&db).await;
    let mut visitors = Vec::new();
    for v in 0..VISITORS {
        let (mut ws, _) = srv.new_visitor().await;
        ws.say(&format!("open{v}"), "hello").await;
        visitors.push(ws);
    }
    let (batches_before, writes_before) = batches_so_far(&srv).await;
    // Hold the database so that the messages pile up behind the commit in progress.
    let lock = WriteLock::take(&db);
    for (v, ws) in visitors.iter_mut().enumerate() {
        for i in 0..EACH {
            ws.send(
                json!({"type": "message", "client_id": format!("b{v}-{i}"), "body": "together"}),
            )
            .await;
        }
    }
    actix_rt::time::sleep(Duration::from_millis(300)).await;
    lock.release();
    for ws in visitors.iter_mut() {
        let mut acks = 0;
        while acks < EACH {
            if ws.next().await["type"] == "ack" {
                acks += 1;
            }
        }
    }
    let (batches_after, writes_after) = batches_so_far(&srv).await;
    let (batches, writes) = (batches_after - batches_before, writes_after - writes_before);
    assert!(writes >= (VISITORS * EACH) as f64, "{writes} writes");
    // One transaction per message would make it 100; the pile-up goes out in a few.
    assert!(
        batches <= 10.0,
        "{batches} transactions for {writes} writes: the persister did not batch"
    );
    srv.stop().await;
}
both_backends!(
    group_commit,
    writes_that_arrive_together_share_a_transaction
);

async fn sigterm_closes_with_going_away_and_commits_what_was_pending(mut db: TestDb) {
    const PENDING: usize = 30;
    let dir = db.scratch();
    let port = free_port();
    let mut child = spawn_binary(&db.url, port, &dir);
    wait_healthy(port).await;
    let mut ws = Ws::connect(&format!("ws://127.0.0.1:{port}/ws/visitor")).await;
    ws.send(json!({"type": "hello"})).await;
    ws.next_of("welcome").await;
    let cid = ws.say("first", "before the signal").await["conversation_id"]
        .as_i64()
        .expect("conversation id");

    // Writes the database has not taken yet when the signal comes.
    let lock = WriteLock::take(&db);
    for i in 0..PENDING {
        ws.send(json!({"type": "message", "client_id": format!("p{i}"), "body": format!("pending {i}")}))
            .await;
    }
    actix_rt::time::sleep(Duration::from_millis(300)).await;
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    assert_eq!(
        ws.wait_close().await,
        Some(1001),
        "the socket is closed with going-away, before the pending writes are done"
    );
    lock.release();
    let status = child.wait().expect("the server exits");
    assert!(status.success(), "a clean exit after SIGTERM: {status}");

    let mut cfg = common::test_config(&db);
    cfg.database_url = db.url.clone();
    let store = charla::app::open_store(&cfg).expect("database opens");
    let stored = store
        .messages_between(cid, 0, i64::MAX, 1000, false)
        .expect("history");
    let mut ids: Vec<String> = stored.iter().filter_map(|m| m.client_id.clone()).collect();
    ids.sort();
    let mut expected: Vec<String> = (0..PENDING)
        .map(|i| format!("p{i}"))
        .chain(["first".to_string()])
        .collect();
    expected.sort();
    assert_eq!(ids, expected, "every pending write was committed, once");
}
both_backends!(
    sigterm,
    sigterm_closes_with_going_away_and_commits_what_was_pending
);
