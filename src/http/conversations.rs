//! Conversations over HTTP for the console: the filtered list and search (OC7, OC11),
//! history, reply and note, close and reopen, reassignment and its audit trail (OC8,
//! XB12), drafts (XB3), linking to a contact, and internal chats (OC21). Writes go through
//! the conversation actor like websocket frames do, so ordering, idempotency, ownership and
//! durability are the same.

use super::account::Authed;
use crate::console;
use crate::error::{AppError, ErrorCode};
use crate::model::{ConversationStatus, Named};
use crate::protocol::validate_message_with;
use crate::runtime::conversation::{Post, Posted, Reply, Requester, SetContact, SetStatus};
use crate::runtime::Runtime;
use crate::store::conversations::{AssigneeFilter, Interlocutor, ListFilter, StatusFilter};
use crate::store::search::search_terms;
use actix_web::{web, HttpResponse};
use serde::Deserialize;
use tokio::sync::oneshot;

/// Most conversations one list returns.
const MAX_LIST: i64 = 200;
/// Most messages one history page returns.
const MAX_PAGE: i64 = 1000;
/// Most search hits one search returns.
const MAX_HITS: i64 = 100;
/// Longest search query, in characters.
const MAX_QUERY_CHARS: usize = 200;

/// List query.
#[derive(Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    channel: Option<String>,
    #[serde(default)]
    with: Option<String>,
    #[serde(default)]
    assignee: Option<String>,
    #[serde(default)]
    q: Option<String>,
    #[serde(default)]
    limit: Option<i64>,
}

fn check_query(q: &Option<String>) -> Result<(), AppError> {
    if q.as_ref()
        .is_some_and(|q| q.chars().count() > MAX_QUERY_CHARS)
    {
        return Err(AppError::bad_request(format!(
            "the search is longer than {MAX_QUERY_CHARS} characters"
        )));
    }
    Ok(())
}

/// `GET /api/conversations?status=open|closed|all&channel=web&with=everyone|customers|mine|colleagues&assignee=anyone|me|unassigned&q=words&limit=N`.
pub async fn list(
    rt: web::Data<Runtime>,
    who: Authed,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse, AppError> {
    who.require_chat()?;
    let q = q.into_inner();
    let status = match q.status.as_deref() {
        None | Some("open") => StatusFilter::Open,
        Some("closed") => StatusFilter::Closed,
        Some("all") => StatusFilter::All,
        Some(_) => return Err(AppError::bad_request("status must be open, closed or all")),
    };
    let interlocutor = match q.with.as_deref() {
        None | Some("everyone") => Interlocutor::Everyone,
        Some("customers") => Interlocutor::Customers,
        Some("mine") => Interlocutor::MyCustomers,
        Some("colleagues") => Interlocutor::Colleagues,
        Some(_) => {
            return Err(AppError::bad_request(
                "with must be everyone, customers, mine or colleagues",
            ))
        }
    };
    let assignee = match q.assignee.as_deref() {
        None | Some("anyone") => AssigneeFilter::Anyone,
        Some("me") => AssigneeFilter::Me,
        Some("unassigned") => AssigneeFilter::Unassigned,
        Some(_) => {
            return Err(AppError::bad_request(
                "assignee must be anyone, me or unassigned",
            ))
        }
    };
    check_query(&q.q)?;
    let filter = ListFilter {
        reader: who.operator.id,
        status,
        channel: q.channel.filter(|c| !c.is_empty()),
        interlocutor,
        assignee,
        query: q.q,
        limit: q.limit.unwrap_or(50).clamp(1, MAX_LIST),
    };
    let mut list = rt
        .core
        .store
        .call(move |s| s.list_conversations(&filter))
        .await?;
    for row in &mut list {
        row.conversation.visitor_online = rt.core.visitors_online.contains(&row.conversation.id);
    }
    Ok(HttpResponse::Ok().json(list))
}

/// Search query.
#[derive(Deserialize)]
pub struct SearchQuery {
    q: String,
    #[serde(default)]
    conversation_id: Option<i64>,
    #[serde(default)]
    limit: Option<i64>,
}

/// `GET /api/search?q=words&conversation_id=N`: messages with every word, newest first,
/// through the full-text index (OC7).
pub async fn search(
    rt: web::Data<Runtime>,
    who: Authed,
    q: web::Query<SearchQuery>,
) -> Result<HttpResponse, AppError> {
    who.require_chat()?;
    let q = q.into_inner();
    check_query(&Some(q.q.clone()))?;
    let terms = search_terms(&q.q);
    let reader = who.operator.id;
    let within = q.conversation_id;
    let limit = q.limit.unwrap_or(50).clamp(1, MAX_HITS);
    let hits = rt
        .core
        .store
        .call(move |s| s.search_messages(reader, &terms, within, limit))
        .await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "terms": search_terms(&q.q), "hits": hits })))
}

