//! Conversations: creation, lookup, the operator's list with its filters and search
//! (OC7, OC9, OC11, OC13), internal chats (OC21), and what the router reloads at start
//! (operator loads, the conversations waiting for an operator, conversations due to close).

use super::schema::{
    assignments, contacts, conversation_members, conversations, drafts, messages, operators,
    team_members, teams,
};
use super::search::{search_terms, SEARCH_CANDIDATES};
use super::{Store, StoreError, StoreResult};
use crate::model::{ConversationKind, ConversationStatus, ConversationView, Named};
use crate::{db_run, db_tx};
use diesel::prelude::*;
use serde::Serialize;
use std::collections::HashMap;

/// A conversation as stored.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = conversations)]
pub struct ConversationRow {
    /// Id, also its human-readable number.
    pub id: i64,
    /// Its visitor; `None` for internal chats.
    pub visitor_id: Option<i64>,
    /// Channel name.
    pub channel: String,
    /// `open` or `closed`.
    pub status: String,
    /// Last committed sequence number.
    pub last_seq: i64,
    /// Visitor's read mark.
    pub visitor_read_seq: i64,
    /// Operators' read mark.
    pub operator_read_seq: i64,
    /// Created, ms.
    pub created_at: i64,
    /// Last change, ms.
    pub updated_at: i64,
    /// Closed, ms.
    pub closed_at: Option<i64>,
    /// `visitor`, `direct` or `team`.
    pub kind: String,
    /// The responsible operator.
    pub assignee_id: Option<i64>,
    /// The team it is routed to.
    pub team_id: Option<i64>,
    /// Waiting in the queue since, ms.
    pub queued_at: Option<i64>,
    /// The CRM contact.
    pub contact_id: Option<i64>,
    /// The visitor's delivered mark.
    pub visitor_delivered_seq: i64,
}

/// A conversation row with the names its header shows.
#[derive(Debug, Clone)]
pub struct ConversationRecord {
    /// The row.
    pub row: ConversationRow,
    /// The assignee's name.
    pub assignee: Option<Named>,
    /// The contact's name.
    pub contact: Option<Named>,
    /// Internal chats: the members.
    pub members: Vec<Named>,
    /// Team chats: the team's name.
    pub title: Option<String>,
}

impl ConversationRecord {
    /// The header clients see.
    pub fn view(&self) -> ConversationView {
        let r = &self.row;
        ConversationView {
            id: r.id,
            number: r.id,
            kind: ConversationKind::parse(&r.kind),
            status: ConversationStatus::parse(&r.status),
            channel: r.channel.clone(),
            last_seq: r.last_seq,
            visitor_read_seq: r.visitor_read_seq,
            operator_read_seq: r.operator_read_seq,
            visitor_delivered_seq: r.visitor_delivered_seq,
            visitor_online: false,
            assignee: self.assignee.clone(),
            team_id: r.team_id,
            contact: self.contact.clone(),
            queued: r.queued_at.is_some(),
            title: self.title.clone(),
            members: self.members.clone(),
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

/// One line of the operator's conversation list.
#[derive(Debug, Clone, Serialize)]
pub struct ConversationSummary {
    /// The header.
    #[serde(flatten)]
    pub conversation: ConversationView,
    /// Messages the reader has not read: visitor messages after the operators' read mark,
    /// or, in an internal chat, colleagues' messages after the reader's own mark.
    pub unread: i64,
    /// The last text message, if any.
    pub last_message: Option<LastMessage>,
    /// The reader's own unsent draft, shown instead of the last message (OC13).
    pub draft: Option<String>,
}

/// The last message of a conversation, as the list shows it.
#[derive(Debug, Clone, Serialize)]
pub struct LastMessage {
    /// Its text.
    pub body: String,
    /// `visitor`, `operator` or `system`.
    pub author_kind: String,
    /// The operator who wrote it.
    pub author_id: Option<i64>,
    /// Their name.
    pub author_name: Option<String>,
    /// When, ms.
    pub created_at: i64,
}

/// Which conversations a list shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusFilter {
    /// Only open ones.
    Open,
    /// Only closed ones.
    Closed,
    /// All.
    All,
}

/// Who the conversation is with (OC11).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interlocutor {
    /// Every visitor conversation and the reader's internal chats.
    Everyone,
    /// Visitors linked to a CRM contact.
    Customers,
    /// Visitors whose contact the reader owns.
    MyCustomers,
    /// Internal chats with colleagues.
    Colleagues,
}

/// Whose conversations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssigneeFilter {
    /// Anyone's.
    Anyone,
    /// Assigned to the reader.
    Me,
    /// Nobody's yet.
    Unassigned,
}

