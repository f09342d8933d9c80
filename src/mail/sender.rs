//! The sender: takes e-mails from the outbox and hands them to the SMTP server, with
//! retries and backoff. An e-mail leaves the outbox only when the server accepted it, so
//! nothing is lost while the SMTP server is down or the process restarts.
//!
//! What ends the retries is the kind of failure, not a count of tries: a refusal the
//! server says is permanent (5xx) or an e-mail that cannot be written ends it at once;
//! everything else (connection refused, time-outs, 4xx, database trouble, no sender
//! yet) is retried with capped exponential backoff until the e-mail is [`MAX_AGE_MS`] old.
//! Before each try an unread-reply e-mail re-checks that its replies are still unread.

use super::outbox::Outgoing;
use super::MailSettings;
use crate::clock::SharedClock;
use crate::store::{Store, StoreResult};
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::SMTP_PORT;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// How often the sender looks at the outbox when nobody woke it.
const POLL: Duration = Duration::from_secs(1);
/// E-mails taken per round.
const BATCH: i64 = 20;
/// How long after it was queued an e-mail keeps being retried through transient
/// failures: three days outlast an SMTP outage over a long weekend, and a reply older
/// than that is better given up (the console shows it `failed`) than delivered stale.
pub const MAX_AGE_MS: i64 = 3 * 24 * 3_600_000;
/// Longest pause between tries, seconds.
const MAX_BACKOFF_SECS: i64 = 300;
/// Longest an SMTP conversation may take.
const SMTP_TIMEOUT: Duration = Duration::from_secs(30);
/// Tries at recording that the SMTP server accepted an e-mail, and the first pause between
/// them (doubling: about 3 s in all). An accepted e-mail still marked `pending` goes out
/// again at the next poll, so a database hiccup there is worth waiting out.
const MARK_SENT_TRIES: u32 = 6;
/// See [`MARK_SENT_TRIES`].
const MARK_SENT_FIRST_PAUSE: Duration = Duration::from_millis(100);

/// Why a try did not send.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Failure {
    /// May work later: the server is unreachable or slow, said 4xx, the database did not
    /// answer, no sender is configured yet.
    Transient {
        reason: &'static str,
        detail: String,
    },
    /// Never will: the server refused with 5xx, or the e-mail cannot be written.
    Permanent {
        reason: &'static str,
        detail: String,
    },
}

impl Failure {
    fn transient(reason: &'static str, detail: impl Into<String>) -> Failure {
        Failure::Transient {
            reason,
            detail: detail.into(),
        }
    }

    fn permanent(reason: &'static str, detail: impl Into<String>) -> Failure {
        Failure::Permanent {
            reason,
            detail: detail.into(),
        }
    }

    /// What the SMTP client reported, sorted.
    fn of_smtp(e: &lettre::transport::smtp::Error) -> Failure {
        let detail = e.to_string();
        if e.is_permanent() {
            Failure::permanent("smtp_refused", detail)
        } else if e.is_transient() {
            Failure::transient("smtp_deferred", detail)
        } else if e.is_timeout() {
            Failure::transient("smtp_timeout", detail)
        } else {
            Failure::transient("smtp_unreachable", detail)
        }
    }

    fn is_permanent(&self) -> bool {
        matches!(self, Failure::Permanent { .. })
    }

    /// A word for logs: never the detail, which may quote addresses (STYLE habit 14).
    fn reason(&self) -> &'static str {
        match self {
            Failure::Transient { reason, .. } | Failure::Permanent { reason, .. } => reason,
        }
    }

    /// The whole story, for the outbox row the console shows.
    fn detail(&self) -> &str {
        match self {
            Failure::Transient { detail, .. } | Failure::Permanent { detail, .. } => detail,
        }
    }
}

/// What becomes of an e-mail after a failed try.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// Try again at this time, ms.
    RetryAt(i64),
    /// Mark it failed.
    GiveUp,
}

