//! Conversations over HTTP for the console: list, history, reply, close and reopen. Writes
//! go through the conversation actor like websocket frames do, so ordering, idempotency and
//! durability are the same.

use super::account::Authed;
use crate::error::{AppError, ErrorCode};
use crate::model::{Author, ConversationStatus};
use crate::protocol::validate_message;
use crate::runtime::conversation::{Post, Posted, Reply, SetStatus};
use crate::runtime::Runtime;
use crate::store::conversations::StatusFilter;
use actix_web::{web, HttpResponse};
use serde::Deserialize;
use tokio::sync::oneshot;

/// Most conversations one list returns.
const MAX_LIST: i64 = 200;
/// Most messages one history page returns.
const MAX_PAGE: i64 = 1000;

/// List query.
#[derive(Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    limit: Option<i64>,
}

/// `GET /api/conversations?status=open|closed|all&limit=N`.
pub async fn list(
    rt: web::Data<Runtime>,
    who: Authed,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse, AppError> {
    who.require_chat()?;
    let filter = match q.status.as_deref() {
        None | Some("open") => StatusFilter::Open,
        Some("closed") => StatusFilter::Closed,
        Some("all") => StatusFilter::All,
        Some(_) => return Err(AppError::bad_request("status must be open, closed or all")),
    };
    let limit = q.limit.unwrap_or(50).clamp(1, MAX_LIST);
    let list = rt
        .core
        .store
        .call(move |s| s.list_conversations(filter, limit))
        .await?;
    Ok(HttpResponse::Ok().json(list))
}

/// History query.
#[derive(Deserialize)]
pub struct HistoryQuery {
    #[serde(default)]
    after_seq: Option<i64>,
    #[serde(default)]
    limit: Option<i64>,
}

/// `GET /api/conversations/{id}?after_seq=N`: the header and the history after `N`.
pub async fn show(
    rt: web::Data<Runtime>,
    who: Authed,
    path: web::Path<i64>,
    q: web::Query<HistoryQuery>,
) -> Result<HttpResponse, AppError> {
    who.require_chat()?;
    let id = path.into_inner();
    let after = q.after_seq.unwrap_or(0).max(0);
    let limit = q.limit.unwrap_or(MAX_PAGE).clamp(1, MAX_PAGE);
    let (row, messages) = rt
        .core
        .store
        .call(move |s| {
            let row = s
                .conversation(id)?
                .ok_or(crate::store::StoreError::NotFound)?;
            let messages = s.messages_between(id, after, i64::MAX, limit)?;
            Ok((row, messages))
        })
        .await
        .map_err(|e| match e {
            crate::store::StoreError::NotFound => AppError::not_found("no such conversation"),
            other => other.into(),
        })?;
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "conversation": row.view(),
        "messages": messages,
    })))
}

/// Reply body.
#[derive(Deserialize)]
pub struct ReplyBody {
    client_id: String,
    body: String,
}

async fn outcome(
    rx: oneshot::Receiver<Result<Posted, AppError>>,
) -> Result<HttpResponse, AppError> {
    let posted = rx.await.map_err(|_| {
        AppError::new(
            ErrorCode::Busy,
            "the conversation restarted; retry with the same client_id",
        )
        .retry_after(100)
    })??;
    Ok(HttpResponse::Ok().json(posted))
}

/// `POST /api/conversations/{id}/messages`: an operator's reply; answers once it is durable.
pub async fn reply(
    rt: web::Data<Runtime>,
    who: Authed,
    path: web::Path<i64>,
    body: web::Json<ReplyBody>,
) -> Result<HttpResponse, AppError> {
    who.require_chat()?;
    let ReplyBody { client_id, body } = body.into_inner();
    validate_message(&client_id, &body, rt.core.config.max_message_chars)?;
    let addr = rt.conversation(path.into_inner()).await?;
    let (tx, rx) = oneshot::channel();
    let op = &who.operator;
    rt.deliver(
        &addr,
        Post {
            author: Author::operator(op.id, op.name.clone()),
            author_id: op.id,
            client_id,
            body,
            reply: Reply::Http(tx),
            from_session: None,
        },
    )?;
    outcome(rx).await
}

/// Close or reopen body (optional).
#[derive(Deserialize, Default)]
pub struct StatusBody {
    #[serde(default)]
    client_id: Option<String>,
}

async fn set_status(
    rt: web::Data<Runtime>,
    who: Authed,
    id: i64,
    status: ConversationStatus,
    body: web::Bytes,
) -> Result<HttpResponse, AppError> {
    who.require_chat()?;
    // The body is optional, but when there is one it must be valid.
    let client_id = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        let parsed: StatusBody = serde_json::from_slice(&body).map_err(|e| {
            if e.is_syntax() || e.is_eof() {
                AppError::new(ErrorCode::BadJson, format!("malformed JSON: {e}"))
            } else {
                AppError::bad_request(format!("invalid body: {e}"))
            }
        })?;
        parsed.client_id
    };
    if let Some(id) = &client_id {
        crate::protocol::validate_client_id(id)?;
    }
    let addr = rt.conversation(id).await?;
    let (tx, rx) = oneshot::channel();
    let op = &who.operator;
    rt.deliver(
        &addr,
        SetStatus {
            author: Author::operator(op.id, op.name.clone()),
            author_id: op.id,
            status,
            client_id,
            reply: Reply::Http(tx),
            from_session: None,
        },
    )?;
    outcome(rx).await
}

/// `POST /api/conversations/{id}/close`.
pub async fn close(
    rt: web::Data<Runtime>,
    who: Authed,
    path: web::Path<i64>,
    body: web::Bytes,
) -> Result<HttpResponse, AppError> {
    set_status(rt, who, path.into_inner(), ConversationStatus::Closed, body).await
}

/// `POST /api/conversations/{id}/reopen`.
pub async fn reopen(
    rt: web::Data<Runtime>,
    who: Authed,
    path: web::Path<i64>,
    body: web::Bytes,
) -> Result<HttpResponse, AppError> {
    set_status(rt, who, path.into_inner(), ConversationStatus::Open, body).await
}
