//! Builds and starts the whole server (storage, persister, router, HTTP) and shuts it down
//! in order: stop accepting, close every socket with "going away", commit every pending
//! write. The binary and the tests both start Charla through [`start`].

use crate::clock::{SharedClock, SystemClock};
use crate::config::Config;
use crate::runtime::persister::{BatchLimits, Persister};
use crate::runtime::router::{Router, RoutingState};
use crate::runtime::{hub::Hub, Core, Runtime};
use crate::store::Store;
use crate::telemetry::{self, Metrics};
use actix::Actor;
use actix_http::{HttpService, KeepAlive};
use actix_service::{fn_service, map_config};
use actix_web::dev::{AppConfig, ServerHandle};
use actix_web::{web, App};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A running server.
pub struct Server {
    /// The address it listens on (the real port when the configuration asked for port 0).
    pub addr: SocketAddr,
    /// The runtime, for tests that look inside.
    pub runtime: Runtime,
    handle: ServerHandle,
    done: tokio::task::JoinHandle<std::io::Result<()>>,
    stop_background: Arc<AtomicBool>,
}

/// How often the server checkpoints SQLite's write-ahead log (off the commit path). Often
/// enough that under full load the log stays a few MiB that the page cache holds, and its
/// restart (see `Store::spawn_checkpointer`) copies little: the persistence bench commits
/// about 195k messages/s with 100 ms against 150k with 500 ms (docs/BENCHMARKS.md). A round
/// with nothing to copy costs a few system calls.
pub const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);
/// How often new messages go into SQLite's full-text index (off the commit path; a search
/// indexes what is left first).
const INDEX_EVERY: Duration = Duration::from_millis(250);

/// The one line a start stops with when the database cannot be opened: it names the
/// setting, and the driver's own text (libpq's runs over several lines) is folded into it.
pub fn database_error(e: impl std::fmt::Display) -> String {
    let why = e
        .to_string()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    format!("cannot open the database (CHARLA_DATABASE_URL): {why}")
}

/// Opens the database and applies its migrations.
pub fn open_store(cfg: &Config) -> Result<Store, String> {
    open_store_with(cfg, false)
}

fn open_store_with(cfg: &Config, background_checkpoints: bool) -> Result<Store, String> {
    let store = Store::open_with(cfg, background_checkpoints).map_err(database_error)?;
    store.migrate().map_err(|e| e.to_string())?;
    store
        .ensure_channel_secrets()
        .map_err(|e| format!("cannot give channels their secrets: {e}"))?;
    Ok(store)
}

/// Starts Charla with the real clock.
pub async fn start(cfg: Config) -> Result<Server, String> {
    start_with_clock(cfg, Arc::new(SystemClock)).await
}