/// The retry rule: a permanent failure gives up at once; a transient one retries after
/// 1 s, 2 s, 4 s … up to [`MAX_BACKOFF_SECS`], until the e-mail is [`MAX_AGE_MS`] old.
/// `attempts` counts the tries so far, this one included.
fn after_failure(permanent: bool, attempts: i64, created_at: i64, now: i64) -> Verdict {
    if permanent || now.saturating_sub(created_at) >= MAX_AGE_MS {
        return Verdict::GiveUp;
    }
    let backoff_secs = (1i64 << (attempts - 1).clamp(0, 16)).min(MAX_BACKOFF_SECS);
    Verdict::RetryAt(now + backoff_secs * 1000)
}

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
    let transport = match transport_url(&url)
        .and_then(|u| AsyncSmtpTransport::<Tokio1Executor>::from_url(&u).map_err(|e| e.to_string()))
    {
        Ok(b) => b.timeout(Some(SMTP_TIMEOUT)).build(),
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

/// The URL lettre is given. `CHARLA_SMTP_URL` promises STARTTLS whenever the server
/// offers it for `smtp://`, but lettre reads `smtp://` without a `tls` parameter as
/// plaintext only: such a URL gets `tls=opportunistic`, keeping port 25 when it names none
/// (lettre's default with that parameter would be 587). `?tls=required`, `smtps://` and
/// the rest pass unchanged. Errors never quote the URL: it may hold a password.
fn transport_url(raw: &str) -> Result<String, String> {
    let mut url = url::Url::parse(raw).map_err(|e| format!("it is not a URL: {e}"))?;
    if url.scheme() != "smtp" || url.query_pairs().any(|(key, _)| key == "tls") {
        return Ok(raw.to_string());
    }
    if url.port().is_none() {
        url.set_port(Some(SMTP_PORT))
            .map_err(|()| "it names no host".to_string())?;
    }
    url.query_pairs_mut().append_pair("tls", "opportunistic");
    Ok(url.into())
}

/// One try at one e-mail, and its outcome recorded.
async fn send_one(
    store: &Store,
    settings: &MailSettings,
    transport: &AsyncSmtpTransport<Tokio1Executor>,
    clock: &SharedClock,
    mail: Outgoing,
) {
    let id = mail.id;
    let result = attempt(store, settings, transport, &mail).await;
    let now = clock.now_ms();
    let outcome = match result {
        Ok(Tried::Cancelled) => {
            tracing::info!(
                outbox_id = id,
                conversation_id = mail.conversation_id,
                "the visitor read the replies meanwhile: e-mail cancelled"
            );
            return;
        }
        Ok(Tried::Sent) => {
            tracing::info!(outbox_id = id, conversation_id = mail.conversation_id, kind = %mail.kind, "e-mail sent");
            if let Err(e) = mark_sent(store, id, now).await {
                tracing::error!(outbox_id = id, error = %e, "the e-mail went out but cannot be marked sent: it will go again, with the same Message-ID");
            }
            return;
        }
        Err(failure) => {
            let attempts = mail.attempts + 1;
            let verdict = after_failure(failure.is_permanent(), attempts, mail.created_at, now);
            let (give_up, next) = match verdict {
                Verdict::GiveUp => (true, now),
                Verdict::RetryAt(at) => (false, at),
            };
            tracing::warn!(
                outbox_id = id,
                conversation_id = mail.conversation_id,
                attempts,
                give_up,
                reason = failure.reason(),
                "e-mail not sent"
            );
            let why = failure.detail().to_string();
            store
                .call(move |s| s.outbox_retry(id, next, &why, give_up))
                .await
        }
    };
    if let Err(e) = outcome {
        tracing::warn!(outbox_id = id, error = %e, "cannot record the e-mail's outcome");
    }
}

/// What a try did, when it did not fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tried {
    /// The SMTP server accepted the e-mail.
    Sent,
    /// The e-mail was no longer wanted (its replies were read) and is marked so.
    Cancelled,
}

/// One try: re-check that the e-mail is still wanted (XB9: an unread reply read in the
/// chat meanwhile is not e-mailed), find the sender, write the message, hand it over.
async fn attempt(
    store: &Store,
    settings: &MailSettings,
    transport: &AsyncSmtpTransport<Tokio1Executor>,
    mail: &Outgoing,
) -> Result<Tried, Failure> {
    let id = mail.id;
    let wanted = store
        .call(move |s| s.outbox_still_wanted(id))
        .await
        .map_err(|e| Failure::transient("database", format!("cannot re-check the e-mail: {e}")))?;
    if !wanted {
        return Ok(Tried::Cancelled);
    }
    let from = sender(store, settings).await?;
    let message = build(&from, mail)?;
    transport
        .send(message)
        .await
        .map_err(|e| Failure::of_smtp(&e))?;
    Ok(Tried::Sent)
}

/// Records that the SMTP server accepted e-mail `id`, trying [`MARK_SENT_TRIES`] times.
/// Past them (or after a crash before the commit) the e-mail is sent again: delivery is
/// at-least-once in that window, and its stored Message-ID lets receivers see the copy.
async fn mark_sent(store: &Store, id: i64, now: i64) -> StoreResult<()> {
    let mut pause = MARK_SENT_FIRST_PAUSE;
    let mut tries = 1;
    loop {
        match store.call(move |s| s.outbox_sent(id, now)).await {
            Ok(()) => return Ok(()),
            Err(e) if tries >= MARK_SENT_TRIES => return Err(e),
            Err(e) => {
                tracing::warn!(outbox_id = id, tries, error = %e, "cannot mark the e-mail sent; retrying");
            }
        }
        tokio::time::sleep(pause).await;
        pause *= 2;
        tries += 1;
    }
}

