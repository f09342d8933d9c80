//! Operator accounts over HTTP: login (argon2-checked password, random bearer token stored
//! hashed, with an expiry), logout, who am I, and the administrator's operator management.

use crate::auth;
use crate::error::AppError;
use crate::runtime::Runtime;
use crate::store::operators::{Operator, OperatorChange};
use actix_web::{dev::Payload, web, FromRequest, HttpRequest, HttpResponse};
use serde::Deserialize;
use std::future::Future;
use std::pin::Pin;

/// Longest accepted password, to bound the cost of hashing it.
const MAX_PASSWORD_LEN: usize = 1024;

/// The operator behind the request's `Authorization: Bearer` token.
pub struct Authed {
    /// Who.
    pub operator: Operator,
    /// The token's digest, for logout.
    pub token_hash: String,
}

impl Authed {
    /// Refuses operators without the chat permission (administrators always have it).
    pub fn require_chat(&self) -> Result<(), AppError> {
        if self.operator.may_chat() {
            Ok(())
        } else {
            Err(AppError::forbidden(
                "your user group has no chat permission",
            ))
        }
    }

    /// Refuses non-administrators.
    pub fn require_admin(&self) -> Result<(), AppError> {
        if self.operator.is_admin {
            Ok(())
        } else {
            Err(AppError::forbidden("only an administrator may do this"))
        }
    }
}

impl FromRequest for Authed {
    type Error = AppError;
    type Future = Pin<Box<dyn Future<Output = Result<Authed, AppError>>>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        let rt = req.app_data::<web::Data<Runtime>>().cloned();
        let token = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(|t| t.trim().to_string());
        Box::pin(async move {
            let rt = rt.ok_or_else(AppError::internal)?;
            let token = token
                .ok_or_else(|| AppError::unauthorized("missing `Authorization: Bearer` token"))?;
            let digest = auth::token_digest(&token);
            let now = rt.core.clock.now_ms();
            let lookup = digest.clone();
            let (operator, _) = rt
                .core
                .store
                .call(move |s| s.operator_by_token(&lookup, now))
                .await?
                .ok_or_else(|| AppError::unauthorized("unknown or expired token"))?;
            Ok(Authed {
                operator,
                token_hash: digest,
            })
        })
    }
}

/// Login body.
#[derive(Deserialize)]
pub struct LoginBody {
    email: String,
    password: String,
}

/// `POST /api/login`: a token for a valid e-mail and password.
pub async fn login(
    rt: web::Data<Runtime>,
    body: web::Json<LoginBody>,
) -> Result<HttpResponse, AppError> {
    let LoginBody { email, password } = body.into_inner();
    if password.len() > MAX_PASSWORD_LEN {
        return Err(AppError::unauthorized("wrong e-mail or password"));
    }
    let found = rt
        .core
        .store
        .call(move |s| s.operator_by_email(&email))
        .await?;
    let result = web::block(move || {
        // Verify even for an unknown e-mail so timing does not reveal which accounts exist.
        let hash = found
            .as_ref()
            .map(|o| o.password_hash.as_str())
            .unwrap_or(auth::DUMMY_HASH);
        let ok = auth::verify_password(&password, hash);
        (ok, found)
    })
    .await
    .map_err(|_| AppError::internal())?;
    let (true, Some(row)) = result else {
        return Err(AppError::unauthorized("wrong e-mail or password"));
    };
    issue_token(&rt, row.id).await
}

/// Answers a login: a new token for the operator, stored hashed, with its expiry.
async fn issue_token(rt: &Runtime, operator_id: i64) -> Result<HttpResponse, AppError> {
    let now = rt.core.clock.now_ms();
    let ttl_ms = rt.core.config.operator_token_ttl_secs.saturating_mul(1000) as i64;
    let token = auth::new_token();
    let digest = auth::token_digest(&token);
    let expires_at = now + ttl_ms;
    let operator = rt
        .core
        .store
        .call(move |s| {
            s.add_operator_token(&digest, operator_id, now, expires_at)?;
            s.operator(operator_id)
        })
        .await?
        .ok_or_else(AppError::internal)?;
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "token": token,
        "expires_at": expires_at,
        "operator": operator,
    })))
}

/// `GET /api/setup`: whether the first administrator still has to be created.
pub async fn setup_state(rt: web::Data<Runtime>) -> Result<HttpResponse, AppError> {
    let n = rt.core.store.call(|s| s.operator_count()).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "needed": n == 0 })))
}

/// `POST /api/setup`: creates the first administrator and logs them in; refused once any
/// operator exists, so it cannot be used to take over a running server.
pub async fn setup(
    rt: web::Data<Runtime>,
    body: web::Json<NewOperatorBody>,
) -> Result<HttpResponse, AppError> {
    let b = body.into_inner();
    validate_new_operator(&b.email, &b.name, &b.password)?;
    let n = rt.core.store.call(|s| s.operator_count()).await?;
    if n > 0 {
        return Err(AppError::forbidden(
            "the server is set up already; ask an administrator for an account",
        ));
    }
    let now = rt.core.clock.now_ms();
    let hash = web::block(move || auth::hash_password(&b.password))
        .await
        .map_err(|_| AppError::internal())?
        .map_err(|_| AppError::internal())?;
    let op = rt
        .core
        .store
        .call(move |s| s.add_operator(&b.email, &b.name, &hash, true, now))
        .await?;
    issue_token(&rt, op.id).await
}

