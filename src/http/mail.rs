//! E-mail over HTTP: replies by e-mail from an inbound mail service (EC2, XB10), the page a
//! "continue the conversation" link opens (CF8), the operator's e-mail request card (EC3),
//! and the e-mails a conversation produced.

use super::account::Authed;
use crate::crm::contacts::{Claim, IdKind};
use crate::error::{AppError, ErrorCode};
use crate::mail::{inbound, links};
use crate::model::MessageKind;
use crate::runtime::conversation::{Offer, Post, Posted, Reply, Requester};
use crate::runtime::Runtime;
use actix_web::{http::header, web, HttpRequest, HttpResponse};
use futures_util::StreamExt;
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// `POST /api/inbound/email`: a raw RFC 822 reply, as inbound mail services deliver it,
/// with `Authorization: Bearer <CHARLA_INBOUND_SECRET>`. The conversation comes from the
/// signed reply address (or In-Reply-To/References); the new text, without quotes and
/// signature, is added as the visitor's message, once however often it is delivered.
pub async fn inbound(
    rt: web::Data<Runtime>,
    req: HttpRequest,
    mut body: web::Payload,
) -> Result<HttpResponse, AppError> {
    let secret = &rt.core.config.inbound_secret;
    if secret.is_empty() {
        return Err(AppError::not_found(
            "inbound e-mail is off: set CHARLA_INBOUND_SECRET",
        ));
    }
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    // Compared as digests: constant time whatever the lengths.
    if Sha256::digest(given.trim().as_bytes()) != Sha256::digest(secret.as_bytes()) {
        return Err(AppError::unauthorized("wrong inbound secret"));
    }
    let mut raw = Vec::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| AppError::bad_request(format!("upload interrupted: {e}")))?;
        if raw.len() + chunk.len() > inbound::MAX_RAW {
            return Err(AppError::new(
                ErrorCode::TooLarge,
                format!("the e-mail is over {} bytes", inbound::MAX_RAW),
            ));
        }
        raw.extend_from_slice(&chunk);
    }
    let mail = web::block(move || inbound::parse(&raw).map(|m| (m, raw)))
        .await
        .map_err(|_| AppError::internal())?
        .ok_or_else(|| AppError::bad_request("this is not an e-mail message"))?;
    let (mail, raw) = mail;
    // Which conversation: a genuine reply address first; a forged one is refused outright.
    let key = &rt.core.mail.composer.secret;
    let mut claimed = false;
    let mut conversation = None;
    for r in &mail.recipients {
        if r.to_ascii_lowercase().starts_with("reply+") {
            claimed = true;
            if let Some(id) = links::conversation_of_address(key, r) {
                conversation = Some(id);
                break;
            }
        }
    }
    if conversation.is_none() && claimed {
        return Err(AppError::forbidden("the reply address is not genuine"));
    }
    if conversation.is_none() {
        let thread = mail.thread.clone();
        conversation = rt
            .core
            .store
            .call(move |s| s.conversation_of_message_ids(&thread))
            .await?
            .map(|(c, _)| c);
    }
    let cid = conversation
        .ok_or_else(|| AppError::not_found("this e-mail answers no conversation of ours"))?;
    let record = rt
        .core
        .store
        .call(move |s| s.conversation(cid))
        .await?
        .ok_or_else(|| AppError::not_found("no such conversation"))?;
    let visitor = record
        .row
        .visitor_id
        .ok_or_else(|| AppError::bad_request("internal chats take no e-mail"))?;
    let max = rt.core.config.max_message_chars;
    let mut text = mail.text.clone();
    if text.trim().is_empty() {
        return Err(AppError::bad_request("the e-mail has no new text"));
    }
    if text.chars().count() > max {
        text = text.chars().take(max.saturating_sub(1)).collect::<String>() + "…";
    }
    // The sender received our e-mail at this address: it is theirs, verified (XB11).
    if let Some(from) = mail.from.clone() {
        let sent_to = rt
            .core
            .store
            .call(move |s| s.conversation_addresses(cid))
            .await?;
        let verified = sent_to.iter().any(|a| a.eq_ignore_ascii_case(&from));
        if let Ok(value) = crate::crm::identity::normalise_email(&from) {
            let claim = Claim {
                kind: IdKind::Email,
                value,
                verified,
                source: "email_reply",
            };
            crate::crm::identify(&rt, visitor, None, vec![claim]).await?;
        }
    }
    // Idempotent: the same e-mail delivered twice is one message.
    let fingerprint = mail.message_id.clone().unwrap_or_else(|| {
        Sha256::digest(&raw)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    });
    let digest: String = Sha256::digest(fingerprint.as_bytes())
        .iter()
        .take(20)
        .map(|b| format!("{b:02x}"))
        .collect();
    let addr = rt.conversation(cid).await?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    rt.deliver(
        &addr,
        Post {
            by: Requester::Visitor(visitor),
            kind: MessageKind::Text,
            client_id: format!("email-{digest}"),
            body: text,
            reply_to: None,
            mentions: Vec::new(),
            attachment: None,
            reply: Reply::Http(tx),
            from_session: None,
        },
    )?;
    let posted: Posted = rx.await.map_err(|_| {
        AppError::new(ErrorCode::Busy, "the conversation restarted; retry").retry_after(100)
    })??;
    Ok(HttpResponse::Ok().json(posted))
}

