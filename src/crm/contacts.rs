//! The CRM's records: contacts, their identifiers with a trust level, merge suggestions and
//! merges (ID1, ID3, CF4, XB11), the customer card (OC16, OC20), export and erasure (XB6).
//!
//! The identity rules, in one place (`Store::identify`):
//! - a **verified** identifier (a signed widget identity, channel metadata, a verified
//!   e-mail reply) that another contact holds verified is the same person: the visitor's
//!   contact is merged into that one, automatically, with an audit record;
//! - a **typed** identifier (what a visitor writes in a form) that another contact holds
//!   never links to it: the visitor gets a contact of their own (a lead) and operators get a
//!   merge suggestion to accept or reject, so nobody reaches someone else's history by
//!   typing their e-mail;
//! - anything new is added to the visitor's contact, created as a lead when needed;
//! - the visitor's conversations follow their contact, except those an operator linked to
//!   another contact by hand (XB2): a form never undoes an operator's decision, and the
//!   operator's link never makes the visitor that contact (what the visitor types next is
//!   theirs, not the customer's).

use crate::model::Named;
use crate::store::schema::{
    attachments, contact_identifiers, contact_merges, contacts, conversations, drafts, erasures,
    merge_suggestions, messages, operators, outbox, timers, visitors,
};
use crate::store::{Store, StoreError, StoreResult};
use crate::{db_run, db_tx};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};

/// What a contact is known by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdKind {
    /// An e-mail address, lower-case.
    Email,
    /// A phone number, E.164.
    Phone,
    /// The id of a logged-in user of the site, from a signed widget identity.
    ExternalId,
}

impl IdKind {
    /// The value stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            IdKind::Email => "email",
            IdKind::Phone => "phone",
            IdKind::ExternalId => "external_id",
        }
    }
}

/// An identifier someone claims for a contact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// What kind.
    pub kind: IdKind,
    /// Normalised value.
    pub value: String,
    /// Vouched for, or merely typed.
    pub verified: bool,
    /// Where it came from: `form`, `widget_identity`, `operator`, `email_reply`...
    pub source: &'static str,
}

/// A contact as stored.
#[derive(Debug, Clone, Queryable, Selectable, Serialize)]
#[diesel(table_name = contacts)]
pub struct Contact {
    /// Id.
    pub id: i64,
    /// Display name (what the visitor gave, or the operator's first and last name).
    pub name: String,
    /// The operator whose customer this is.
    pub owner_id: Option<i64>,
    /// Created, ms.
    pub created_at: i64,
    /// Last change, ms.
    pub updated_at: i64,
    /// First name (OC16).
    pub first_name: Option<String>,
    /// Last name (OC16).
    pub last_name: Option<String>,
    /// Postal address (OC16).
    pub address: Option<String>,
    /// The VIP tag (OC16).
    pub vip: bool,
    /// The BAD tag (OC16).
    pub bad: bool,
    /// Merged into this contact; this one only redirects.
    pub merged_into: Option<i64>,
    /// Erased at (XB6).
    pub erased_at: Option<i64>,
}

/// An identifier as stored.
#[derive(Debug, Clone, Queryable, Selectable, Serialize)]
#[diesel(table_name = contact_identifiers)]
pub struct Identifier {
    /// Id.
    pub id: i64,
    /// Whose.
    #[serde(skip)]
    pub contact_id: i64,
    /// `email`, `phone` or `external_id`.
    pub kind: String,
    /// Normalised value.
    pub value: String,
    /// Vouched for.
    pub verified: bool,
    /// Where it came from.
    pub source: String,
    /// Added, ms.
    pub created_at: i64,
}

/// One conversation of a customer's card (OC20).
#[derive(Debug, Clone, Serialize)]
pub struct ContactConversation {
    /// Id and number.
    pub id: i64,
    /// Channel name.
    pub channel: String,
    /// `open` or `closed`.
    pub status: String,
    /// Started, ms.
    pub created_at: i64,
    /// Messages written (text), by both sides.
    pub messages: i64,
}

/// A merge suggestion (XB11).
#[derive(Debug, Clone, Serialize)]
pub struct Suggestion {
    /// Id.
    pub id: i64,
    /// The contact that claimed the identifier (usually a new lead).
    pub contact: Named,
    /// The contact that already had it.
    pub candidate: Named,
    /// The identifier's kind.
    pub kind: String,
    /// The identifier.
    pub value: String,
    /// `pending`, `accepted`, `rejected` or `superseded`.
    pub status: String,
    /// Made, ms.
    pub created_at: i64,
}

/// The customer card (OC16, OC20).
#[derive(Debug, Clone, Serialize)]
pub struct Card {
    /// The contact.
    #[serde(flatten)]
    pub contact: Contact,
    /// Its identifiers.
    pub identifiers: Vec<Identifier>,
    /// Its main e-mail (verified first), for the card.
    pub email: Option<String>,
    /// Its main phone (verified first), for the card.
    pub phone: Option<String>,
    /// Its conversations, newest first.
    pub conversations: Vec<ContactConversation>,
    /// Pending suggestions that involve it.
    pub suggestions: Vec<Suggestion>,
}