/// Starts Charla with the given clock (tests move time with a `ManualClock`).
pub async fn start_with_clock(cfg: Config, clock: SharedClock) -> Result<Server, String> {
    telemetry::init_logging(&cfg.log);
    let cfg = Arc::new(cfg);
    let open_cfg = cfg.clone();
    let store = tokio::task::spawn_blocking(move || open_store_with(&open_cfg, true))
        .await
        .map_err(|e| format!("start-up task failed: {e}"))??;
    let stop_background = Arc::new(AtomicBool::new(false));
    store
        .spawn_checkpointer(CHECKPOINT_EVERY, stop_background.clone())
        .map_err(|e| format!("cannot start the checkpointer: {e}"))?;
    store
        .spawn_indexer(INDEX_EVERY, stop_background.clone())
        .map_err(|e| format!("cannot start the search indexer: {e}"))?;
    let metrics = Arc::new(Metrics::default());
    let persister = Persister::start(
        store.clone(),
        metrics.clone(),
        BatchLimits {
            max_writes: cfg.batch_max,
            max_wait: Duration::from_micros(cfg.batch_wait_us),
            queue: cfg.persist_queue,
        },
    )
    .map_err(|e| format!("cannot start the persister: {e}"))?;
    let threads = worker_count(&cfg);
    let state_store = store.clone();
    let routing = tokio::task::spawn_blocking(move || RoutingState::load(&state_store))
        .await
        .map_err(|e| format!("start-up task failed: {e}"))?
        .map_err(|e| format!("cannot read the routing state: {e}"))?;
    let mail_cfg = cfg.clone();
    let mail_store = store.clone();
    let mail = tokio::task::spawn_blocking(move || {
        crate::mail::MailSettings::resolve(&mail_cfg, &mail_store)
    })
    .await
    .map_err(|e| format!("start-up task failed: {e}"))??;
    let core = Arc::new(Core {
        config: cfg.clone(),
        store,
        persister,
        metrics,
        clock,
        registry: Default::default(),
        visitors_online: Default::default(),
        channels: Default::default(),
        mail: Arc::new(mail),
        mail_wake: Default::default(),
        hub: Hub::default(),
    });
    let router = Router::new(core.clone(), threads, routing).start();
    let timers = crate::runtime::timers::Timers::new(core.clone(), router.clone()).start();
    crate::mail::sender::spawn(
        core.store.clone(),
        core.mail.clone(),
        core.clock.clone(),
        core.mail_wake.clone(),
        stop_background.clone(),
    );
    let runtime = Runtime {
        core,
        router,
        timers,
    };
    let data = web::Data::new(runtime.clone());
    let static_dir = cfg.static_dir.clone();
    let listener = listen(cfg.addr)
        .map_err(|e| format!("cannot listen on {} (CHARLA_ADDR): {e}", cfg.addr))?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("the server bound no address: {e}"))?;
    let builder = actix_server::Server::build();
    let closing = builder.graceful_shutdown_signal();
    let sockets = runtime.clone();
    // What actix-web's HttpServer builds, with one addition: upgrade requests go to the
    // websocket transport (`http::websocket`) instead of staying in the HTTP/1 dispatcher.
    let server = builder
        .workers(threads)
        .backlog(LISTEN_BACKLOG)
        .max_concurrent_connections(100_000)
        .disable_signals()
        .shutdown_timeout(cfg.shutdown_timeout_secs)
        .listen("charla", listener, move || {
            let static_dir = static_dir.clone();
            let app = App::new()
                .app_data(data.clone())
                .wrap_fn(crate::http::headers::secure)
                .configure(move |c| crate::http::routes(c, &static_dir));
            let sockets = sockets.clone();
            let closing = closing.clone();
            HttpService::build()
                .keep_alive(KeepAlive::default())
                .client_request_timeout(Duration::from_secs(5))
                .client_disconnect_timeout(Duration::from_secs(1))
                // Small frames must leave at once: without TCP_NODELAY, Nagle's algorithm
                // holds an ack back until the client's delayed ACK (up to 40 ms) whenever
                // two frames follow closely.
                .tcp_nodelay(true)
                .local_addr(addr)
                .graceful_shutdown_signal(move || {
                    let closing = closing.clone();
                    async move { closing.notified().await }
                })
                .upgrade(fn_service(move |(req, framed)| {
                    crate::http::websocket::serve(sockets.clone(), req, framed)
                }))
                .finish(map_config(app, |_| AppConfig::default()))
                .tcp()
        })
        .map_err(|e| format!("cannot listen on {} (CHARLA_ADDR): {e}", cfg.addr))?;
    let server = server.run();
    let handle = server.handle();
    let done = tokio::spawn(server);
    tracing::info!(%addr, database = runtime.core.store.backend_name(), "charla is listening");
    Ok(Server {
        addr,
        runtime,
        handle,
        done,
        stop_background,
    })
}

/// Connections the kernel queues before the server accepts them (a crowd arriving at once).
const LISTEN_BACKLOG: u32 = 4096;

/// Binds the listening socket with a deep accept queue.
fn listen(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)?.into_std()
}

fn worker_count(cfg: &Config) -> usize {
    if cfg.workers > 0 {
        cfg.workers
    } else {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
    }
}

impl Server {
    /// Graceful shutdown: stops accepting, closes every websocket with 1001 "going away",
    /// lets HTTP requests finish, then commits whatever the persister still holds.
    pub async fn shutdown(self) {
        tracing::info!("shutting down");
        // Stop accepting first, so no client reconnects into a server about to go.
        self.handle.pause().await;
        self.runtime.core.hub.shutdown_all();
        // Let the sessions write their close frames before the workers stop.
        for _ in 0..50 {
            if self.runtime.core.hub.session_count() == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.handle.stop(true).await;
        let _ = self.done.await;
        let persister = self.runtime.core.persister.clone();
        let _ = tokio::task::spawn_blocking(move || persister.stop()).await;
        self.stop_background.store(true, Ordering::Relaxed);
        self.runtime.core.mail_wake.notify_waiters();
        tracing::info!("stopped; every pending write was committed");
    }
}
