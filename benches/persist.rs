//! Throughput of the persistence path: [`Store::commit_batch`], the one call the persister
//! makes to write accepted messages durably.
//!
//! The persister's design bet is that committing many messages in one transaction is far
//! cheaper per message than one transaction each, because the cost of a commit (an fsync on
//! SQLite with `synchronous = full`, a WAL flush and round trips on PostgreSQL) is paid once
//! per batch. This bench measures both sides of that bet with the real store code:
//!
//! * `batched`: 1024 text messages spread over 64 conversations, committed with one
//!   `commit_batch` call (one transaction, as the persister does under load);
//! * `per_message`: 64 messages, each committed with its own `commit_batch` call (one
//!   transaction per message, what a naive write path would do).
//!
//! Both report messages per second (`Throughput::Elements`), so they compare directly. SQLite
//! runs with `synchronous = full` (the server default, survives power loss) and `normal`
//! (survives a process crash). PostgreSQL runs on `postgres://postgres@127.0.0.1:5432`
//! (override with `CHARLA_BENCH_POSTGRES`) in fresh databases `charla_bench_<pid>_<variant>`,
//! dropped at the end; it is skipped with a notice when no server answers. Each variant
//! starts from an empty database, so neither measures rows the other left behind.
//!
//! `CHARLA_BENCH_CONVERSATIONS=<n>` spreads the messages over `n` conversations instead of
//! 64, to see how the spread of a batch changes its cost (docs/BENCHMARKS.md).
//! `CHARLA_BENCH_CLIENT_IDS=random` gives the messages random client ids instead of the
//! time-first ids the widget and the console send, to see what a client of its own that
//! sends random ids costs.
//!
//! Building the messages is not timed; every iteration uses fresh sequence numbers and
//! client ids (a write silently ignored as a duplicate would flatter the figures), and each
//! variant checks at the end that every generated message was stored.
//!
//! Run: `cargo bench --bench persist`. Figures are recorded in `docs/BENCHMARKS.md`.

// A benchmark has no caller to report errors to: failing loudly with a message saying
// which set-up step failed is the right behaviour, so `expect` is allowed here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use charla::config::Config;
use charla::store::messages::{NewMessage, Write};
use charla::store::Store;
use criterion::measurement::WallTime;
use criterion::{
    criterion_group, criterion_main, BatchSize, BenchmarkGroup, Criterion, SamplingMode, Throughput,
};
use diesel::connection::SimpleConnection;
use diesel::Connection;
use std::time::Duration;

/// Conversations the messages are spread over (see [`conversation_count`]).
const CONVERSATIONS: usize = 64;
/// Messages per iteration of `batched` (one transaction).
const BATCH_MESSAGES: usize = 1024;
/// Messages per iteration of `per_message` (one transaction each).
const PER_MESSAGE_MESSAGES: usize = 64;
/// A fixed "now" in ms (2026-11-22), so rows look like the server's.
const NOW_MS: i64 = 1_795_305_600_000;

/// [`CONVERSATIONS`], or `CHARLA_BENCH_CONVERSATIONS` when set: how far a batch is spread,
/// which decides how many B-tree pages and `conversations` rows one commit touches.
fn conversation_count() -> usize {
    match std::env::var("CHARLA_BENCH_CONVERSATIONS") {
        Ok(v) => {
            v.parse().ok().filter(|n| *n > 0).unwrap_or_else(|| {
                panic!("CHARLA_BENCH_CONVERSATIONS={v:?} is not a positive number")
            })
        }
        Err(_) => CONVERSATIONS,
    }
}

/// How the bench's client ids look: as the widget and the console make them (the default:
/// `w-`, the time in 9 base-36 digits of milliseconds, 16 random hex digits), or with
/// `CHARLA_BENCH_CLIENT_IDS=random`, 24 random hex digits as a client of its own might send.
fn random_client_ids() -> bool {
    match std::env::var("CHARLA_BENCH_CLIENT_IDS").as_deref() {
        Ok("random") => true,
        Ok("widget") | Err(_) => false,
        Ok(other) => panic!("CHARLA_BENCH_CLIENT_IDS={other:?}: use widget or random"),
    }
}

