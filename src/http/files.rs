//! Files over HTTP (XB1): uploads by visitors (their widget token) and operators (their
//! bearer token), and downloads by capability link, served so that a file can never run as
//! a page of this site.

use super::account::Authed;
use crate::error::AppError;
use crate::runtime::Runtime;
use actix_web::{http::header, web, FromRequest, HttpRequest, HttpResponse};
use serde::Deserialize;

/// Upload query: the file's name.
#[derive(Deserialize)]
pub struct UploadQuery {
    #[serde(default)]
    name: Option<String>,
}

/// `POST /api/uploads?name=photo.jpg` with the file as the body: `Authorization: Bearer
/// <operator token>` or `Authorization: Visitor <visitor token>`. Answers the file's
/// description; send it with a `message` frame's `attachment`.
pub async fn upload(
    rt: web::Data<Runtime>,
    req: HttpRequest,
    q: web::Query<UploadQuery>,
    body: web::Payload,
) -> HttpResponse {
    // A widget on another site must be able to read the refusal too.
    super::widget::readable_anywhere(receive(rt, req, q, body).await)
}

async fn receive(
    rt: web::Data<Runtime>,
    req: HttpRequest,
    q: web::Query<UploadQuery>,
    mut body: web::Payload,
) -> Result<HttpResponse, AppError> {
    let auth = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let (kind, id) = if let Some(token) = auth.strip_prefix("Visitor ") {
        let digest = crate::auth::token_digest(token.trim());
        let id = rt
            .core
            .store
            .call(move |s| s.visitor_by_token(&digest))
            .await?
            .ok_or_else(|| AppError::unauthorized("unknown visitor token"))?;
        ("visitor", id)
    } else {
        let who = Authed::extract(&req).await?;
        who.require_chat()?;
        ("operator", who.operator.id)
    };
    let declared = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/octet-stream")
        .to_string();
    // Read up to the limit and no further: a larger file is refused without being held.
    let max = rt.core.config.max_upload_bytes;
    let mut data = Vec::new();
    while let Some(chunk) = futures_util::StreamExt::next(&mut body).await {
        let chunk = chunk.map_err(|e| AppError::bad_request(format!("upload interrupted: {e}")))?;
        if data.len() + chunk.len() > max {
            return Err(AppError::new(
                crate::error::ErrorCode::TooLarge,
                format!("the file is over {max} bytes"),
            ));
        }
        data.extend_from_slice(&chunk);
    }
    let name = q.into_inner().name.unwrap_or_default();
    let info = crate::files::upload(&rt, kind, id, &name, &declared, data).await?;
    let url = format!("/files/{}/{}", info.id, urlencode(&info.filename));
    let mut v = serde_json::to_value(&info).unwrap_or_default();
    v["url"] = url.into();
    Ok(HttpResponse::Created().json(v))
}

/// `GET /files/{id}/{name}`: the file. Images are shown inline; everything else downloads.
/// Either way the answer cannot run script here (`nosniff`, a sandboxing CSP).
pub async fn download(
    rt: web::Data<Runtime>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, AppError> {
    let (id, _) = path.into_inner();
    if id.len() > 64 {
        return Err(AppError::not_found("no such file"));
    }
    let (info, data) = rt
        .core
        .store
        .call(move |s| s.attachment_data(&id))
        .await?
        .ok_or_else(|| AppError::not_found("no such file"))?;
    let disposition = if crate::files::inline(&info.content_type) {
        "inline"
    } else {
        "attachment"
    };
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, info.content_type.as_str()))
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!(
                "{disposition}; filename=\"file\"; filename*=UTF-8''{}",
                urlencode(&info.filename)
            ),
        ))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; img-src 'self'; sandbox",
        ))
        .insert_header((header::CACHE_CONTROL, "private, max-age=86400, immutable"))
        .body(data))
}

/// Percent-encodes a file name for a URL path or an RFC 5987 header value.
fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