/// The sender's address: the configured one, else the first administrator's (CF6). A
/// database that does not answer, or no administrator yet, is worth waiting for.
async fn sender(store: &Store, settings: &MailSettings) -> Result<String, Failure> {
    if let Some(from) = &settings.from {
        return Ok(from.clone());
    }
    match store.call(|s| s.first_admin_email()).await {
        Ok(Some(from)) => Ok(from),
        Ok(None) => Err(Failure::transient(
            "no_sender",
            "no sender yet: set CHARLA_MAIL_FROM or create an administrator",
        )),
        Err(e) => Err(Failure::transient(
            "database",
            format!("cannot read the sender's address: {e}"),
        )),
    }
}

/// The message as it goes out: sender, recipient, Reply-To the conversation's address,
/// the Message-ID replies thread on, both parts. An address that does not parse never
/// will: that failure is permanent.
fn build(from: &str, mail: &Outgoing) -> Result<Message, Failure> {
    let invalid = |detail: String| Failure::permanent("invalid_message", detail);
    let from: Mailbox = from
        .parse()
        .map_err(|e| invalid(format!("the sender {from:?} is not an address: {e}")))?;
    let to: Mailbox = mail
        .to_address
        .parse()
        .map_err(|e| invalid(format!("the recipient is not an address: {e}")))?;
    let reply_to: Mailbox = mail
        .reply_to
        .parse()
        .map_err(|e| invalid(format!("the reply address is not an address: {e}")))?;
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
        .map_err(|e| invalid(format!("the message cannot be built: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3_600_000;

    #[test]
    fn transient_failures_back_off_and_retry_until_the_age_limit() {
        let t0 = 1_000_000;
        assert_eq!(
            after_failure(false, 1, t0, t0),
            Verdict::RetryAt(t0 + 1_000)
        );
        assert_eq!(
            after_failure(false, 2, t0, t0),
            Verdict::RetryAt(t0 + 2_000)
        );
        assert_eq!(
            after_failure(false, 3, t0, t0),
            Verdict::RetryAt(t0 + 4_000)
        );
        // Capped at five minutes, however many tries came before: hundreds, not 25.
        let now = t0 + 60 * HOUR;
        assert_eq!(
            after_failure(false, 700, t0, now),
            Verdict::RetryAt(now + MAX_BACKOFF_SECS * 1000)
        );
        assert_eq!(
            after_failure(false, 10_000, t0, t0 + MAX_AGE_MS - 1),
            Verdict::RetryAt(t0 + MAX_AGE_MS - 1 + MAX_BACKOFF_SECS * 1000)
        );
        assert_eq!(
            after_failure(false, 10_000, t0, t0 + MAX_AGE_MS),
            Verdict::GiveUp
        );
    }

    #[test]
    fn smtp_urls_without_a_tls_parameter_use_starttls_when_offered() {
        let cases = [
            (
                "smtp://127.0.0.1:2525",
                "smtp://127.0.0.1:2525?tls=opportunistic",
            ),
            (
                "smtp://mail.example.com",
                "smtp://mail.example.com:25?tls=opportunistic",
            ),
            (
                "smtp://ana:p%40ss@mail.example.com:587/client.example.com",
                "smtp://ana:p%40ss@mail.example.com:587/client.example.com?tls=opportunistic",
            ),
            (
                "smtp://mail.example.com:587?tls=required",
                "smtp://mail.example.com:587?tls=required",
            ),
            (
                "smtp://relay.local:25?tls=opportunistic",
                "smtp://relay.local:25?tls=opportunistic",
            ),
            ("smtps://mail.example.com", "smtps://mail.example.com"),
        ];
        for (given, used) in cases {
            assert_eq!(transport_url(given).as_deref(), Ok(used), "{given}");
            assert!(
                AsyncSmtpTransport::<Tokio1Executor>::from_url(used).is_ok(),
                "lettre takes {used}"
            );
        }
        let err = transport_url("smtp://ana:secret@[::1")
            .err()
            .unwrap_or_default();
        assert!(!err.is_empty() && !err.contains("secret"), "{err}");
    }

    #[test]
    fn a_permanent_refusal_gives_up_at_once() {
        assert_eq!(after_failure(true, 1, 0, 0), Verdict::GiveUp);
    }

    #[test]
    fn an_address_that_does_not_parse_is_a_permanent_failure() {
        let mail = Outgoing {
            id: 1,
            kind: "unread".into(),
            conversation_id: 1,
            to_address: "not an address".into(),
            subject: "s".into(),
            text_body: "t".into(),
            html_body: "h".into(),
            message_id: "<charla.1.x@example.com>".into(),
            reply_to: "reply+c1-00@example.com".into(),
            status: "pending".into(),
            attempts: 0,
            next_attempt_at: 0,
            last_error: None,
            created_at: 0,
            sent_at: None,
            covers_seq: None,
        };
        let failure = build("shop@example.com", &mail).err();
        assert_eq!(
            failure.as_ref().map(Failure::reason),
            Some("invalid_message")
        );
        assert!(failure.is_some_and(|f| f.is_permanent()));
    }
}
