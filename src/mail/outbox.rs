//! The durable outbox and the timers that fill it (XB9). A timer fires once: marking it
//! fired, re-checking what it is for (still unread?), composing the e-mail and writing it to
//! the outbox happen in one transaction, so a crash before the commit fires it again after
//! the restart and a crash after it finds the e-mail waiting in the outbox.

use super::links;
use super::templates::{self, Lang, Line, Rendered};
use crate::store::schema::{
    channels, contact_identifiers, conversations, messages, operators, outbox, timers,
};
use crate::store::teams::ChannelSettings;
use crate::store::{Store, StoreError, StoreResult};
use crate::{db_run, db_tx};
use diesel::prelude::*;
use serde::Serialize;

/// What composing needs besides the database.
#[derive(Debug, Clone)]
pub struct Composer {
    /// Signs reply addresses and continue links.
    pub secret: String,
    /// This server's public address, for continue links.
    pub base_url: String,
    /// Domain of reply addresses and Message-IDs.
    pub reply_domain: String,
    /// Lifetime of continue links, ms.
    pub link_ttl_ms: i64,
}

/// A timer that is due.
#[derive(Debug, Clone, Queryable)]
pub struct DueTimer {
    /// Id.
    pub id: i64,
    /// `unread`, `transcript` or `transcript_offer`.
    pub kind: String,
    /// Its conversation.
    pub conversation_id: i64,
}

/// An e-mail waiting to go, or gone.
#[derive(Debug, Clone, Queryable, Selectable, Serialize)]
#[diesel(table_name = outbox)]
pub struct Outgoing {
    /// Id.
    pub id: i64,
    /// `unread` or `transcript`.
    pub kind: String,
    /// Its conversation.
    pub conversation_id: i64,
    /// Recipient.
    pub to_address: String,
    /// Subject.
    pub subject: String,
    /// Plain-text part.
    #[serde(skip)]
    pub text_body: String,
    /// HTML part.
    #[serde(skip)]
    pub html_body: String,
    /// Its Message-ID.
    pub message_id: String,
    /// Its Reply-To.
    pub reply_to: String,
    /// `pending`, `sent`, `failed`, or `cancelled` (an `unread` e-mail whose replies the
    /// visitor read before it could go).
    pub status: String,
    /// Tries so far.
    pub attempts: i64,
    /// Next try, ms.
    pub next_attempt_at: i64,
    /// Why the last try failed.
    pub last_error: Option<String>,
    /// Queued, ms.
    pub created_at: i64,
    /// Sent, ms.
    pub sent_at: Option<i64>,
    /// For an `unread` e-mail, the `seq` of the last operator reply it carries: once the
    /// visitor's read mark reaches it, the e-mail has nothing left to tell (XB9).
    pub covers_seq: Option<i64>,
}

type ConvRow = (Option<i64>, i64, Option<i64>, String);

/// Reads what an e-mail about a conversation needs, inside the firing transaction.
macro_rules! context {
    ($conn:expr, $cid:expr) => {{
        let (visitor_id, visitor_read_seq, contact_id, channel): ConvRow = conversations::table
            .find($cid)
            .select((
                conversations::visitor_id,
                conversations::visitor_read_seq,
                conversations::contact_id,
                conversations::channel,
            ))
            .first($conn)?;
        let (title, settings): (String, String) = channels::table
            .filter(channels::name.eq(&channel))
            .select((channels::title, channels::settings))
            .first($conn)
            .optional()?
            .unwrap_or_else(|| (channel.clone(), "{}".into()));
        let settings: ChannelSettings = serde_json::from_str(&settings).unwrap_or_default();
        // The address the visitor is reached at: a verified one first, then the newest.
        let email: Option<String> = match contact_id {
            Some(c) => contact_identifiers::table
                .filter(contact_identifiers::contact_id.eq(c))
                .filter(contact_identifiers::kind.eq("email"))
                .order((
                    contact_identifiers::verified.desc(),
                    contact_identifiers::id.desc(),
                ))
                .select(contact_identifiers::value)
                .first($conn)
                .optional()?,
            None => None,
        };
        let name: Option<String> = match contact_id {
            Some(c) => crate::store::schema::contacts::table
                .find(c)
                .select(crate::store::schema::contacts::name)
                .first::<String>($conn)
                .optional()?
                .filter(|n| n != crate::crm::contacts::UNNAMED),
            None => None,
        };
        (visitor_id, visitor_read_seq, title, settings, email, name)
    }};
}