/// The console's list query.
#[derive(Debug, Clone)]
pub struct ListFilter {
    /// Who reads: internal chats are shown to their members only, drafts to their owner.
    pub reader: i64,
    /// Open, closed or all.
    pub status: StatusFilter,
    /// One channel only.
    pub channel: Option<String>,
    /// Who the conversation is with.
    pub interlocutor: Interlocutor,
    /// Whose.
    pub assignee: AssigneeFilter,
    /// Words to find in messages, a conversation number, or a contact's name (OC7).
    pub query: Option<String>,
    /// Most rows.
    pub limit: i64,
}

/// Resolves the names a list of rows shows, in a few queries for the whole list.
macro_rules! records {
    ($conn:expr, $rows:expr) => {{
        let rows: Vec<ConversationRow> = $rows;
        let op_ids: Vec<i64> = rows.iter().filter_map(|r| r.assignee_id).collect();
        let contact_ids: Vec<i64> = rows.iter().filter_map(|r| r.contact_id).collect();
        let internal: Vec<i64> = rows
            .iter()
            .filter(|r| r.kind != "visitor")
            .map(|r| r.id)
            .collect();
        let names: HashMap<i64, String> = operators::table
            .filter(operators::id.eq_any(&op_ids))
            .select((operators::id, operators::name))
            .load::<(i64, String)>($conn)?
            .into_iter()
            .collect();
        let contact_names: HashMap<i64, String> = contacts::table
            .filter(contacts::id.eq_any(&contact_ids))
            .select((contacts::id, contacts::name))
            .load::<(i64, String)>($conn)?
            .into_iter()
            .collect();
        let team_ids: Vec<i64> = rows
            .iter()
            .filter(|r| r.kind == "team")
            .filter_map(|r| r.team_id)
            .collect();
        let team_names: HashMap<i64, String> = teams::table
            .filter(teams::id.eq_any(&team_ids))
            .select((teams::id, teams::name))
            .load::<(i64, String)>($conn)?
            .into_iter()
            .collect();
        let members: Vec<(i64, i64, String)> = conversation_members::table
            .inner_join(operators::table)
            .filter(conversation_members::conversation_id.eq_any(&internal))
            .order(operators::name)
            .select((
                conversation_members::conversation_id,
                operators::id,
                operators::name,
            ))
            .load($conn)?;
        rows.into_iter()
            .map(|row| ConversationRecord {
                title: row
                    .team_id
                    .filter(|_| row.kind == "team")
                    .and_then(|t| team_names.get(&t).cloned()),
                assignee: row.assignee_id.and_then(|id| {
                    names.get(&id).map(|n| Named {
                        id,
                        name: n.clone(),
                    })
                }),
                contact: row.contact_id.and_then(|id| {
                    contact_names.get(&id).map(|n| Named {
                        id,
                        name: n.clone(),
                    })
                }),
                members: members
                    .iter()
                    .filter(|m| m.0 == row.id)
                    .map(|m| Named {
                        id: m.1,
                        name: m.2.clone(),
                    })
                    .collect(),
                row,
            })
            .collect::<Vec<ConversationRecord>>()
    }};
}