/// `POST /api/logout`: the token stops working.
pub async fn logout(rt: web::Data<Runtime>, who: Authed) -> Result<HttpResponse, AppError> {
    let now = rt.core.clock.now_ms();
    rt.core
        .store
        .call(move |s| s.delete_operator_token(&who.token_hash, now))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `GET /api/me`.
pub async fn me(who: Authed) -> HttpResponse {
    HttpResponse::Ok().json(who.operator)
}

/// `GET /api/operators`: every operator (the reassignment dialog and mentions need them).
pub async fn list_operators(rt: web::Data<Runtime>, who: Authed) -> Result<HttpResponse, AppError> {
    if !who.operator.is_admin {
        who.require_chat()?;
    }
    let list = rt.core.store.call(|s| s.list_operators()).await?;
    let online: Vec<serde_json::Value> = list
        .into_iter()
        .map(|op| {
            let online = rt.core.hub.operator_online(op.id);
            let mut v = serde_json::to_value(op).unwrap_or_default();
            v["online"] = online.into();
            v
        })
        .collect();
    Ok(HttpResponse::Ok().json(online))
}

/// New operator body.
#[derive(Deserialize)]
pub struct NewOperatorBody {
    email: String,
    name: String,
    password: String,
    #[serde(default)]
    is_admin: bool,
}

/// Checks the fields of a new operator.
pub fn validate_new_operator(email: &str, name: &str, password: &str) -> Result<(), AppError> {
    let email = email.trim();
    if email.len() > 254 || !email.contains('@') || email.starts_with('@') || email.ends_with('@') {
        return Err(AppError::bad_request("the e-mail address is not valid"));
    }
    if name.trim().is_empty() || name.chars().count() > 100 {
        return Err(AppError::bad_request(
            "the name must be 1 to 100 characters",
        ));
    }
    if password.chars().count() < 8 || password.len() > MAX_PASSWORD_LEN {
        return Err(AppError::bad_request(
            "the password must be 8 to 1024 characters",
        ));
    }
    Ok(())
}

/// `POST /api/operators` (administrators).
pub async fn add_operator(
    rt: web::Data<Runtime>,
    who: Authed,
    body: web::Json<NewOperatorBody>,
) -> Result<HttpResponse, AppError> {
    who.require_admin()?;
    let b = body.into_inner();
    validate_new_operator(&b.email, &b.name, &b.password)?;
    let now = rt.core.clock.now_ms();
    let hash = web::block(move || auth::hash_password(&b.password))
        .await
        .map_err(|_| AppError::internal())?
        .map_err(|_| AppError::internal())?;
    let op = rt
        .core
        .store
        .call(move |s| s.add_operator(&b.email, &b.name, &hash, b.is_admin, now))
        .await?;
    Ok(HttpResponse::Created().json(op))
}

/// Operator change body (administrators); every field may be left out.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateOperatorBody {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    is_admin: Option<bool>,
    #[serde(default)]
    capacity: Option<i64>,
    #[serde(default)]
    available: Option<bool>,
    #[serde(default)]
    groups: Option<Vec<i64>>,
    #[serde(default)]
    teams: Option<Vec<i64>>,
}

/// `PATCH /api/operators/{id}` (administrators): name, administrator, capacity,
/// availability, user groups (which carry the chat permission) and teams.
pub async fn update_operator(
    rt: web::Data<Runtime>,
    who: Authed,
    path: web::Path<i64>,
    body: web::Json<UpdateOperatorBody>,
) -> Result<HttpResponse, AppError> {
    who.require_admin()?;
    let b = body.into_inner();
    let change = OperatorChange {
        name: b.name,
        is_admin: b.is_admin,
        capacity: b.capacity,
        available: b.available,
        display_mode: None,
        groups: b.groups,
        teams: b.teams,
    };
    let op = crate::console::change_operator(&rt, path.into_inner(), change).await?;
    Ok(HttpResponse::Ok().json(op))
}

/// The operator's own preferences.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateMeBody {
    #[serde(default)]
    display_mode: Option<String>,
    #[serde(default)]
    available: Option<bool>,
}

/// `PATCH /api/me`: display as a pop-up or a section (OC2), and availability for new
/// conversations.
pub async fn update_me(
    rt: web::Data<Runtime>,
    who: Authed,
    body: web::Json<UpdateMeBody>,
) -> Result<HttpResponse, AppError> {
    let b = body.into_inner();
    let change = OperatorChange {
        display_mode: b.display_mode,
        available: b.available,
        ..OperatorChange::default()
    };
    let op = crate::console::change_operator(&rt, who.operator.id, change).await?;
    Ok(HttpResponse::Ok().json(op))
}
