//! Routing settings an administrator changes from the console, kept as rows of a small
//! key-value table so adding one needs no migration.

use super::schema::settings;
use super::{Pool, Store, StoreResult};
use crate::db_run;
use diesel::prelude::*;
use serde::{Deserialize, Serialize};

/// How new conversations find an operator (OC3, OC4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoutingSettings {
    /// Automatic distribution among online operators with free capacity (OC4); when off,
    /// new conversations go to `default_assignee_id`, or stay unassigned for anyone to take.
    pub distribution: bool,
    /// Who gets new conversations while distribution is off (OC3).
    pub default_assignee_id: Option<i64>,
    /// Minutes without a message after which an open conversation closes itself; 0 never
    /// (OC3).
    pub auto_close_minutes: i64,
}

impl Default for RoutingSettings {
    fn default() -> Self {
        RoutingSettings {
            distribution: true,
            default_assignee_id: None,
            auto_close_minutes: 60,
        }
    }
}

impl Store {
    /// The routing settings, with defaults for what was never set.
    pub fn routing_settings(&self) -> StoreResult<RoutingSettings> {
        let rows: Vec<(String, String)> = db_run!(self, |conn| {
            settings::table
                .select((settings::key, settings::value))
                .load(conn)?
        });
        let mut s = RoutingSettings::default();
        for (key, value) in rows {
            match key.as_str() {
                "distribution" => s.distribution = value == "true",
                "default_assignee_id" => s.default_assignee_id = value.parse().ok(),
                "auto_close_minutes" => {
                    s.auto_close_minutes = value.parse().unwrap_or(s.auto_close_minutes)
                }
                _ => {}
            }
        }
        Ok(s)
    }

    /// Stores the routing settings.
    pub fn set_routing_settings(&self, s: &RoutingSettings) -> StoreResult<()> {
        let values = [
            ("distribution", s.distribution.to_string()),
            (
                "default_assignee_id",
                s.default_assignee_id
                    .map(|v| v.to_string())
                    .unwrap_or_default(),
            ),
            ("auto_close_minutes", s.auto_close_minutes.to_string()),
        ];
        match &self.pool {
            Pool::Sqlite(pool) => {
                let mut conn = pool.get()?;
                conn.transaction(|conn| {
                    for (k, v) in &values {
                        diesel::replace_into(settings::table)
                            .values((settings::key.eq(k), settings::value.eq(v)))
                            .execute(conn)?;
                    }
                    Ok(())
                })
            }
            Pool::Postgres(pool) => {
                let mut conn = pool.get()?;
                conn.transaction(|conn| {
                    for (k, v) in &values {
                        diesel::insert_into(settings::table)
                            .values((settings::key.eq(k), settings::value.eq(v)))
                            .on_conflict(settings::key)
                            .do_update()
                            .set(settings::value.eq(v))
                            .execute(conn)?;
                    }
                    Ok(())
                })
            }
        }
    }
}