impl Store {
    /// Opens a new visitor conversation, routed to the channel's team, linked to the
    /// visitor's CRM contact when they have one.
    pub fn add_conversation(
        &self,
        visitor_id: i64,
        channel: &str,
        team_id: Option<i64>,
        now: i64,
    ) -> StoreResult<ConversationRow> {
        db_run!(self, |conn| {
            let contact: Option<i64> = super::schema::visitors::table
                .find(visitor_id)
                .select(super::schema::visitors::contact_id)
                .first::<Option<i64>>(conn)
                .optional()?
                .flatten();
            Ok(diesel::insert_into(conversations::table)
                .values((
                    conversations::contact_id.eq(contact),
                    conversations::visitor_id.eq(visitor_id),
                    conversations::channel.eq(channel),
                    conversations::status.eq(ConversationStatus::Open.as_str()),
                    conversations::kind.eq(ConversationKind::Visitor.as_str()),
                    conversations::team_id.eq(team_id),
                    conversations::created_at.eq(now),
                    conversations::updated_at.eq(now),
                ))
                .returning(ConversationRow::as_returning())
                .get_result(conn)?)
        })
    }

    /// A conversation by id, with the names its header shows.
    pub fn conversation(&self, id: i64) -> StoreResult<Option<ConversationRecord>> {
        db_run!(self, |conn| {
            let rows = conversations::table
                .filter(conversations::id.eq(id))
                .select(ConversationRow::as_select())
                .load(conn)?;
            Ok(records!(conn, rows).pop())
        })
    }

    /// Whether an operator may see an internal chat (always true for visitor ones).
    pub fn may_see(&self, operator_id: i64, conversation_id: i64) -> StoreResult<bool> {
        db_run!(self, |conn| {
            let kind: Option<String> = conversations::table
                .filter(conversations::id.eq(conversation_id))
                .select(conversations::kind)
                .first(conn)
                .optional()?;
            match kind.as_deref() {
                None => Ok(false),
                Some("visitor") => Ok(true),
                Some(_) => {
                    let n: i64 = conversation_members::table
                        .filter(conversation_members::conversation_id.eq(conversation_id))
                        .filter(conversation_members::operator_id.eq(operator_id))
                        .count()
                        .get_result(conn)?;
                    Ok(n > 0)
                }
            }
        })
    }

    /// The visitor's most recent conversation, the one a returning visitor resumes.
    pub fn latest_conversation_of(&self, visitor_id: i64) -> StoreResult<Option<i64>> {
        db_run!(self, |conn| {
            Ok(conversations::table
                .filter(conversations::visitor_id.eq(visitor_id))
                .order(conversations::id.desc())
                .select(conversations::id)
                .first(conn)
                .optional()?)
        })
    }