/// What identifying a visitor did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Identified {
    /// The visitor's contact now.
    pub contact_id: i64,
    /// Its display name.
    pub name: String,
    /// A lead was created for the visitor.
    pub created: bool,
    /// Merge suggestions raised (typed claims matching someone else).
    pub suggestions: Vec<i64>,
    /// The visitor's former contact, merged into this one (verified match).
    pub merged_from: Option<i64>,
    /// Conversations whose contact changed (their open actors need the new header).
    pub moved: Vec<i64>,
    /// The visitor's conversations an operator linked to another contact by hand (XB2):
    /// left where they are.
    pub kept: Vec<i64>,
}

/// What a merge did.
#[derive(Debug, Clone, Serialize)]
pub struct Merged {
    /// The contact that remains.
    pub into: i64,
    /// Its display name.
    pub name: String,
    /// The conversations moved to it.
    pub moved: Vec<i64>,
}

/// Fields an operator edits on the card (OC16); `None` leaves one alone, an empty string
/// clears it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContactChange {
    /// Display name.
    #[serde(default)]
    pub name: Option<String>,
    /// First name.
    #[serde(default)]
    pub first_name: Option<String>,
    /// Last name.
    #[serde(default)]
    pub last_name: Option<String>,
    /// Address.
    #[serde(default)]
    pub address: Option<String>,
    /// VIP tag.
    #[serde(default)]
    pub vip: Option<bool>,
    /// BAD tag.
    #[serde(default)]
    pub bad: Option<bool>,
    /// An e-mail to add (typed by the operator).
    #[serde(default)]
    pub email: Option<String>,
    /// A phone to add (typed by the operator).
    #[serde(default)]
    pub phone: Option<String>,
}

/// The name a new lead gets when the visitor gave none.
pub const UNNAMED: &str = "Visitor";

fn blank_to_none(s: &str) -> Option<String> {
    let t = s.trim();
    (!t.is_empty()).then(|| t.to_string())
}

/// Files these visitors uploaded and never sent in a message (XB6: theirs all the same).
macro_rules! unsent_uploads_of {
    ($visitor_ids:expr) => {
        attachments::conversation_id
            .is_null()
            .and(attachments::uploader_kind.eq("visitor"))
            .and(attachments::uploader_id.eq_any($visitor_ids))
    };
}

/// Follows `merged_into` to the contact that remains.
macro_rules! live_contact {
    ($conn:expr, $id:expr) => {{
        let mut id: i64 = $id;
        for _ in 0..16 {
            let next: Option<i64> = contacts::table
                .find(id)
                .select(contacts::merged_into)
                .first::<Option<i64>>($conn)
                .optional()?
                .flatten();
            match next {
                Some(n) => id = n,
                None => break,
            }
        }
        id
    }};
}

/// The contact a visitor is now (following merges), if the visitor has one.
macro_rules! visitor_contact {
    ($conn:expr, $visitor_id:expr) => {{
        let contact: Option<i64> = visitors::table
            .find($visitor_id)
            .select(visitors::contact_id)
            .first::<Option<i64>>($conn)
            .optional()?
            .flatten();
        match contact {
            Some(id) => Some(live_contact!($conn, id)),
            None => None,
        }
    }};
}

/// Suggests merging `$contact` with every other contact that holds `$claim`'s identifier,
/// unless the pair was suggested (and perhaps decided) before; evaluates to the new
/// suggestions' ids. A typed claim never links; this is what it does instead (XB11).
macro_rules! raise_suggestions {
    ($conn:expr, $contact:expr, $claim:expr, $now:expr) => {{
        let contact_id: i64 = $contact;
        let claim: &Claim = $claim;
        let others: Vec<i64> = contact_identifiers::table
            .inner_join(contacts::table)
            .filter(contact_identifiers::kind.eq(claim.kind.as_str()))
            .filter(contact_identifiers::value.eq(&claim.value))
            .filter(contact_identifiers::contact_id.ne(contact_id))
            .filter(contacts::merged_into.is_null())
            .filter(contacts::erased_at.is_null())
            .select(contact_identifiers::contact_id)
            .load($conn)?;
        let mut raised: Vec<i64> = Vec::new();
        for other in others {
            let known: i64 = merge_suggestions::table
                .filter(
                    (merge_suggestions::contact_id
                        .eq(contact_id)
                        .and(merge_suggestions::candidate_id.eq(other)))
                    .or(merge_suggestions::contact_id
                        .eq(other)
                        .and(merge_suggestions::candidate_id.eq(contact_id))),
                )
                .count()
                .get_result($conn)?;
            if known > 0 {
                continue;
            }
            let id: i64 = diesel::insert_into(merge_suggestions::table)
                .values((
                    merge_suggestions::contact_id.eq(contact_id),
                    merge_suggestions::candidate_id.eq(other),
                    merge_suggestions::kind.eq(claim.kind.as_str()),
                    merge_suggestions::value.eq(&claim.value),
                    merge_suggestions::status.eq("pending"),
                    merge_suggestions::created_at.eq($now),
                ))
                .returning(merge_suggestions::id)
                .get_result($conn)?;
            raised.push(id);
        }
        raised
    }};
}

