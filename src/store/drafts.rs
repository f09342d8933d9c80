//! Drafts: what an operator typed in a conversation and has not sent, kept on the server per
//! operator and conversation so it survives a reload, follows the operator to another
//! device, and is never shown to a colleague (XB3, OC13).

use super::schema::drafts;
use super::{Pool, Store, StoreResult};
use crate::db_run;
use diesel::prelude::*;
use serde::Serialize;

/// A stored draft.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Serialize)]
#[diesel(table_name = drafts)]
pub struct Draft {
    /// Whose.
    #[serde(skip)]
    pub operator_id: i64,
    /// Where.
    pub conversation_id: i64,
    /// The text.
    pub body: String,
    /// The message it quotes, if any.
    pub reply_to: Option<i64>,
    /// Last change, ms.
    pub updated_at: i64,
}

impl Store {
    /// Saves (or, with an empty body, deletes) an operator's draft.
    pub fn save_draft(&self, d: &Draft) -> StoreResult<()> {
        if d.body.trim().is_empty() {
            return self.delete_draft(d.operator_id, d.conversation_id);
        }
        let values = (
            drafts::operator_id.eq(d.operator_id),
            drafts::conversation_id.eq(d.conversation_id),
            drafts::body.eq(&d.body),
            drafts::reply_to.eq(d.reply_to),
            drafts::updated_at.eq(d.updated_at),
        );
        match &self.pool {
            Pool::Sqlite(pool) => {
                diesel::replace_into(drafts::table)
                    .values(values)
                    .execute(&mut *pool.get()?)?;
            }
            Pool::Postgres(pool) => {
                diesel::insert_into(drafts::table)
                    .values(values)
                    .on_conflict((drafts::operator_id, drafts::conversation_id))
                    .do_update()
                    .set((
                        drafts::body.eq(&d.body),
                        drafts::reply_to.eq(d.reply_to),
                        drafts::updated_at.eq(d.updated_at),
                    ))
                    .execute(&mut *pool.get()?)?;
            }
        }
        Ok(())
    }

    /// Deletes an operator's draft in a conversation (sent, or emptied).
    pub fn delete_draft(&self, operator_id: i64, conversation_id: i64) -> StoreResult<()> {
        db_run!(self, |conn| {
            diesel::delete(
                drafts::table
                    .filter(drafts::operator_id.eq(operator_id))
                    .filter(drafts::conversation_id.eq(conversation_id)),
            )
            .execute(conn)?;
            Ok(())
        })
    }

    /// Deletes an operator's draft if it was last saved at or before `at` (the moment a
    /// reply was accepted); says whether it did.
    pub fn delete_draft_before(
        &self,
        operator_id: i64,
        conversation_id: i64,
        at: i64,
    ) -> StoreResult<bool> {
        db_run!(self, |conn| {
            let n = diesel::delete(
                drafts::table
                    .filter(drafts::operator_id.eq(operator_id))
                    .filter(drafts::conversation_id.eq(conversation_id))
                    .filter(drafts::updated_at.le(at)),
            )
            .execute(conn)?;
            Ok(n > 0)
        })
    }

    /// One operator's draft in one conversation.
    pub fn draft(&self, operator_id: i64, conversation_id: i64) -> StoreResult<Option<Draft>> {
        db_run!(self, |conn| {
            Ok(drafts::table
                .filter(drafts::operator_id.eq(operator_id))
                .filter(drafts::conversation_id.eq(conversation_id))
                .select(Draft::as_select())
                .first(conn)
                .optional()?)
        })
    }

    /// The operators with a draft in a conversation.
    pub fn drafters(&self, conversation_id: i64) -> StoreResult<Vec<i64>> {
        db_run!(self, |conn| {
            Ok(drafts::table
                .filter(drafts::conversation_id.eq(conversation_id))
                .select(drafts::operator_id)
                .load(conn)?)
        })
    }

    /// An operator's drafts in these conversations.
    pub fn drafts_of(&self, operator_id: i64, conversation_ids: &[i64]) -> StoreResult<Vec<Draft>> {
        db_run!(self, |conn| {
            Ok(drafts::table
                .filter(drafts::operator_id.eq(operator_id))
                .filter(drafts::conversation_id.eq_any(conversation_ids))
                .select(Draft::as_select())
                .load(conn)?)
        })
    }
}
