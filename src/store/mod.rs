//! Storage on diesel + r2d2 over SQLite (the zero-set-up default) or PostgreSQL, chosen at
//! start from the database URL. Queries are written once and compiled for both backends by
//! [`db_run!`]; SQL that differs between them lives in an explicit `match` on the backend.

pub mod attachments;
pub mod conversations;
pub mod drafts;
pub mod messages;
pub mod operators;
pub mod schema;
pub mod search;
pub mod settings;
pub mod teams;
pub mod visitors;

use crate::config::{Config, DatabaseKind};
use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::r2d2::{self, ConnectionManager, CustomizeConnection};
use diesel::sqlite::SqliteConnection;
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
use std::fmt;
use std::time::Duration;

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// Why a storage call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// The database cannot be reached (pool time-out, lost connection): retry later.
    Unavailable(String),
    /// The row asked for does not exist.
    NotFound,
    /// A uniqueness rule refused the write; the text says which.
    Conflict(String),
    /// Any other database error.
    Query(String),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Unavailable(e) => write!(f, "database unavailable: {e}"),
            StoreError::NotFound => f.write_str("not found"),
            StoreError::Conflict(e) => write!(f, "conflict: {e}"),
            StoreError::Query(e) => write!(f, "database error: {e}"),
        }
    }
}

impl std::error::Error for StoreError {}