/// Moves everything of contact `$from` into `$into` and records it; evaluates to the ids
/// of the conversations moved.
macro_rules! merge_into {
    ($conn:expr, $from:expr, $into:expr, $by:expr, $reason:expr, $now:expr) => {{
        let (from, into): (i64, i64) = ($from, $into);
        let moved: Vec<i64> = conversations::table
            .filter(conversations::contact_id.eq(from))
            .select(conversations::id)
            .load($conn)?;
        diesel::update(conversations::table.filter(conversations::contact_id.eq(from)))
            .set(conversations::contact_id.eq(into))
            .execute($conn)?;
        diesel::update(visitors::table.filter(visitors::contact_id.eq(from)))
            .set(visitors::contact_id.eq(into))
            .execute($conn)?;
        let theirs: Vec<Identifier> = contact_identifiers::table
            .filter(contact_identifiers::contact_id.eq(from))
            .select(Identifier::as_select())
            .load($conn)?;
        for ident in theirs {
            let existing: Option<(i64, bool)> = contact_identifiers::table
                .filter(contact_identifiers::contact_id.eq(into))
                .filter(contact_identifiers::kind.eq(&ident.kind))
                .filter(contact_identifiers::value.eq(&ident.value))
                .select((contact_identifiers::id, contact_identifiers::verified))
                .first($conn)
                .optional()?;
            match existing {
                Some((id, verified)) => {
                    diesel::delete(contact_identifiers::table.find(ident.id)).execute($conn)?;
                    if ident.verified && !verified {
                        diesel::update(contact_identifiers::table.find(id))
                            .set(contact_identifiers::verified.eq(true))
                            .execute($conn)?;
                    }
                }
                None => {
                    diesel::update(contact_identifiers::table.find(ident.id))
                        .set(contact_identifiers::contact_id.eq(into))
                        .execute($conn)?;
                }
            }
        }
        let src: Contact = contacts::table
            .find(from)
            .select(Contact::as_select())
            .first($conn)?;
        let dst: Contact = contacts::table
            .find(into)
            .select(Contact::as_select())
            .first($conn)?;
        let name = if dst.name == UNNAMED && src.name != UNNAMED {
            src.name.clone()
        } else {
            dst.name.clone()
        };
        diesel::update(contacts::table.find(into))
            .set((
                contacts::name.eq(&name),
                contacts::first_name.eq(dst.first_name.clone().or(src.first_name.clone())),
                contacts::last_name.eq(dst.last_name.clone().or(src.last_name.clone())),
                contacts::address.eq(dst.address.clone().or(src.address.clone())),
                contacts::vip.eq(dst.vip || src.vip),
                contacts::bad.eq(dst.bad || src.bad),
                contacts::owner_id.eq(dst.owner_id.or(src.owner_id)),
                contacts::updated_at.eq($now),
            ))
            .execute($conn)?;
        diesel::update(contacts::table.find(from))
            .set((
                contacts::merged_into.eq(into),
                contacts::updated_at.eq($now),
            ))
            .execute($conn)?;
        // Suggestions about the merged contact are settled by the merge.
        diesel::update(
            merge_suggestions::table
                .filter(merge_suggestions::status.eq("pending"))
                .filter(
                    merge_suggestions::contact_id
                        .eq(from)
                        .or(merge_suggestions::candidate_id.eq(from)),
                ),
        )
        .set(merge_suggestions::status.eq("superseded"))
        .execute($conn)?;
        diesel::insert_into(contact_merges::table)
            .values((
                contact_merges::from_contact_id.eq(from),
                contact_merges::into_contact_id.eq(into),
                contact_merges::by_operator_id.eq($by),
                contact_merges::reason.eq($reason),
                contact_merges::conversations_moved.eq(moved.len() as i64),
                contact_merges::at.eq($now),
            ))
            .execute($conn)?;
        (moved, name)
    }};
}

