//! Visitors: an anonymous identity the widget keeps as a random token (stored hashed).

use super::schema::{visitor_tokens, visitors};
use super::{Store, StoreResult};
use crate::db_run;
use diesel::prelude::*;

impl Store {
    /// Creates a visitor for a token digest; returns its id.
    pub fn add_visitor(&self, token_hash: &str, now: i64) -> StoreResult<i64> {
        db_run!(self, |conn| {
            Ok(diesel::insert_into(visitors::table)
                .values((
                    visitors::token_hash.eq(token_hash),
                    visitors::created_at.eq(now),
                ))
                .returning(visitors::id)
                .get_result(conn)?)
        })
    }

    /// The visitor holding a token digest (the first token, or one issued later).
    pub fn visitor_by_token(&self, token_hash: &str) -> StoreResult<Option<i64>> {
        db_run!(self, |conn| {
            let first: Option<i64> = visitors::table
                .filter(visitors::token_hash.eq(token_hash))
                .select(visitors::id)
                .first(conn)
                .optional()?;
            if first.is_some() {
                return Ok(first);
            }
            Ok(visitor_tokens::table
                .find(token_hash)
                .select(visitor_tokens::visitor_id)
                .first(conn)
                .optional()?)
        })
    }

    /// Issues one more token for a visitor (a continue link opened on another device).
    pub fn add_visitor_token(
        &self,
        visitor_id: i64,
        token_hash: &str,
        now: i64,
    ) -> StoreResult<()> {
        db_run!(self, |conn| {
            diesel::insert_into(visitor_tokens::table)
                .values((
                    visitor_tokens::token_hash.eq(token_hash),
                    visitor_tokens::visitor_id.eq(visitor_id),
                    visitor_tokens::created_at.eq(now),
                ))
                .execute(conn)?;
            Ok(())
        })
    }
}