impl StoreError {
    /// Whether the same write may succeed if tried again.
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

impl From<diesel::result::Error> for StoreError {
    fn from(e: diesel::result::Error) -> Self {
        use diesel::result::{DatabaseErrorKind, Error};
        match e {
            Error::NotFound => StoreError::NotFound,
            Error::DatabaseError(DatabaseErrorKind::UniqueViolation, info) => {
                StoreError::Conflict(info.message().to_string())
            }
            Error::DatabaseError(DatabaseErrorKind::ClosedConnection, info) => {
                StoreError::Unavailable(info.message().to_string())
            }
            Error::DatabaseError(_, ref info)
                if info.message().contains("database is locked")
                    || info.message().contains("terminating connection")
                    || info.message().contains("server closed the connection") =>
            {
                StoreError::Unavailable(info.message().to_string())
            }
            other => StoreError::Query(other.to_string()),
        }
    }
}

impl From<r2d2::PoolError> for StoreError {
    fn from(e: r2d2::PoolError) -> Self {
        StoreError::Unavailable(e.to_string())
    }
}

/// Result of a storage call.
pub type StoreResult<T> = Result<T, StoreError>;

/// The connection pool of the backend in use.
#[derive(Clone)]
pub enum Pool {
    /// SQLite, one file.
    Sqlite(r2d2::Pool<ConnectionManager<SqliteConnection>>),
    /// PostgreSQL.
    Postgres(r2d2::Pool<ConnectionManager<PgConnection>>),
}

/// Runs `$body` with `$conn` bound to a pooled connection of whichever backend is in use.
/// The body is compiled once per backend, so it must be valid diesel for both.
#[macro_export]
macro_rules! db_run {
    ($store:expr, |$conn:ident| $body:expr) => {
        match &$store.pool {
            $crate::store::Pool::Sqlite(pool) => {
                let mut pooled = pool.get()?;
                #[allow(unused_mut)]
                let mut $conn = &mut *pooled;
                $body
            }
            $crate::store::Pool::Postgres(pool) => {
                let mut pooled = pool.get()?;
                #[allow(unused_mut)]
                let mut $conn = &mut *pooled;
                $body
            }
        }
    };
}

/// Runs `$body` in a transaction on a pooled connection of whichever backend is in use.
/// On SQLite the transaction is `IMMEDIATE`: it takes the write lock first, so a
/// transaction that reads before it writes waits its turn (busy timeout) instead of failing
/// with "database is locked" when another write commits in between.
#[macro_export]
macro_rules! db_tx {
    ($store:expr, |$conn:ident| $body:expr) => {
        match &$store.pool {
            $crate::store::Pool::Sqlite(pool) => {
                let mut pooled = pool.get()?;
                pooled.immediate_transaction(|$conn| $body)
            }
            $crate::store::Pool::Postgres(pool) => {
                let mut pooled = pool.get()?;
                diesel::Connection::transaction(&mut *pooled, |$conn| $body)
            }
        }
    };
}

/// Applies SQLite's pragmas on every connection the pool opens: WAL so readers never block
/// the writer, a busy timeout instead of immediate `database is locked`, the configured
/// `synchronous` level, and foreign keys.
#[derive(Debug)]
struct SqlitePragmas {
    synchronous: String,
    /// Leave WAL checkpoints to [`Store::spawn_checkpointer`] instead of the connection
    /// that happens to commit when the WAL passes 1000 pages (the persister, usually).
    background_checkpoints: bool,
}

impl CustomizeConnection<SqliteConnection, r2d2::Error> for SqlitePragmas {
    fn on_acquire(&self, conn: &mut SqliteConnection) -> Result<(), r2d2::Error> {
        conn.batch_execute(&format!(
            "PRAGMA journal_mode = WAL; PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}; PRAGMA synchronous = {}; \
             PRAGMA foreign_keys = ON; PRAGMA temp_store = MEMORY; PRAGMA wal_autocheckpoint = {}; \
             PRAGMA journal_size_limit = {WAL_SIZE_LIMIT};",
            self.synchronous,
            if self.background_checkpoints { 0 } else { 1000 }
        ))
        .map_err(r2d2::Error::QueryError)
    }
}

/// How long a SQLite connection waits for a lock before `database is locked` (ms).
const BUSY_TIMEOUT_MS: u32 = 10_000;

/// Frames in SQLite's write-ahead log past which the log is restarted (16 MiB of 4 KiB
/// pages). A passive checkpoint copies the log into the database without stopping the
/// writer, but the log only starts again from its beginning once a checkpoint has caught up
/// with the last commit, which never happens while commits keep coming: under steady
/// traffic the log would grow without bound (by 250 MB/s under the persistence bench), and
/// every commit would append to new file blocks instead of rewriting cached ones.
const WAL_RESTART_FRAMES: i32 = 4096;
/// What the log file keeps of its size once restarted (`journal_size_limit`, bytes).
const WAL_SIZE_LIMIT: i64 = 64 << 20;
/// How long the restart may wait for readers still on an old snapshot before it gives up
/// until the next round (ms); the writer waits meanwhile, so this stays short.
const WAL_RESTART_WAIT_MS: u32 = 20;

/// The row `PRAGMA wal_checkpoint` answers.
#[derive(diesel::QueryableByName)]
struct Checkpointed {
    /// Frames in the log.
    #[diesel(sql_type = diesel::sql_types::Integer)]
    log: i32,
}

/// The storage handle: cheap to clone, shared by the HTTP handlers and the actors.
#[derive(Clone)]
pub struct Store {
    /// The pool of the backend in use.
    pub pool: Pool,
    /// Set by the checkpointer when SQLite's log has grown past [`WAL_RESTART_FRAMES`]: the
    /// next commit then restarts the log on its own connection, between two batches.
    wal_restart: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Store {
    /// Opens the database the configuration names (creating a SQLite file if needed).
    pub fn open(cfg: &Config) -> StoreResult<Store> {
        Self::open_with(cfg, false)
    }

    /// Opens the database for the server: with `background_checkpoints`, SQLite connections
    /// never checkpoint on commit, and the caller runs [`Store::spawn_checkpointer`].
    pub fn open_with(cfg: &Config, background_checkpoints: bool) -> StoreResult<Store> {
        let timeout = Duration::from_secs(10);
        let pool = match cfg.database() {
            DatabaseKind::Sqlite(path) => {
                let manager = ConnectionManager::<SqliteConnection>::new(path);
                let pool = r2d2::Pool::builder()
                    .max_size(cfg.db_pool_size)
                    .connection_timeout(timeout)
                    .connection_customizer(Box::new(SqlitePragmas {
                        synchronous: cfg.sqlite_synchronous.clone(),
                        background_checkpoints,
                    }))
                    .build(manager)
                    .map_err(|e| StoreError::Unavailable(e.to_string()))?;
                Pool::Sqlite(pool)
            }
            DatabaseKind::Postgres(url) => {
                let manager = ConnectionManager::<PgConnection>::new(url);
                // No ping on every check-out: a broken connection fails its query, which
                // the persister retries, and r2d2 then discards it.
                let pool = r2d2::Pool::builder()
                    .max_size(cfg.db_pool_size)
                    .connection_timeout(timeout)
                    .test_on_check_out(false)
                    .build(manager)
                    .map_err(|e| StoreError::Unavailable(e.to_string()))?;
                Pool::Postgres(pool)
            }
        };
        Ok(Store {
            pool,
            wal_restart: Default::default(),
        })
    }

    /// Applies every pending migration; returns how many ran.
    pub fn migrate(&self) -> StoreResult<usize> {
        let run = |r: Result<Vec<_>, Box<dyn std::error::Error + Send + Sync>>| {
            r.map(|v| v.len())
                .map_err(|e| StoreError::Query(format!("migration failed: {e}")))
        };
        match &self.pool {
            Pool::Sqlite(pool) => run(pool.get()?.run_pending_migrations(SQLITE_MIGRATIONS)),
            Pool::Postgres(pool) => run(pool.get()?.run_pending_migrations(POSTGRES_MIGRATIONS)),
        }
    }

    /// Which backend this is, for logs and metrics.
    pub fn backend_name(&self) -> &'static str {
        match self.pool {
            Pool::Sqlite(_) => "sqlite",
            Pool::Postgres(_) => "postgres",
        }
    }

    /// Checks that the database answers (`/healthz`).
    pub fn ping(&self) -> StoreResult<()> {
        db_run!(self, |conn| {
            conn.batch_execute("SELECT 1")?;
            Ok(())
        })
    }

