//! The CRM over HTTP for the console: the customer card (OC16, OC20), finding and linking
//! contacts (XB2), merges and merge suggestions (ID3, XB11, OC19), export and erasure (XB6).

use super::account::Authed;
use crate::crm::contacts::{Claim, ContactChange, IdKind};
use crate::crm::identity;
use crate::error::AppError;
use crate::runtime::Runtime;
use crate::store::StoreError;
use actix_web::{web, HttpResponse};
use serde::Deserialize;

fn not_found(e: StoreError) -> AppError {
    match e {
        StoreError::NotFound => AppError::not_found("no such contact"),
        StoreError::Conflict(why) => AppError::bad_request(why),
        other => other.into(),
    }
}

/// Find query.
#[derive(Deserialize)]
pub struct FindQuery {
    #[serde(default)]
    q: String,
}

/// `GET /api/contacts?q=ana`: contacts by name, e-mail or phone (at most 20).
pub async fn find(
    rt: web::Data<Runtime>,
    who: Authed,
    q: web::Query<FindQuery>,
) -> Result<HttpResponse, AppError> {
    who.require_chat()?;
    let q = q.into_inner().q;
    if q.trim().chars().count() < 2 || q.chars().count() > 100 {
        return Err(AppError::bad_request("search with 2 to 100 characters"));
    }
    let found = rt.core.store.call(move |s| s.find_contacts(&q, 20)).await?;
    Ok(HttpResponse::Ok().json(found))
}

/// `GET /api/contacts/{id}`: the customer card.
pub async fn card(
    rt: web::Data<Runtime>,
    who: Authed,
    path: web::Path<i64>,
) -> Result<HttpResponse, AppError> {
    who.require_chat()?;
    let id = path.into_inner();
    let card = rt
        .core
        .store
        .call(move |s| s.contact_card(id))
        .await?
        .ok_or_else(|| AppError::not_found("no such contact"))?;
    Ok(HttpResponse::Ok().json(card))
}

/// `PATCH /api/contacts/{id}`: the card's fields; a new e-mail or phone is added as an
/// identifier (typed by the operator: a match elsewhere raises a suggestion).
pub async fn update(
    rt: web::Data<Runtime>,
    who: Authed,
    path: web::Path<i64>,
    body: web::Json<ContactChange>,
) -> Result<HttpResponse, AppError> {
    who.require_chat()?;
    let id = path.into_inner();
    let change = body.into_inner();
    for (name, value) in [
        ("name", &change.name),
        ("first_name", &change.first_name),
        ("last_name", &change.last_name),
    ] {
        if value.as_ref().is_some_and(|v| v.chars().count() > 120) {
            return Err(AppError::bad_request(format!(
                "{name} is longer than 120 characters"
            )));
        }
    }
    if change
        .address
        .as_ref()
        .is_some_and(|v| v.chars().count() > 500)
    {
        return Err(AppError::bad_request(
            "the address is longer than 500 characters",
        ));
    }
    let mut claims = Vec::new();
    if let Some(e) = change.email.as_deref().filter(|e| !e.trim().is_empty()) {
        claims.push(Claim {
            kind: IdKind::Email,
            value: identity::normalise_email(e)?,
            verified: false,
            source: "operator",
        });
    }
    if let Some(p) = change.phone.as_deref().filter(|p| !p.trim().is_empty()) {
        claims.push(Claim {
            kind: IdKind::Phone,
            value: identity::normalise_phone(p, None)?,
            verified: false,
            source: "operator",
        });
    }
    let now = rt.core.clock.now_ms();
    let (contact, raised) = rt
        .core
        .store
        .call(move |s| s.update_contact(id, &change, &claims, now))
        .await
        .map_err(not_found)?;
    crate::crm::announce_suggestions(&rt, &raised);
    // Open conversations show the new name at once (OC19).
    let cid = contact.id;
    let card = rt.core.store.call(move |s| s.contact_card(cid)).await?;
    if let Some(card) = card {
        let open: Vec<i64> = card.conversations.iter().map(|c| c.id).collect();
        crate::crm::refresh_headers(&rt, &open, contact.id, &contact.name).await;
    }
    Ok(HttpResponse::Ok().json(contact))
}

/// Merge body.
#[derive(Deserialize)]
pub struct MergeBody {
    into: i64,
}

async fn after_merge(rt: &Runtime, merged: &crate::crm::contacts::Merged) -> Result<(), AppError> {
    let into = merged.into;
    let card = rt.core.store.call(move |s| s.contact_card(into)).await?;
    if let Some(card) = card {
        let all: Vec<i64> = card.conversations.iter().map(|c| c.id).collect();
        crate::crm::refresh_headers(rt, &all, merged.into, &merged.name).await;
    }
    Ok(())
}