/// Marks a timer fired unless it was already; evaluates to whether this call fired it.
macro_rules! claim_timer {
    ($conn:expr, $id:expr, $now:expr) => {{
        diesel::update(timers::table.find($id).filter(timers::fired_at.is_null()))
            .set(timers::fired_at.eq($now))
            .execute($conn)?
            == 1
    }};
}

/// Writes an e-mail to the outbox; evaluates to its id. The Message-ID is made here, once,
/// and stored: every try sends the same one, so receivers can spot a second copy.
macro_rules! enqueue {
    ($conn:expr, $kind:expr, $cid:expr, $to:expr, $mail:expr, $covers:expr, $c:expr, $now:expr) => {{
        let mail: &Rendered = $mail;
        let message_id = format!(
            "<charla.{}.{}@{}>",
            $cid,
            &crate::auth::new_token()[..16],
            $c.reply_domain
        );
        let reply_to = links::reply_address(&$c.secret, $cid, &$c.reply_domain);
        diesel::insert_into(outbox::table)
            .values((
                outbox::kind.eq($kind),
                outbox::conversation_id.eq($cid),
                outbox::to_address.eq($to),
                outbox::subject.eq(&mail.subject),
                outbox::text_body.eq(&mail.text),
                outbox::html_body.eq(&mail.html),
                outbox::message_id.eq(&message_id),
                outbox::reply_to.eq(&reply_to),
                outbox::status.eq("pending"),
                outbox::next_attempt_at.eq($now),
                outbox::created_at.eq($now),
                outbox::covers_seq.eq($covers),
            ))
            .returning(outbox::id)
            .get_result::<i64>($conn)?
    }};
}

type TextRow = (i64, String, String, Option<String>);

impl Store {
    /// Timers due at `now`, oldest first.
    pub fn due_timers(&self, now: i64, limit: i64) -> StoreResult<Vec<DueTimer>> {
        db_run!(self, |conn| {
            Ok(timers::table
                .filter(timers::fired_at.is_null())
                .filter(timers::due_at.le(now))
                .order(timers::due_at)
                .limit(limit)
                .select((timers::id, timers::kind, timers::conversation_id))
                .load(conn)?)
        })
    }

    /// Fires an `unread` timer (CF8, EC2, CF9): when operator replies are still unread, the
    /// channel continues by e-mail and the visitor has an address, one e-mail with every
    /// unread reply and the question before them. Returns the outbox id when it wrote one.
    pub fn fire_unread(&self, timer_id: i64, c: &Composer, now: i64) -> StoreResult<Option<i64>> {
        db_tx!(self, |conn| {
            let Some((_, _, cid)) = timers::table
                .find(timer_id)
                .select((timers::id, timers::kind, timers::conversation_id))
                .first::<(i64, String, i64)>(conn)
                .optional()?
            else {
                return Ok(None);
            };
            if !claim_timer!(conn, timer_id, now) {
                return Ok(None);
            }
            let (visitor_id, read_seq, title, settings, email, name) = context!(conn, cid);
            let (Some(visitor_id), Some(email)) = (visitor_id, email) else {
                return Ok(None);
            };
            if !settings.email_continuity {
                return Ok(None);
            }
            let replies: Vec<TextRow> = messages::table
                .left_join(operators::table.on(operators::id.eq(messages::author_id)))
                .filter(messages::conversation_id.eq(cid))
                .filter(messages::seq.gt(read_seq))
                .filter(messages::author_kind.eq("operator"))
                .filter(messages::kind.eq("text"))
                .order(messages::seq)
                .select((
                    messages::seq,
                    messages::body,
                    messages::author_kind,
                    operators::name.nullable(),
                ))
                .load(conn)?;
            let (Some(first), Some(last)) =
                (replies.first().map(|r| r.0), replies.last().map(|r| r.0))
            else {
                return Ok(None);
            };
            let mut question: Vec<(i64, String)> = messages::table
                .filter(messages::conversation_id.eq(cid))
                .filter(messages::seq.lt(first))
                .filter(messages::author_kind.eq("visitor"))
                .filter(messages::kind.eq("text"))
                .order(messages::seq.desc())
                .limit(3)
                .select((messages::seq, messages::body))
                .load(conn)?;
            question.reverse();
            let lang = Lang::from_setting(&settings.language);
            let you = templates::you(lang);
            let question: Vec<Line> = question
                .into_iter()
                .map(|(_, text)| Line {
                    author: you.into(),
                    text,
                })
                .collect();
            let replies: Vec<Line> = replies
                .into_iter()
                .map(|(_, text, _, op)| Line {
                    author: op.unwrap_or_else(|| title.clone()),
                    text,
                })
                .collect();
            let code = links::continue_code(&c.secret, cid, visitor_id, now + c.link_ttl_ms);
            let url = links::continue_url(&c.base_url, &settings.site_url, &code);
            let mail = templates::unread(
                lang,
                &title,
                cid,
                name.as_deref(),
                &question,
                &replies,
                &url,
            );
            let id = enqueue!(conn, "unread", cid, &email, &mail, Some(last), c, now);
            Ok::<_, StoreError>(Some(id))
        })
    }

