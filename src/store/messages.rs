//! Messages and the batched write path the persister commits.

use super::schema::{
    assignments, attachments, conversation_members, conversations, messages, operators, timers,
    visitors,
};
use super::{Pool, Store, StoreError, StoreResult};
use crate::db_run;
use crate::model::{Author, AuthorKind, ConversationStatus, MessageKind, MessageView};
use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sqlite::SqliteConnection;
use std::collections::HashMap;

/// A message to insert.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = messages)]
#[diesel(treat_none_as_default_value = false)]
pub struct NewMessage {
    /// Conversation.
    pub conversation_id: i64,
    /// Sequence number assigned by the conversation actor.
    pub seq: i64,
    /// `text` or `event`.
    pub kind: &'static str,
    /// `visitor`, `operator` or `system`.
    pub author_kind: &'static str,
    /// The visitor's or operator's id (0 for the system).
    pub author_id: i64,
    /// Idempotency key.
    pub client_id: Option<String>,
    /// Text or event name.
    pub body: String,
    /// Accepted at, ms.
    pub created_at: i64,
    /// Details as a JSON object (quotes, event subjects, mentions).
    pub meta: Option<String>,
}

/// One write the persister commits; a batch is a list of them in one transaction.
#[derive(Debug, Clone)]
pub enum Write {
    /// A new visitor identity (its id chosen by the server, so no answer is needed).
    Visitor {
        /// Id.
        id: i64,
        /// Digest of the visitor's token.
        token_hash: String,
        /// Created at, ms.
        created_at: i64,
    },
    /// A new message or event.
    Message(NewMessage),
    /// The conversation opened or closed.
    Status {
        /// Conversation.
        conversation_id: i64,
        /// New status.
        status: ConversationStatus,
        /// When, ms.
        at: i64,
    },
    /// A read mark moved forward.
    Read {
        /// Conversation.
        conversation_id: i64,
        /// Visitor or operator side.
        by: AuthorKind,
        /// Read up to this sequence number.
        seq: i64,
    },
    /// A member of an internal chat read up to a sequence number.
    MemberRead {
        /// Conversation.
        conversation_id: i64,
        /// The member.
        operator_id: i64,
        /// Read up to here.
        seq: i64,
    },
    /// The visitor's widget received messages up to a sequence number (OC15).
    Delivered {
        /// Conversation.
        conversation_id: i64,
        /// Received up to here.
        seq: i64,
    },
    /// The responsible operator changed, with its audit record (OC8, XB12). Leaves the
    /// queue.
    Assign {
        /// Conversation.
        conversation_id: i64,
        /// Who had it.
        from: Option<i64>,
        /// Who has it now.
        to: Option<i64>,
        /// Who decided; `None` for distribution.
        by: Option<i64>,
        /// Why, in the decider's words or the distribution's.
        reason: String,
        /// When, ms.
        at: i64,
    },
    /// A file was sent in a conversation: it belongs to it from now on.
    BindAttachment {
        /// The file.
        id: String,
        /// The conversation.
        conversation_id: i64,
    },
    /// The conversation's CRM contact changed.
    Contact {
        /// Conversation.
        conversation_id: i64,
        /// The contact.
        contact_id: Option<i64>,
    },
    /// A durable timer (XB9): one pending per kind and conversation; a second request
    /// folds into it, moving it earlier when it asks for an earlier time.
    Timer {
        /// `unread`, `transcript` or `transcript_offer`.
        kind: &'static str,
        /// Conversation.
        conversation_id: i64,
        /// When it fires, ms.
        due_at: i64,
        /// Now, ms.
        now: i64,
    },
    /// A timer did its work (in the same transaction as that work).
    TimerFired {
        /// The timer.
        id: i64,
        /// Now, ms.
        at: i64,
    },
    /// The conversation joined (`Some(since)`) or left (`None`) the waiting queue.
    Queue {
        /// Conversation.
        conversation_id: i64,
        /// Waiting since, ms.
        queued_at: Option<i64>,
    },
}

