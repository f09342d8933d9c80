//! Test harness: starts the real server on an ephemeral port over a fresh database (a SQLite
//! file in a temporary folder, or a new PostgreSQL database), and drives it with real HTTP
//! and websocket clients. `both_backends!` turns one scenario into a test per backend.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use actix_codec::Framed;
use awc::ws;
use charla::clock::ManualClock;
use charla::config::Config;
pub use charla::store::settings::RoutingSettings;
use diesel::connection::SimpleConnection;
use diesel::Connection;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How long a test waits for a frame before failing.
pub const FRAME_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs a scenario once on SQLite and once on PostgreSQL.
#[macro_export]
macro_rules! both_backends {
    ($name:ident, $scenario:ident) => {
        mod $name {
            #[actix_rt::test]
            async fn sqlite() {
                super::$scenario(super::common::TestDb::sqlite()).await;
            }

            #[actix_rt::test]
            async fn postgres() {
                if let Some(db) = super::common::TestDb::postgres() {
                    super::$scenario(db).await;
                }
            }
        }
    };
}

/// A fresh database for one test.
pub struct TestDb {
    /// `sqlite` or `postgres`.
    pub backend: &'static str,
    /// URL for `CHARLA_DATABASE_URL`.
    pub url: String,
    dir: Option<tempfile::TempDir>,
    pg: Option<(String, String)>,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// The PostgreSQL server the tests use, without a database name.
pub fn postgres_base() -> String {
    std::env::var("CHARLA_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_string())
}

fn postgres_required() -> bool {
    std::env::var("CHARLA_REQUIRE_POSTGRES").is_ok_and(|v| v == "1")
}

impl TestDb {
    /// A SQLite file in a new temporary folder.
    pub fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("temporary folder");
        let url = dir.path().join("charla.db").to_string_lossy().into_owned();
        TestDb {
            backend: "sqlite",
            url,
            dir: Some(dir),
            pg: None,
        }
    }

    /// A new PostgreSQL database, or `None` (with a notice) when no server answers and
    /// `CHARLA_REQUIRE_POSTGRES=1` is not set. With it set, an unreachable server fails.
    pub fn postgres() -> Option<TestDb> {
        let base = postgres_base();
        let admin_url = format!("{base}/postgres");
        let mut admin = match diesel::PgConnection::establish(&admin_url) {
            Ok(c) => c,
            Err(e) => {
                if postgres_required() {
                    panic!(
                        "CHARLA_REQUIRE_POSTGRES=1 but PostgreSQL at {base} is unreachable: {e}"
                    );
                }
                eprintln!("NOTICE: PostgreSQL at {base} is unreachable ({e}); skipping the PostgreSQL variant");
                return None;
            }
        };
        let name = format!(
            "charla_test_{}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst),
            rand_suffix()
        );
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .expect("create test database");
        if let Ok(dir) = std::env::var("CHARLA_PG_MARKER_DIR") {
            // .ci/run counts these to prove the PostgreSQL variants really ran.
            let _ = std::fs::create_dir_all(&dir);
            let _ = std::fs::write(format!("{dir}/{name}"), b"");
        }
        Some(TestDb {
            backend: "postgres",
            url: format!("{base}/{name}"),
            dir: None,
            pg: Some((admin_url, name)),
        })
    }

    /// Runs SQL on the test database over a connection of its own, as someone at a
    /// `sqlite3` or `psql` prompt would: scenarios break a table or add a trigger with it
    /// to see how the server copes.
    pub fn execute(&self, sql: &str) {
        let done = if self.backend == "sqlite" {
            let mut c = diesel::SqliteConnection::establish(&self.url).expect("SQLite opens");
            c.batch_execute("PRAGMA busy_timeout = 10000;")
                .and_then(|_| c.batch_execute(sql))
        } else {
            let mut c = diesel::PgConnection::establish(&self.url).expect("PostgreSQL connects");
            c.batch_execute(sql)
        };
        if let Err(e) = done {
            panic!("{sql}: {e}");
        }
    }

    /// A folder for files the test needs (the SQLite folder, or a new one).
    pub fn scratch(&mut self) -> std::path::PathBuf {
        if self.dir.is_none() {
            self.dir = Some(tempfile::tempdir().expect("temporary folder"));
        }
        self.dir
            .as_ref()
            .map(|d| d.path().to_path_buf())
            .unwrap_or_default()
    }
}

fn rand_suffix() -> u32 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0)
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some((admin_url, name)) = &self.pg {
            if let Ok(mut admin) = diesel::PgConnection::establish(admin_url) {
                let _ =
                    admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
            }
        }
    }
}

