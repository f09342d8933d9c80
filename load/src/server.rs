//! The server under test: either one started elsewhere (`--url`, `--server-pid`) or one
//! this harness starts (`--spawn`) by re-executing itself with the hidden `__serve`
//! subcommand, so a fresh clone needs no separate server build. Also the hidden
//! `__add-operator` subcommand that creates the administrator the chat scenarios log in as.

use crate::args::Options;
use crate::client;
use crate::net::{self, Endpoint};
use crate::procfs;
use std::io::{BufRead, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a spawned server may take to answer `/healthz`.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a spawned server may take to shut down after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// An operator login the scenarios can use.
#[derive(Debug, Clone)]
pub struct Login {
    /// E-mail.
    pub email: String,
    /// Password.
    pub password: String,
}

/// The server a run talks to.
pub struct Target {
    /// Where it listens.
    pub ep: Endpoint,
    /// Its pid, when known (for RSS).
    pub pid: Option<u32>,
    /// An operator to log in as, when the scenario needs one.
    pub login: Option<Login>,
    spawned: Option<Spawned>,
}

impl Target {
    /// Starts or finds the server, per the options.
    pub async fn prepare(opts: &Options, needs_operator: bool) -> Result<Target, String> {
        if !opts.spawn {
            let ep = Endpoint::resolve(&opts.url).await?;
            let health = net::http(&ep, "GET", "/healthz", None)
                .await
                .map_err(|e| format!("the server at {} is not reachable: {e}", opts.url))?;
            if health.status != 200 {
                return Err(format!(
                    "the server at {} is not healthy: GET /healthz answered {} {}",
                    opts.url, health.status, health.body
                ));
            }
            let login = match (&opts.operator_email, &opts.operator_password) {
                (Some(email), Some(password)) => Some(Login {
                    email: email.clone(),
                    password: password.clone(),
                }),
                _ => None,
            };
            return Ok(Target {
                ep,
                pid: opts.server_pid,
                login,
                spawned: None,
            });
        }
        let subcommand = if opts.scenario == crate::args::Scenario::Echo && opts.against_echo {
            "__echo"
        } else {
            "__serve"
        };
        let spawned = Spawned::start(subcommand, opts.database.as_deref(), needs_operator).await?;
        let ep = Endpoint::resolve(&format!("http://127.0.0.1:{}", spawned.port)).await?;
        Ok(Target {
            ep,
            pid: Some(spawned.child.id()),
            login: spawned.login.clone(),
            spawned: Some(spawned),
        })
    }

    /// The server's resident memory now, if its pid is known.
    pub fn rss(&self) -> Option<u64> {
        self.pid.and_then(procfs::rss_bytes)
    }

    /// Logs the scenario's operator in and returns the token.
    pub async fn operator_token(&self) -> Result<String, String> {
        let login = self
            .login
            .as_ref()
            .ok_or_else(|| "no operator login is configured".to_string())?;
        client::login(&self.ep, &login.email, &login.password).await
    }

    /// Whether a spawned server has died on its own; `Some(reason)` if so.
    pub fn crashed(&mut self) -> Option<String> {
        let spawned = self.spawned.as_mut()?;
        match spawned.child.try_wait() {
            Ok(Some(status)) => Some(format!("the spawned server exited early: {status}")),
            _ => None,
        }
    }

    /// Stops a spawned server (SIGTERM, then waits); says how it ended.
    pub fn stop(mut self) -> Result<(), String> {
        match self.spawned.take() {
            Some(mut s) => s.stop(),
            None => Ok(()),
        }
    }
}

/// A server child process and its scratch folder.
struct Spawned {
    child: Child,
    port: u16,
    login: Option<Login>,
    /// Holds the SQLite file and the empty static folder; removed on drop.
    _dir: tempfile::TempDir,
}

impl Spawned {
    /// Starts `subcommand` of this binary: `__serve` (Charla) or `__echo` (the bare echo).
    async fn start(
        subcommand: &str,
        database: Option<&str>,
        needs_operator: bool,
    ) -> Result<Spawned, String> {
        let dir = tempfile::Builder::new()
            .prefix("charla-load-")
            .tempdir()
            .map_err(|e| format!("cannot create a temporary folder: {e}"))?;
        let port = free_port()?;
        let db = match database {
            Some(url) => url.to_string(),
            None => dir.path().join("load.db").display().to_string(),
        };
        let env = vec![
            ("CHARLA_ADDR", format!("127.0.0.1:{port}")),
            ("CHARLA_DATABASE_URL", db),
            ("CHARLA_RATE_PER_SEC", "0".to_string()),
            ("CHARLA_LOG", "warn".to_string()),
            ("CHARLA_STATIC_DIR", dir.path().display().to_string()),
        ];
        let exe = std::env::current_exe()
            .map_err(|e| format!("cannot find this program to re-execute it: {e}"))?;
        let login = if needs_operator {
            Some(add_admin(&exe, &env, dir.path())?)
        } else {
            None
        };
        let child = Command::new(&exe)
            .arg(subcommand)
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot start the server: {e}"))?;
        let mut spawned = Spawned {
            child,
            port,
            login,
            _dir: dir,
        };
        spawned.wait_healthy().await?;
        eprintln!(
            "started a server on 127.0.0.1:{port} (pid {})",
            spawned.child.id()
        );
        Ok(spawned)
    }

    async fn wait_healthy(&mut self) -> Result<(), String> {
        let ep = Endpoint::resolve(&format!("http://127.0.0.1:{}", self.port)).await?;
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("the server exited while starting: {status}"));
            }
            if let Ok(res) = net::http(&ep, "GET", "/healthz", None).await {
                if res.status == 200 {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "the server did not answer /healthz within {} s",
                    START_TIMEOUT.as_secs()
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn stop(&mut self) -> Result<(), String> {
        if let Ok(Some(status)) = self.child.try_wait() {
            return Err(format!("the server had already exited: {status}"));
        }
        let pid = self.child.id().to_string();
        let _ = Command::new("kill")
            .args(["-TERM", &pid])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) if status.success() => return Ok(()),
                Ok(Some(status)) => return Err(format!("the server ended with {status}")),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                _ => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    return Err(format!(
                        "the server did not stop within {} s of SIGTERM; killed it",
                        STOP_TIMEOUT.as_secs()
                    ));
                }
            }
        }
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.stop();
        }
    }
}