    /// The operator's list, most recently active first, with the filters of OC11 and the
    /// search of OC7.
    pub fn list_conversations(&self, f: &ListFilter) -> StoreResult<Vec<ConversationSummary>> {
        let query = f.query.as_deref().map(str::trim).filter(|q| !q.is_empty());
        let matched: Option<Vec<i64>> = match query {
            None => None,
            Some(q) => {
                let mut ids = self.text_matches(&search_terms(q), SEARCH_CANDIDATES)?;
                let number = q.trim_start_matches('#').parse::<i64>().ok();
                ids.extend(number);
                let pattern = format!("%{}%", q.replace(['%', '_'], ""));
                let by_contact: Vec<i64> = db_run!(self, |conn| {
                    conversations::table
                        .inner_join(contacts::table)
                        .filter(lower(contacts::name).like(pattern.to_lowercase()))
                        .select(conversations::id)
                        .limit(SEARCH_CANDIDATES)
                        .load(conn)?
                });
                ids.extend(by_contact);
                Some(ids)
            }
        };
        let reader = f.reader;
        db_run!(self, |conn| {
            let mine_internal = conversation_members::table
                .filter(conversation_members::operator_id.eq(reader))
                .select(conversation_members::conversation_id);
            let mut q = conversations::table
                .select(ConversationRow::as_select())
                .order(conversations::updated_at.desc())
                .limit(f.limit)
                .into_boxed();
            q = match f.interlocutor {
                Interlocutor::Everyone => q.filter(
                    conversations::kind
                        .eq("visitor")
                        .or(conversations::id.eq_any(mine_internal)),
                ),
                Interlocutor::Colleagues => q
                    .filter(conversations::kind.ne("visitor"))
                    .filter(conversations::id.eq_any(mine_internal)),
                Interlocutor::Customers => q
                    .filter(conversations::kind.eq("visitor"))
                    .filter(conversations::contact_id.is_not_null()),
                Interlocutor::MyCustomers => q.filter(conversations::kind.eq("visitor")).filter(
                    conversations::contact_id.eq_any(
                        contacts::table
                            .filter(contacts::owner_id.eq(reader))
                            .select(contacts::id.nullable()),
                    ),
                ),
            };
            q = match f.status {
                StatusFilter::Open => q.filter(conversations::status.eq("open")),
                StatusFilter::Closed => q.filter(conversations::status.eq("closed")),
                StatusFilter::All => q,
            };
            if let Some(channel) = &f.channel {
                q = q.filter(conversations::channel.eq(channel.clone()));
            }
            q = match f.assignee {
                AssigneeFilter::Anyone => q,
                AssigneeFilter::Me => q.filter(conversations::assignee_id.eq(reader)),
                AssigneeFilter::Unassigned => q
                    .filter(conversations::kind.eq("visitor"))
                    .filter(conversations::assignee_id.is_null()),
            };
            if let Some(ids) = &matched {
                q = q.filter(conversations::id.eq_any(ids.clone()));
            }
            let rows: Vec<ConversationRow> = q.load(conn)?;
            let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
            let my_drafts: HashMap<i64, String> = drafts::table
                .filter(drafts::operator_id.eq(reader))
                .filter(drafts::conversation_id.eq_any(&ids))
                .select((drafts::conversation_id, drafts::body))
                .load::<(i64, String)>(conn)?
                .into_iter()
                .collect();
            let my_marks: HashMap<i64, i64> = conversation_members::table
                .filter(conversation_members::operator_id.eq(reader))
                .filter(conversation_members::conversation_id.eq_any(&ids))
                .select((
                    conversation_members::conversation_id,
                    conversation_members::read_seq,
                ))
                .load::<(i64, i64)>(conn)?
                .into_iter()
                .collect();
            let records = records!(conn, rows);
            let mut out = Vec::with_capacity(records.len());
            for rec in records {
                let row = &rec.row;
                let unread: i64 = if row.kind == "visitor" {
                    messages::table
                        .filter(messages::conversation_id.eq(row.id))
                        .filter(messages::seq.gt(row.operator_read_seq))
                        .filter(messages::author_kind.eq("visitor"))
                        .filter(messages::kind.eq("text"))
                        .count()
                        .get_result(conn)?
                } else {
                    messages::table
                        .filter(messages::conversation_id.eq(row.id))
                        .filter(messages::seq.gt(my_marks.get(&row.id).copied().unwrap_or(0)))
                        .filter(messages::author_id.ne(reader))
                        .filter(messages::kind.eq("text"))
                        .count()
                        .get_result(conn)?
                };
                let last_message = messages::table
                    .left_join(
                        operators::table.on(messages::author_kind
                            .eq("operator")
                            .and(operators::id.eq(messages::author_id))),
                    )
                    .filter(messages::conversation_id.eq(row.id))
                    .filter(messages::kind.eq("text"))
                    .order(messages::seq.desc())
                    .select((
                        messages::body,
                        messages::author_kind,
                        messages::created_at,
                        operators::id.nullable(),
                        operators::name.nullable(),
                    ))
                    .first::<(String, String, i64, Option<i64>, Option<String>)>(conn)
                    .optional()?
                    .map(
                        |(body, author_kind, created_at, author_id, author_name)| LastMessage {
                            body,
                            author_kind,
                            author_id,
                            author_name,
                            created_at,
                        },
                    );
                out.push(ConversationSummary {
                    draft: my_drafts.get(&row.id).cloned(),
                    conversation: rec.view(),
                    unread,
                    last_message,
                });
            }
            Ok(out)
        })
    }

    /// Open conversations per assignee, for the router's capacity accounting.
    pub fn open_loads(&self) -> StoreResult<Vec<(i64, i64)>> {
        db_run!(self, |conn| {
            let rows: Vec<(Option<i64>, i64)> = conversations::table
                .filter(conversations::kind.eq("visitor"))
                .filter(conversations::status.eq("open"))
                .filter(conversations::assignee_id.is_not_null())
                .group_by(conversations::assignee_id)
                .select((conversations::assignee_id, diesel::dsl::count_star()))
                .load(conn)?;
            Ok(rows
                .into_iter()
                .filter_map(|(id, n)| id.map(|id| (id, n)))
                .collect())
        })
    }

