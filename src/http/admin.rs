//! What administrators set up from the console: routing settings (OC3, OC4), user groups
//! and their chat permission (OC1), teams and channels; and the routing overview every
//! operator sees (who is online with how many conversations, who waits).

use super::account::Authed;
use crate::error::AppError;
use crate::runtime::router::{SettingsChanged, Snapshot};
use crate::runtime::Runtime;
use crate::store::settings::RoutingSettings;
use crate::store::teams::{ChannelSettings, CHANNEL_KINDS};
use actix_web::{web, HttpResponse};
use serde::Deserialize;

/// `GET /api/routing`: the queue, the operators online and the settings in force.
pub async fn routing(rt: web::Data<Runtime>, who: Authed) -> Result<HttpResponse, AppError> {
    who.require_chat()?;
    let snapshot = rt
        .router
        .send(Snapshot)
        .await
        .map_err(|_| AppError::internal())?;
    Ok(HttpResponse::Ok().json(snapshot))
}

/// `PUT /api/settings/routing` (administrators).
pub async fn put_routing_settings(
    rt: web::Data<Runtime>,
    who: Authed,
    body: web::Json<RoutingSettings>,
) -> Result<HttpResponse, AppError> {
    who.require_admin()?;
    let settings = body.into_inner();
    if !(0..=60 * 24 * 30).contains(&settings.auto_close_minutes) {
        return Err(AppError::bad_request(
            "auto_close_minutes must be 0 (never) to 43200 (30 days)",
        ));
    }
    if let Some(id) = settings.default_assignee_id {
        let op = rt
            .core
            .store
            .call(move |s| s.operator(id))
            .await?
            .ok_or_else(|| AppError::bad_request("the default assignee is no operator"))?;
        if !op.may_chat() {
            return Err(AppError::bad_request(
                "the default assignee has no chat permission",
            ));
        }
    }
    let stored = settings.clone();
    rt.core
        .store
        .call(move |s| s.set_routing_settings(&stored))
        .await?;
    rt.router.do_send(SettingsChanged {
        settings: settings.clone(),
    });
    Ok(HttpResponse::Ok().json(settings))
}

/// `GET /api/settings/routing`.
pub async fn get_routing_settings(
    rt: web::Data<Runtime>,
    who: Authed,
) -> Result<HttpResponse, AppError> {
    who.require_chat()?;
    let s = rt.core.store.call(|s| s.routing_settings()).await?;
    Ok(HttpResponse::Ok().json(s))
}

fn check_name(name: &str) -> Result<(), AppError> {
    if name.trim().is_empty() || name.chars().count() > 100 {
        return Err(AppError::bad_request(
            "the name must be 1 to 100 characters",
        ));
    }
    Ok(())
}

/// `GET /api/groups`.
pub async fn list_groups(rt: web::Data<Runtime>, who: Authed) -> Result<HttpResponse, AppError> {
    who.require_admin()?;
    Ok(HttpResponse::Ok().json(rt.core.store.call(|s| s.list_groups()).await?))
}

/// New group body.
#[derive(Deserialize)]
pub struct GroupBody {
    name: String,
    #[serde(default)]
    can_chat: bool,
}

/// `POST /api/groups` (administrators).
pub async fn add_group(
    rt: web::Data<Runtime>,
    who: Authed,
    body: web::Json<GroupBody>,
) -> Result<HttpResponse, AppError> {
    who.require_admin()?;
    let b = body.into_inner();
    check_name(&b.name)?;
    let now = rt.core.clock.now_ms();
    let g = rt
        .core
        .store
        .call(move |s| s.add_group(&b.name, b.can_chat, now))
        .await?;
    Ok(HttpResponse::Created().json(g))
}

/// Group change body.
#[derive(Deserialize)]
pub struct GroupChange {
    can_chat: bool,
}

/// `PATCH /api/groups/{id}` (administrators): grants or revokes the chat permission of
/// every member at once (OC1): over HTTP, over their open consoles and in distribution.
pub async fn update_group(
    rt: web::Data<Runtime>,
    who: Authed,
    path: web::Path<i64>,
    body: web::Json<GroupChange>,
) -> Result<HttpResponse, AppError> {
    who.require_admin()?;
    let id = path.into_inner();
    let can_chat = body.can_chat;
    let g = rt
        .core
        .store
        .call(move |s| s.set_group_can_chat(id, can_chat))
        .await?;
    // Their open consoles refuse the next frame, and routing hands nothing more to
    // someone who just lost the permission.
    let operators = rt.core.store.call(|s| s.list_operators()).await?;
    for op in operators.into_iter().filter(|o| o.groups.contains(&id)) {
        rt.core.hub.account_changed(&op);
        rt.router
            .do_send(crate::runtime::router::OperatorChanged { operator: op });
    }
    Ok(HttpResponse::Ok().json(g))
}

/// `GET /api/teams`.
pub async fn list_teams(rt: web::Data<Runtime>, who: Authed) -> Result<HttpResponse, AppError> {
    who.require_chat()?;
    Ok(HttpResponse::Ok().json(rt.core.store.call(|s| s.list_teams()).await?))
}

/// New team body.
#[derive(Deserialize)]
pub struct TeamBody {
    name: String,
}

/// `POST /api/teams` (administrators).
pub async fn add_team(
    rt: web::Data<Runtime>,
    who: Authed,
    body: web::Json<TeamBody>,
) -> Result<HttpResponse, AppError> {
    who.require_admin()?;
    let name = body.into_inner().name;
    check_name(&name)?;
    let now = rt.core.clock.now_ms();
    let t = rt.core.store.call(move |s| s.add_team(&name, now)).await?;
    Ok(HttpResponse::Created().json(t))
}