/// `POST /api/contacts/{id}/merge {"into": N}`: merges this contact into another, moving
/// every conversation, with an audit record (ID3); open conversations follow (OC19).
pub async fn merge(
    rt: web::Data<Runtime>,
    who: Authed,
    path: web::Path<i64>,
    body: web::Json<MergeBody>,
) -> Result<HttpResponse, AppError> {
    who.require_chat()?;
    let from = path.into_inner();
    let into = body.into;
    let by = who.operator.id;
    let now = rt.core.clock.now_ms();
    let merged = rt
        .core
        .store
        .call(move |s| s.merge_contacts(from, into, Some(by), "merged by an operator", now))
        .await
        .map_err(not_found)?;
    after_merge(&rt, &merged).await?;
    Ok(HttpResponse::Ok().json(merged))
}

/// Suggestions query.
#[derive(Deserialize)]
pub struct SuggestionsQuery {
    #[serde(default)]
    status: Option<String>,
}

/// `GET /api/suggestions?status=pending`: merge suggestions (XB11).
pub async fn suggestions(
    rt: web::Data<Runtime>,
    who: Authed,
    q: web::Query<SuggestionsQuery>,
) -> Result<HttpResponse, AppError> {
    who.require_chat()?;
    let status = q.into_inner().status.unwrap_or_else(|| "pending".into());
    if !["pending", "accepted", "rejected", "superseded"].contains(&status.as_str()) {
        return Err(AppError::bad_request(
            "status must be pending, accepted, rejected or superseded",
        ));
    }
    let list = rt
        .core
        .store
        .call(move |s| s.suggestions(&status, None))
        .await?;
    Ok(HttpResponse::Ok().json(list))
}

async fn decide(
    rt: &Runtime,
    who: &Authed,
    id: i64,
    accept: bool,
) -> Result<HttpResponse, AppError> {
    who.require_chat()?;
    let by = who.operator.id;
    let now = rt.core.clock.now_ms();
    let merged = rt
        .core
        .store
        .call(move |s| s.decide_suggestion(id, accept, by, now))
        .await
        .map_err(|e| match e {
            StoreError::NotFound => AppError::not_found("no such suggestion"),
            StoreError::Conflict(why) => AppError::new(crate::error::ErrorCode::Conflict, why),
            other => other.into(),
        })?;
    if let Some(m) = &merged {
        after_merge(rt, m).await?;
    }
    Ok(HttpResponse::Ok().json(serde_json::json!({ "accepted": accept, "merged": merged })))
}

/// `POST /api/suggestions/{id}/accept`: merges the suggested pair.
pub async fn accept(
    rt: web::Data<Runtime>,
    who: Authed,
    path: web::Path<i64>,
) -> Result<HttpResponse, AppError> {
    decide(&rt, &who, path.into_inner(), true).await
}

/// `POST /api/suggestions/{id}/reject`: keeps them apart; not suggested again.
pub async fn reject(
    rt: web::Data<Runtime>,
    who: Authed,
    path: web::Path<i64>,
) -> Result<HttpResponse, AppError> {
    decide(&rt, &who, path.into_inner(), false).await
}

/// `GET /api/contacts/{id}/export` (administrators): everything stored about the contact,
/// as one JSON document (XB6).
pub async fn export(
    rt: web::Data<Runtime>,
    who: Authed,
    path: web::Path<i64>,
) -> Result<HttpResponse, AppError> {
    who.require_admin()?;
    let id = path.into_inner();
    let doc = rt
        .core
        .store
        .call(move |s| s.export_contact(id))
        .await
        .map_err(not_found)?;
    Ok(HttpResponse::Ok()
        .insert_header((
            "Content-Disposition",
            format!("attachment; filename=\"contact-{id}.json\""),
        ))
        .json(doc))
}

/// `DELETE /api/contacts/{id}` (administrators): erases everything stored about the
/// contact (XB6); open conversations forget what they held in memory.
pub async fn erase(
    rt: web::Data<Runtime>,
    who: Authed,
    path: web::Path<i64>,
) -> Result<HttpResponse, AppError> {
    who.require_admin()?;
    let id = path.into_inner();
    let by = who.operator.id;
    let now = rt.core.clock.now_ms();
    let touched = rt
        .core
        .store
        .call(move |s| s.erase_contact(id, by, now))
        .await
        .map_err(not_found)?;
    for cid in &touched {
        if let Some(addr) = rt.live_conversation(*cid) {
            addr.do_send(crate::runtime::conversation::Forget);
        }
    }
    // Consoles show the erased state now, not at their next reload.
    crate::crm::announce_from_store(&rt, touched.clone()).await;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "erased": id, "conversations": touched })))
}
