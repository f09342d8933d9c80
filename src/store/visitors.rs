//! Visitors: an anonymous identity the widget keeps as a random token (stored hashed).

use super::schema::visitors;
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

    /// The visitor holding a token digest.
    pub fn visitor_by_token(&self, token_hash: &str) -> StoreResult<Option<i64>> {
        db_run!(self, |conn| {
            Ok(visitors::table
                .filter(visitors::token_hash.eq(token_hash))
                .select(visitors::id)
                .first(conn)
                .optional()?)
        })
    }
}