/// History query.
#[derive(Deserialize)]
pub struct HistoryQuery {
    #[serde(default)]
    after_seq: Option<i64>,
    #[serde(default)]
    limit: Option<i64>,
}

/// `GET /api/conversations/{id}?after_seq=N`: the header, the history after `N`, and the
/// reader's own draft.
pub async fn show(
    rt: web::Data<Runtime>,
    who: Authed,
    path: web::Path<i64>,
    q: web::Query<HistoryQuery>,
) -> Result<HttpResponse, AppError> {
    who.require_chat()?;
    let id = path.into_inner();
    console::check_visible(&rt, who.operator.id, id).await?;
    let after = q.after_seq.unwrap_or(0).max(0);
    let limit = q.limit.unwrap_or(MAX_PAGE).clamp(1, MAX_PAGE);
    let reader = who.operator.id;
    let (record, messages, draft) = rt
        .core
        .store
        .call(move |s| {
            let record = s
                .conversation(id)?
                .ok_or(crate::store::StoreError::NotFound)?;
            let messages = s.messages_between(id, after, i64::MAX, limit, false)?;
            let draft = s.draft(reader, id)?;
            Ok((record, messages, draft))
        })
        .await
        .map_err(|e| match e {
            crate::store::StoreError::NotFound => AppError::not_found("no such conversation"),
            other => other.into(),
        })?;
    let mut view = record.view();
    view.visitor_online = rt.core.visitors_online.contains(&id);
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "conversation": view,
        "messages": messages,
        "draft": draft,
    })))
}