impl Store {
    /// Applies what a visitor told or proved about themselves (a form, a signed identity)
    /// by the rules at the top of this file, links the visitor and their conversations to
    /// the resulting contact, and says what it did.
    pub fn identify(
        &self,
        visitor_id: i64,
        name: Option<&str>,
        claims: &[Claim],
        now: i64,
    ) -> StoreResult<Identified> {
        let name = name.and_then(blank_to_none);
        db_tx!(self, |conn| {
            let mut out = Identified::default();
            let current: Option<i64> = visitors::table
                .find(visitor_id)
                .select(visitors::contact_id)
                .first::<Option<i64>>(conn)
                .optional()?
                .ok_or(StoreError::NotFound)?;
            let mut contact: Option<i64> = match current {
                Some(id) => Some(live_contact!(conn, id)),
                None => None,
            };
            // The contacts the visitor's conversations follow: the others were linked by hand.
            let mut previous: Vec<i64> = current.into_iter().chain(contact).collect();
            // Verified claims first: they may name the contact this visitor is.
            for claim in claims.iter().filter(|c| c.verified) {
                let owner: Option<i64> = contact_identifiers::table
                    .filter(contact_identifiers::kind.eq(claim.kind.as_str()))
                    .filter(contact_identifiers::value.eq(&claim.value))
                    .filter(contact_identifiers::verified.eq(true))
                    .select(contact_identifiers::contact_id)
                    .first(conn)
                    .optional()?;
                if let Some(owner) = owner {
                    let owner = live_contact!(conn, owner);
                    if let Some(mine) = contact.filter(|c| *c != owner) {
                        let (moved, _) = merge_into!(
                            conn,
                            mine,
                            owner,
                            None::<i64>,
                            format!("verified {}", claim.kind.as_str()),
                            now
                        );
                        out.merged_from = Some(mine);
                        out.moved.extend(moved);
                    }
                    contact = Some(owner);
                }
            }
            let contact_id = match contact {
                Some(id) => id,
                None => {
                    out.created = true;
                    diesel::insert_into(contacts::table)
                        .values((
                            contacts::name.eq(name.as_deref().unwrap_or(UNNAMED)),
                            contacts::created_at.eq(now),
                            contacts::updated_at.eq(now),
                        ))
                        .returning(contacts::id)
                        .get_result(conn)?
                }
            };
            for claim in claims {
                let mine: Option<(i64, bool)> = contact_identifiers::table
                    .filter(contact_identifiers::contact_id.eq(contact_id))
                    .filter(contact_identifiers::kind.eq(claim.kind.as_str()))
                    .filter(contact_identifiers::value.eq(&claim.value))
                    .select((contact_identifiers::id, contact_identifiers::verified))
                    .first(conn)
                    .optional()?;
                match mine {
                    Some((id, verified)) => {
                        if claim.verified && !verified {
                            diesel::update(contact_identifiers::table.find(id))
                                .set(contact_identifiers::verified.eq(true))
                                .execute(conn)?;
                        }
                        continue;
                    }
                    None => {
                        diesel::insert_into(contact_identifiers::table)
                            .values((
                                contact_identifiers::contact_id.eq(contact_id),
                                contact_identifiers::kind.eq(claim.kind.as_str()),
                                contact_identifiers::value.eq(&claim.value),
                                contact_identifiers::verified.eq(claim.verified),
                                contact_identifiers::source.eq(claim.source),
                                contact_identifiers::created_at.eq(now),
                            ))
                            .execute(conn)?;
                    }
                }
                // Someone else holds it: never link, suggest (unless decided before).
                out.suggestions
                    .extend(raise_suggestions!(conn, contact_id, claim, now));
            }
            if let Some(n) = &name {
                diesel::update(contacts::table.find(contact_id))
                    .set((contacts::name.eq(n), contacts::updated_at.eq(now)))
                    .execute(conn)?;
            }
            diesel::update(visitors::table.find(visitor_id))
                .set(visitors::contact_id.eq(contact_id))
                .execute(conn)?;
            previous.retain(|c| *c != contact_id);
            let theirs: Vec<(i64, Option<i64>)> = conversations::table
                .filter(conversations::visitor_id.eq(visitor_id))
                .select((conversations::id, conversations::contact_id))
                .load(conn)?;
            let mut unlinked = Vec::new();
            for (id, linked) in theirs {
                match linked {
                    Some(c) if c == contact_id => {}
                    Some(c) if !previous.contains(&c) => out.kept.push(id),
                    _ => unlinked.push(id),
                }
            }
            diesel::update(conversations::table.filter(conversations::id.eq_any(&unlinked)))
                .set(conversations::contact_id.eq(contact_id))
                .execute(conn)?;
            out.moved.extend(unlinked);
            out.moved.sort_unstable();
            out.moved.dedup();
            out.contact_id = contact_id;
            out.name = contacts::table
                .find(contact_id)
                .select(contacts::name)
                .first(conn)?;
            Ok(out)
        })
    }

    /// Merges contact `from` into `into` (an operator's decision, or an accepted
    /// suggestion), with its audit record (ID3).
    pub fn merge_contacts(
        &self,
        from: i64,
        into: i64,
        by: Option<i64>,
        reason: &str,
        now: i64,
    ) -> StoreResult<Merged> {
        db_tx!(self, |conn| {
            let from = live_contact!(conn, from);
            let into = live_contact!(conn, into);
            if from == into {
                return Err(StoreError::Conflict(
                    "the two are one contact already".into(),
                ));
            }
            for id in [from, into] {
                let erased: Option<i64> = contacts::table
                    .find(id)
                    .select(contacts::erased_at)
                    .first::<Option<i64>>(conn)
                    .optional()?
                    .ok_or(StoreError::NotFound)?;
                if erased.is_some() {
                    return Err(StoreError::Conflict(
                        "an erased contact cannot be merged".into(),
                    ));
                }
            }
            let (moved, name) = merge_into!(conn, from, into, by, reason, now);
            Ok(Merged { into, name, moved })
        })
    }