    /// For SQLite, starts a thread that copies the write-ahead log into the database file
    /// every `every`, so commits never wait for a checkpoint; it ends when `stop` is set.
    /// Does nothing on PostgreSQL.
    pub fn spawn_checkpointer(
        &self,
        every: Duration,
        stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    ) -> std::io::Result<()> {
        let Pool::Sqlite(pool) = &self.pool else {
            return Ok(());
        };
        let pool = pool.clone();
        let wal_restart = self.wal_restart.clone();
        std::thread::Builder::new()
            .name("charla-checkpoint".into())
            .spawn(move || {
                use diesel::RunQueryDsl;
                use std::sync::atomic::Ordering;
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(every);
                    let result = pool.get().map_err(StoreError::from).and_then(|mut c| {
                        diesel::sql_query("PRAGMA wal_checkpoint(PASSIVE)")
                            .get_result::<Checkpointed>(&mut c)
                            .map_err(StoreError::from)
                    });
                    match result {
                        Ok(done) if done.log >= WAL_RESTART_FRAMES => {
                            wal_restart.store(true, Ordering::Relaxed)
                        }
                        Ok(_) => {}
                        Err(e) => tracing::warn!(error = %e, "WAL checkpoint failed"),
                    }
                }
            })
            .map(|_| ())
    }

    /// After a commit on `conn`: restarts SQLite's log if the checkpointer asked for it. The
    /// checkpointer has copied nearly all of it already, so this copies the last few
    /// commits and waits at most [`WAL_RESTART_WAIT_MS`] for readers; when they are still
    /// busy it is asked for again on the next round. Nothing is lost either way.
    fn restart_wal_if_asked(&self, conn: &mut SqliteConnection) {
        use std::sync::atomic::Ordering;
        if !self.wal_restart.swap(false, Ordering::Relaxed) {
            return;
        }
        let result = conn.batch_execute(&format!(
            "PRAGMA busy_timeout = {WAL_RESTART_WAIT_MS}; PRAGMA wal_checkpoint(RESTART); \
             PRAGMA busy_timeout = {BUSY_TIMEOUT_MS};"
        ));
        if let Err(e) = result {
            // The busy timeout must come back even when the checkpoint failed.
            let _ = conn.batch_execute(&format!("PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}"));
            tracing::warn!(error = %e, "WAL restart failed");
        }
    }

    /// Runs blocking storage work on the blocking thread pool, so actors and handlers
    /// never wait on the database on their own thread.
    pub async fn call<T, F>(&self, f: F) -> StoreResult<T>
    where
        F: FnOnce(&Store) -> StoreResult<T> + Send + 'static,
        T: Send + 'static,
    {
        let store = self.clone();
        tokio::task::spawn_blocking(move || f(&store))
            .await
            .map_err(|e| StoreError::Query(format!("storage task failed: {e}")))?
    }
}

#[cfg(test)]
mod tests {
    use super::messages::{NewMessage, Write};
    use super::*;
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;

    /// Sustained writes keep SQLite's log bounded. A passive checkpoint alone never lets the
    /// log start over while commits keep coming, so before the restart it grew by every
    /// byte written (hundreds of MB a minute under load). This writes about 130 MB of log
    /// frames back to back and checks that the file never passes 48 MiB: the restart
    /// threshold (16 MiB) plus what a few checkpoint rounds may let through.
    #[test]
    fn sustained_writes_keep_the_sqlite_log_bounded() {
        let dir = tempfile::tempdir().expect("temporary folder");
        let mut cfg = Config::defaults().expect("defaults");
        let path = dir.path().join("wal.db");
        cfg.database_url = path.to_string_lossy().into_owned();
        let store = Store::open_with(&cfg, true).expect("open");
        store.migrate().expect("migrate");
        let stop = Arc::new(AtomicBool::new(false));
        store
            .spawn_checkpointer(Duration::from_millis(10), stop.clone())
            .expect("checkpointer");
        let visitor = store.add_visitor("wal-test", 1).expect("visitor");
        let conversation = store
            .add_conversation(visitor, "web", None, 1)
            .expect("conversation")
            .id;
        // A body near a page, so every message writes about one 4 KiB frame.
        let body = "x".repeat(4000);
        let wal = dir.path().join("wal.db-wal");
        let mut largest = 0;
        let mut seq = 0;
        for _ in 0..128 {
            let writes: Vec<Write> = (0..256)
                .map(|_| {
                    seq += 1;
                    Write::Message(NewMessage {
                        conversation_id: conversation,
                        seq,
                        kind: "text",
                        author_kind: "visitor",
                        author_id: visitor,
                        client_id: Some(format!("c-{seq}")),
                        body: body.clone(),
                        created_at: seq,
                        meta: None,
                    })
                })
                .collect();
            let refs: Vec<&Write> = writes.iter().collect();
            store.commit_batch(&refs).expect("commit");
            largest = largest.max(std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0));
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        assert_eq!(store.count_messages().expect("count"), seq);
        assert!(
            largest < 48 << 20,
            "the log reached {largest} bytes while {} MB of messages were written",
            seq * 4 / 1000
        );
    }
}
