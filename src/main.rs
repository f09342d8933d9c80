//! The `charla` command: `serve`, `migrate`, and `operator add`.

use charla::app;
use charla::config::{Config, SETTINGS};
use std::io::BufRead;
use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "\
usage:
  charla serve [--config FILE]              start the server (SQLite in ./charla.db by default)
  charla migrate [--config FILE]            apply database migrations and exit
  charla operator add EMAIL NAME [--admin] [--config FILE]
                                            add an operator; the password is read from standard input
  charla settings                           list every setting with its environment variable
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("charla: {msg}");
            ExitCode::from(2)
        }
    }
}

/// Pulls `--config FILE` and `--admin` out of the arguments.
fn take_flags(args: &mut Vec<String>) -> Result<(Option<PathBuf>, bool), String> {
    let mut config = None;
    let mut admin = false;
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--config" => {
                args.remove(i);
                if i >= args.len() {
                    return Err("--config needs a file name".into());
                }
                config = Some(PathBuf::from(args.remove(i)));
            }
            "--admin" => {
                args.remove(i);
                admin = true;
            }
            flag if flag.starts_with("--") => {
                return Err(format!("unknown option {flag}\n{USAGE}"))
            }
            _ => i += 1,
        }
    }
    Ok((config, admin))
}

fn run(mut args: Vec<String>) -> Result<(), String> {
    if args.iter().any(|a| a == "--help" || a == "-h") {
        print!("{USAGE}");
        return Ok(());
    }
    if args.iter().any(|a| a == "--version" || a == "-V") {
        println!("charla {}", env!("CARGO_PKG_VERSION"));
        return Ok(());
    }
    let (config_file, admin) = take_flags(&mut args)?;
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    match words.as_slice() {
        [] | ["serve"] => serve(Config::load(config_file.as_deref()).map_err(|e| e.to_string())?),
        ["migrate"] => {
            let cfg = Config::load(config_file.as_deref()).map_err(|e| e.to_string())?;
            let store = charla::store::Store::open(&cfg).map_err(charla::app::database_error)?;
            let n = store.migrate().map_err(|e| e.to_string())?;
            println!(
                "applied {n} migration(s) to the {} database",
                store.backend_name()
            );
            Ok(())
        }
        ["operator", "add", email, name] => {
            let cfg = Config::load(config_file.as_deref()).map_err(|e| e.to_string())?;
            add_operator(&cfg, email, name, admin)
        }
        ["settings"] => {
            for s in SETTINGS {
                println!("{:<34} {:<14} {}", s.env, s.default, s.doc);
            }
            Ok(())
        }
        _ => Err(format!("unknown command\n{USAGE}")),
    }
}

fn add_operator(cfg: &Config, email: &str, name: &str, admin: bool) -> Result<(), String> {
    charla::http::account::validate_new_operator(email, name, "placeholder-ok")
        .map_err(|e| e.message)?;
    let mut password = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut password)
        .map_err(|e| format!("cannot read the password from standard input: {e}"))?;
    let password = password.trim_end_matches(['\r', '\n']);
    charla::http::account::validate_new_operator(email, name, password).map_err(|e| e.message)?;
    let hash = charla::auth::hash_password(password)?;
    let store = app::open_store(cfg)?;
    let now = charla::clock::Clock::now_ms(&charla::clock::SystemClock);
    let op = store
        .add_operator(email, name, &hash, admin, now)
        .map_err(|e| e.to_string())?;
    println!(
        "operator {} added (id {}{})",
        op.email,
        op.id,
        if op.is_admin { ", administrator" } else { "" }
    );
    Ok(())
}

fn serve(cfg: Config) -> Result<(), String> {
    let system = actix_web::rt::System::new();
    system.block_on(async move {
        let server = app::start(cfg).await?;
        println!("charla listening on http://{}", server.addr);
        wait_for_signal().await;
        server.shutdown().await;
        Ok(())
    })
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
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
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