    /// Fires a `transcript` timer (CF5): the whole conversation as the visitor saw it, to
    /// the address they gave.
    pub fn fire_transcript(
        &self,
        timer_id: i64,
        c: &Composer,
        now: i64,
    ) -> StoreResult<Option<i64>> {
        db_tx!(self, |conn| {
            let Some(cid) = timers::table
                .find(timer_id)
                .select(timers::conversation_id)
                .first::<i64>(conn)
                .optional()?
            else {
                return Ok(None);
            };
            if !claim_timer!(conn, timer_id, now) {
                return Ok(None);
            }
            let (visitor_id, _, title, settings, contact_email, _) = context!(conn, cid);
            // The address the visitor typed in the transcript form, not whichever the
            // contact has: they asked for the copy there.
            let asked: Vec<Option<String>> = messages::table
                .filter(messages::conversation_id.eq(cid))
                .filter(messages::kind.eq("event"))
                .filter(messages::body.eq("form"))
                .order(messages::seq.desc())
                .limit(20)
                .select(messages::meta)
                .load(conn)?;
            let given = asked.into_iter().flatten().find_map(|m| {
                let v: serde_json::Value = serde_json::from_str(&m).ok()?;
                if v["form"] == "transcript" {
                    v["fields"]["email"].as_str().map(str::to_string)
                } else {
                    None
                }
            });
            let (Some(visitor_id), Some(email)) = (visitor_id, given.or(contact_email)) else {
                return Ok(None);
            };
            let lines: Vec<TextRow> = messages::table
                .left_join(operators::table.on(operators::id.eq(messages::author_id)))
                .filter(messages::conversation_id.eq(cid))
                .filter(messages::kind.eq("text"))
                .order(messages::seq)
                .select((
                    messages::seq,
                    messages::body,
                    messages::author_kind,
                    operators::name.nullable(),
                ))
                .load(conn)?;
            let lang = Lang::from_setting(&settings.language);
            let lines: Vec<Line> = lines
                .into_iter()
                .map(|(_, text, kind, op)| Line {
                    author: if kind == "visitor" {
                        templates::you(lang).into()
                    } else {
                        op.unwrap_or_else(|| title.clone())
                    },
                    text,
                })
                .collect();
            let code = links::continue_code(&c.secret, cid, visitor_id, now + c.link_ttl_ms);
            let url = links::continue_url(&c.base_url, &settings.site_url, &code);
            let mail = templates::transcript(lang, &title, cid, &lines, &url);
            let id = enqueue!(conn, "transcript", cid, &email, &mail, None::<i64>, c, now);
            Ok::<_, StoreError>(Some(id))
        })
    }

    /// E-mails due to go at `now`.
    pub fn due_outbox(&self, now: i64, limit: i64) -> StoreResult<Vec<Outgoing>> {
        db_run!(self, |conn| {
            Ok(outbox::table
                .filter(outbox::status.eq("pending"))
                .filter(outbox::next_attempt_at.le(now))
                .order(outbox::id)
                .limit(limit)
                .select(Outgoing::as_select())
                .load(conn)?)
        })
    }

