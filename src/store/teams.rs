//! Teams, which route conversations to their members, and channels, which say where a
//! conversation came from (OC9) and which team answers it.

use super::schema::{channels, team_members, teams};
use super::{Store, StoreError, StoreResult};
use crate::db_run;
use diesel::prelude::*;
use serde::{Deserialize, Serialize};

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

/// A channel as stored.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = channels)]
pub struct ChannelRow {
    id: i64,
    name: String,
    title: String,
    kind: String,
    team_id: Option<i64>,
    created_at: i64,
    settings: String,
    identity_secret: String,
}

impl From<ChannelRow> for Channel {
    fn from(r: ChannelRow) -> Self {
        Channel {
            id: r.id,
            name: r.name,
            title: r.title,
            kind: r.kind,
            team_id: r.team_id,
            created_at: r.created_at,
            // A setting the server cannot read falls back to its default, never fails.
            settings: serde_json::from_str(&r.settings).unwrap_or_default(),
            identity_secret: r.identity_secret,
        }
    }
}

/// Whether the pre-chat form asks for a field (ID7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum FieldRule {
    /// Not asked.
    #[default]
    Off,
    /// Asked; may be left empty.
    Optional,
    /// Asked; the form is refused without it.
    Required,
}

/// The pre-chat form of a channel (ID7): all fields off means no form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Prechat {
    /// Name.
    pub name: FieldRule,
    /// E-mail.
    pub email: FieldRule,
    /// Phone.
    pub phone: FieldRule,
}

impl Prechat {
    /// Whether the widget shows the form before the first message.
    pub fn enabled(&self) -> bool {
        [self.name, self.email, self.phone]
            .iter()
            .any(|r| *r != FieldRule::Off)
    }

    /// The fields a visitor must have given before their first message, by their names in
    /// forms (`name`, `email`, `phone`).
    pub fn required(&self) -> Vec<&'static str> {
        [
            (self.name, "name"),
            (self.email, "email"),
            (self.phone, "phone"),
        ]
        .into_iter()
        .filter(|(rule, _)| *rule == FieldRule::Required)
        .map(|(_, field)| field)
        .collect()
    }
}

/// A channel's widget settings (CF1, CF2, CF5, CF7, CF10, EC1, ID7, ID8), kept as one JSON
/// object so a new setting needs no migration. Every field has a default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChannelSettings {
    /// `es`, `en`, or `auto` (the visitor's browser decides) (CF10).
    pub language: String,
    /// The automatic greeting (CF1); empty means the built-in text in the visitor's language.
    pub greeting: String,
    /// Offer the "please type your name" form (CF2).
    pub name_form: bool,
    /// Seconds after the greeting before the name form shows (CF2).
    pub name_form_delay_secs: u32,
    /// The name form's text; empty means the built-in text.
    pub name_form_text: String,
    /// The pre-chat form (ID7).
    pub prechat: Prechat,
    /// Offer "leave your e-mail to be notified" when nobody can answer (CF7).
    pub offline_form: bool,
    /// The offline form's text; empty means the built-in text.
    pub offline_text: String,
    /// The channel is closed (outside business hours): nobody answers live.
    pub closed: bool,
    /// Refuse visitors without a signed identity (ID8).
    pub require_identity: bool,
    /// Country calling code for phone numbers typed without one (`34`).
    pub default_country_code: String,
    /// Offer a transcript by e-mail after the conversation closes (CF5).
    pub transcript_offer: bool,
    /// Seconds after closing before the transcript offer shows (CF5).
    pub transcript_delay_secs: u32,
    /// Continue conversations by e-mail when the visitor has left (EC1).
    pub email_continuity: bool,
    /// The site page that embeds the widget: "continue the conversation" links lead there
    /// (CF8); empty means this server's own `/continue` page.
    pub site_url: String,
}

impl Default for ChannelSettings {
    fn default() -> Self {
        ChannelSettings {
            language: "auto".into(),
            greeting: String::new(),
            name_form: true,
            name_form_delay_secs: 5,
            name_form_text: String::new(),
            prechat: Prechat::default(),
            offline_form: true,
            offline_text: String::new(),
            closed: false,
            require_identity: false,
            default_country_code: String::new(),
            transcript_offer: true,
            transcript_delay_secs: 5,
            email_continuity: true,
            site_url: String::new(),
        }
    }
}

