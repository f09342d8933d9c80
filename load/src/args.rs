//! Command-line parsing for `charla-load`, by hand (no clap, to keep builds light): the
//! scenario, its options, the `--help` text, and the hidden subcommands the harness runs
//! when it re-executes itself.

use std::fmt;

/// The help text printed by `--help`.
pub const HELP: &str = "\
charla-load: load harness for the Charla chat server

usage: charla-load <scenario> [options]

scenarios:
  connections   open N idle visitor websockets (hello -> welcome), hold them, measure
                connect latency and the server's memory per connection
  chat          V visitors and O operators chat; measures throughput, ack and delivery
                latency, and checks that every acked message arrives once and in order
  burst         N visitors connect at once; time-to-welcome and time-to-first-ack
  slow          V visitors, a share of which stop reading their socket; one operator
                writes to every conversation; shows how the server copes (RSS over time)
  echo          V visitors keep --window messages in flight and count acks: against
                Charla (durable messages) or, with --against echo, a bare websocket echo
                on the same stack (actix-web-actors), the transport's ceiling

server (one of):
  --url URL                 server base URL (default http://127.0.0.1:8080); the
                            websockets are URL/ws/visitor and URL/ws/operator; run that
                            server with CHARLA_RATE_PER_SEC=0 (the harness sends far more
                            than the default 20 frames per second per socket)
  --spawn                   start a server for the run: this binary re-executes itself as
                            the server on a free loopback port, with a fresh SQLite file
                            in a temporary folder, CHARLA_RATE_PER_SEC=0, CHARLA_LOG=warn;
                            any other CHARLA_* variable in the environment is passed on
  --database URL            with --spawn: use this database instead (e.g. postgres://...)
  --server-pid PID          without --spawn: the server's process id, to report its RSS

common options:
  --duration SECS           length of the measured phase (default 10)
  --json                    print one JSON object with every figure on stdout at the end
                            (the human summary and progress go to stderr either way)
  --help                    this text

connections:
  --visitors N              connections to open (default 1000)
  --hold SECS               how long to hold them once open (default: --duration)
  --concurrency C           connection attempts in flight at once (default 256)
  --per-process K           most connections one process holds (default: this process's
                            open-file limit minus 200); beyond it, worker processes are used

chat:
  --visitors V              visitors (default 100)
  --operators O             operator sockets (default 4); operator j answers the
                            conversations whose id % O == j
  --rate R                  total offered messages per second, half from visitors (paced),
                            half the operators' replies; without it each visitor keeps
                            --window unacked messages in flight
  --window W                unacked messages per visitor without --rate (default 8)
  --operator-email E        without --spawn: an existing administrator (or operator with
  --operator-password P       the chat permission) to log in as; with --spawn the harness
                            creates one

burst:
  --visitors N              visitors that connect at the same moment (default 1000)
  --operators O             operator sockets online (default 0); with operators, the
                            assignment latency is measured (their capacity is raised to
                            fit the crowd)
  --operator-email E, --operator-password P   as for chat

slow:
  --visitors V              visitors, each opening one conversation (default 200)
  --slow-share S            share of visitors that stop reading after their first ack
                            (default 0.2)
  --per-conversation-rate R operator messages per second to each conversation (default 50)
  --rate R                  cap on the operator's total messages per second (default 5000)
  --body-bytes B            size of each operator message body (default 1024)
  --operator-email E, --operator-password P   as for chat

exit status: 0 when the run completed and nothing was lost, duplicated or reordered;
1 when something was (the reason is printed) or the run could not complete; 2 on a usage
error.

examples:
  cargo run --release -p charla-load -- chat --spawn --visitors 100 --operators 4 --json
  cargo run --release -p charla-load -- connections --spawn --visitors 5000
  cargo run --release -p charla-load -- chat --url http://127.0.0.1:8080 \\
      --operator-email admin@example.com --operator-password secret-password --server-pid 4242
";

/// A usage error: printed with a pointer to `--help`, exit status 2.
#[derive(Debug)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (see --help)", self.0)
    }
}

/// The four load scenarios.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// Idle connections, memory per connection.
    Connections,
    /// Visitors and operators chatting.
    Chat,
    /// Everyone connects at once.
    Burst,
    /// Slow readers.
    Slow,
    /// Acks per second against Charla or a bare echo server (the ceiling).
    Echo,
}