    /// Whether e-mail `id` should still go, asked just before each try (CF8, EC4, XB9): an
    /// `unread` e-mail whose replies the visitor has read since it was queued (in the chat,
    /// while the SMTP server was down, say) is marked `cancelled` instead. One statement,
    /// so the check and the mark cannot be split by a read mark arriving in between.
    pub fn outbox_still_wanted(&self, id: i64) -> StoreResult<bool> {
        db_run!(self, |conn| {
            let read = conversations::table
                .filter(conversations::id.eq(outbox::conversation_id))
                .select(conversations::visitor_read_seq)
                .single_value();
            let cancelled = diesel::update(
                outbox::table
                    .find(id)
                    .filter(outbox::status.eq("pending"))
                    .filter(outbox::covers_seq.le(read)),
            )
            .set(outbox::status.eq("cancelled"))
            .execute(conn)?;
            Ok(cancelled == 0)
        })
    }

    /// An e-mail went out.
    pub fn outbox_sent(&self, id: i64, now: i64) -> StoreResult<()> {
        db_run!(self, |conn| {
            diesel::update(outbox::table.find(id))
                .set((
                    outbox::status.eq("sent"),
                    outbox::sent_at.eq(now),
                    outbox::attempts.eq(outbox::attempts + 1),
                ))
                .execute(conn)?;
            Ok(())
        })
    }

    /// A try failed: try again at `next`, or give up.
    pub fn outbox_retry(&self, id: i64, next: i64, error: &str, give_up: bool) -> StoreResult<()> {
        let error: String = error.chars().take(500).collect();
        db_run!(self, |conn| {
            diesel::update(outbox::table.find(id))
                .set((
                    outbox::status.eq(if give_up { "failed" } else { "pending" }),
                    outbox::next_attempt_at.eq(next),
                    outbox::last_error.eq(&error),
                    outbox::attempts.eq(outbox::attempts + 1),
                ))
                .execute(conn)?;
            Ok(())
        })
    }

    /// The e-mails of a conversation, newest first (the console shows them).
    pub fn conversation_emails(&self, conversation_id: i64) -> StoreResult<Vec<Outgoing>> {
        db_run!(self, |conn| {
            Ok(outbox::table
                .filter(outbox::conversation_id.eq(conversation_id))
                .order(outbox::id.desc())
                .limit(100)
                .select(Outgoing::as_select())
                .load(conn)?)
        })
    }

    /// The conversation an e-mail with one of these Message-IDs belonged to, with the
    /// address it went to (for threading by In-Reply-To/References).
    pub fn conversation_of_message_ids(
        &self,
        ids: &[String],
    ) -> StoreResult<Option<(i64, String)>> {
        if ids.is_empty() {
            return Ok(None);
        }
        db_run!(self, |conn| {
            Ok(outbox::table
                .filter(outbox::message_id.eq_any(ids))
                .order(outbox::id.desc())
                .select((outbox::conversation_id, outbox::to_address))
                .first(conn)
                .optional()?)
        })
    }

    /// The addresses a conversation's e-mails went to.
    pub fn conversation_addresses(&self, conversation_id: i64) -> StoreResult<Vec<String>> {
        db_run!(self, |conn| {
            Ok(outbox::table
                .filter(outbox::conversation_id.eq(conversation_id))
                .select(outbox::to_address)
                .distinct()
                .load(conn)?)
        })
    }

    /// The key that signs links, made at first start when the configuration gives none.
    pub fn server_secret(&self) -> StoreResult<String> {
        use crate::store::schema::settings;
        db_run!(self, |conn| {
            let found: Option<String> = settings::table
                .find("server.secret")
                .select(settings::value)
                .first(conn)
                .optional()?;
            if let Some(s) = found {
                return Ok(s);
            }
            let fresh = format!("{}{}", crate::auth::new_token(), crate::auth::new_token());
            diesel::insert_into(settings::table)
                .values((
                    settings::key.eq("server.secret"),
                    settings::value.eq(&fresh),
                ))
                .on_conflict_do_nothing()
                .execute(conn)?;
            // Another process may have won the race: read what is stored.
            Ok(settings::table
                .find("server.secret")
                .select(settings::value)
                .first(conn)?)
        })
    }

    /// The first administrator's address (the default sender, CF6).
    pub fn first_admin_email(&self) -> StoreResult<Option<String>> {
        db_run!(self, |conn| {
            Ok(operators::table
                .filter(operators::is_admin.eq(true))
                .order(operators::id)
                .select(operators::email)
                .first(conn)
                .optional()?)
        })
    }
}
