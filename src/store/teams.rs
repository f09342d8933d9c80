//! Teams, which route conversations to their members, and channels, which say where a
//! conversation came from (OC9) and which team answers it.

use super::schema::{channels, team_members, teams};
use super::{Store, StoreError, StoreResult};
use crate::db_run;
use diesel::prelude::*;
use serde::Serialize;

/// A team of operators.
#[derive(Debug, Clone, Serialize)]
pub struct Team {
    /// Id.
    pub id: i64,
    /// Name, unique.
    pub name: String,
    /// Its operators.
    pub members: Vec<i64>,
}

/// A channel: the widget on a site (`web`), and later e-mail, WhatsApp...
#[derive(Debug, Clone, Queryable, Selectable, Serialize)]
#[diesel(table_name = channels)]
pub struct Channel {
    /// Id.
    pub id: i64,
    /// The key a widget names in `hello` (`web`).
    pub name: String,
    /// What operators see in the list (OC9).
    pub title: String,
    /// `web`, `email`, `whatsapp`, `sms`...: picks the icon.
    pub kind: String,
    /// The team that answers it; `None` means every operator.
    pub team_id: Option<i64>,
    /// Creation time, ms.
    #[serde(skip)]
    pub created_at: i64,
}

/// The kinds of channel the console has an icon for.
pub const CHANNEL_KINDS: &[&str] = &["web", "email", "whatsapp", "sms", "telegram", "other"];

impl Store {
    /// Every team with its members, by name.
    pub fn list_teams(&self) -> StoreResult<Vec<Team>> {
        db_run!(self, |conn| {
            let rows: Vec<(i64, String)> = teams::table
                .order(teams::name)
                .select((teams::id, teams::name))
                .load(conn)?;
            let members: Vec<(i64, i64)> = team_members::table
                .select((team_members::team_id, team_members::operator_id))
                .load(conn)?;
            Ok(rows
                .into_iter()
                .map(|(id, name)| Team {
                    id,
                    name,
                    members: members.iter().filter(|m| m.0 == id).map(|m| m.1).collect(),
                })
                .collect())
        })
    }

    /// Adds a team; the name must be new.
    pub fn add_team(&self, name: &str, now: i64) -> StoreResult<Team> {
        let r: StoreResult<i64> = db_run!(self, |conn| {
            diesel::insert_into(teams::table)
                .values((teams::name.eq(name.trim()), teams::created_at.eq(now)))
                .returning(teams::id)
                .get_result(conn)
                .map_err(StoreError::from)
        });
        match r {
            Ok(id) => Ok(Team {
                id,
                name: name.trim().to_string(),
                members: Vec::new(),
            }),
            Err(StoreError::Conflict(_)) => Err(StoreError::Conflict(
                "a team with this name already exists".into(),
            )),
            Err(e) => Err(e),
        }
    }

    /// A team's name and members.
    pub fn team(&self, id: i64) -> StoreResult<Option<Team>> {
        Ok(self.list_teams()?.into_iter().find(|t| t.id == id))
    }

    /// Every channel, by id.
    pub fn list_channels(&self) -> StoreResult<Vec<Channel>> {
        db_run!(self, |conn| {
            Ok(channels::table
                .order(channels::id)
                .select(Channel::as_select())
                .load(conn)?)
        })
    }

    /// A channel by its key.
    pub fn channel_by_name(&self, name: &str) -> StoreResult<Option<Channel>> {
        db_run!(self, |conn| {
            Ok(channels::table
                .filter(channels::name.eq(name))
                .select(Channel::as_select())
                .first(conn)
                .optional()?)
        })
    }

    /// Adds a channel; the key must be new.
    pub fn add_channel(
        &self,
        name: &str,
        title: &str,
        kind: &str,
        team_id: Option<i64>,
        now: i64,
    ) -> StoreResult<Channel> {
        let r: StoreResult<Channel> = db_run!(self, |conn| {
            diesel::insert_into(channels::table)
                .values((
                    channels::name.eq(name),
                    channels::title.eq(title.trim()),
                    channels::kind.eq(kind),
                    channels::team_id.eq(team_id),
                    channels::created_at.eq(now),
                ))
                .returning(Channel::as_returning())
                .get_result(conn)
                .map_err(StoreError::from)
        });
        match r {
            Err(StoreError::Conflict(_)) => Err(StoreError::Conflict(
                "a channel with this name already exists".into(),
            )),
            other => other,
        }
    }

    /// Changes a channel's title, kind and team.
    pub fn update_channel(
        &self,
        id: i64,
        title: &str,
        kind: &str,
        team_id: Option<i64>,
    ) -> StoreResult<Channel> {
        db_run!(self, |conn| {
            Ok(diesel::update(channels::table.find(id))
                .set((
                    channels::title.eq(title.trim()),
                    channels::kind.eq(kind),
                    channels::team_id.eq(team_id),
                ))
                .returning(Channel::as_returning())
                .get_result(conn)?)
        })
    }
}