/// A client id already stored, with the sequence number it got.
#[derive(Debug, Clone, Queryable)]
pub struct StoredClientId {
    /// `visitor`, `operator` or `system`.
    pub author_kind: String,
    /// Author id.
    pub author_id: i64,
    /// The key.
    pub client_id: Option<String>,
    /// Its sequence number.
    pub seq: i64,
}

type MessageRow = (
    i64,
    i64,
    String,
    String,
    i64,
    Option<String>,
    String,
    i64,
    Option<String>,
    Option<String>,
);

fn view(row: MessageRow) -> MessageView {
    let (
        conversation_id,
        seq,
        kind,
        author_kind,
        author_id,
        client_id,
        body,
        created_at,
        meta,
        name,
    ) = row;
    let kind_a = AuthorKind::parse(&author_kind);
    let author = match kind_a {
        AuthorKind::Operator => Author {
            kind: kind_a,
            id: Some(author_id),
            name,
        },
        AuthorKind::Visitor => Author::visitor(),
        AuthorKind::System => Author::system(),
    };
    MessageView {
        conversation_id,
        seq,
        kind: MessageKind::parse(&kind),
        author,
        body,
        client_id,
        created_at,
        meta: meta.and_then(|m| serde_json::from_str(&m).ok()),
    }
}

/// Conversations per SQLite UPDATE of `last_seq`: 3 bound variables each, far under
/// SQLite's 32,766.
const SQLITE_TOUCHED_PER_UPDATE: usize = 1000;

/// Inserts the first `N` messages of `rest` with one INSERT and moves `rest` past them;
/// false if any was already stored. A fixed number of rows gives the statement a type of
/// its own, so diesel prepares it once per connection and reuses it: a batch of 1024
/// messages is four executions of one cached statement instead of parsing a statement of
/// 9,000 variables on every commit.
fn insert_sqlite<const N: usize>(
    conn: &mut SqliteConnection,
    rest: &mut &[&NewMessage],
) -> StoreResult<bool> {
    let (head, tail) = rest.split_at(N.min(rest.len()));
    let rows: [&NewMessage; N] = head
        .try_into()
        .map_err(|_| StoreError::Query(format!("{} messages where {N} were due", head.len())))?;
    let inserted = diesel::insert_into(messages::table)
        .values(rows)
        .on_conflict_do_nothing()
        .execute(conn)?;
    *rest = tail;
    Ok(inserted == N)
}

/// A batch sorted by kind of write, ready to apply.
struct BatchPlan<'a> {
    visitors: Vec<(i64, &'a str, i64)>,
    messages: Vec<&'a NewMessage>,
    /// Per conversation: highest sequence number and latest time in the batch.
    touched: Vec<(i64, i64, i64)>,
    /// Marks that only move forward, the highest per conversation: the visitor's read mark,
    /// the operators' read mark, the visitor's delivered mark. Many conversations store
    /// theirs at once (the idle checks), so each kind is one statement on PostgreSQL.
    marks: [Vec<(i64, i64)>; 3],
    others: Vec<&'a Write>,
}

/// The columns of [`BatchPlan::marks`], in order.
const MARK_COLUMNS: [&str; 3] = [
    "visitor_read_seq",
    "operator_read_seq",
    "visitor_delivered_seq",
];