/// Reply body.
#[derive(Deserialize)]
pub struct ReplyBody {
    client_id: String,
    body: String,
    #[serde(default)]
    reply_to: Option<i64>,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    mentions: Option<Vec<i64>>,
    #[serde(default)]
    attachment: Option<String>,
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

/// `POST /api/conversations/{id}/messages`: an operator's reply or note; answers once it
/// is durable.
pub async fn reply(
    rt: web::Data<Runtime>,
    who: Authed,
    path: web::Path<i64>,
    body: web::Json<ReplyBody>,
) -> Result<HttpResponse, AppError> {
    who.require_chat()?;
    let ReplyBody {
        client_id,
        body,
        reply_to,
        kind,
        mentions,
        attachment,
    } = body.into_inner();
    validate_message_with(
        &client_id,
        &body,
        rt.core.config.max_message_chars,
        attachment.is_some(),
    )?;
    let kind = console::message_kind(kind.as_deref())?;
    let mentions = console::mentions(mentions)?;
    let id = path.into_inner();
    console::check_visible(&rt, who.operator.id, id).await?;
    let attachment = match attachment {
        Some(file) => {
            Some(crate::files::reference(&rt, &file, "operator", who.operator.id, Some(id)).await?)
        }
        None => None,
    };
    let addr = rt.conversation(id).await?;
    let (tx, rx) = oneshot::channel();
    rt.deliver(
        &addr,
        Post {
            by: Requester::Operator(console::staff(&who.operator)),
            kind,
            client_id,
            body,
            reply_to,
            mentions,
            attachment,
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

/// Reads an optional JSON body: empty is fine, malformed is not.
fn optional_body<T: serde::de::DeserializeOwned + Default>(body: &[u8]) -> Result<T, AppError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|e| {
        if e.is_syntax() || e.is_eof() {
            AppError::new(ErrorCode::BadJson, format!("malformed JSON: {e}"))
        } else {
            AppError::bad_request(format!("invalid body: {e}"))
        }
    })
}

async fn set_status(
    rt: web::Data<Runtime>,
    who: Authed,
    id: i64,
    status: ConversationStatus,
    body: web::Bytes,
) -> Result<HttpResponse, AppError> {
    who.require_chat()?;
    let client_id = optional_body::<StatusBody>(&body)?.client_id;
    if let Some(id) = &client_id {
        crate::protocol::validate_client_id(id)?;
    }
    console::check_visible(&rt, who.operator.id, id).await?;
    let addr = rt.conversation(id).await?;
    let (tx, rx) = oneshot::channel();
    rt.deliver(
        &addr,
        SetStatus {
            by: Requester::Operator(console::staff(&who.operator)),
            status,
            client_id,
            reason: None,
            inactive_before: None,
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

/// Reassignment body.
#[derive(Deserialize)]
pub struct AssignBody {
    operator_id: Option<i64>,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    client_id: Option<String>,
}

async fn assign_to(
    rt: &Runtime,
    who: &Authed,
    id: i64,
    to: Option<i64>,
    reason: Option<String>,
    client_id: Option<String>,
) -> Result<HttpResponse, AppError> {
    who.require_chat()?;
    if let Some(c) = &client_id {
        crate::protocol::validate_client_id(c)?;
    }
    console::check_visible(rt, who.operator.id, id).await?;
    let (tx, rx) = oneshot::channel();
    let msg = console::reassignment(
        rt,
        &who.operator,
        to,
        reason,
        client_id,
        Reply::Http(tx),
        None,
    )
    .await?;
    let addr = rt.conversation(id).await?;
    rt.deliver(&addr, msg)?;
    outcome(rx).await
}

/// `POST /api/conversations/{id}/assign`: `{"operator_id": 4, "reason": "..."}`;
/// `operator_id: null` sends the conversation back to the queue.
pub async fn assign(
    rt: web::Data<Runtime>,
    who: Authed,
    path: web::Path<i64>,
    body: web::Json<AssignBody>,
) -> Result<HttpResponse, AppError> {
    let b = body.into_inner();
    assign_to(
        &rt,
        &who,
        path.into_inner(),
        b.operator_id,
        b.reason,
        b.client_id,
    )
    .await
}

/// `POST /api/conversations/{id}/take`: the caller takes an unassigned conversation.
pub async fn take(
    rt: web::Data<Runtime>,
    who: Authed,
    path: web::Path<i64>,
    body: web::Bytes,
) -> Result<HttpResponse, AppError> {
    let client_id = optional_body::<StatusBody>(&body)?.client_id;
    let me = who.operator.id;
    assign_to(&rt, &who, path.into_inner(), Some(me), None, client_id).await
}

/// `GET /api/conversations/{id}/assignments`: the audit trail (XB12).
pub async fn assignments(
    rt: web::Data<Runtime>,
    who: Authed,
    path: web::Path<i64>,
) -> Result<HttpResponse, AppError> {
    who.require_chat()?;
    let id = path.into_inner();
    console::check_visible(&rt, who.operator.id, id).await?;
    let trail = rt
        .core
        .store
        .call(move |s| s.assignment_history(id))
        .await?;
    Ok(HttpResponse::Ok().json(trail))
}

/// Draft body.
#[derive(Deserialize)]
pub struct DraftBody {
    body: String,
    #[serde(default)]
    reply_to: Option<i64>,
}

/// `PUT /api/conversations/{id}/draft`: saves the caller's draft (an empty body deletes
/// it).
pub async fn put_draft(
    rt: web::Data<Runtime>,
    who: Authed,
    path: web::Path<i64>,
    body: web::Json<DraftBody>,
) -> Result<HttpResponse, AppError> {
    who.require_chat()?;
    let b = body.into_inner();
    let draft = console::save_draft(
        &rt,
        who.operator.id,
        path.into_inner(),
        b.body,
        b.reply_to,
        None,
    )
    .await?;
    Ok(HttpResponse::Ok().json(draft))
}

/// `GET /api/conversations/{id}/draft`: the caller's draft, or `null`.
pub async fn get_draft(
    rt: web::Data<Runtime>,
    who: Authed,
    path: web::Path<i64>,
) -> Result<HttpResponse, AppError> {
    who.require_chat()?;
    let id = path.into_inner();
    console::check_visible(&rt, who.operator.id, id).await?;
    let me = who.operator.id;
    let draft = rt.core.store.call(move |s| s.draft(me, id)).await?;
    Ok(HttpResponse::Ok().json(draft))
}

/// Contact body: a new contact's name, or an existing contact's id.
#[derive(Deserialize)]
pub struct ContactBody {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    contact_id: Option<i64>,
}

/// `POST /api/conversations/{id}/contact`: saves the visitor as a customer owned by the
/// caller, or links an existing contact (XB2).
pub async fn link_contact(
    rt: web::Data<Runtime>,
    who: Authed,
    path: web::Path<i64>,
    body: web::Json<ContactBody>,
) -> Result<HttpResponse, AppError> {
    who.require_chat()?;
    let id = path.into_inner();
    let b = body.into_inner();
    let me = who.operator.id;
    let now = rt.core.clock.now_ms();
    let kind = rt
        .core
        .store
        .call(move |s| s.conversation(id))
        .await?
        .ok_or_else(|| AppError::not_found("no such conversation"))?
        .row
        .kind;
    if kind != "visitor" {
        return Err(AppError::bad_request(
            "only visitor conversations have a customer",
        ));
    }
    let contact = match (b.contact_id, b.name) {
        (Some(cid), _) => rt
            .core
            .store
            .call(move |s| s.contact(cid))
            .await?
            .ok_or_else(|| AppError::not_found("no such contact"))?,
        (None, Some(name)) => {
            let name = name.trim().to_string();
            if name.is_empty() || name.chars().count() > 200 {
                return Err(AppError::bad_request(
                    "the name must be 1 to 200 characters",
                ));
            }
            rt.core
                .store
                .call(move |s| s.add_contact(&name, Some(me), now))
                .await?
        }
        (None, None) => return Err(AppError::bad_request("give a name or a contact_id")),
    };
    let cid = contact.id;
    rt.core
        .store
        .call(move |s| s.set_conversation_contact(id, Some(cid)))
        .await?;
    if let Some(addr) = rt.live_conversation(id) {
        addr.do_send(SetContact {
            contact: Some(Named {
                id: contact.id,
                name: contact.name.clone(),
            }),
        });
    }
    Ok(HttpResponse::Ok().json(contact))
}

/// Internal chat body: a colleague or a team.
#[derive(Deserialize)]
pub struct InternalBody {
    #[serde(default)]
    operator_id: Option<i64>,
    #[serde(default)]
    team_id: Option<i64>,
}

/// `POST /api/internal`: the internal chat with a colleague or of a team, created on first
/// use (OC21, XB15). Answers `{"conversation_id": N}`.
pub async fn internal(
    rt: web::Data<Runtime>,
    who: Authed,
    body: web::Json<InternalBody>,
) -> Result<HttpResponse, AppError> {
    who.require_chat()?;
    let me = who.operator.id;
    let now = rt.core.clock.now_ms();
    let id = match (body.operator_id, body.team_id) {
        (Some(other), None) => {
            if other == me {
                return Err(AppError::bad_request("a chat needs a colleague"));
            }
            let target = rt
                .core
                .store
                .call(move |s| s.operator(other))
                .await?
                .ok_or_else(|| AppError::not_found("no such operator"))?;
            if !target.may_chat() {
                return Err(AppError::bad_request(
                    "that operator has no chat permission",
                ));
            }
            rt.core
                .store
                .call(move |s| s.direct_chat(me, other, now))
                .await?
        }
        (None, Some(team)) => {
            let t = rt
                .core
                .store
                .call(move |s| s.team(team))
                .await?
                .ok_or_else(|| AppError::not_found("no such team"))?;
            if !t.members.contains(&me) {
                return Err(AppError::forbidden("you are not a member of this team"));
            }
            rt.core.store.call(move |s| s.team_chat(team, now)).await?
        }
        _ => {
            return Err(AppError::bad_request(
                "give exactly one of operator_id and team_id",
            ))
        }
    };
    // The members' consoles learn of it now, not only at its first message.
    let record = rt.core.store.call(move |s| s.conversation(id)).await?;
    if let Some(record) = record {
        let view = record.view();
        let members: Vec<i64> = view.members.iter().map(|m| m.id).collect();
        let frame = crate::protocol::ServerFrame::Conversation {
            conversation: &view,
        }
        .encode();
        rt.core.hub.publish_operators(
            &frame,
            crate::runtime::hub::Audience::Only(members.into()),
            None,
        );
    }
    Ok(HttpResponse::Ok().json(serde_json::json!({ "conversation_id": id })))
}
