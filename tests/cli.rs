//! The `charla` command line: settings errors in one line, `migrate`, `operator add` with
//! the password on standard input.

// A failed expectation in a test is the test failing; panicking is the point.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{TestDb, TestServer};
use serde_json::json;
use std::io::Write;
use std::process::{Command, Stdio};

fn charla() -> Command {
    Command::new(env!("CARGO_BIN_EXE_charla"))
}

#[test]
fn an_invalid_setting_stops_the_start_with_one_line_naming_it() {
    let dir = tempfile::tempdir().expect("dir");
    for (var, value) in [
        ("CHARLA_ADDR", "not-an-address"),
        ("CHARLA_BATCH_MAX", "lots"),
        ("CHARLA_PUBLIC_URL", "ftp://example.com"),
        ("CHARLA_LOG", "loud"),
    ] {
        let out = charla()
            .arg("serve")
            .current_dir(dir.path())
            .env(var, value)
            .output()
            .expect("runs");
        assert_eq!(out.status.code(), Some(2), "{var}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
        assert!(err.contains(var), "names {var}: {err}");
    }
    let conf = dir.path().join("bad.toml");
    std::fs::write(&conf, "adress = \"127.0.0.1:1\"\n").expect("write");
    let out = charla()
        .args(["serve", "--config"])
        .arg(&conf)
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("adress"));
    let out = charla().arg("fly").output().expect("runs");
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn an_unreachable_database_is_a_clear_error() {
    let out = charla()
        .arg("migrate")
        .env(
            "CHARLA_DATABASE_URL",
            "postgres://postgres@127.0.0.1:1/nothing",
        )
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot open the database (CHARLA_DATABASE_URL)"),
        "{err}"
    );
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
}

async fn operator_add_reads_the_password_from_stdin(db: TestDb) {
    let out = charla()
        .arg("migrate")
        .env("CHARLA_DATABASE_URL", &db.url)
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut child = charla()
        .args(["operator", "add", "Boss@Example.com", "The Boss", "--admin"])
        .env("CHARLA_DATABASE_URL", &db.url)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"a long password\n")
        .expect("write");
    let out = child.wait_with_output().expect("waits");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("administrator"));
    // A short password is refused.
    let mut child = charla()
        .args(["operator", "add", "x@example.com", "X"])
        .env("CHARLA_DATABASE_URL", &db.url)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"short\n")
        .expect("write");
    let out = child.wait_with_output().expect("waits");
    assert_eq!(out.status.code(), Some(2));

    let srv = TestServer::start(&db).await;
    let (status, body) = srv
        .post(
            "/api/login",
            None,
            json!({"email": "boss@example.com", "password": "a long password"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["operator"]["is_admin"], true);
    assert_eq!(body["operator"]["name"], "The Boss");
    srv.stop().await;
}
both_backends!(operator_add, operator_add_reads_the_password_from_stdin);

async fn health_and_metrics(db: TestDb) {
    let srv = TestServer::start(&db).await;
    let (status, health) = srv.get("/healthz", None).await;
    assert_eq!(status, 200);
    assert_eq!(health["status"], "ok");
    assert_eq!(health["database"], db.backend);
    let (mut v, _) = srv.new_visitor().await;
    v.say("m1", "count me").await;
    let (status, text) = srv.get("/metrics", None).await;
    assert_eq!(status, 200);
    let text = text.as_str().expect("text").to_string();
    for name in [
        "charla_connections_open{kind=\"visitor\"} 1",
        "charla_connections_open{kind=\"operator\"} 0",
        "charla_messages_received_total 1",
        "charla_persist_queue_depth",
        "charla_persist_batch_size_bucket",
        "charla_persist_commit_seconds_bucket",
        "charla_persist_commit_seconds_count",
    ] {
        assert!(text.contains(name), "metrics lack {name}:\n{text}");
    }
    // Two persisted: the `opened` event and the message.
    assert!(text.contains("charla_messages_persisted_total 2"), "{text}");
    srv.stop().await;
}
both_backends!(health, health_and_metrics);

#[actix_rt::test]
async fn health_says_unavailable_while_the_database_refuses_connections() {
    use diesel::connection::SimpleConnection;
    use diesel::Connection;
    // Only PostgreSQL can be taken away from under a running server; SQLite is a file the
    // server holds open.
    let Some(db) = TestDb::postgres() else {
        return;
    };
    let srv = TestServer::start(&db).await;
    let (status, _) = srv.get("/healthz", None).await;
    assert_eq!(status, 200);
    let name = db
        .url
        .rsplit('/')
        .next()
        .expect("database name")
        .to_string();
    let mut admin =
        diesel::PgConnection::establish(&format!("{}/postgres", common::postgres_base()))
            .expect("admin connection");
    admin
        .batch_execute(&format!(
            "ALTER DATABASE {name} WITH ALLOW_CONNECTIONS false; \
             SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
        ))
        .expect("cut the server off");
    let (status, health) = srv.get("/healthz", None).await;
    assert_eq!(status, 503, "{health}");
    assert_eq!(health["status"], "unavailable");
    admin
        .batch_execute(&format!(
            "ALTER DATABASE {name} WITH ALLOW_CONNECTIONS true"
        ))
        .expect("let it back");
    // The pool replaces its broken connections and health comes back.
    let mut healthy = false;
    for _ in 0..50 {
        if srv.get("/healthz", None).await.0 == 200 {
            healthy = true;
            break;
        }
        actix_rt::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(healthy, "health came back with the database");
    srv.stop().await;
}

#[actix_rt::test]
async fn serve_without_configuration_creates_its_sqlite_database_in_wal_mode() {
    let dir = tempfile::tempdir().expect("dir");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let mut cmd = charla();
    // Nothing but the port (8080 may be taken on a test machine).
    for (var, _) in std::env::vars().filter(|(k, _)| k.starts_with("CHARLA_")) {
        cmd.env_remove(var);
    }
    let mut child = cmd
        .arg("serve")
        .current_dir(dir.path())
        .env("CHARLA_ADDR", format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starts");
    let healthy = common::healthy_within_30s(port).await;
    let db = dir.path().join("charla.db");
    let wal = dir.path().join("charla.db-wal");
    let (db_exists, wal_exists) = (db.exists(), wal.exists());
    let _ = child.kill();
    let _ = child.wait();
    assert!(healthy, "the server answered /healthz");
    assert!(db_exists, "charla.db was created in the working folder");
    assert!(
        wal_exists,
        "the database is in WAL mode (charla.db-wal exists)"
    );
}