    /// Open visitor conversations nobody is responsible for, in arrival order (when they
    /// joined the queue, else when they were opened): conversation id, team, and whether
    /// it is in the waiting queue. Routing starts from them: with distribution on, they all
    /// wait for an operator, not only the ones that were queued (OC4, XB13).
    pub fn unassigned_open_conversations(&self) -> StoreResult<Vec<(i64, Option<i64>, bool)>> {
        let mut rows: Vec<(i64, Option<i64>, Option<i64>, i64)> = db_run!(self, |conn| {
            Ok::<_, StoreError>(
                conversations::table
                    .filter(conversations::kind.eq("visitor"))
                    .filter(conversations::status.eq("open"))
                    .filter(conversations::assignee_id.is_null())
                    .select((
                        conversations::id,
                        conversations::team_id,
                        conversations::queued_at,
                        conversations::created_at,
                    ))
                    .load(conn)?,
            )
        })?;
        rows.sort_by_key(|(id, _, queued_at, created_at)| (queued_at.unwrap_or(*created_at), *id));
        Ok(rows
            .into_iter()
            .map(|(id, team, queued_at, _)| (id, team, queued_at.is_some()))
            .collect())
    }

    /// Open visitor conversations with no message since `before` (ms), oldest first: the
    /// ones auto-close is due for (OC3).
    pub fn inactive_open_conversations(&self, before: i64, limit: i64) -> StoreResult<Vec<i64>> {
        db_run!(self, |conn| {
            Ok(conversations::table
                .filter(conversations::status.eq("open"))
                .filter(conversations::kind.eq("visitor"))
                .filter(conversations::updated_at.lt(before))
                .order(conversations::updated_at.asc())
                .select(conversations::id)
                .limit(limit)
                .load(conn)?)
        })
    }

    /// The audit trail of a conversation's assignments, oldest first (XB12).
    pub fn assignment_history(&self, conversation_id: i64) -> StoreResult<Vec<AssignmentRecord>> {
        db_run!(self, |conn| {
            type Row = (i64, Option<i64>, Option<i64>, Option<i64>, String, i64);
            let rows: Vec<Row> = assignments::table
                .filter(assignments::conversation_id.eq(conversation_id))
                .order(assignments::id)
                .select((
                    assignments::id,
                    assignments::from_operator_id,
                    assignments::to_operator_id,
                    assignments::by_operator_id,
                    assignments::reason,
                    assignments::at,
                ))
                .load(conn)?;
            let names: HashMap<i64, String> = operators::table
                .select((operators::id, operators::name))
                .load::<(i64, String)>(conn)?
                .into_iter()
                .collect();
            let named = |id: Option<i64>| {
                id.map(|id| Named {
                    id,
                    name: names.get(&id).cloned().unwrap_or_default(),
                })
            };
            Ok(rows
                .into_iter()
                .map(|(id, from, to, by, reason, at)| AssignmentRecord {
                    id,
                    from: named(from),
                    to: named(to),
                    by: named(by),
                    reason,
                    at,
                })
                .collect())
        })
    }

    /// The internal chat between two operators, created on first use.
    pub fn direct_chat(&self, a: i64, b: i64, now: i64) -> StoreResult<i64> {
        db_tx!(self, |conn| {
            let mine: Vec<i64> = conversations::table
                .inner_join(conversation_members::table)
                .filter(conversations::kind.eq("direct"))
                .filter(conversation_members::operator_id.eq(a))
                .select(conversations::id)
                .load(conn)?;
            let existing: Option<i64> = conversation_members::table
                .filter(conversation_members::operator_id.eq(b))
                .filter(conversation_members::conversation_id.eq_any(&mine))
                .select(conversation_members::conversation_id)
                .first(conn)
                .optional()?;
            if let Some(id) = existing {
                return Ok(id);
            }
            let id: i64 = diesel::insert_into(conversations::table)
                .values((
                    conversations::channel.eq("internal"),
                    conversations::status.eq("open"),
                    conversations::kind.eq("direct"),
                    conversations::created_at.eq(now),
                    conversations::updated_at.eq(now),
                ))
                .returning(conversations::id)
                .get_result(conn)?;
            for op in [a, b] {
                diesel::insert_into(conversation_members::table)
                    .values((
                        conversation_members::conversation_id.eq(id),
                        conversation_members::operator_id.eq(op),
                    ))
                    .execute(conn)?;
            }
            Ok::<_, StoreError>(id)
        })
    }