impl ChannelSettings {
    /// Checks what serde cannot.
    pub fn validate(&self) -> Result<(), String> {
        if !["auto", "es", "en"].contains(&self.language.as_str()) {
            return Err("language must be auto, es or en".into());
        }
        for (name, text) in [
            ("greeting", &self.greeting),
            ("name_form_text", &self.name_form_text),
            ("offline_text", &self.offline_text),
        ] {
            if text.chars().count() > 500 {
                return Err(format!("{name} is longer than 500 characters"));
            }
        }
        if self.name_form_delay_secs > 3600 || self.transcript_delay_secs > 3600 {
            return Err("delays are 0 to 3600 seconds".into());
        }
        let url = &self.site_url;
        if !(url.is_empty() || url.starts_with("https://") || url.starts_with("http://")) {
            return Err("site_url must start with https:// or http://".into());
        }
        let cc = &self.default_country_code;
        if !cc.is_empty() && (cc.len() > 3 || !cc.chars().all(|c| c.is_ascii_digit())) {
            return Err("default_country_code is 1 to 3 digits, such as 34".into());
        }
        Ok(())
    }
}

/// A channel: the widget on a site (`web`), and later e-mail, WhatsApp...
#[derive(Debug, Clone, Serialize)]
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
    /// Widget settings.
    pub settings: ChannelSettings,
    /// The key sites sign their users' ids with (ID8); shown to administrators only.
    #[serde(skip)]
    pub identity_secret: String,
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
            let rows: Vec<ChannelRow> = channels::table
                .order(channels::id)
                .select(ChannelRow::as_select())
                .load(conn)?;
            Ok(rows.into_iter().map(Channel::from).collect())
        })
    }

    /// A channel by its key.
    pub fn channel_by_name(&self, name: &str) -> StoreResult<Option<Channel>> {
        db_run!(self, |conn| {
            let row: Option<ChannelRow> = channels::table
                .filter(channels::name.eq(name))
                .select(ChannelRow::as_select())
                .first(conn)
                .optional()?;
            Ok(row.map(Channel::from))
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
                    channels::identity_secret.eq(crate::auth::new_token()),
                ))
                .returning(ChannelRow::as_returning())
                .get_result(conn)
                .map(Channel::from)
                .map_err(StoreError::from)
        });
        match r {
            Err(StoreError::Conflict(_)) => Err(StoreError::Conflict(
                "a channel with this name already exists".into(),
            )),
            other => other,
        }
    }

    /// Changes a channel's title, kind, team and, when given, its widget settings.
    pub fn update_channel(
        &self,
        id: i64,
        title: &str,
        kind: &str,
        team_id: Option<i64>,
        settings: Option<&ChannelSettings>,
    ) -> StoreResult<Channel> {
        let settings = settings.map(|s| serde_json::to_string(s).unwrap_or_default());
        db_run!(self, |conn| {
            let target = channels::table.find(id);
            if let Some(s) = &settings {
                diesel::update(target)
                    .set(channels::settings.eq(s))
                    .execute(conn)?;
            }
            Ok(diesel::update(target)
                .set((
                    channels::title.eq(title.trim()),
                    channels::kind.eq(kind),
                    channels::team_id.eq(team_id),
                ))
                .returning(ChannelRow::as_returning())
                .get_result(conn)
                .map(Channel::from)?)
        })
    }

    /// Gives a channel a new identity secret (the old one stops verifying at once).
    pub fn rotate_channel_secret(&self, id: i64) -> StoreResult<Channel> {
        db_run!(self, |conn| {
            Ok(diesel::update(channels::table.find(id))
                .set(channels::identity_secret.eq(crate::auth::new_token()))
                .returning(ChannelRow::as_returning())
                .get_result(conn)
                .map(Channel::from)?)
        })
    }

    /// Gives every channel without an identity secret one, from the CSPRNG (the migration
    /// that added secrets leaves them empty).
    pub fn ensure_channel_secrets(&self) -> StoreResult<()> {
        db_run!(self, |conn| {
            let ids: Vec<i64> = channels::table
                .filter(channels::identity_secret.eq(""))
                .select(channels::id)
                .load(conn)?;
            for id in ids {
                diesel::update(channels::table.find(id))
                    .set(channels::identity_secret.eq(crate::auth::new_token()))
                    .execute(conn)?;
            }
            Ok(())
        })
    }
}
