//! Every setting, declared once: its key in the TOML file, its environment variable, its
//! default and a line of documentation. The README's settings table is this list.

use std::{fmt, net::SocketAddr, path::PathBuf, str::FromStr};

/// One declared setting, for documentation and for the test that keeps the README honest.
pub struct SettingDoc {
    /// Key in the TOML file given with `--config`.
    pub key: &'static str,
    /// Environment variable that overrides the file.
    pub env: &'static str,
    /// Default, as written in the TOML file.
    pub default: &'static str,
    /// What the setting does.
    pub doc: &'static str,
}

/// A setting that could not be used; its message names the setting, so one line is enough.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

macro_rules! settings {
    ($( #[doc = $doc:literal] $field:ident : $ty:ty = $default:literal, $env:literal; )*) => {
        /// The server's settings. Build with [`Config::load`] (file, then environment) or
        /// [`Config::defaults`] and adjust fields directly (tests do).
        #[derive(Debug, Clone)]
        pub struct Config {
            $( #[doc = $doc] pub $field: $ty, )*
        }

        /// Every setting, in declaration order.
        pub const SETTINGS: &[SettingDoc] = &[
            $( SettingDoc { key: stringify!($field), env: $env, default: $default, doc: $doc }, )*
        ];

        impl Config {
            /// The built-in defaults, with nothing read from a file or the environment.
            pub fn defaults() -> Result<Config, ConfigError> {
                Ok(Config { $( $field: parse_setting(stringify!($field), $env, $default)?, )* })
            }

            fn set(&mut self, key: &str, raw: &str) -> Result<(), ConfigError> {
                match key {
                    $( stringify!($field) => self.$field = parse_setting(stringify!($field), $env, raw)?, )*
                    other => return Err(ConfigError(format!("unknown setting `{other}` in the configuration file"))),
                }
                Ok(())
            }
        }
    };
}

settings! {
    /// Address and port the HTTP and websocket server listens on.
    addr: SocketAddr = "127.0.0.1:8080", "CHARLA_ADDR";
    /// A SQLite file path (created if missing) or a `postgres://` URL.
    database_url: String = "charla.db", "CHARLA_DATABASE_URL";
    /// The address visitors and operators use to reach this server (links in e-mails); empty means `http://<addr>`.
    public_url: String = "", "CHARLA_PUBLIC_URL";
    /// Folder with the widget, console and demo pages.
    static_dir: PathBuf = "static", "CHARLA_STATIC_DIR";
    /// Log level: error, warn, info, debug or trace.
    log: String = "info", "CHARLA_LOG";
    /// HTTP worker threads; 0 means one per core.
    workers: usize = "0", "CHARLA_WORKERS";
    /// Database connections in the pool.
    db_pool_size: u32 = "8", "CHARLA_DB_POOL_SIZE";
    /// SQLite `synchronous` pragma: `full` survives power loss, `normal` survives a process crash.
    sqlite_synchronous: String = "full", "CHARLA_SQLITE_SYNCHRONOUS";
    /// Most writes the persister commits in one transaction.
    batch_max: usize = "4096", "CHARLA_BATCH_MAX";
    /// Longest time, in microseconds, the persister waits to fill a batch once it holds a write.
    batch_wait_us: u64 = "500", "CHARLA_BATCH_WAIT_US";
    /// Requests the persister queues before senders are told to retry (`busy`).
    persist_queue: usize = "65536", "CHARLA_PERSIST_QUEUE";
    /// Largest accepted websocket frame in bytes; larger ones get a `too_large` error.
    max_frame_bytes: usize = "16384", "CHARLA_MAX_FRAME_BYTES";
    /// Longest message text, in characters.
    max_message_chars: usize = "4000", "CHARLA_MAX_MESSAGE_CHARS";
    /// Largest file a visitor or operator may send, in bytes (images, PDF, plain text).
    max_upload_bytes: usize = "5242880", "CHARLA_MAX_UPLOAD_BYTES";
    /// Frames per second a websocket session may send on average; 0 turns the limit off.
    rate_per_sec: u32 = "20", "CHARLA_RATE_PER_SEC";
    /// Frames a session may send in a burst above the average.
    rate_burst: u32 = "60", "CHARLA_RATE_BURST";
    /// Bytes queued for one websocket that its client has not read yet; past it the server closes the socket (1008) instead of buffering without bound.
    max_send_backlog_bytes: usize = "1048576", "CHARLA_MAX_SEND_BACKLOG_BYTES";
    /// Lifetime of an operator's login token, in seconds.
    operator_token_ttl_secs: u64 = "43200", "CHARLA_OPERATOR_TOKEN_TTL_SECS";
    /// Seconds a conversation with nobody attached stays in memory before its actor stops.
    conversation_idle_secs: u64 = "300", "CHARLA_CONVERSATION_IDLE_SECS";
    /// Seconds the server waits for connections to finish when it shuts down.
    shutdown_timeout_secs: u64 = "10", "CHARLA_SHUTDOWN_TIMEOUT_SECS";
    /// SMTP server for outgoing e-mail: `smtp://host:25` (STARTTLS when the server offers it; `?tls=required` insists on it), `smtps://host:465`, with `user:password@` when needed; empty keeps e-mails in the outbox.
    smtp_url: String = "", "CHARLA_SMTP_URL";
    /// Sender of every e-mail, such as `Tienda <admin@example.com>` (CF6); empty means the first administrator's address.
    mail_from: String = "", "CHARLA_MAIL_FROM";
    /// Domain of the reply addresses (`reply+TOKEN@domain`) whose mail reaches the inbound endpoint; empty means the sender's domain.
    reply_domain: String = "", "CHARLA_REPLY_DOMAIN";
    /// Shared secret an inbound mail service sends as `Authorization: Bearer` to `POST /api/inbound/email`; empty turns the endpoint off.
    inbound_secret: String = "", "CHARLA_INBOUND_SECRET";
    /// Seconds an operator's reply may stay unread before it is e-mailed (CF8); replies within the window go in one e-mail.
    unread_email_secs: u64 = "60", "CHARLA_UNREAD_EMAIL_SECS";
    /// Lifetime of a "continue the conversation" link, in seconds.
    continue_link_ttl_secs: u64 = "604800", "CHARLA_CONTINUE_LINK_TTL_SECS";
    /// Key that signs links and reply addresses; empty means one made at first start and kept in the database.
    secret_key: String = "", "CHARLA_SECRET_KEY";
}

fn parse_setting<T: FromStr>(key: &str, env: &str, raw: &str) -> Result<T, ConfigError>
where
    T::Err: fmt::Display,
{
    raw.trim().parse::<T>().map_err(|e| {
        ConfigError(format!(
            "invalid setting {env} (`{key}`): {raw:?} is not accepted: {e}"
        ))
    })
}

/// Which database a URL selects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseKind {
    /// A SQLite file at this path.
    Sqlite(String),
    /// A PostgreSQL server at this URL.
    Postgres(String),
}

impl Config {
    /// Reads the optional TOML file, then lets `CHARLA_*` environment variables override it,
    /// then validates the whole.
    pub fn load(file: Option<&std::path::Path>) -> Result<Config, ConfigError> {
        let mut cfg = Config::defaults()?;
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|e| {
                ConfigError(format!(
                    "cannot read configuration file {}: {e}",
                    path.display()
                ))
            })?;
            cfg.apply_toml(&text)?;
        }
        cfg.apply_env(|name| std::env::var(name).ok())?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Applies the keys of a TOML document.
    pub fn apply_toml(&mut self, text: &str) -> Result<(), ConfigError> {
        let table: toml::Table = text
            .parse()
            .map_err(|e| ConfigError(format!("the configuration file is not valid TOML: {e}")))?;
        for (key, value) in table {
            let raw = match value {
                toml::Value::String(s) => s,
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Float(f) => f.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                other => {
                    return Err(ConfigError(format!(
                        "setting `{key}` in the configuration file must be a string or a number, not {}",
                        other.type_str()
                    )))
                }
            };
            self.set(&key, &raw)?;
        }
        Ok(())
    }

    /// Applies every `CHARLA_*` variable that `lookup` knows.
    pub fn apply_env(
        &mut self,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<(), ConfigError> {
        for s in SETTINGS {
            if let Some(raw) = lookup(s.env) {
                self.set(s.key, &raw)?;
            }
        }
        Ok(())
    }

    /// Checks what a type alone cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |env: &str, why: &str| Err(ConfigError(format!("invalid setting {env}: {why}")));
        if self.database_url.trim().is_empty() {
            return bad("CHARLA_DATABASE_URL", "it is empty");
        }
        let url = &self.public_url;
        if !(url.is_empty() || url.starts_with("http://") || url.starts_with("https://")) {
            return bad(
                "CHARLA_PUBLIC_URL",
                "it must start with http:// or https://",
            );
        }
        if !["full", "normal", "off", "extra"].contains(&self.sqlite_synchronous.as_str()) {
            return bad(
                "CHARLA_SQLITE_SYNCHRONOUS",
                "it must be one of full, normal, extra, off",
            );
        }
        if crate::telemetry::parse_level(&self.log).is_none() {
            return bad(
                "CHARLA_LOG",
                "it must be one of error, warn, info, debug, trace",
            );
        }
        if self.db_pool_size == 0 {
            return bad("CHARLA_DB_POOL_SIZE", "it must be at least 1");
        }
        if self.batch_max == 0 {
            return bad("CHARLA_BATCH_MAX", "it must be at least 1");
        }
        if self.persist_queue == 0 {
            return bad("CHARLA_PERSIST_QUEUE", "it must be at least 1");
        }
        if self.max_frame_bytes < 256 {
            return bad("CHARLA_MAX_FRAME_BYTES", "it must be at least 256");
        }
        if self.max_message_chars == 0 {
            return bad("CHARLA_MAX_MESSAGE_CHARS", "it must be at least 1");
        }
        let smtp = &self.smtp_url;
        if !(smtp.is_empty() || smtp.starts_with("smtp://") || smtp.starts_with("smtps://")) {
            return bad("CHARLA_SMTP_URL", "it must start with smtp:// or smtps://");
        }
        if !self.mail_from.is_empty() && !self.mail_from.contains('@') {
            return bad("CHARLA_MAIL_FROM", "it must hold an e-mail address");
        }
        if self.reply_domain.contains('@') || self.reply_domain.contains(char::is_whitespace) {
            return bad(
                "CHARLA_REPLY_DOMAIN",
                "it must be a bare domain, such as reply.example.com",
            );
        }
        if self.operator_token_ttl_secs == 0 {
            return bad("CHARLA_OPERATOR_TOKEN_TTL_SECS", "it must be at least 1");
        }
        Ok(())
    }

    /// The database this configuration selects.
    pub fn database(&self) -> DatabaseKind {
        let url = self.database_url.trim();
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            DatabaseKind::Postgres(url.to_string())
        } else {
            let path = url.strip_prefix("sqlite://").unwrap_or(url);
            DatabaseKind::Sqlite(path.to_string())
        }
    }

    /// The public base URL, without a trailing slash.
    pub fn public_base(&self) -> String {
        if self.public_url.is_empty() {
            format!("http://{}", self.addr)
        } else {
            self.public_url.trim_end_matches('/').to_string()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_parse_and_validate() {
        let cfg = Config::defaults().expect("defaults parse");
        cfg.validate().expect("defaults are valid");
        assert_eq!(cfg.addr.to_string(), "127.0.0.1:8080");
        assert_eq!(cfg.database(), DatabaseKind::Sqlite("charla.db".into()));
    }

    #[test]
    fn environment_overrides_the_file() {
        let mut cfg = Config::defaults().expect("defaults");
        cfg.apply_toml("addr = \"127.0.0.1:9000\"\nbatch_max = 10\n")
            .expect("toml");
        cfg.apply_env(|n| (n == "CHARLA_ADDR").then(|| "0.0.0.0:7000".to_string()))
            .expect("env");
        assert_eq!(cfg.addr.to_string(), "0.0.0.0:7000");
        assert_eq!(cfg.batch_max, 10);
    }

    #[test]
    fn an_invalid_setting_is_named_in_one_line() {
        let mut cfg = Config::defaults().expect("defaults");
        let err = cfg
            .apply_env(|n| (n == "CHARLA_ADDR").then(|| "not-an-address".to_string()))
            .unwrap_err();
        assert!(err.0.contains("CHARLA_ADDR"), "{err}");
        assert!(!err.0.contains('\n'));
        let err = cfg.apply_toml("no_such_thing = 1").unwrap_err();
        assert!(err.0.contains("no_such_thing"), "{err}");
        cfg.sqlite_synchronous = "sometimes".into();
        assert!(cfg
            .validate()
            .unwrap_err()
            .0
            .contains("CHARLA_SQLITE_SYNCHRONOUS"));
    }

    #[test]
    fn postgres_urls_select_postgres() {
        let mut cfg = Config::defaults().expect("defaults");
        cfg.database_url = "postgres://postgres@127.0.0.1/charla".into();
        assert!(matches!(cfg.database(), DatabaseKind::Postgres(_)));
    }
}