/// `GET /api/channels`: every channel with its title and kind, for the list's icons.
pub async fn list_channels(rt: web::Data<Runtime>, who: Authed) -> Result<HttpResponse, AppError> {
    who.require_chat()?;
    Ok(HttpResponse::Ok().json(rt.core.store.call(|s| s.list_channels()).await?))
}

/// Channel body.
#[derive(Deserialize)]
pub struct ChannelBody {
    #[serde(default)]
    name: Option<String>,
    title: String,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    team_id: Option<i64>,
    #[serde(default)]
    settings: Option<ChannelSettings>,
}

fn check_channel(b: &ChannelBody) -> Result<String, AppError> {
    check_name(&b.title)?;
    if let Some(s) = &b.settings {
        s.validate().map_err(AppError::bad_request)?;
    }
    let kind = b.kind.clone().unwrap_or_else(|| "web".into());
    if !CHANNEL_KINDS.contains(&kind.as_str()) {
        return Err(AppError::bad_request(format!(
            "kind must be one of {}",
            CHANNEL_KINDS.join(", ")
        )));
    }
    Ok(kind)
}

/// `POST /api/channels` (administrators).
pub async fn add_channel(
    rt: web::Data<Runtime>,
    who: Authed,
    body: web::Json<ChannelBody>,
) -> Result<HttpResponse, AppError> {
    who.require_admin()?;
    let b = body.into_inner();
    let kind = check_channel(&b)?;
    let name = b.name.clone().unwrap_or_default();
    let valid = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !valid {
        return Err(AppError::bad_request(
            "the channel name must be 1 to 64 letters, digits, - or _",
        ));
    }
    let now = rt.core.clock.now_ms();
    let settings = b.settings.clone();
    let c = rt
        .core
        .store
        .call(move |s| {
            let c = s.add_channel(&name, &b.title, &kind, b.team_id, now)?;
            match settings {
                Some(st) => s.update_channel(c.id, &c.title, &c.kind, c.team_id, Some(&st)),
                None => Ok(c),
            }
        })
        .await?;
    rt.forget_channels();
    Ok(HttpResponse::Created().json(c))
}

/// `PATCH /api/channels/{id}` (administrators): title, kind and team.
pub async fn update_channel(
    rt: web::Data<Runtime>,
    who: Authed,
    path: web::Path<i64>,
    body: web::Json<ChannelPatch>,
) -> Result<HttpResponse, AppError> {
    who.require_admin()?;
    let patch = body.into_inner();
    let id = path.into_inner();
    let current = rt
        .core
        .store
        .call(|s| s.list_channels())
        .await?
        .into_iter()
        .find(|c| c.id == id)
        .ok_or_else(|| AppError::not_found("no such channel"))?;
    // What is sent changes; what is left out stays (settings merge key by key).
    let mut settings = serde_json::to_value(&current.settings).unwrap_or_default();
    if let (Some(serde_json::Value::Object(given)), Some(obj)) =
        (patch.settings, settings.as_object_mut())
    {
        for (k, v) in given {
            obj.insert(k, v);
        }
    }
    let settings: ChannelSettings = serde_json::from_value(settings)
        .map_err(|e| AppError::bad_request(format!("invalid settings: {e}")))?;
    let merged = ChannelBody {
        name: None,
        title: patch.title.unwrap_or(current.title),
        kind: Some(patch.kind.unwrap_or(current.kind)),
        team_id: patch.team_id.unwrap_or(current.team_id),
        settings: Some(settings),
    };
    let kind = check_channel(&merged)?;
    let c = rt
        .core
        .store
        .call(move |s| {
            s.update_channel(
                id,
                &merged.title,
                &kind,
                merged.team_id,
                merged.settings.as_ref(),
            )
        })
        .await?;
    rt.forget_channels();
    Ok(HttpResponse::Ok().json(c))
}

/// A channel change: every field may be left out, and stays as it is; `team_id: null`
/// routes the channel to everyone; `settings` holds only the settings to change.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelPatch {
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default, deserialize_with = "present")]
    team_id: Option<Option<i64>>,
    #[serde(default)]
    settings: Option<serde_json::Value>,
}

/// Tells a field sent as `null` (`Some(None)`) from one left out (`None`).
fn present<'de, D>(d: D) -> Result<Option<Option<i64>>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    Option::<i64>::deserialize(d).map(Some)
}

/// `GET /api/channels/{id}/secret` (administrators): the key the site signs its logged-in
/// users' ids with (ID8), with an example of the signature.
pub async fn channel_secret(
    rt: web::Data<Runtime>,
    who: Authed,
    path: web::Path<i64>,
) -> Result<HttpResponse, AppError> {
    who.require_admin()?;
    let id = path.into_inner();
    let c = rt
        .core
        .store
        .call(|s| s.list_channels())
        .await?
        .into_iter()
        .find(|c| c.id == id)
        .ok_or_else(|| AppError::not_found("no such channel"))?;
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "channel": c.name,
        "identity_secret": c.identity_secret,
        "example": {
            "user_id": "42",
            "signature": crate::crm::identity::sign_user_id(&c.identity_secret, "42"),
        },
    })))
}

/// `POST /api/channels/{id}/secret` (administrators): a new secret; signatures made with
/// the old one stop working at once.
pub async fn rotate_channel_secret(
    rt: web::Data<Runtime>,
    who: Authed,
    path: web::Path<i64>,
) -> Result<HttpResponse, AppError> {
    who.require_admin()?;
    let id = path.into_inner();
    rt.core
        .store
        .call(move |s| s.rotate_channel_secret(id))
        .await?;
    rt.forget_channels();
    channel_secret(rt, who, web::Path::from(id)).await
}