    /// Settles a pending suggestion in one transaction: accepted merges its contact into
    /// the candidate; two operators deciding at once cannot both win.
    pub fn decide_suggestion(
        &self,
        id: i64,
        accept: bool,
        by: i64,
        now: i64,
    ) -> StoreResult<Option<Merged>> {
        db_tx!(self, |conn| {
            let (contact, candidate, status): (i64, i64, String) = merge_suggestions::table
                .find(id)
                .select((
                    merge_suggestions::contact_id,
                    merge_suggestions::candidate_id,
                    merge_suggestions::status,
                ))
                .first(conn)
                .optional()?
                .ok_or(StoreError::NotFound)?;
            if status != "pending" {
                return Err(StoreError::Conflict(format!(
                    "the suggestion is {status} already"
                )));
            }
            // Settled first: the merge marks the pair's other suggestions superseded.
            diesel::update(merge_suggestions::table.find(id))
                .set((
                    merge_suggestions::status.eq(if accept { "accepted" } else { "rejected" }),
                    merge_suggestions::decided_by.eq(by),
                    merge_suggestions::decided_at.eq(now),
                ))
                .execute(conn)?;
            if !accept {
                return Ok(None);
            }
            let from = live_contact!(conn, contact);
            let into = live_contact!(conn, candidate);
            if from == into {
                return Ok(None);
            }
            let (moved, name) = merge_into!(conn, from, into, Some(by), "suggestion accepted", now);
            Ok(Some(Merged { into, name, moved }))
        })
    }

    /// Suggestions with a status, newest first.
    pub fn suggestions(&self, status: &str, contact: Option<i64>) -> StoreResult<Vec<Suggestion>> {
        db_run!(self, |conn| {
            let mut q = merge_suggestions::table
                .filter(merge_suggestions::status.eq(status))
                .order(merge_suggestions::id.desc())
                .limit(200)
                .select((
                    merge_suggestions::id,
                    merge_suggestions::contact_id,
                    merge_suggestions::candidate_id,
                    merge_suggestions::kind,
                    merge_suggestions::value,
                    merge_suggestions::status,
                    merge_suggestions::created_at,
                ))
                .into_boxed();
            if let Some(c) = contact {
                q = q.filter(
                    merge_suggestions::contact_id
                        .eq(c)
                        .or(merge_suggestions::candidate_id.eq(c)),
                );
            }
            let rows: Vec<(i64, i64, i64, String, String, String, i64)> = q.load(conn)?;
            let ids: Vec<i64> = rows.iter().flat_map(|r| [r.1, r.2]).collect();
            let names: std::collections::HashMap<i64, String> = contacts::table
                .filter(contacts::id.eq_any(&ids))
                .select((contacts::id, contacts::name))
                .load::<(i64, String)>(conn)?
                .into_iter()
                .collect();
            let named = |id: i64| Named {
                id,
                name: names.get(&id).cloned().unwrap_or_default(),
            };
            Ok(rows
                .into_iter()
                .map(
                    |(id, contact, candidate, kind, value, status, created_at)| Suggestion {
                        id,
                        contact: named(contact),
                        candidate: named(candidate),
                        kind,
                        value,
                        status,
                        created_at,
                    },
                )
                .collect())
        })
    }

    /// Adds a contact owned by `owner_id` (an operator saving a visitor as a customer).
    pub fn add_contact(&self, name: &str, owner_id: Option<i64>, now: i64) -> StoreResult<Contact> {
        db_run!(self, |conn| {
            Ok(diesel::insert_into(contacts::table)
                .values((
                    contacts::name.eq(name.trim()),
                    contacts::owner_id.eq(owner_id),
                    contacts::created_at.eq(now),
                    contacts::updated_at.eq(now),
                ))
                .returning(Contact::as_returning())
                .get_result(conn)?)
        })
    }

    /// A contact by id, following merges to the one that remains.
    pub fn contact(&self, id: i64) -> StoreResult<Option<Contact>> {
        db_run!(self, |conn| {
            let exists: i64 = contacts::table
                .filter(contacts::id.eq(id))
                .count()
                .get_result(conn)?;
            if exists == 0 {
                return Ok(None);
            }
            let id = live_contact!(conn, id);
            Ok(contacts::table
                .find(id)
                .select(Contact::as_select())
                .first(conn)
                .optional()?)
        })
    }

    /// The customer card: the contact, identifiers, conversations and open suggestions.
    pub fn contact_card(&self, id: i64) -> StoreResult<Option<Card>> {
        let Some(contact) = self.contact(id)? else {
            return Ok(None);
        };
        let cid = contact.id;
        let (identifiers, conversations) = db_run!(self, |conn| {
            let identifiers: Vec<Identifier> = contact_identifiers::table
                .filter(contact_identifiers::contact_id.eq(cid))
                .order((
                    contact_identifiers::verified.desc(),
                    contact_identifiers::id,
                ))
                .select(Identifier::as_select())
                .load(conn)?;
            let rows: Vec<(i64, String, String, i64)> = conversations::table
                .filter(conversations::contact_id.eq(cid))
                .order(conversations::id.desc())
                .select((
                    conversations::id,
                    conversations::channel,
                    conversations::status,
                    conversations::created_at,
                ))
                .load(conn)?;
            let ids: Vec<i64> = rows.iter().map(|r| r.0).collect();
            let counts: std::collections::HashMap<i64, i64> = messages::table
                .filter(messages::conversation_id.eq_any(&ids))
                .filter(messages::kind.eq("text"))
                .group_by(messages::conversation_id)
                .select((messages::conversation_id, diesel::dsl::count_star()))
                .load::<(i64, i64)>(conn)?
                .into_iter()
                .collect();
            let conversations = rows
                .into_iter()
                .map(|(id, channel, status, created_at)| ContactConversation {
                    messages: counts.get(&id).copied().unwrap_or(0),
                    id,
                    channel,
                    status,
                    created_at,
                })
                .collect::<Vec<_>>();
            (identifiers, conversations)
        });
        let first = |kind: &str| {
            identifiers
                .iter()
                .find(|i| i.kind == kind)
                .map(|i| i.value.clone())
        };
        let email = first("email");
        let phone = first("phone");
        let suggestions = self.suggestions("pending", Some(cid))?;
        Ok(Some(Card {
            contact,
            identifiers,
            email,
            phone,
            conversations,
            suggestions,
        }))
    }