impl Scenario {
    /// Its name on the command line and in the report.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Connections => "connections",
            Scenario::Chat => "chat",
            Scenario::Burst => "burst",
            Scenario::Slow => "slow",
            Scenario::Echo => "echo",
        }
    }

    /// The options this scenario accepts besides the common ones.
    fn accepts(self, option: &str) -> bool {
        let own: &[&str] = match self {
            Scenario::Connections => &["--visitors", "--hold", "--concurrency", "--per-process"],
            Scenario::Chat => &[
                "--visitors",
                "--operators",
                "--rate",
                "--window",
                "--operator-email",
                "--operator-password",
            ],
            Scenario::Burst => &[
                "--visitors",
                "--operators",
                "--operator-email",
                "--operator-password",
            ],
            Scenario::Echo => &["--visitors", "--window", "--against"],
            Scenario::Slow => &[
                "--visitors",
                "--slow-share",
                "--per-conversation-rate",
                "--rate",
                "--body-bytes",
                "--operator-email",
                "--operator-password",
            ],
        };
        own.contains(&option)
    }
}

/// Everything a scenario run needs from the command line.
#[derive(Debug, Clone)]
pub struct Options {
    /// Which scenario.
    pub scenario: Scenario,
    /// Server base URL (ignored with `--spawn`).
    pub url: String,
    /// Start a server for the run.
    pub spawn: bool,
    /// Database URL for the spawned server.
    pub database: Option<String>,
    /// The server's pid when not spawning.
    pub server_pid: Option<u32>,
    /// Print the JSON report on stdout.
    pub json: bool,
    /// Measured phase, seconds.
    pub duration: f64,
    /// Visitors (connections for `connections`).
    pub visitors: usize,
    /// Operator sockets (chat).
    pub operators: usize,
    /// Offered rate (chat) or total cap (slow).
    pub rate: Option<f64>,
    /// Unacked messages per visitor in chat without `--rate`.
    pub window: usize,
    /// Hold time for `connections`.
    pub hold: Option<f64>,
    /// Connection attempts in flight.
    pub concurrency: usize,
    /// Most connections per process.
    pub per_process: Option<usize>,
    /// Share of slow visitors.
    pub slow_share: f64,
    /// `echo`: run against the bare echo server instead of Charla.
    pub against_echo: bool,
    /// Operator messages per second per conversation (slow).
    pub per_conversation_rate: f64,
    /// Body size of the slow scenario's operator messages.
    pub body_bytes: usize,
    /// Existing operator login (without `--spawn`).
    pub operator_email: Option<String>,
    /// Its password.
    pub operator_password: Option<String>,
}

/// What the command line asks for.
#[derive(Debug)]
pub enum Command {
    /// Print the help text.
    Help,
    /// Run a scenario.
    Run(Box<Options>),
    /// Hidden: run the server (used by `--spawn`).
    Serve,
    /// Hidden: run the bare websocket echo server (used by `echo --against echo`).
    Echo,
    /// Hidden: add an operator to the configured database; the password comes on stdin.
    AddOperator {
        /// E-mail.
        email: String,
        /// Display name.
        name: String,
        /// Make it an administrator.
        admin: bool,
    },
    /// Hidden: one worker process of the `connections` scenario.
    ConnectionsWorker(WorkerArgs),
}

/// Arguments of the hidden `__connections-worker` subcommand.
#[derive(Debug, Clone)]
pub struct WorkerArgs {
    /// Connections this worker opens.
    pub count: usize,
    /// Index of its first connection among all workers (spreads source addresses).
    pub src_offset: usize,
    /// Server base URL.
    pub url: String,
    /// Attempts in flight.
    pub concurrency: usize,
}

/// Parses the arguments after the program name.
pub fn parse(args: &[String]) -> Result<Command, UsageError> {
    if args.iter().any(|a| a == "--help" || a == "-h") {
        return Ok(Command::Help);
    }
    let Some(first) = args.first() else {
        return Err(UsageError("no scenario given".into()));
    };
    let rest = &args[1..];
    let scenario = match first.as_str() {
        "connections" => Scenario::Connections,
        "chat" => Scenario::Chat,
        "burst" => Scenario::Burst,
        "slow" => Scenario::Slow,
        "echo" => Scenario::Echo,
        "__echo" => return Ok(Command::Echo),
        "__serve" => {
            return match rest.first() {
                None => Ok(Command::Serve),
                Some(extra) => Err(UsageError(format!(
                    "__serve takes no argument, not {extra}"
                ))),
            }
        }
        "__add-operator" => return parse_add_operator(rest),
        "__connections-worker" => return parse_worker(rest).map(Command::ConnectionsWorker),
        other => return Err(UsageError(format!("unknown scenario `{other}`"))),
    };
    parse_options(scenario, rest).map(|o| Command::Run(Box::new(o)))
}