impl<'a> BatchPlan<'a> {
    fn new(writes: &[&'a Write]) -> Self {
        let mut plan = BatchPlan {
            visitors: Vec::new(),
            messages: Vec::with_capacity(writes.len()),
            touched: Vec::new(),
            marks: [Vec::new(), Vec::new(), Vec::new()],
            others: Vec::new(),
        };
        let mut touched: HashMap<i64, (i64, i64)> = HashMap::new();
        let mut marks: [HashMap<i64, i64>; 3] = Default::default();
        let mut mark = |kind: usize, id: i64, seq: i64| {
            let e = marks[kind].entry(id).or_insert(seq);
            *e = (*e).max(seq);
        };
        for w in writes {
            match w {
                Write::Visitor {
                    id,
                    token_hash,
                    created_at,
                } => plan.visitors.push((*id, token_hash.as_str(), *created_at)),
                Write::Message(m) => {
                    plan.messages.push(m);
                    let e = touched.entry(m.conversation_id).or_insert((0, 0));
                    e.0 = e.0.max(m.seq);
                    e.1 = e.1.max(m.created_at);
                }
                Write::Read {
                    conversation_id,
                    by,
                    seq,
                } => mark(
                    usize::from(*by != AuthorKind::Visitor),
                    *conversation_id,
                    *seq,
                ),
                Write::Delivered {
                    conversation_id,
                    seq,
                } => mark(2, *conversation_id, *seq),
                _ => plan.others.push(w),
            }
        }
        for (kind, m) in marks.into_iter().enumerate() {
            plan.marks[kind] = m.into_iter().collect();
        }
        plan.touched = touched
            .into_iter()
            .map(|(id, (seq, at))| (id, seq, at))
            .collect();
        plan
    }
}

/// A retry whose first copy is stored but no longer remembered in memory: the batch is
/// rolled back so the sender learns the stored sequence number instead of a new one that
/// was never written.
fn duplicate_client_id() -> StoreError {
    StoreError::Conflict("a message with this client id is already stored".into())
}

/// Status changes and read marks: rare, the same SQL on both backends.
macro_rules! apply_others {
    ($conn:expr, $plan:expr) => {
        for w in &$plan.others {
            match w {
                Write::Status {
                    conversation_id,
                    status,
                    at,
                } => {
                    let closed_at = match status {
                        ConversationStatus::Closed => Some(*at),
                        ConversationStatus::Open => None,
                    };
                    diesel::update(conversations::table.find(conversation_id))
                        .set((
                            conversations::status.eq(status.as_str()),
                            conversations::closed_at.eq(closed_at),
                            conversations::updated_at.eq(at),
                        ))
                        .execute($conn)?;
                }
                Write::MemberRead {
                    conversation_id,
                    operator_id,
                    seq,
                } => {
                    diesel::update(
                        conversation_members::table
                            .filter(conversation_members::conversation_id.eq(conversation_id))
                            .filter(conversation_members::operator_id.eq(operator_id))
                            .filter(conversation_members::read_seq.lt(seq)),
                    )
                    .set(conversation_members::read_seq.eq(seq))
                    .execute($conn)?;
                }
                Write::Assign {
                    conversation_id,
                    from,
                    to,
                    by,
                    reason,
                    at,
                } => {
                    diesel::update(conversations::table.find(conversation_id))
                        .set((
                            conversations::assignee_id.eq(to),
                            conversations::queued_at.eq(None::<i64>),
                        ))
                        .execute($conn)?;
                    diesel::insert_into(assignments::table)
                        .values((
                            assignments::conversation_id.eq(conversation_id),
                            assignments::from_operator_id.eq(from),
                            assignments::to_operator_id.eq(to),
                            assignments::by_operator_id.eq(by),
                            assignments::reason.eq(reason),
                            assignments::at.eq(at),
                        ))
                        .execute($conn)?;
                }
                Write::Queue {
                    conversation_id,
                    queued_at,
                } => {
                    diesel::update(conversations::table.find(conversation_id))
                        .set(conversations::queued_at.eq(queued_at))
                        .execute($conn)?;
                }
                Write::BindAttachment {
                    id,
                    conversation_id,
                } => {
                    diesel::update(
                        attachments::table
                            .find(id)
                            .filter(attachments::conversation_id.is_null()),
                    )
                    .set(attachments::conversation_id.eq(conversation_id))
                    .execute($conn)?;
                }
                Write::Contact {
                    conversation_id,
                    contact_id,
                } => {
                    diesel::update(conversations::table.find(conversation_id))
                        .set(conversations::contact_id.eq(contact_id))
                        .execute($conn)?;
                }
                Write::Timer {
                    kind,
                    conversation_id,
                    due_at,
                    now,
                } => {
                    // Fold into a pending one (earlier wins), or add it.
                    diesel::update(
                        timers::table
                            .filter(timers::kind.eq(*kind))
                            .filter(timers::conversation_id.eq(conversation_id))
                            .filter(timers::fired_at.is_null())
                            .filter(timers::due_at.gt(due_at)),
                    )
                    .set(timers::due_at.eq(due_at))
                    .execute($conn)?;
                    diesel::insert_into(timers::table)
                        .values((
                            timers::kind.eq(*kind),
                            timers::conversation_id.eq(conversation_id),
                            timers::due_at.eq(due_at),
                            timers::created_at.eq(now),
                        ))
                        .on_conflict_do_nothing()
                        .execute($conn)?;
                }
                Write::TimerFired { id, at } => {
                    diesel::update(timers::table.find(id).filter(timers::fired_at.is_null()))
                        .set(timers::fired_at.eq(at))
                        .execute($conn)?;
                }
                Write::Message(_)
                | Write::Visitor { .. }
                | Write::Read { .. }
                | Write::Delivered { .. } => {}
            }
        }
    };
}

/// SQLite: multi-row INSERTs of up to 1000 rows (measured faster than a cached single-row
/// statement per row, 107k against 97k messages/s in `benches/persist.rs`).
fn commit_sqlite(conn: &mut SqliteConnection, plan: &BatchPlan<'_>) -> StoreResult<()> {
    for (id, token_hash, created_at) in &plan.visitors {
        diesel::insert_into(visitors::table)
            .values((
                visitors::id.eq(id),
                visitors::token_hash.eq(token_hash),
                visitors::created_at.eq(created_at),
            ))
            .execute(conn)?;
    }
    let mut rest = plan.messages.as_slice();
    while !rest.is_empty() {
        let inserted = match rest.len() {
            n if n >= 256 => insert_sqlite::<256>(conn, &mut rest)?,
            n if n >= 32 => insert_sqlite::<32>(conn, &mut rest)?,
            n if n >= 4 => insert_sqlite::<4>(conn, &mut rest)?,
            _ => insert_sqlite::<1>(conn, &mut rest)?,
        };
        if !inserted {
            return Err(duplicate_client_id());
        }
    }
    for chunk in plan.touched.chunks(SQLITE_TOUCHED_PER_UPDATE) {
        // SQLite names the columns of a VALUES list column1, column2...
        let rows = vec!["(?, ?, ?)"; chunk.len()].join(", ");
        let mut update = diesel::sql_query(format!(
            "UPDATE conversations SET last_seq = u.column2, updated_at = u.column3 \
             FROM (VALUES {rows}) AS u \
             WHERE conversations.id = u.column1 AND conversations.last_seq < u.column2"
        ))
        .into_boxed::<diesel::sqlite::Sqlite>();
        for (id, seq, at) in chunk {
            update = update
                .bind::<diesel::sql_types::BigInt, _>(*id)
                .bind::<diesel::sql_types::BigInt, _>(*seq)
                .bind::<diesel::sql_types::BigInt, _>(*at);
        }
        update.execute(conn)?;
    }
    for (kind, marks) in plan.marks.iter().enumerate() {
        for (id, seq) in marks {
            let target = conversations::table.find(id);
            match kind {
                0 => diesel::update(target.filter(conversations::visitor_read_seq.lt(seq)))
                    .set(conversations::visitor_read_seq.eq(seq))
                    .execute(conn)?,
                1 => diesel::update(target.filter(conversations::operator_read_seq.lt(seq)))
                    .set(conversations::operator_read_seq.eq(seq))
                    .execute(conn)?,
                _ => diesel::update(target.filter(conversations::visitor_delivered_seq.lt(seq)))
                    .set(conversations::visitor_delivered_seq.eq(seq))
                    .execute(conn)?,
            };
        }
    }
    apply_others!(conn, plan);
    Ok(())
}

/// PostgreSQL: each kind of write is one statement over arrays (`UNNEST`), so a batch
/// costs a few round trips and the server parses a few parameters, not thousands.
fn commit_postgres(conn: &mut PgConnection, plan: &BatchPlan<'_>) -> StoreResult<()> {
    use diesel::sql_types::{Array, BigInt, Nullable, Text};
    if !plan.visitors.is_empty() {
        diesel::sql_query(
            "INSERT INTO visitors (id, token_hash, created_at) \
             SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::bigint[])",
        )
        .bind::<Array<BigInt>, _>(plan.visitors.iter().map(|v| v.0).collect::<Vec<_>>())
        .bind::<Array<Text>, _>(plan.visitors.iter().map(|v| v.1).collect::<Vec<_>>())
        .bind::<Array<BigInt>, _>(plan.visitors.iter().map(|v| v.2).collect::<Vec<_>>())
        .execute(conn)?;
    }
    if !plan.messages.is_empty() {
        let m = &plan.messages;
        let inserted = diesel::sql_query(
            "INSERT INTO messages \
             (conversation_id, seq, kind, author_kind, author_id, client_id, body, created_at, meta) \
             SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::text[], $4::text[], \
             $5::bigint[], $6::text[], $7::text[], $8::bigint[], $9::text[]) ON CONFLICT DO NOTHING",
        )
        .bind::<Array<BigInt>, _>(m.iter().map(|m| m.conversation_id).collect::<Vec<_>>())
        .bind::<Array<BigInt>, _>(m.iter().map(|m| m.seq).collect::<Vec<_>>())
        .bind::<Array<Text>, _>(m.iter().map(|m| m.kind).collect::<Vec<_>>())
        .bind::<Array<Text>, _>(m.iter().map(|m| m.author_kind).collect::<Vec<_>>())
        .bind::<Array<BigInt>, _>(m.iter().map(|m| m.author_id).collect::<Vec<_>>())
        .bind::<Array<Nullable<Text>>, _>(
            m.iter().map(|m| m.client_id.as_deref()).collect::<Vec<_>>(),
        )
        .bind::<Array<Text>, _>(m.iter().map(|m| m.body.as_str()).collect::<Vec<_>>())
        .bind::<Array<BigInt>, _>(m.iter().map(|m| m.created_at).collect::<Vec<_>>())
        .bind::<Array<Nullable<Text>>, _>(m.iter().map(|m| m.meta.as_deref()).collect::<Vec<_>>())
        .execute(conn)?;
        if inserted < m.len() {
            return Err(duplicate_client_id());
        }
    }
    if !plan.touched.is_empty() {
        let t = &plan.touched;
        diesel::sql_query(
            "UPDATE conversations AS c SET last_seq = u.seq, updated_at = u.at \
             FROM UNNEST($1::bigint[], $2::bigint[], $3::bigint[]) AS u(id, seq, at) \
             WHERE c.id = u.id AND c.last_seq < u.seq",
        )
        .bind::<Array<BigInt>, _>(t.iter().map(|t| t.0).collect::<Vec<_>>())
        .bind::<Array<BigInt>, _>(t.iter().map(|t| t.1).collect::<Vec<_>>())
        .bind::<Array<BigInt>, _>(t.iter().map(|t| t.2).collect::<Vec<_>>())
        .execute(conn)?;
    }
    for (marks, column) in plan.marks.iter().zip(MARK_COLUMNS) {
        if marks.is_empty() {
            continue;
        }
        // The column name comes from a constant list, never from input.
        diesel::sql_query(format!(
            "UPDATE conversations AS c SET {column} = u.seq \
             FROM UNNEST($1::bigint[], $2::bigint[]) AS u(id, seq) \
             WHERE c.id = u.id AND c.{column} < u.seq"
        ))
        .bind::<Array<BigInt>, _>(marks.iter().map(|m| m.0).collect::<Vec<_>>())
        .bind::<Array<BigInt>, _>(marks.iter().map(|m| m.1).collect::<Vec<_>>())
        .execute(conn)?;
    }
    apply_others!(conn, plan);
    Ok(())
}

impl Store {
    /// Commits a batch of writes in one transaction: all of them or none.
    pub fn commit_batch(&self, writes: &[&Write]) -> StoreResult<()> {
        let plan = BatchPlan::new(writes);
        match &self.pool {
            Pool::Sqlite(pool) => {
                let mut conn = pool.get()?;
                conn.immediate_transaction(|c| commit_sqlite(c, &plan))?;
                self.restart_wal_if_asked(&mut conn);
                Ok(())
            }
            Pool::Postgres(pool) => {
                let mut conn = pool.get()?;
                conn.transaction(|c| commit_postgres(c, &plan))
            }
        }
    }

