//! CRM contacts: the people behind conversations. Here, the record the console's filters
//! need (a name and the operator who owns the customer, OC11); the widget/CRM issue adds
//! identifiers, merges and the customer card.

use super::schema::contacts;
use super::{Store, StoreResult};
use crate::db_run;
use diesel::prelude::*;
use serde::Serialize;

/// A contact.
#[derive(Debug, Clone, Queryable, Selectable, Serialize)]
#[diesel(table_name = contacts)]
pub struct Contact {
    /// Id.
    pub id: i64,
    /// Display name.
    pub name: String,
    /// The operator whose customer this is ("my customers", OC11).
    pub owner_id: Option<i64>,
    /// Created, ms.
    pub created_at: i64,
    /// Last change, ms.
    pub updated_at: i64,
}

impl Store {
    /// Adds a contact owned by `owner_id`.
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

    /// A contact by id.
    pub fn contact(&self, id: i64) -> StoreResult<Option<Contact>> {
        db_run!(self, |conn| {
            Ok(contacts::table
                .find(id)
                .select(Contact::as_select())
                .first(conn)
                .optional()?)
        })
    }
}