fn parse_options(scenario: Scenario, args: &[String]) -> Result<Options, UsageError> {
    let mut o = Options {
        scenario,
        url: "http://127.0.0.1:8080".into(),
        spawn: false,
        database: None,
        server_pid: None,
        json: false,
        duration: 10.0,
        visitors: match scenario {
            Scenario::Connections | Scenario::Burst => 1000,
            Scenario::Chat => 100,
            Scenario::Slow => 200,
            Scenario::Echo => 100,
        },
        // A crowd arrives with nobody to answer unless asked for (burst), while chat needs
        // operators to answer.
        operators: if scenario == Scenario::Burst { 0 } else { 4 },
        rate: None,
        window: 8,
        hold: None,
        concurrency: 256,
        per_process: None,
        slow_share: 0.2,
        against_echo: false,
        per_conversation_rate: 50.0,
        body_bytes: 1024,
        operator_email: None,
        operator_password: None,
    };
    let mut url_given = false;
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let flag = flag.as_str();
        match flag {
            "--spawn" => o.spawn = true,
            "--json" => o.json = true,
            _ if !flag.starts_with("--") => {
                return Err(UsageError(format!("unexpected argument `{flag}`")))
            }
            _ => {
                let common = matches!(flag, "--url" | "--database" | "--server-pid" | "--duration");
                if !common && !scenario.accepts(flag) {
                    return Err(UsageError(format!(
                        "unknown option {flag} for the {} scenario",
                        scenario.name()
                    )));
                }
                let value = it
                    .next()
                    .ok_or_else(|| UsageError(format!("{flag} needs a value")))?;
                match flag {
                    "--url" => {
                        o.url = value.clone();
                        url_given = true;
                    }
                    "--database" => o.database = Some(value.clone()),
                    "--server-pid" => o.server_pid = Some(number(flag, value)?),
                    "--duration" => o.duration = positive(flag, value)?,
                    "--visitors" => o.visitors = count(flag, value)?,
                    "--operators" => o.operators = count(flag, value)?,
                    "--rate" => o.rate = Some(positive(flag, value)?),
                    "--window" => o.window = count(flag, value)?,
                    "--against" => {
                        o.against_echo = match value.as_str() {
                            "charla" => false,
                            "echo" => true,
                            other => {
                                return Err(UsageError(format!(
                                    "--against takes charla or echo, not {other}"
                                )))
                            }
                        }
                    }
                    "--hold" => o.hold = Some(non_negative(flag, value)?),
                    "--concurrency" => o.concurrency = count(flag, value)?,
                    "--per-process" => o.per_process = Some(count(flag, value)?),
                    "--slow-share" => {
                        o.slow_share = non_negative(flag, value)?;
                        if o.slow_share > 1.0 {
                            return Err(UsageError("--slow-share must be between 0 and 1".into()));
                        }
                    }
                    "--per-conversation-rate" => o.per_conversation_rate = positive(flag, value)?,
                    "--body-bytes" => o.body_bytes = count(flag, value)?,
                    "--operator-email" => o.operator_email = Some(value.clone()),
                    "--operator-password" => o.operator_password = Some(value.clone()),
                    _ => return Err(UsageError(format!("unknown option {flag}"))),
                }
            }
        }
    }
    if o.spawn && url_given {
        return Err(UsageError("--spawn and --url exclude each other".into()));
    }
    if o.spawn && o.server_pid.is_some() {
        return Err(UsageError(
            "--server-pid is for a server started elsewhere; --spawn knows its own".into(),
        ));
    }
    if !o.spawn && o.database.is_some() {
        return Err(UsageError("--database only applies with --spawn".into()));
    }
    let needs_operator = matches!(scenario, Scenario::Chat | Scenario::Slow)
        || (scenario == Scenario::Burst && o.operators > 0);
    if needs_operator && !o.spawn {
        if o.operator_email.is_none() || o.operator_password.is_none() {
            return Err(UsageError(format!(
                "the {} scenario needs an operator: use --spawn, or give --operator-email and \
                 --operator-password of an existing administrator",
                scenario.name()
            )));
        }
    } else if o.spawn && (o.operator_email.is_some() || o.operator_password.is_some()) {
        return Err(UsageError(
            "--operator-email/--operator-password are for a server started elsewhere; \
             --spawn creates its own operator"
                .into(),
        ));
    }
    if o.body_bytes > 3900 {
        return Err(UsageError(
            "--body-bytes must be at most 3900 (the server's default limit is 4000 characters)"
                .into(),
        ));
    }
    Ok(o)
}

