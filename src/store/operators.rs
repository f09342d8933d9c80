//! Operators and their login tokens.

use super::schema::{operator_tokens, operators};
use super::{Store, StoreError, StoreResult};
use crate::db_run;
use diesel::prelude::*;
use serde::Serialize;

/// An operator as stored.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = operators)]
pub struct OperatorRow {
    /// Id.
    pub id: i64,
    /// Login e-mail, lower-case.
    pub email: String,
    /// Display name shown to visitors.
    pub name: String,
    /// argon2 PHC string.
    pub password_hash: String,
    /// Administrators may do everything.
    pub is_admin: bool,
    /// Without it an operator may log in but not touch conversations (OC1).
    pub can_chat: bool,
    /// Creation time, ms.
    pub created_at: i64,
}

/// An operator as the API shows it (never the hash).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Operator {
    /// Id.
    pub id: i64,
    /// Login e-mail.
    pub email: String,
    /// Display name.
    pub name: String,
    /// Administrator.
    pub is_admin: bool,
    /// May chat.
    pub can_chat: bool,
}

impl From<OperatorRow> for Operator {
    fn from(r: OperatorRow) -> Self {
        Operator {
            id: r.id,
            email: r.email,
            name: r.name,
            is_admin: r.is_admin,
            can_chat: r.can_chat,
        }
    }
}

#[derive(Insertable)]
#[diesel(table_name = operators)]
struct NewOperator<'a> {
    email: &'a str,
    name: &'a str,
    password_hash: &'a str,
    is_admin: bool,
    can_chat: bool,
    created_at: i64,
}

/// Normalises a login e-mail.
pub fn normalise_email(email: &str) -> String {
    email.trim().to_lowercase()
}

impl Store {
    /// Adds an operator; the e-mail must be new.
    pub fn add_operator(
        &self,
        email: &str,
        name: &str,
        password_hash: &str,
        is_admin: bool,
        now: i64,
    ) -> StoreResult<Operator> {
        let email = normalise_email(email);
        let row = NewOperator {
            email: &email,
            name: name.trim(),
            password_hash,
            is_admin,
            can_chat: true,
            created_at: now,
        };
        let result: Result<OperatorRow, StoreError> = db_run!(self, |conn| {
            diesel::insert_into(operators::table)
                .values(&row)
                .returning(OperatorRow::as_returning())
                .get_result(conn)
                .map_err(StoreError::from)
        });
        match result {
            Err(StoreError::Conflict(_)) => Err(StoreError::Conflict(
                "an operator with this e-mail already exists".into(),
            )),
            other => other.map(Operator::from),
        }
    }

    /// Finds an operator by login e-mail.
    pub fn operator_by_email(&self, email: &str) -> StoreResult<Option<OperatorRow>> {
        let email = normalise_email(email);
        db_run!(self, |conn| {
            Ok(operators::table
                .filter(operators::email.eq(&email))
                .select(OperatorRow::as_select())
                .first(conn)
                .optional()?)
        })
    }

    /// Sets whether an operator may chat.
    pub fn set_operator_can_chat(&self, id: i64, can_chat: bool) -> StoreResult<Operator> {
        db_run!(self, |conn| {
            let row = diesel::update(operators::table.find(id))
                .set(operators::can_chat.eq(can_chat))
                .returning(OperatorRow::as_returning())
                .get_result(conn)?;
            Ok(Operator::from(row))
        })
    }

    /// Every operator, by id.
    pub fn list_operators(&self) -> StoreResult<Vec<Operator>> {
        db_run!(self, |conn| {
            let rows = operators::table
                .order(operators::id)
                .select(OperatorRow::as_select())
                .load(conn)?;
            Ok(rows.into_iter().map(Operator::from).collect())
        })
    }

    /// Stores a login token's digest.
    pub fn add_operator_token(
        &self,
        token_hash: &str,
        operator_id: i64,
        now: i64,
        expires_at: i64,
    ) -> StoreResult<()> {
        db_run!(self, |conn| {
            diesel::insert_into(operator_tokens::table)
                .values((
                    operator_tokens::token_hash.eq(token_hash),
                    operator_tokens::operator_id.eq(operator_id),
                    operator_tokens::created_at.eq(now),
                    operator_tokens::expires_at.eq(expires_at),
                ))
                .execute(conn)?;
            Ok(())
        })
    }

    /// The operator holding an unexpired token, with the token's expiry.
    pub fn operator_by_token(
        &self,
        token_hash: &str,
        now: i64,
    ) -> StoreResult<Option<(Operator, i64)>> {
        db_run!(self, |conn| {
            let found = operator_tokens::table
                .inner_join(operators::table)
                .filter(operator_tokens::token_hash.eq(token_hash))
                .filter(operator_tokens::expires_at.gt(now))
                .select((OperatorRow::as_select(), operator_tokens::expires_at))
                .first::<(OperatorRow, i64)>(conn)
                .optional()?;
            Ok(found.map(|(row, exp)| (Operator::from(row), exp)))
        })
    }

    /// Deletes a token (logout) and every expired one.
    pub fn delete_operator_token(&self, token_hash: &str, now: i64) -> StoreResult<()> {
        db_run!(self, |conn| {
            diesel::delete(
                operator_tokens::table.filter(
                    operator_tokens::token_hash
                        .eq(token_hash)
                        .or(operator_tokens::expires_at.le(now)),
                ),
            )
            .execute(conn)?;
            Ok(())
        })
    }
}
