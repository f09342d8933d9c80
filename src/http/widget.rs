//! What the widget reads before it opens a socket: its channel's public settings and whether
//! anybody can answer now (CF1, CF2, CF7, ID7, ID8). Never the channel's secret.

use crate::error::AppError;
use crate::runtime::router::CanAnswer;
use crate::runtime::Runtime;
use actix_web::{web, HttpResponse};

/// Adds `Access-Control-Allow-Origin: *` to an answer or an error, for the widget on any
/// site.
pub fn readable_anywhere(res: Result<HttpResponse, AppError>) -> HttpResponse {
    let mut res = res.unwrap_or_else(|e| actix_web::ResponseError::error_response(&e));
    res.headers_mut().insert(
        actix_web::http::header::ACCESS_CONTROL_ALLOW_ORIGIN,
        actix_web::http::header::HeaderValue::from_static("*"),
    );
    res
}

/// `GET /api/widget/{channel}`: the widget's configuration.
pub async fn config(rt: web::Data<Runtime>, path: web::Path<String>) -> HttpResponse {
    readable_anywhere(widget_config(rt, path).await)
}

async fn widget_config(
    rt: web::Data<Runtime>,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let name = path.into_inner();
    if name.is_empty() || name.len() > 64 {
        return Err(AppError::bad_request("invalid channel name"));
    }
    let channel = rt.channel(&name).await?;
    let can_answer = rt
        .router
        .send(CanAnswer {
            team_id: channel.team_id,
        })
        .await
        .map_err(|_| AppError::internal())?;
    let s = &channel.settings;
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(serde_json::json!({
            "channel": channel.name,
            "title": channel.title,
            "language": s.language,
            "greeting": s.greeting,
            "name_form": s.name_form,
            "name_form_delay_secs": s.name_form_delay_secs,
            "name_form_text": s.name_form_text,
            "prechat": s.prechat,
            "offline_form": s.offline_form,
            "offline_text": s.offline_text,
            "require_identity": s.require_identity,
            "transcript_offer": s.transcript_offer,
            "transcript_delay_secs": s.transcript_delay_secs,
            "online": can_answer && !s.closed,
            "closed": s.closed,
            "max_upload_bytes": rt.core.config.max_upload_bytes,
            "upload_types": crate::files::ALLOWED.iter().map(|(t, _)| *t).collect::<Vec<_>>(),
        })))
}

/// `OPTIONS /api/uploads` and `/api/widget/{channel}`: the CORS preflight of a widget on
/// another site. Credentials travel in `Authorization` (a visitor token), never in cookies,
/// so any origin may ask.
pub async fn preflight() -> HttpResponse {
    HttpResponse::NoContent()
        .insert_header(("Access-Control-Allow-Origin", "*"))
        .insert_header(("Access-Control-Allow-Methods", "GET, POST, OPTIONS"))
        .insert_header((
            "Access-Control-Allow-Headers",
            "Authorization, Content-Type",
        ))
        .insert_header(("Access-Control-Max-Age", "86400"))
        .finish()
}
