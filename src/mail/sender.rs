//! The sender: takes e-mails from the outbox and hands them to the SMTP server, with
//! retries and backoff. An e-mail leaves the outbox only when the server accepted it, so
//! nothing is lost while the SMTP server is down or the process restarts.

use super::outbox::Outgoing;
use super::MailSettings;
use crate::clock::SharedClock;
use crate::store::Store;
use lettre::message::{Mailbox, MultiPart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// How often the sender looks at the outbox when nobody woke it.
const POLL: Duration = Duration::from_secs(1);
/// E-mails taken per round.
const BATCH: i64 = 20;
/// Tries before an e-mail is marked failed.
const MAX_ATTEMPTS: i64 = 25;
/// Longest pause between tries, seconds.
const MAX_BACKOFF_SECS: i64 = 300;

/// Starts the sender on the current runtime; it stops when `stop` is set (and `wake`
/// notified).
pub fn spawn(
    store: Store,
    settings: Arc<MailSettings>,
    clock: SharedClock,
    wake: Arc<Notify>,
    stop: Arc<AtomicBool>,
) {
    let Some(url) = settings.smtp_url.clone() else {
        tracing::warn!("CHARLA_SMTP_URL is not set: e-mails wait in the outbox until it is");
        return;
    };
    let transport = match AsyncSmtpTransport::<Tokio1Executor>::from_url(&url) {
        Ok(b) => b.timeout(Some(Duration::from_secs(30))).build(),
        Err(e) => {
            tracing::error!(error = %e, "CHARLA_SMTP_URL cannot be used; e-mails wait in the outbox");
            return;
        }
    };
    actix_web::rt::spawn(async move {
        while !stop.load(Ordering::Relaxed) {
            let now = clock.now_ms();
            let due = store.call(move |s| s.due_outbox(now, BATCH)).await;
            match due {
                Ok(mails) => {
                    for mail in mails {
                        send_one(&store, &settings, &transport, &clock, mail).await;
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot read the outbox; retrying"),
            }
            tokio::select! {
                _ = wake.notified() => {}
                _ = tokio::time::sleep(POLL) => {}
            }
        }
    });
}

async fn send_one(
    store: &Store,
    settings: &MailSettings,
    transport: &AsyncSmtpTransport<Tokio1Executor>,
    clock: &SharedClock,
    mail: Outgoing,
) {
    let id = mail.id;
    let from = match &settings.from {
        Some(f) => Some(f.clone()),
        None => store.call(|s| s.first_admin_email()).await.ok().flatten(),
    };
    let built = from
        .ok_or_else(|| "no sender: set CHARLA_MAIL_FROM or create an administrator".to_string())
        .and_then(|from| build(&from, &mail));
    let result = match built {
        Ok(message) => transport
            .send(message)
            .await
            .map(|_| ())
            .map_err(|e| (e.to_string(), e.is_permanent())),
        // A message that cannot be built will never be: give up at once.
        Err(e) => Err((e, true)),
    };
    let now = clock.now_ms();
    let outcome = match result {
        Ok(()) => {
            tracing::info!(outbox_id = id, conversation_id = mail.conversation_id, kind = %mail.kind, "e-mail sent");
            store.call(move |s| s.outbox_sent(id, now)).await
        }
        Err((why, permanent)) => {
            let attempts = mail.attempts + 1;
            let give_up = attempts >= MAX_ATTEMPTS || (permanent && attempts >= 3);
            let backoff = 1i64 << attempts.min(16);
            let next = now + backoff.min(MAX_BACKOFF_SECS) * 1000;
            tracing::warn!(outbox_id = id, attempts, give_up, error = %why, "e-mail not sent");
            store
                .call(move |s| s.outbox_retry(id, next, &why, give_up))
                .await
        }
    };
    if let Err(e) = outcome {
        tracing::warn!(outbox_id = id, error = %e, "cannot record the e-mail's outcome");
    }
}

/// The message as it goes out: sender, recipient, Reply-To the conversation's address,
/// the Message-ID replies thread on, both parts.
fn build(from: &str, mail: &Outgoing) -> Result<Message, String> {
    let from: Mailbox = from
        .parse()
        .map_err(|e| format!("the sender {from:?} is not an address: {e}"))?;
    let to: Mailbox = mail
        .to_address
        .parse()
        .map_err(|e| format!("the recipient is not an address: {e}"))?;
    let reply_to: Mailbox = mail
        .reply_to
        .parse()
        .map_err(|e| format!("the reply address is not an address: {e}"))?;
    Message::builder()
        .from(from)
        .to(to)
        .reply_to(reply_to)
        .subject(super::templates::one_line(&mail.subject))
        .message_id(Some(mail.message_id.clone()))
        .multipart(MultiPart::alternative_plain_html(
            mail.text_body.clone(),
            mail.html_body.clone(),
        ))
        .map_err(|e| format!("the message cannot be built: {e}"))
}