/// A fresh client id (see [`random_client_ids`]) sent `at` ms after [`NOW_MS`]. The bench
/// passes a message's sequence number, so a batch of 1024 messages over 64 conversations
/// spans 16 ms with 64 messages in each, in random order within it: what a server taking
/// some 64,000 messages a second sees.
fn client_id(at: i64) -> String {
    if random_client_ids() {
        return format!("{:024x}", rand::random::<u128>() >> 32);
    }
    charla::protocol::time_first_client_id("w-", (NOW_MS + at) as u64)
}

/// A migrated store with conversations to write into, and the counters that keep every
/// generated message unique.
struct Fixture {
    store: Store,
    /// (conversation id, visitor id) of each conversation.
    conversations: Vec<(i64, i64)>,
    /// Next sequence number of each conversation.
    next_seq: Vec<i64>,
    /// Which conversation the next message goes to (round robin).
    cursor: usize,
    /// Messages generated so far, to check against what was stored.
    generated: i64,
}

impl Fixture {
    fn new(cfg: &Config, label: &str) -> Fixture {
        // As the server opens it: WAL checkpoints on a background thread, not on commit.
        let store = Store::open_with(cfg, true)
            .unwrap_or_else(|e| panic!("{label}: cannot open the database: {e}"));
        store
            .spawn_checkpointer(
                charla::app::CHECKPOINT_EVERY,
                std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false)),
            )
            .unwrap_or_else(|e| panic!("{label}: cannot start the checkpointer: {e}"));
        store
            .migrate()
            .unwrap_or_else(|e| panic!("{label}: migrations failed: {e}"));
        let conversations: Vec<(i64, i64)> = (0..conversation_count())
            .map(|i| {
                let visitor = store
                    .add_visitor(&format!("bench-visitor-{i}"), NOW_MS)
                    .unwrap_or_else(|e| panic!("{label}: cannot add a visitor: {e}"));
                let conversation = store
                    .add_conversation(visitor, "web", None, NOW_MS)
                    .unwrap_or_else(|e| panic!("{label}: cannot add a conversation: {e}"));
                (conversation.id, visitor)
            })
            .collect();
        Fixture {
            store,
            next_seq: vec![1; conversations.len()],
            conversations,
            cursor: 0,
            generated: 0,
        }
    }

    /// `n` new messages, round robin over the conversations, never seen before.
    fn messages(&mut self, n: usize) -> Vec<Write> {
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            let i = self.cursor;
            self.cursor = (self.cursor + 1) % self.conversations.len();
            let (conversation_id, visitor_id) = self.conversations[i];
            let seq = self.next_seq[i];
            self.next_seq[i] += 1;
            self.generated += 1;
            out.push(Write::Message(NewMessage {
                conversation_id,
                seq,
                kind: "text",
                author_kind: "visitor",
                author_id: visitor_id,
                client_id: Some(client_id(seq)),
                body: format!(
                    "Hello, I have a question about my order number {seq}, can someone help?"
                ),
                created_at: NOW_MS + seq,
                meta: None,
            }));
        }
        out
    }

    /// Panics unless every generated message is in the database.
    fn check_all_stored(&self, label: &str) {
        let stored = self
            .store
            .count_messages()
            .unwrap_or_else(|e| panic!("{label}: cannot count messages: {e}"));
        assert_eq!(
            stored, self.generated,
            "{label}: {} messages generated but {stored} stored; duplicates were ignored \
             and the figures are not valid",
            self.generated
        );
    }
}

