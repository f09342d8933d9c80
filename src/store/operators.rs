//! Operators, their login tokens, and what they belong to: user groups (which carry the
//! chat permission, OC1) and teams (which route conversations).

use super::schema::{operator_groups, operator_tokens, operators, team_members, user_groups};
use super::{Store, StoreError, StoreResult};
use crate::{db_run, db_tx};
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
    /// Creation time, ms.
    pub created_at: i64,
    /// Most open conversations distribution gives the operator at once.
    pub capacity: i64,
    /// Takes new conversations while online.
    pub available: bool,
    /// `section` or `popup` (OC2).
    pub display_mode: String,
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
    /// A user group of the operator carries the chat permission (administrators chat
    /// whatever their groups say, see [`Operator::may_chat`]).
    pub can_chat: bool,
    /// Most open conversations distribution gives the operator at once (XB13).
    pub capacity: i64,
    /// Takes new conversations while online.
    pub available: bool,
    /// Console preference, `section` or `popup` (OC2).
    pub display_mode: String,
    /// The user groups the operator belongs to.
    pub groups: Vec<i64>,
    /// The teams the operator belongs to.
    pub teams: Vec<i64>,
}

impl Operator {
    /// Whether the operator may touch conversations (OC1: administrators always may).
    pub fn may_chat(&self) -> bool {
        self.is_admin || self.can_chat
    }
}

/// A user group: a set of operators and the permission it carries (OC1).
#[derive(Debug, Clone, Queryable, Selectable, Serialize)]
#[diesel(table_name = user_groups)]
pub struct UserGroup {
    /// Id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// Members may chat.
    pub can_chat: bool,
    /// Creation time, ms.
    #[serde(skip)]
    pub created_at: i64,
}

/// What an administrator may change about an operator; `None` leaves a field alone.
#[derive(Debug, Clone, Default)]
pub struct OperatorChange {
    /// New display name.
    pub name: Option<String>,
    /// Administrator or not.
    pub is_admin: Option<bool>,
    /// Capacity.
    pub capacity: Option<i64>,
    /// Takes new conversations.
    pub available: Option<bool>,
    /// `section` or `popup`.
    pub display_mode: Option<String>,
    /// The complete set of user groups.
    pub groups: Option<Vec<i64>>,
    /// The complete set of teams.
    pub teams: Option<Vec<i64>>,
}

#[derive(Insertable)]
#[diesel(table_name = operators)]
struct NewOperator<'a> {
    email: &'a str,
    name: &'a str,
    password_hash: &'a str,
    is_admin: bool,
    created_at: i64,
}

/// Normalises a login e-mail.
pub fn normalise_email(email: &str) -> String {
    email.trim().to_lowercase()
}

/// What an operator row needs to become an [`Operator`]: its groups (with their
/// permission) and its teams.
macro_rules! complete {
    ($conn:expr, $rows:expr) => {{
        let rows: Vec<OperatorRow> = $rows;
        let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
        let memberships: Vec<(i64, i64, bool)> = operator_groups::table
            .inner_join(user_groups::table)
            .filter(operator_groups::operator_id.eq_any(&ids))
            .select((
                operator_groups::operator_id,
                operator_groups::group_id,
                user_groups::can_chat,
            ))
            .load($conn)?;
        let teams: Vec<(i64, i64)> = team_members::table
            .filter(team_members::operator_id.eq_any(&ids))
            .select((team_members::operator_id, team_members::team_id))
            .load($conn)?;
        rows.into_iter()
            .map(|r| {
                let mine = memberships.iter().filter(|m| m.0 == r.id);
                Operator {
                    can_chat: mine.clone().any(|m| m.2),
                    groups: mine.map(|m| m.1).collect(),
                    teams: teams.iter().filter(|t| t.0 == r.id).map(|t| t.1).collect(),
                    id: r.id,
                    email: r.email,
                    name: r.name,
                    is_admin: r.is_admin,
                    capacity: r.capacity,
                    available: r.available,
                    display_mode: r.display_mode,
                }
            })
            .collect::<Vec<Operator>>()
    }};
}