    /// Messages of a conversation with `after < seq <= upto`, in order, at most `limit`;
    /// `for_visitor` leaves out what only operators see (notes).
    pub fn messages_between(
        &self,
        conversation_id: i64,
        after: i64,
        upto: i64,
        limit: i64,
        for_visitor: bool,
    ) -> StoreResult<Vec<MessageView>> {
        db_run!(self, |conn| {
            let mut q = messages::table
                .left_join(
                    operators::table.on(messages::author_kind
                        .eq("operator")
                        .and(operators::id.eq(messages::author_id))),
                )
                .filter(messages::conversation_id.eq(conversation_id))
                .filter(messages::seq.gt(after))
                .filter(messages::seq.le(upto))
                .order(messages::seq.asc())
                .limit(limit)
                .select((
                    messages::conversation_id,
                    messages::seq,
                    messages::kind,
                    messages::author_kind,
                    messages::author_id,
                    messages::client_id,
                    messages::body,
                    messages::created_at,
                    messages::meta,
                    operators::name.nullable(),
                ))
                .into_boxed();
            if for_visitor {
                q = q.filter(messages::kind.ne(crate::model::MessageKind::Note.as_str()));
            }
            let rows: Vec<MessageRow> = q.load(conn)?;
            Ok(rows.into_iter().map(view).collect())
        })
    }