    /// A team's internal chat, created on first use, with the team's members.
    pub fn team_chat(&self, team_id: i64, now: i64) -> StoreResult<i64> {
        let id = db_tx!(self, |conn| {
            let existing: Option<i64> = conversations::table
                .filter(conversations::kind.eq("team"))
                .filter(conversations::team_id.eq(team_id))
                .select(conversations::id)
                .first(conn)
                .optional()?;
            if let Some(id) = existing {
                return Ok(id);
            }
            let exists: i64 = teams::table
                .filter(teams::id.eq(team_id))
                .count()
                .get_result(conn)?;
            if exists == 0 {
                return Err(StoreError::NotFound);
            }
            let id: i64 = diesel::insert_into(conversations::table)
                .values((
                    conversations::channel.eq("internal"),
                    conversations::status.eq("open"),
                    conversations::kind.eq("team"),
                    conversations::team_id.eq(team_id),
                    conversations::created_at.eq(now),
                    conversations::updated_at.eq(now),
                ))
                .returning(conversations::id)
                .get_result(conn)?;
            Ok::<_, StoreError>(id)
        })?;
        self.sync_team_chat(team_id)?;
        Ok(id)
    }

    /// Makes a team chat's members the team's members again (after a membership change);
    /// returns the chat's id when the team has one.
    pub fn sync_team_chat(&self, team_id: i64) -> StoreResult<Option<i64>> {
        db_tx!(self, |conn| {
            let chat: Option<i64> = conversations::table
                .filter(conversations::kind.eq("team"))
                .filter(conversations::team_id.eq(team_id))
                .select(conversations::id)
                .first(conn)
                .optional()?;
            let Some(chat) = chat else {
                return Ok(None);
            };
            let members: Vec<i64> = team_members::table
                .filter(team_members::team_id.eq(team_id))
                .select(team_members::operator_id)
                .load(conn)?;
            diesel::delete(
                conversation_members::table
                    .filter(conversation_members::conversation_id.eq(chat))
                    .filter(conversation_members::operator_id.ne_all(&members)),
            )
            .execute(conn)?;
            let present: Vec<i64> = conversation_members::table
                .filter(conversation_members::conversation_id.eq(chat))
                .select(conversation_members::operator_id)
                .load(conn)?;
            for op in members.iter().filter(|m| !present.contains(m)) {
                diesel::insert_into(conversation_members::table)
                    .values((
                        conversation_members::conversation_id.eq(chat),
                        conversation_members::operator_id.eq(op),
                    ))
                    .execute(conn)?;
            }
            Ok::<_, StoreError>(Some(chat))
        })
    }

    /// Links a conversation to a CRM contact (or unlinks it).
    pub fn set_conversation_contact(
        &self,
        conversation_id: i64,
        contact_id: Option<i64>,
    ) -> StoreResult<()> {
        db_run!(self, |conn| {
            let n = diesel::update(conversations::table.find(conversation_id))
                .set(conversations::contact_id.eq(contact_id))
                .execute(conn)?;
            if n == 0 {
                return Err(StoreError::NotFound);
            }
            Ok(())
        })
    }
}

/// One entry of the assignment audit trail.
#[derive(Debug, Clone, Serialize)]
pub struct AssignmentRecord {
    /// Id, in order.
    pub id: i64,
    /// Who had it.
    pub from: Option<Named>,
    /// Who has it now (`None`: back to the queue or unassigned).
    pub to: Option<Named>,
    /// Who decided (`None`: distribution).
    pub by: Option<Named>,
    /// Why.
    pub reason: String,
    /// When, ms.
    pub at: i64,
}

diesel::define_sql_function! {
    /// SQL `lower`, on both backends.
    fn lower(x: diesel::sql_types::Text) -> diesel::sql_types::Text;
}