/// The configuration tests start from: an ephemeral port, the test database, no flood
/// limit unless a test sets one.
pub fn test_config(db: &TestDb) -> Config {
    let mut cfg = Config::defaults().expect("defaults");
    cfg.addr = "127.0.0.1:0".parse().expect("addr");
    cfg.database_url = db.url.clone();
    cfg.log = std::env::var("CHARLA_TEST_LOG").unwrap_or_else(|_| "warn".into());
    cfg.workers = 2;
    cfg.db_pool_size = 4;
    cfg.rate_per_sec = 0;
    cfg.sqlite_synchronous = "normal".into();
    cfg.static_dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("static");
    cfg
}

/// A server started in this process.
pub struct TestServer {
    /// The running server.
    pub server: Option<charla::app::Server>,
    /// `127.0.0.1:port`.
    pub addr: std::net::SocketAddr,
    /// The clock the server reads; tests move it forward.
    pub clock: ManualClock,
}

impl TestServer {
    /// Starts a server on `db` with the test configuration.
    pub async fn start(db: &TestDb) -> TestServer {
        Self::start_with(db, |_| {}).await
    }

    /// Starts a server on `db` after `tweak` adjusts the configuration. Automatic
    /// distribution and auto-close are off, so a scenario about the runtime sees only its
    /// own messages; routing scenarios use [`TestServer::start_routed`].
    pub async fn start_with(db: &TestDb, tweak: impl FnOnce(&mut Config)) -> TestServer {
        Self::start_full(
            db,
            tweak,
            RoutingSettings {
                distribution: false,
                default_assignee_id: None,
                auto_close_minutes: 0,
            },
            0,
        )
        .await
    }

    /// Starts a server with these routing settings (stored before it starts, as an
    /// administrator would have left them).
    pub async fn start_routed(db: &TestDb, routing: RoutingSettings) -> TestServer {
        Self::start_full(db, |_| {}, routing, 0).await
    }

    /// [`TestServer::start_routed`] with the clock `ahead_ms` in the future from the start,
    /// as if the server had been down that long.
    pub async fn start_routed_at(
        db: &TestDb,
        routing: RoutingSettings,
        ahead_ms: i64,
    ) -> TestServer {
        Self::start_full(db, |_| {}, routing, ahead_ms).await
    }

    async fn start_full(
        db: &TestDb,
        tweak: impl FnOnce(&mut Config),
        routing: RoutingSettings,
        ahead_ms: i64,
    ) -> TestServer {
        let mut cfg = test_config(db);
        tweak(&mut cfg);
        let store = charla::app::open_store(&cfg).expect("database opens");
        store
            .set_routing_settings(&routing)
            .expect("routing settings stored");
        drop(store);
        let clock = ManualClock::new();
        clock.advance(ahead_ms);
        let server = charla::app::start_with_clock(cfg, Arc::new(clock.clone()))
            .await
            .expect("server starts");
        TestServer {
            addr: server.addr,
            server: Some(server),
            clock,
        }
    }

    /// `http://127.0.0.1:port` + path.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// The runtime inside.
    pub fn runtime(&self) -> &charla::runtime::Runtime {
        &self.server.as_ref().expect("running").runtime
    }

