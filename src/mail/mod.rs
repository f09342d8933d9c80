//! E-mail to visitors (CF5, CF6, CF8, CF9, CF10, EC1–EC4, XB9, XB10): templates, signed
//! links and reply addresses, the durable outbox and the timers that fill it, the sender,
//! and replies by e-mail back into the conversation.

pub mod inbound;
pub mod links;
pub mod outbox;
pub mod reply;
pub mod sender;
pub mod templates;

use crate::config::Config;
use crate::store::Store;

/// Mail settings resolved at start.
#[derive(Debug, Clone)]
pub struct MailSettings {
    /// Composes e-mails (secret, addresses).
    pub composer: outbox::Composer,
    /// The SMTP server, or none (e-mails wait in the outbox).
    pub smtp_url: Option<String>,
    /// The configured sender, if any (else the first administrator's address).
    pub from: Option<String>,
}

impl MailSettings {
    /// Resolves the settings: the signing key from the configuration or the database, the
    /// reply domain from the configuration, the sender's domain, or `localhost`.
    pub fn resolve(cfg: &Config, store: &Store) -> Result<MailSettings, String> {
        let secret = if cfg.secret_key.is_empty() {
            store
                .server_secret()
                .map_err(|e| format!("cannot read the server's signing key: {e}"))?
        } else {
            cfg.secret_key.clone()
        };
        let from = Some(cfg.mail_from.clone()).filter(|f| !f.is_empty());
        let reply_domain = if !cfg.reply_domain.is_empty() {
            cfg.reply_domain.clone()
        } else {
            from.as_deref()
                .and_then(|f| f.rsplit('@').next())
                .map(|d| d.trim_end_matches('>').trim().to_string())
                .filter(|d| !d.is_empty())
                .unwrap_or_else(|| "localhost".into())
        };
        Ok(MailSettings {
            composer: outbox::Composer {
                secret,
                base_url: cfg.public_base(),
                reply_domain,
                link_ttl_ms: (cfg.continue_link_ttl_secs as i64).saturating_mul(1000),
            },
            smtp_url: Some(cfg.smtp_url.clone()).filter(|u| !u.is_empty()),
            from,
        })
    }
}
