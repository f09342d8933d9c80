//! Conversations: creation, lookup and the operator's list.

use super::schema::{conversations, messages};
use super::{Store, StoreResult};
use crate::db_run;
use crate::model::{ConversationStatus, ConversationView};
use diesel::prelude::*;
use serde::Serialize;

/// A conversation as stored.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = conversations)]
pub struct ConversationRow {
    /// Id, also its human-readable number.
    pub id: i64,
    /// Its visitor.
    pub visitor_id: i64,
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
}

impl ConversationRow {
    /// The header clients see.
    pub fn view(&self) -> ConversationView {
        ConversationView {
            id: self.id,
            number: self.id,
            status: ConversationStatus::parse(&self.status),
            channel: self.channel.clone(),
            last_seq: self.last_seq,
            visitor_read_seq: self.visitor_read_seq,
            operator_read_seq: self.operator_read_seq,
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

/// One line of the operator's conversation list.
#[derive(Debug, Clone, Serialize)]
pub struct ConversationSummary {
    /// The header.
    #[serde(flatten)]
    pub conversation: ConversationView,
    /// Visitor messages after the operators' read mark.
    pub unread: i64,
    /// The last text message, if any.
    pub last_message: Option<String>,
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

impl Store {
    /// Opens a new conversation for a visitor.
    pub fn add_conversation(
        &self,
        visitor_id: i64,
        channel: &str,
        now: i64,
    ) -> StoreResult<ConversationRow> {
        db_run!(self, |conn| {
            Ok(diesel::insert_into(conversations::table)
                .values((
                    conversations::visitor_id.eq(visitor_id),
                    conversations::channel.eq(channel),
                    conversations::status.eq(ConversationStatus::Open.as_str()),
                    conversations::created_at.eq(now),
                    conversations::updated_at.eq(now),
                ))
                .returning(ConversationRow::as_returning())
                .get_result(conn)?)
        })
    }

    /// A conversation by id.
    pub fn conversation(&self, id: i64) -> StoreResult<Option<ConversationRow>> {
        db_run!(self, |conn| {
            Ok(conversations::table
                .find(id)
                .select(ConversationRow::as_select())
                .first(conn)
                .optional()?)
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

    /// The operator's list, most recently active first.
    pub fn list_conversations(
        &self,
        filter: StatusFilter,
        limit: i64,
    ) -> StoreResult<Vec<ConversationSummary>> {
        db_run!(self, |conn| {
            let mut query = conversations::table
                .select(ConversationRow::as_select())
                .order(conversations::updated_at.desc())
                .limit(limit)
                .into_boxed();
            match filter {
                StatusFilter::Open => {
                    query =
                        query.filter(conversations::status.eq(ConversationStatus::Open.as_str()))
                }
                StatusFilter::Closed => {
                    query =
                        query.filter(conversations::status.eq(ConversationStatus::Closed.as_str()))
                }
                StatusFilter::All => {}
            }
            let rows: Vec<ConversationRow> = query.load(conn)?;
            let mut out = Vec::with_capacity(rows.len());
            for row in rows {
                let unread: i64 = messages::table
                    .filter(messages::conversation_id.eq(row.id))
                    .filter(messages::seq.gt(row.operator_read_seq))
                    .filter(messages::author_kind.eq("visitor"))
                    .filter(messages::kind.eq("text"))
                    .count()
                    .get_result(conn)?;
                let last_message: Option<String> = messages::table
                    .filter(messages::conversation_id.eq(row.id))
                    .filter(messages::kind.eq("text"))
                    .order(messages::seq.desc())
                    .select(messages::body)
                    .first(conn)
                    .optional()?;
                out.push(ConversationSummary {
                    conversation: row.view(),
                    unread,
                    last_message,
                });
            }
            Ok(out)
        })
    }
}