impl Store {
    /// Adds an operator; the e-mail must be new. Without `groups`, the operator joins the
    /// default chat group (`Chat operators`), so a new colleague can answer at once.
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
            created_at: now,
        };
        let result: Result<Operator, StoreError> = db_tx!(self, |conn| {
            let row: OperatorRow = diesel::insert_into(operators::table)
                .values(&row)
                .returning(OperatorRow::as_returning())
                .get_result(conn)?;
            let default: Option<i64> = user_groups::table
                .filter(user_groups::can_chat.eq(true))
                .order((user_groups::name.ne("Chat operators"), user_groups::id))
                .select(user_groups::id)
                .first(conn)
                .optional()?;
            if let Some(group) = default {
                diesel::insert_into(operator_groups::table)
                    .values((
                        operator_groups::operator_id.eq(row.id),
                        operator_groups::group_id.eq(group),
                    ))
                    .execute(conn)?;
            }
            Ok::<_, StoreError>(complete!(conn, vec![row]))
        })
        .and_then(|mut v: Vec<Operator>| v.pop().ok_or(StoreError::NotFound));
        match result {
            Err(StoreError::Conflict(_)) => Err(StoreError::Conflict(
                "an operator with this e-mail already exists".into(),
            )),
            other => other,
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

    /// One operator with its groups and teams.
    pub fn operator(&self, id: i64) -> StoreResult<Option<Operator>> {
        db_run!(self, |conn| {
            let rows = operators::table
                .filter(operators::id.eq(id))
                .select(OperatorRow::as_select())
                .load(conn)?;
            Ok(complete!(conn, rows).pop())
        })
    }

    /// Applies an administrator's (or the operator's own) change; unknown groups or teams
    /// are refused.
    pub fn update_operator(&self, id: i64, change: &OperatorChange) -> StoreResult<Operator> {
        db_tx!(self, |conn| {
            let exists: i64 = operators::table
                .filter(operators::id.eq(id))
                .count()
                .get_result(conn)?;
            if exists == 0 {
                return Err(StoreError::NotFound);
            }
            let target = operators::table.find(id);
            if let Some(name) = &change.name {
                diesel::update(target)
                    .set(operators::name.eq(name.trim()))
                    .execute(conn)?;
            }
            if let Some(v) = change.is_admin {
                diesel::update(target)
                    .set(operators::is_admin.eq(v))
                    .execute(conn)?;
            }
            if let Some(v) = change.capacity {
                diesel::update(target)
                    .set(operators::capacity.eq(v))
                    .execute(conn)?;
            }
            if let Some(v) = change.available {
                diesel::update(target)
                    .set(operators::available.eq(v))
                    .execute(conn)?;
            }
            if let Some(v) = &change.display_mode {
                diesel::update(target)
                    .set(operators::display_mode.eq(v))
                    .execute(conn)?;
            }
            if let Some(groups) = &change.groups {
                let known: i64 = user_groups::table
                    .filter(user_groups::id.eq_any(groups))
                    .count()
                    .get_result(conn)?;
                if known as usize != dedup(groups).len() {
                    return Err(StoreError::Conflict("no such user group".into()));
                }
                diesel::delete(operator_groups::table.filter(operator_groups::operator_id.eq(id)))
                    .execute(conn)?;
                for g in dedup(groups) {
                    diesel::insert_into(operator_groups::table)
                        .values((
                            operator_groups::operator_id.eq(id),
                            operator_groups::group_id.eq(g),
                        ))
                        .execute(conn)?;
                }
            }
            if let Some(teams) = &change.teams {
                let known: i64 = super::schema::teams::table
                    .filter(super::schema::teams::id.eq_any(teams))
                    .count()
                    .get_result(conn)?;
                if known as usize != dedup(teams).len() {
                    return Err(StoreError::Conflict("no such team".into()));
                }
                diesel::delete(team_members::table.filter(team_members::operator_id.eq(id)))
                    .execute(conn)?;
                for t in dedup(teams) {
                    diesel::insert_into(team_members::table)
                        .values((
                            team_members::team_id.eq(t),
                            team_members::operator_id.eq(id),
                        ))
                        .execute(conn)?;
                }
            }
            let rows = operators::table
                .filter(operators::id.eq(id))
                .select(OperatorRow::as_select())
                .load(conn)?;
            complete!(conn, rows).pop().ok_or(StoreError::NotFound)
        })
    }

    /// Every operator, by id.
    pub fn list_operators(&self) -> StoreResult<Vec<Operator>> {
        db_run!(self, |conn| {
            let rows = operators::table
                .order(operators::id)
                .select(OperatorRow::as_select())
                .load(conn)?;
            Ok(complete!(conn, rows))
        })
    }

    /// How many operators exist (zero means the first-run set-up is open).
    pub fn operator_count(&self) -> StoreResult<i64> {
        db_run!(self, |conn| Ok(operators::table
            .count()
            .get_result(conn)?))
    }

    /// Every user group, by id.
    pub fn list_groups(&self) -> StoreResult<Vec<UserGroup>> {
        db_run!(self, |conn| {
            Ok(user_groups::table
                .order(user_groups::id)
                .select(UserGroup::as_select())
                .load(conn)?)
        })
    }

    /// Adds a user group; the name must be new.
    pub fn add_group(&self, name: &str, can_chat: bool, now: i64) -> StoreResult<UserGroup> {
        let r: StoreResult<UserGroup> = db_run!(self, |conn| {
            diesel::insert_into(user_groups::table)
                .values((
                    user_groups::name.eq(name.trim()),
                    user_groups::can_chat.eq(can_chat),
                    user_groups::created_at.eq(now),
                ))
                .returning(UserGroup::as_returning())
                .get_result(conn)
                .map_err(StoreError::from)
        });
        match r {
            Err(StoreError::Conflict(_)) => Err(StoreError::Conflict(
                "a user group with this name already exists".into(),
            )),
            other => other,
        }
    }

    /// Grants or revokes a group's chat permission.
    pub fn set_group_can_chat(&self, id: i64, can_chat: bool) -> StoreResult<UserGroup> {
        db_run!(self, |conn| {
            Ok(diesel::update(user_groups::table.find(id))
                .set(user_groups::can_chat.eq(can_chat))
                .returning(UserGroup::as_returning())
                .get_result(conn)?)
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
            let Some((row, exp)) = found else {
                return Ok(None);
            };
            Ok(complete!(conn, vec![row]).pop().map(|op| (op, exp)))
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

fn dedup(ids: &[i64]) -> Vec<i64> {
    let mut v = ids.to_vec();
    v.sort_unstable();
    v.dedup();
    v
}