/// Benchmarks `batched` and `per_message` as `<prefix>batched` and `<prefix>per_message` in
/// `group`, each on its own empty database (`cfg_for(variant)`), so neither measures rows
/// the other left behind.
fn bench_store(
    group: &mut BenchmarkGroup<'_, WallTime>,
    prefix: &str,
    cfg_for: impl Fn(&str) -> Config,
) {
    let cfg = cfg_for("batched");
    let label = format!("{prefix}batched on {}", cfg.database_url);
    let mut fixture = Fixture::new(&cfg, &label);
    let store = fixture.store.clone();
    group.throughput(Throughput::Elements(BATCH_MESSAGES as u64));
    group.bench_function(format!("{prefix}batched"), |b| {
        b.iter_batched_ref(
            || fixture.messages(BATCH_MESSAGES),
            |writes| {
                let refs: Vec<&Write> = writes.iter().collect();
                store.commit_batch(&refs).expect("batched commit failed");
            },
            BatchSize::SmallInput,
        )
    });
    fixture.check_all_stored(&label);
    drop((fixture, store));

    let cfg = cfg_for("per_message");
    let label = format!("{prefix}per_message on {}", cfg.database_url);
    let mut fixture = Fixture::new(&cfg, &label);
    let store = fixture.store.clone();
    group.throughput(Throughput::Elements(PER_MESSAGE_MESSAGES as u64));
    group.bench_function(format!("{prefix}per_message"), |b| {
        b.iter_batched_ref(
            || fixture.messages(PER_MESSAGE_MESSAGES),
            |writes| {
                for w in writes.iter() {
                    store
                        .commit_batch(&[w])
                        .expect("single-message commit failed");
                }
            },
            BatchSize::SmallInput,
        )
    });
    fixture.check_all_stored(&label);
}

fn configure<'a>(c: &'a mut Criterion, name: &str) -> BenchmarkGroup<'a, WallTime> {
    let mut group = c.benchmark_group(name);
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        // Iterations take milliseconds to a few hundred: flat sampling keeps the run short.
        .sampling_mode(SamplingMode::Flat);
    group
}

fn sqlite(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("cannot create a temporary folder for SQLite");
    let mut group = configure(c, "persist/sqlite");
    for synchronous in ["full", "normal"] {
        bench_store(&mut group, &format!("{synchronous}/"), |variant| {
            let mut cfg = Config::defaults().expect("built-in configuration defaults");
            cfg.database_url = dir
                .path()
                .join(format!("bench-{synchronous}-{variant}.db"))
                .to_string_lossy()
                .into_owned();
            cfg.sqlite_synchronous = synchronous.to_string();
            cfg.db_pool_size = 2;
            cfg
        });
    }
    group.finish();
}

/// The PostgreSQL databases created for this run, dropped (with their connections) when
/// this guard goes, even if a benchmark panics.
struct PgDatabases {
    admin: diesel::PgConnection,
    names: Vec<String>,
}

impl PgDatabases {
    /// Creates `charla_bench_<pid>_<variant>` and returns its URL.
    fn create(&mut self, base: &str, variant: &str) -> String {
        let name = format!("charla_bench_{}_{variant}", std::process::id());
        // Two calls: PostgreSQL refuses CREATE/DROP DATABASE inside the implicit
        // transaction of a multi-statement query. The DROP clears a left-over of a killed
        // run that had the same process id.
        for sql in [
            format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            format!("CREATE DATABASE {name}"),
        ] {
            self.admin
                .batch_execute(&sql)
                .unwrap_or_else(|e| panic!("cannot create database {name} on {base}: {e}"));
        }
        self.names.push(name.clone());
        format!("{base}/{name}")
    }
}

impl Drop for PgDatabases {
    fn drop(&mut self) {
        for name in &self.names {
            if let Err(e) = self
                .admin
                .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            {
                eprintln!("WARNING: cannot drop bench database {name}: {e}");
            }
        }
    }
}

fn postgres(c: &mut Criterion) {
    let base = std::env::var("CHARLA_BENCH_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_string());
    let admin = match diesel::PgConnection::establish(&format!("{base}/postgres")) {
        Ok(conn) => conn,
        Err(e) => {
            eprintln!(
                "NOTICE: PostgreSQL at {base} is unreachable ({e}); skipping persist/postgres"
            );
            return;
        }
    };
    let databases = std::cell::RefCell::new(PgDatabases {
        admin,
        names: Vec::new(),
    });
    let mut group = configure(c, "persist/postgres");
    bench_store(&mut group, "", |variant| {
        let mut cfg = Config::defaults().expect("built-in configuration defaults");
        cfg.database_url = databases.borrow_mut().create(&base, variant);
        cfg.db_pool_size = 2;
        cfg
    });
    group.finish();
    drop(databases);
}

criterion_group!(benches, sqlite, postgres);
criterion_main!(benches);