/// Creates an administrator in the spawned server's database (before the server starts).
fn add_admin(
    exe: &std::path::Path,
    env: &[(&str, String)],
    dir: &std::path::Path,
) -> Result<Login, String> {
    let stamp = client::now_us();
    let login = Login {
        email: format!("load-{}-{stamp}@example.com", std::process::id()),
        password: format!("load-harness-{stamp}"),
    };
    let mut child = Command::new(exe)
        .args(["__add-operator", &login.email, "Load Harness", "--admin"])
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot run __add-operator: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        writeln!(stdin, "{}", login.password)
            .map_err(|e| format!("cannot pass the password to __add-operator: {e}"))?;
    }
    let status = child
        .wait()
        .map_err(|e| format!("__add-operator did not finish: {e}"))?;
    if !status.success() {
        return Err(format!("__add-operator failed: {status}"));
    }
    Ok(login)
}

fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("cannot find a free port: {e}"))
}

/// The hidden `__serve` subcommand: runs Charla from `CHARLA_*` settings until SIGTERM or
/// SIGINT, then shuts it down gracefully.
pub fn serve() -> Result<(), String> {
    let cfg = charla::config::Config::load(None).map_err(|e| e.to_string())?;
    let system = actix_rt::System::new();
    system.block_on(async move {
        let server = charla::app::start(cfg).await?;
        wait_for_signal().await;
        server.shutdown().await;
        Ok(())
    })
}

/// Waits for SIGTERM or SIGINT.
pub async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// The hidden `__add-operator` subcommand: adds an operator to the database the `CHARLA_*`
/// settings name; the password is the first line of standard input.
pub fn add_operator(email: &str, name: &str, admin: bool) -> Result<(), String> {
    let cfg = charla::config::Config::load(None).map_err(|e| e.to_string())?;
    let mut password = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut password)
        .map_err(|e| format!("cannot read the password from standard input: {e}"))?;
    let password = password.trim_end_matches(['\r', '\n']);
    let hash = charla::auth::hash_password(password)?;
    let store = charla::app::open_store(&cfg)?;
    let now = charla::clock::Clock::now_ms(&charla::clock::SystemClock);
    store
        .add_operator(email, name, &hash, admin, now)
        .map_err(|e| format!("cannot add operator {email}: {e}"))?;
    Ok(())
}
