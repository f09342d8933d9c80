//! `charla-load`: the load harness of the Charla chat server. This file parses the command
//! line and dispatches to a scenario or to one of the hidden subcommands the harness runs
//! when it re-executes itself (`__serve`, `__echo`, `__add-operator`, `__connections-worker`).
//!
//! Run `cargo run --release -p charla-load -- --help` for the scenarios and options.

mod args;
mod client;
mod echo_server;
mod net;
mod procfs;
mod report;
mod scenarios;
mod server;
mod stats;
mod tracking;

use args::{Command, Options};
use std::process::ExitCode;

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let command = match args::parse(&argv) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("charla-load: {e}");
            return ExitCode::from(2);
        }
    };
    match command {
        Command::Help => {
            print!("{}", args::HELP);
            ExitCode::SUCCESS
        }
        Command::Serve => finish(server::serve()),
        Command::Echo => finish(echo_server::serve()),
        Command::AddOperator { email, name, admin } => {
            finish(server::add_operator(&email, &name, admin))
        }
        Command::ConnectionsWorker(w) => {
            finish(runtime().and_then(|rt| rt.block_on(scenarios::connections::worker(w))))
        }
        Command::Run(opts) => run(&opts),
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))
}

fn finish(result: Result<(), String>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("charla-load: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(opts: &Options) -> ExitCode {
    let outcome = runtime().and_then(|rt| {
        let report = rt.block_on(scenarios::run(opts));
        // Sockets still closing must not hold the exit up.
        rt.shutdown_timeout(std::time::Duration::from_secs(2));
        report
    });
    match outcome {
        Ok(report) => {
            report.print(opts.json);
            let problems = report.violations();
            if problems.is_empty() {
                ExitCode::SUCCESS
            } else {
                eprintln!("FAILED: {}", problems.join("; "));
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("charla-load: the {} run failed: {e}", opts.scenario.name());
            if opts.json {
                let failed = serde_json::json!({"scenario": opts.scenario.name(), "error": e});
                println!("{failed}");
            }
            ExitCode::FAILURE
        }
    }
}