    /// Applies an operator's edit of the card; a new e-mail or phone follows the identity
    /// rules as a typed claim (it may raise a suggestion, never a silent link). Returns the
    /// contact and the suggestions raised.
    pub fn update_contact(
        &self,
        id: i64,
        change: &ContactChange,
        claims: &[Claim],
        now: i64,
    ) -> StoreResult<(Contact, Vec<i64>)> {
        let id = self.contact(id)?.ok_or(StoreError::NotFound)?.id;
        let opt = |v: &Option<String>| v.as_deref().map(blank_to_none);
        db_tx!(self, |conn| {
            let target = contacts::table.find(id);
            if let Some(name) = change.name.as_deref().and_then(blank_to_none) {
                diesel::update(target)
                    .set(contacts::name.eq(name))
                    .execute(conn)?;
            }
            if let Some(v) = opt(&change.first_name) {
                diesel::update(target)
                    .set(contacts::first_name.eq(v))
                    .execute(conn)?;
            }
            if let Some(v) = opt(&change.last_name) {
                diesel::update(target)
                    .set(contacts::last_name.eq(v))
                    .execute(conn)?;
            }
            if let Some(v) = opt(&change.address) {
                diesel::update(target)
                    .set(contacts::address.eq(v))
                    .execute(conn)?;
            }
            if let Some(v) = change.vip {
                diesel::update(target)
                    .set(contacts::vip.eq(v))
                    .execute(conn)?;
            }
            if let Some(v) = change.bad {
                diesel::update(target)
                    .set(contacts::bad.eq(v))
                    .execute(conn)?;
            }
            // First and last name make the display name when given.
            let c: Contact = target.select(Contact::as_select()).first(conn)?;
            let full = [c.first_name.as_deref(), c.last_name.as_deref()]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(" ");
            if !full.is_empty() && (change.first_name.is_some() || change.last_name.is_some()) {
                diesel::update(target)
                    .set(contacts::name.eq(full))
                    .execute(conn)?;
            }
            diesel::update(target)
                .set(contacts::updated_at.eq(now))
                .execute(conn)?;
            Ok::<_, StoreError>(())
        })?;
        let raised = if claims.is_empty() {
            Vec::new()
        } else {
            self.add_claims(id, claims, now)?
        };
        Ok((self.contact(id)?.ok_or(StoreError::NotFound)?, raised))
    }

    /// Adds identifiers to a contact by the identity rules (for the card's edits); returns
    /// the merge suggestions it raised.
    fn add_claims(&self, contact_id: i64, claims: &[Claim], now: i64) -> StoreResult<Vec<i64>> {
        db_tx!(self, |conn| {
            let mut raised = Vec::new();
            for claim in claims {
                let mine: i64 = contact_identifiers::table
                    .filter(contact_identifiers::contact_id.eq(contact_id))
                    .filter(contact_identifiers::kind.eq(claim.kind.as_str()))
                    .filter(contact_identifiers::value.eq(&claim.value))
                    .count()
                    .get_result(conn)?;
                if mine > 0 {
                    continue;
                }
                diesel::insert_into(contact_identifiers::table)
                    .values((
                        contact_identifiers::contact_id.eq(contact_id),
                        contact_identifiers::kind.eq(claim.kind.as_str()),
                        contact_identifiers::value.eq(&claim.value),
                        contact_identifiers::verified.eq(false),
                        contact_identifiers::source.eq(claim.source),
                        contact_identifiers::created_at.eq(now),
                    ))
                    .execute(conn)?;
                raised.extend(raise_suggestions!(conn, contact_id, claim, now));
            }
            Ok::<_, StoreError>(raised)
        })
    }

    /// Contacts whose name or identifier contains `q` (linking by hand, XB2).
    pub fn find_contacts(&self, q: &str, limit: i64) -> StoreResult<Vec<Contact>> {
        let pattern = format!("%{}%", q.trim().to_lowercase().replace(['%', '_'], ""));
        db_run!(self, |conn| {
            let by_identifier = contact_identifiers::table
                .filter(contact_identifiers::value.like(pattern.clone()))
                .select(contact_identifiers::contact_id);
            Ok(contacts::table
                .filter(contacts::merged_into.is_null())
                .filter(contacts::erased_at.is_null())
                .filter(
                    crate::store::conversations::lower(contacts::name)
                        .like(pattern.clone())
                        .or(contacts::id.eq_any(by_identifier)),
                )
                .order(contacts::updated_at.desc())
                .limit(limit)
                .select(Contact::as_select())
                .load(conn)?)
        })
    }