    /// The client ids of a conversation's last `limit` messages, to recognise retries
    /// after the conversation actor was recreated.
    pub fn recent_client_ids(
        &self,
        conversation_id: i64,
        limit: i64,
    ) -> StoreResult<Vec<StoredClientId>> {
        db_run!(self, |conn| {
            Ok(messages::table
                .filter(messages::conversation_id.eq(conversation_id))
                .filter(messages::client_id.is_not_null())
                .order(messages::seq.desc())
                .limit(limit)
                .select((
                    messages::author_kind,
                    messages::author_id,
                    messages::client_id,
                    messages::seq,
                ))
                .load(conn)?)
        })
    }

    /// The sequence number under which a client id was stored, if it was.
    pub fn client_id_seq(
        &self,
        conversation_id: i64,
        author_kind: AuthorKind,
        author_id: i64,
        client_id: &str,
    ) -> StoreResult<Option<i64>> {
        db_run!(self, |conn| {
            Ok(messages::table
                .filter(messages::conversation_id.eq(conversation_id))
                .filter(messages::author_kind.eq(author_kind.as_str()))
                .filter(messages::author_id.eq(author_id))
                .filter(messages::client_id.eq(client_id))
                .select(messages::seq)
                .first(conn)
                .optional()?)
        })
    }

    /// The highest stored sequence number of a conversation (0 when empty).
    pub fn max_seq(&self, conversation_id: i64) -> StoreResult<i64> {
        db_run!(self, |conn| {
            let max: Option<i64> = messages::table
                .filter(messages::conversation_id.eq(conversation_id))
                .select(diesel::dsl::max(messages::seq))
                .first(conn)?;
            Ok(max.unwrap_or(0))
        })
    }

    /// Messages stored in all (for tests and the crash check).
    pub fn count_messages(&self) -> StoreResult<i64> {
        db_run!(self, |conn| Ok(messages::table.count().get_result(conn)?))
    }
}
