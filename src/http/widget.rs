//! What the widget reads before it opens a socket: its channel's public settings and whether
//! anybody can answer now (CF1, CF2, CF7, ID7, ID8). Never the channel's secret.

use crate::error::AppError;
use crate::runtime::router::CanAnswer;
use crate::runtime::Runtime;
use actix_web::{web, HttpResponse};

/// `GET /api/widget/{channel}`: the widget's configuration.
pub async fn config(
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