    /// Everything stored about a contact, as one JSON document (XB6): the contact, its
    /// identifiers, every conversation with its messages, the e-mails sent or waiting in
    /// the outbox, the files (base64; the ones its visitors uploaded and never sent too),
    /// suggestions and merges.
    pub fn export_contact(&self, id: i64) -> StoreResult<serde_json::Value> {
        use base64::Engine;
        let card = self.contact_card(id)?.ok_or(StoreError::NotFound)?;
        let cid = card.contact.id;
        let conversation_ids: Vec<i64> = card.conversations.iter().map(|c| c.id).collect();
        let mut conversations = Vec::new();
        for c in &card.conversations {
            let messages = self.messages_between(c.id, 0, i64::MAX, i64::MAX, false)?;
            conversations.push(serde_json::json!({
                "id": c.id,
                "channel": c.channel,
                "status": c.status,
                "created_at": c.created_at,
                "messages": messages,
            }));
        }
        type FileRow = (String, Option<i64>, String, String, i64, Vec<u8>, i64);
        let (files, emails, merges) = db_run!(self, |conn| {
            let visitor_ids: Vec<i64> = visitors::table
                .filter(visitors::contact_id.eq(cid))
                .select(visitors::id)
                .load(conn)?;
            let files: Vec<FileRow> = attachments::table
                .filter(
                    attachments::conversation_id
                        .eq_any(&conversation_ids)
                        .or(unsent_uploads_of!(&visitor_ids)),
                )
                .select((
                    attachments::id,
                    attachments::conversation_id,
                    attachments::filename,
                    attachments::content_type,
                    attachments::size,
                    attachments::data,
                    attachments::created_at,
                ))
                .load(conn)?;
            let merges: Vec<(i64, i64, Option<i64>, String, i64)> = contact_merges::table
                .filter(
                    contact_merges::into_contact_id
                        .eq(cid)
                        .or(contact_merges::from_contact_id.eq(cid)),
                )
                .select((
                    contact_merges::from_contact_id,
                    contact_merges::into_contact_id,
                    contact_merges::by_operator_id,
                    contact_merges::reason,
                    contact_merges::at,
                ))
                .load(conn)?;
            let emails: Vec<crate::mail::outbox::Outgoing> = outbox::table
                .filter(outbox::conversation_id.eq_any(&conversation_ids))
                .order(outbox::id)
                .select(crate::mail::outbox::Outgoing::as_select())
                .load(conn)?;
            (files, emails, merges)
        });
        let engine = base64::engine::general_purpose::STANDARD;
        Ok(serde_json::json!({
            "exported_at": crate::clock::Clock::now_ms(&crate::clock::SystemClock),
            "contact": card.contact,
            "identifiers": card.identifiers,
            "conversations": conversations,
            // `Outgoing` leaves its bodies out of the console's list; an export has them.
            "emails": emails.into_iter().map(|e| serde_json::json!({
                "id": e.id, "kind": e.kind, "conversation_id": e.conversation_id,
                "to_address": e.to_address, "subject": e.subject, "text_body": e.text_body,
                "html_body": e.html_body, "status": e.status, "created_at": e.created_at,
                "sent_at": e.sent_at,
            })).collect::<Vec<_>>(),
            "files": files.into_iter().map(|(id, conv, name, ty, size, data, at)| serde_json::json!({
                "id": id, "conversation_id": conv, "filename": name, "content_type": ty,
                "size": size, "created_at": at, "data_base64": engine.encode(data),
            })).collect::<Vec<_>>(),
            "suggestions": card.suggestions,
            "merges": merges.into_iter().map(|(from, into, by, reason, at)| serde_json::json!({
                "from_contact_id": from, "into_contact_id": into, "by_operator_id": by,
                "reason": reason, "at": at,
            })).collect::<Vec<_>>(),
        }))
    }