/// Continue query.
#[derive(Deserialize)]
pub struct ContinueQuery {
    #[serde(default)]
    code: String,
}

fn page(status: actix_web::http::StatusCode, title: &str, body: &str) -> HttpResponse {
    let esc = crate::mail::templates::escape;
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header(("Cache-Control", "no-store"))
        .insert_header(("Referrer-Policy", "no-referrer"))
        .body(format!(
            "<!doctype html><html lang=\"es\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <title>{}</title><style>body{{font:16px/1.5 system-ui,sans-serif;max-width:36rem;margin:3rem auto;padding:0 1rem;color:#1d2330}}</style></head>\
             <body><h1>{}</h1>{body}</body></html>",
            esc(title),
            esc(title)
        ))
}

/// `GET /continue?code=…`: the page a "continue the conversation" link opens: the widget,
/// open on the same conversation. A tampered or expired link gets a page that says so.
pub async fn continue_page(
    rt: web::Data<Runtime>,
    q: web::Query<ContinueQuery>,
) -> Result<HttpResponse, AppError> {
    use actix_web::http::StatusCode;
    let code = q.into_inner().code;
    let now = rt.core.clock.now_ms();
    let conversation = match links::check_continue_code(&rt.core.mail.composer.secret, &code, now) {
        Ok((c, _)) => c,
        Err(links::LinkError::Expired) => {
            return Ok(page(
                StatusCode::GONE,
                "Este enlace ha caducado · This link has expired",
                "<p>Escríbenos de nuevo desde el chat de la web y te responderemos.</p><p>Write to us again from the chat on the site and we will answer.</p>",
            ))
        }
        Err(links::LinkError::Invalid) => {
            return Ok(page(
                StatusCode::BAD_REQUEST,
                "Enlace no válido · Invalid link",
                "<p>Este enlace no es válido: puede que se haya copiado incompleto.</p><p>This link is not valid: it may have been copied incompletely.</p>",
            ))
        }
    };
    let channel = rt
        .core
        .store
        .call(move |s| s.conversation(conversation))
        .await?
        .map(|r| r.row.channel)
        .unwrap_or_else(|| "web".into());
    let esc = crate::mail::templates::escape;
    Ok(page(
        StatusCode::OK,
        &format!("Conversación #{conversation} · Conversation #{conversation}"),
        &format!(
            "<p>La conversación sigue aquí abajo. · The conversation goes on below.</p>\
             <script src=\"/widget/charla.js\" data-channel=\"{}\" data-continue=\"{}\" data-open=\"true\" async></script>",
            esc(&channel),
            esc(&code)
        ),
    ))
}

/// Request body for the e-mail card.
#[derive(Deserialize, Default)]
pub struct AskBody {
    #[serde(default)]
    client_id: Option<String>,
}

/// `POST /api/conversations/{id}/ask-email`: a card in the chat asking the visitor for
/// their e-mail address, so the conversation can go on by e-mail (EC3).
pub async fn ask_email(
    rt: web::Data<Runtime>,
    who: Authed,
    path: web::Path<i64>,
    body: web::Bytes,
) -> Result<HttpResponse, AppError> {
    who.require_chat()?;
    let client_id = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        serde_json::from_slice::<AskBody>(&body)
            .map_err(|e| AppError::bad_request(format!("invalid body: {e}")))?
            .client_id
    };
    if let Some(c) = &client_id {
        crate::protocol::validate_client_id(c)?;
    }
    let id = path.into_inner();
    crate::console::check_visible(&rt, who.operator.id, id).await?;
    let addr = rt.conversation(id).await?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    rt.deliver(
        &addr,
        Offer {
            form: "email",
            by: Requester::Operator(crate::console::staff(&who.operator)),
            client_id,
            timer: None,
            reply: Reply::Http(tx),
            from_session: None,
        },
    )?;
    let posted = rx.await.map_err(|_| {
        AppError::new(ErrorCode::Busy, "the conversation restarted; retry").retry_after(100)
    })??;
    Ok(HttpResponse::Ok().json(posted))
}

/// `GET /api/conversations/{id}/emails`: what was e-mailed to the visitor, and its state.
pub async fn emails(
    rt: web::Data<Runtime>,
    who: Authed,
    path: web::Path<i64>,
) -> Result<HttpResponse, AppError> {
    who.require_chat()?;
    let id = path.into_inner();
    crate::console::check_visible(&rt, who.operator.id, id).await?;
    let list = rt
        .core
        .store
        .call(move |s| s.conversation_emails(id))
        .await?;
    Ok(HttpResponse::Ok().json(list))
}