fn parse_add_operator(args: &[String]) -> Result<Command, UsageError> {
    let mut admin = false;
    let mut words = Vec::new();
    for a in args {
        if a == "--admin" {
            admin = true;
        } else {
            words.push(a.clone());
        }
    }
    match <[String; 2]>::try_from(words) {
        Ok([email, name]) => Ok(Command::AddOperator { email, name, admin }),
        Err(_) => Err(UsageError(
            "usage: __add-operator EMAIL NAME [--admin] (password on stdin)".into(),
        )),
    }
}

fn parse_worker(args: &[String]) -> Result<WorkerArgs, UsageError> {
    let mut w = WorkerArgs {
        count: 0,
        src_offset: 0,
        url: String::new(),
        concurrency: 256,
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let value = it
            .next()
            .ok_or_else(|| UsageError(format!("{flag} needs a value")))?;
        match flag.as_str() {
            "--count" => w.count = count(flag, value)?,
            "--src-offset" => w.src_offset = number(flag, value)?,
            "--url" => w.url = value.clone(),
            "--concurrency" => w.concurrency = count(flag, value)?,
            other => return Err(UsageError(format!("unknown worker option {other}"))),
        }
    }
    if w.url.is_empty() {
        return Err(UsageError("the worker needs --url".into()));
    }
    Ok(w)
}

fn number<T: std::str::FromStr>(flag: &str, value: &str) -> Result<T, UsageError> {
    value
        .parse()
        .map_err(|_| UsageError(format!("{flag} needs a whole number, not `{value}`")))
}

fn count(flag: &str, value: &str) -> Result<usize, UsageError> {
    let n: usize = number(flag, value)?;
    if n == 0 {
        return Err(UsageError(format!("{flag} must be at least 1")));
    }
    Ok(n)
}

fn non_negative(flag: &str, value: &str) -> Result<f64, UsageError> {
    match value.parse::<f64>() {
        Ok(x) if x.is_finite() && x >= 0.0 => Ok(x),
        _ => Err(UsageError(format!(
            "{flag} needs a number of at least 0, not `{value}`"
        ))),
    }
}

fn positive(flag: &str, value: &str) -> Result<f64, UsageError> {
    match non_negative(flag, value)? {
        x if x > 0.0 => Ok(x),
        _ => Err(UsageError(format!("{flag} must be more than 0"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn chat_with_spawn_parses() {
        let Ok(Command::Run(o)) = parse(&args(
            "chat --spawn --visitors 100 --operators 4 --duration 10 --json --rate 5000",
        )) else {
            panic!("should parse");
        };
        assert_eq!(o.scenario, Scenario::Chat);
        assert_eq!((o.visitors, o.operators), (100, 4));
        assert_eq!(o.rate, Some(5000.0));
        assert!(o.spawn && o.json);
    }

    #[test]
    fn usage_errors_are_reported() {
        for bad in [
            "",
            "nonsense",
            "chat --visitors",
            "chat --visitors x --spawn",
            "chat --visitors 0 --spawn",
            "connections --operators 3",
            "chat --url http://x:1",
            "slow --spawn --slow-share 2",
            "burst --spawn --url http://127.0.0.1:1",
            "burst --database postgres://x",
        ] {
            assert!(parse(&args(bad)).is_err(), "`{bad}` should be refused");
        }
    }

    #[test]
    fn hidden_subcommands_parse() {
        assert!(matches!(parse(&args("__serve")), Ok(Command::Serve)));
        assert!(matches!(
            parse(&args("__add-operator a@b.c Name --admin")),
            Ok(Command::AddOperator { admin: true, .. })
        ));
        let Ok(Command::ConnectionsWorker(w)) = parse(&args(
            "__connections-worker --count 5 --src-offset 10 --url http://127.0.0.1:9",
        )) else {
            panic!("worker args");
        };
        assert_eq!((w.count, w.src_offset), (5, 10));
    }
}