    /// Erases everything stored about a contact (XB6): the text of its conversations'
    /// messages and notes, their files, drafts and e-mails (sent or waiting), the files its
    /// visitors uploaded and never sent, its identifiers, suggestions and fields; pending
    /// timers of its conversations are cancelled (no e-mail goes out later) and its
    /// visitors' tokens stop working. What remains is the skeleton: conversations with
    /// their events, and an erasure record naming who erased and when. Returns the
    /// conversations touched, whose live actors must forget what they hold.
    pub fn erase_contact(&self, id: i64, by: i64, now: i64) -> StoreResult<Vec<i64>> {
        let contact = self.contact(id)?.ok_or(StoreError::NotFound)?;
        let cid = contact.id;
        db_tx!(self, |conn| {
            // Merged-away contacts are this person too.
            let mut all = vec![cid];
            let mut frontier = vec![cid];
            while let Some(c) = frontier.pop() {
                let merged: Vec<i64> = contacts::table
                    .filter(contacts::merged_into.eq(c))
                    .select(contacts::id)
                    .load(conn)?;
                for m in merged {
                    all.push(m);
                    frontier.push(m);
                }
            }
            let convs: Vec<i64> = conversations::table
                .filter(conversations::contact_id.eq_any(&all))
                .select(conversations::id)
                .load(conn)?;
            // Updated, not deleted: sequence numbers stay, and so do the events.
            diesel::update(
                messages::table
                    .filter(messages::conversation_id.eq_any(&convs))
                    .filter(messages::kind.ne("event")),
            )
            .set((messages::body.eq(""), messages::meta.eq(None::<String>)))
            .execute(conn)?;
            diesel::update(
                messages::table
                    .filter(messages::conversation_id.eq_any(&convs))
                    .filter(messages::body.eq("form")),
            )
            .set(messages::meta.eq(None::<String>))
            .execute(conn)?;
            let visitor_ids: Vec<i64> = visitors::table
                .filter(visitors::contact_id.eq_any(&all))
                .select(visitors::id)
                .load(conn)?;
            diesel::delete(
                attachments::table.filter(
                    attachments::conversation_id
                        .eq_any(&convs)
                        .or(unsent_uploads_of!(&visitor_ids)),
                ),
            )
            .execute(conn)?;
            diesel::delete(drafts::table.filter(drafts::conversation_id.eq_any(&convs)))
                .execute(conn)?;
            // E-mails hold the address, the subject and the text: gone, sent or not (a
            // pending one never goes out).
            diesel::delete(outbox::table.filter(outbox::conversation_id.eq_any(&convs)))
                .execute(conn)?;
            diesel::delete(
                timers::table
                    .filter(timers::conversation_id.eq_any(&convs))
                    .filter(timers::fired_at.is_null()),
            )
            .execute(conn)?;
            diesel::delete(
                contact_identifiers::table.filter(contact_identifiers::contact_id.eq_any(&all)),
            )
            .execute(conn)?;
            diesel::delete(
                merge_suggestions::table.filter(
                    merge_suggestions::contact_id
                        .eq_any(&all)
                        .or(merge_suggestions::candidate_id.eq_any(&all)),
                ),
            )
            .execute(conn)?;
            diesel::delete(
                crate::store::schema::visitor_tokens::table
                    .filter(crate::store::schema::visitor_tokens::visitor_id.eq_any(&visitor_ids)),
            )
            .execute(conn)?;
            for v in visitor_ids {
                // A value no token digest can equal: the widget's token stops working.
                diesel::update(visitors::table.find(v))
                    .set(
                        visitors::token_hash.eq(format!("erased:{v}:{}", crate::auth::new_token())),
                    )
                    .execute(conn)?;
            }
            diesel::update(contacts::table.filter(contacts::id.eq_any(&all)))
                .set((
                    contacts::name.eq("Erased contact"),
                    contacts::first_name.eq(None::<String>),
                    contacts::last_name.eq(None::<String>),
                    contacts::address.eq(None::<String>),
                    contacts::vip.eq(false),
                    contacts::bad.eq(false),
                    contacts::erased_at.eq(now),
                    contacts::updated_at.eq(now),
                ))
                .execute(conn)?;
            diesel::insert_into(erasures::table)
                .values((
                    erasures::contact_id.eq(cid),
                    erasures::by_operator_id.eq(by),
                    erasures::at.eq(now),
                ))
                .execute(conn)?;
            Ok::<_, StoreError>(convs)
        })
    }

    /// Which of `fields` (`name`, `email`, `phone`) the visitor's contact lacks, for the
    /// mandatory pre-chat fields (ID7). A contact the site vouches for (a verified site
    /// user id, ID8) lacks nothing: the widget asks such visitors no pre-chat form.
    pub fn missing_fields(
        &self,
        visitor_id: i64,
        fields: &[&'static str],
    ) -> StoreResult<Vec<&'static str>> {
        if fields.is_empty() {
            return Ok(Vec::new());
        }
        db_run!(self, |conn| {
            let Some(contact) = visitor_contact!(conn, visitor_id) else {
                return Ok(fields.to_vec());
            };
            let name: String = contacts::table
                .find(contact)
                .select(contacts::name)
                .first(conn)?;
            let kinds: Vec<(String, bool)> = contact_identifiers::table
                .filter(contact_identifiers::contact_id.eq(contact))
                .select((contact_identifiers::kind, contact_identifiers::verified))
                .load(conn)?;
            let vouched = kinds
                .iter()
                .any(|(k, v)| *v && k == IdKind::ExternalId.as_str());
            if vouched {
                return Ok(Vec::new());
            }
            let has = |kind: IdKind| kinds.iter().any(|(k, _)| k == kind.as_str());
            Ok(fields
                .iter()
                .copied()
                .filter(|f| match *f {
                    "name" => name == UNNAMED,
                    "email" => !has(IdKind::Email),
                    "phone" => !has(IdKind::Phone),
                    _ => false,
                })
                .collect())
        })
    }

    /// The verified site user ids (`<channel id>:<user id>`) of a visitor's contact.
    pub fn visitor_external_ids(&self, visitor_id: i64) -> StoreResult<Vec<String>> {
        db_run!(self, |conn| {
            let Some(contact) = visitor_contact!(conn, visitor_id) else {
                return Ok(Vec::new());
            };
            Ok(contact_identifiers::table
                .filter(contact_identifiers::contact_id.eq(contact))
                .filter(contact_identifiers::kind.eq(IdKind::ExternalId.as_str()))
                .filter(contact_identifiers::verified.eq(true))
                .select(contact_identifiers::value)
                .load(conn)?)
        })
    }

    /// The operator's name, for audit answers.
    pub fn operator_name(&self, id: i64) -> StoreResult<Option<String>> {
        db_run!(self, |conn| {
            Ok(operators::table
                .find(id)
                .select(operators::name)
                .first(conn)
                .optional()?)
        })
    }
}