    /// Graceful shutdown.
    pub async fn stop(mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown().await;
        }
    }

    /// Adds an operator directly in the store and logs in over HTTP; returns the token
    /// and the operator's id.
    pub async fn operator(&self, email: &str, admin: bool) -> (String, i64) {
        self.named_operator(email, "Op", admin).await
    }

    /// [`TestServer::operator`] with a display name.
    pub async fn named_operator(&self, email: &str, name: &str, admin: bool) -> (String, i64) {
        let store = self.runtime().core.store.clone();
        let hash = charla::auth::hash_password("secret-password").expect("hash");
        let e = email.to_string();
        let n = name.to_string();
        let op = store
            .call(move |s| s.add_operator(&e, &n, &hash, admin, 0))
            .await
            .expect("add operator");
        let (status, body) = self
            .post(
                "/api/login",
                None,
                json!({"email": email, "password": "secret-password"}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        (body["token"].as_str().expect("token").to_string(), op.id)
    }

    /// POSTs JSON; returns the status and the JSON answer (Null when empty).
    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
        let mut req = awc::Client::new().post(self.url(path));
        if let Some(t) = token {
            req = req.insert_header(("Authorization", format!("Bearer {t}")));
        }
        let mut res = req.send_json(&body).await.expect("request");
        let bytes = res.body().limit(16 << 20).await.expect("body");
        (
            res.status().as_u16(),
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// POSTs raw bytes as JSON.
    pub async fn post_raw(
        &self,
        path: &str,
        token: Option<&str>,
        body: &'static str,
    ) -> (u16, Value) {
        let mut req = awc::Client::new()
            .post(self.url(path))
            .insert_header(("Content-Type", "application/json"));
        if let Some(t) = token {
            req = req.insert_header(("Authorization", format!("Bearer {t}")));
        }
        let mut res = req.send_body(body).await.expect("request");
        let bytes = res.body().limit(16 << 20).await.expect("body");
        (
            res.status().as_u16(),
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// PATCHes JSON.
    pub async fn patch(&self, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
        let mut req = awc::Client::new().patch(self.url(path));
        if let Some(t) = token {
            req = req.insert_header(("Authorization", format!("Bearer {t}")));
        }
        let mut res = req.send_json(&body).await.expect("request");
        let bytes = res.body().limit(16 << 20).await.expect("body");
        (
            res.status().as_u16(),
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// PUTs JSON.
    pub async fn put(&self, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
        let mut req = awc::Client::new().put(self.url(path));
        if let Some(t) = token {
            req = req.insert_header(("Authorization", format!("Bearer {t}")));
        }
        let mut res = req.send_json(&body).await.expect("request");
        let bytes = res.body().limit(16 << 20).await.expect("body");
        (
            res.status().as_u16(),
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// DELETEs.
    pub async fn delete(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        let mut req = awc::Client::new().delete(self.url(path));
        if let Some(t) = token {
            req = req.insert_header(("Authorization", format!("Bearer {t}")));
        }
        let mut res = req.send().await.expect("request");
        let bytes = res.body().limit(16 << 20).await.expect("body");
        (
            res.status().as_u16(),
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// GETs JSON (or text, as a JSON string, when the answer is not JSON).
    pub async fn get(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        let mut req = awc::Client::new().get(self.url(path));
        if let Some(t) = token {
            req = req.insert_header(("Authorization", format!("Bearer {t}")));
        }
        let mut res = req.send().await.expect("request");
        let bytes = res.body().limit(16 << 20).await.expect("body");
        let value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        (res.status().as_u16(), value)
    }

    /// The operator behind `token` takes the unassigned conversation `cid` (so a scenario
    /// about something else knows where the `assigned` event falls).
    pub async fn take(&self, cid: i64, token: &str) -> Value {
        let (status, body) = self
            .post(
                &format!("/api/conversations/{cid}/take"),
                Some(token),
                json!({}),
            )
            .await;
        assert_eq!(status, 200, "take: {body}");
        body
    }

    /// A new websocket to `path`.
    pub async fn ws(&self, path: &str) -> Ws {
        Ws::connect(&format!("ws://{}{}", self.addr, path)).await
    }

    /// A visitor who said hello as a new visitor; returns the socket and the welcome.
    pub async fn new_visitor(&self) -> (Ws, Value) {
        let mut ws = self.ws("/ws/visitor").await;
        ws.send(json!({"type": "hello", "v": 1})).await;
        let welcome = ws.next_of("welcome").await;
        (ws, welcome)
    }

    /// An operator socket, authenticated.
    pub async fn operator_ws(&self, token: &str) -> Ws {
        let mut ws = self.ws("/ws/operator").await;
        ws.send(json!({"type": "auth", "token": token})).await;
        let ready = ws.next().await;
        assert_eq!(ready["type"], "ready", "{ready}");
        ws
    }
}

/// A real websocket client.
pub struct Ws {
    framed: Framed<awc::BoxedSocket, ws::Codec>,
    /// The close code the server sent, once it closed.
    pub closed: Option<u16>,
}

impl Ws {
    /// Connects.
    pub async fn connect(url: &str) -> Ws {
        let (_res, framed) = awc::Client::builder()
            .max_http_version(awc::http::Version::HTTP_11)
            .finish()
            .ws(url)
            .max_frame_size(16 << 20)
            .connect()
            .await
            .expect("websocket connects");
        Ws {
            framed,
            closed: None,
        }
    }

    /// Sends a JSON frame.
    pub async fn send(&mut self, v: Value) {
        self.send_text(&v.to_string()).await;
    }

    /// Sends a raw text frame.
    pub async fn send_text(&mut self, s: &str) {
        self.framed
            .send(ws::Message::Text(s.to_string().into()))
            .await
            .expect("send frame");
    }

    /// Sends a raw text frame; `false` when the connection is gone.
    pub async fn try_send_text(&mut self, s: &str) -> bool {
        self.framed
            .send(ws::Message::Text(s.to_string().into()))
            .await
            .is_ok()
    }

    /// Sends a binary frame.
    pub async fn send_binary(&mut self, b: &'static [u8]) {
        self.framed
            .send(ws::Message::Binary(b.into()))
            .await
            .expect("send frame");
    }

    /// The next JSON frame; panics on time-out or close.
    pub async fn next(&mut self) -> Value {
        match self.try_next(FRAME_TIMEOUT).await {
            Some(v) => v,
            None => panic!(
                "no frame within {FRAME_TIMEOUT:?} (closed: {:?})",
                self.closed
            ),
        }
    }

    /// The next JSON frame, or `None` on time-out or close.
    pub async fn try_next(&mut self, wait: Duration) -> Option<Value> {
        loop {
            let item = match actix_rt::time::timeout(wait, self.framed.next()).await {
                Err(_) => return None,
                Ok(None) => {
                    self.closed.get_or_insert(1006);
                    return None;
                }
                Ok(Some(item)) => item,
            };
            match item {
                Ok(ws::Frame::Text(bytes)) => {
                    return Some(serde_json::from_slice(&bytes).expect("server frames are JSON"))
                }
                Ok(ws::Frame::Ping(p)) => {
                    let _ = self.framed.send(ws::Message::Pong(p)).await;
                }
                Ok(ws::Frame::Close(reason)) => {
                    self.closed = Some(reason.map(|r| u16::from(r.code)).unwrap_or(1005));
                    return None;
                }
                Ok(_) => {}
                Err(_) => {
                    // The connection ended without a close frame (1006, "abnormal closure").
                    self.closed = Some(1006);
                    return None;
                }
            }
        }
    }

    /// The next frame of a type, skipping others (typing, read, conversation...).
    pub async fn next_of(&mut self, kind: &str) -> Value {
        loop {
            let v = self.next().await;
            if v["type"] == kind {
                return v;
            }
        }
    }

    /// The next `message` frame with written text (skipping events such as `assigned`).
    pub async fn next_text(&mut self) -> Value {
        loop {
            let v = self.next_of("message").await;
            if v["kind"] == "text" {
                return v;
            }
        }
    }

    /// Waits for the server to close the socket; returns the close code.
    pub async fn wait_close(&mut self) -> Option<u16> {
        while self.closed.is_none() {
            if self.try_next(FRAME_TIMEOUT).await.is_none() {
                break;
            }
        }
        self.closed
    }

    /// Sends a visitor message and waits for its ack.
    pub async fn say(&mut self, client_id: &str, body: &str) -> Value {
        self.send(json!({"type": "message", "client_id": client_id, "body": body}))
            .await;
        let ack = self.next_of_any(&["ack", "error"]).await;
        assert_eq!(ack["type"], "ack", "{ack}");
        ack
    }

    /// The next frame whose type is one of `kinds`.
    pub async fn next_of_any(&mut self, kinds: &[&str]) -> Value {
        loop {
            let v = self.next().await;
            if kinds.iter().any(|k| v["type"] == *k) {
                return v;
            }
        }
    }
}

/// A real SMTP server (aiosmtpd, installed by `scripts/setup`) that keeps every message
/// it accepts in a maildir, for the e-mail tests.
pub struct SmtpSink {
    child: Option<std::process::Child>,
    /// The maildir.
    pub dir: tempfile::TempDir,
    /// Its port on 127.0.0.1.
    pub port: u16,
}

impl SmtpSink {
    /// A free port for a sink started later (to test an SMTP server that is down).
    pub fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("free port")
    }

    /// Starts a sink on `port` and waits until it accepts connections.
    pub async fn start_on(port: u16) -> SmtpSink {
        let dir = tempfile::tempdir().expect("maildir");
        let mut child = std::process::Command::new("python3")
            .args(["-m", "aiosmtpd", "-n", "-l"])
            .arg(format!("127.0.0.1:{port}"))
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(dir.path().join("mail"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("python3 -m aiosmtpd (run scripts/setup)");
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return SmtpSink {
                    child: Some(child),
                    dir,
                    port,
                };
            }
            actix_rt::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("aiosmtpd did not start on port {port}");
    }

    /// Starts a sink on a free port.
    pub async fn start() -> SmtpSink {
        Self::start_on(Self::free_port()).await
    }

    /// `smtp://127.0.0.1:port`.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Every message received so far, raw.
    pub fn messages(&self) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for sub in ["new", "cur"] {
            let Ok(entries) = std::fs::read_dir(self.dir.path().join("mail").join(sub)) else {
                continue;
            };
            let mut paths: Vec<_> = entries.filter_map(|e| e.ok()).map(|e| e.path()).collect();
            paths.sort();
            for p in paths {
                if let Ok(bytes) = std::fs::read(p) {
                    out.push(bytes);
                }
            }
        }
        out
    }

    /// Waits until `n` messages arrived (at most 20 s) and returns them.
    pub async fn wait_for(&self, n: usize) -> Vec<Vec<u8>> {
        for _ in 0..400 {
            let m = self.messages();
            if m.len() >= n {
                return m;
            }
            actix_rt::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("expected {n} e-mails, got {}", self.messages().len());
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Waits up to 30 s for a server on `port` (a spawned binary) to answer `/healthz`.
pub async fn healthy_within_30s(port: u16) -> bool {
    for _ in 0..300 {
        let res = awc::Client::new()
            .get(format!("http://127.0.0.1:{port}/healthz"))
            .send()
            .await;
        if res.is_ok_and(|r| r.status().is_success()) {
            return true;
        }
        actix_rt::time::sleep(Duration::from_millis(100)).await;
    }
    false
}
