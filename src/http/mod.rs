//! HTTP routes: thin handlers that check who is asking and call into the store or the
//! runtime. Websocket upgrades go to `websocket`, which hands the socket to a session actor.

pub mod account;
pub mod admin;
pub mod conversations;
pub mod crm;
pub mod files;
pub mod headers;
pub mod mail;
pub mod websocket;
pub mod widget;

use crate::error::{AppError, ErrorCode};
use crate::runtime::Runtime;
use actix_web::{error::JsonPayloadError, web, HttpResponse};

/// Largest JSON body the HTTP API accepts.
const MAX_JSON_BODY: usize = 64 * 1024;

/// Registers every route on an actix-web `App`.
pub fn routes(cfg: &mut web::ServiceConfig, static_dir: &std::path::Path) {
    cfg.app_data(
        web::JsonConfig::default()
            .limit(MAX_JSON_BODY)
            .error_handler(|err, _req| json_error(err).into()),
    )
    .app_data(
        web::PathConfig::default().error_handler(|err, _req| {
            AppError::bad_request(format!("invalid path: {err}")).into()
        }),
    )
    .app_data(
        web::QueryConfig::default().error_handler(|err, _req| {
            AppError::bad_request(format!("invalid query: {err}")).into()
        }),
    )
    .route("/healthz", web::get().to(healthz))
    .route("/metrics", web::get().to(metrics))
    .route("/ws/visitor", web::get().to(websocket_only))
    .route("/ws/operator", web::get().to(websocket_only))
    .route("/files/{id}/{name}", web::get().to(files::download))
    .route("/continue", web::get().to(mail::continue_page))
    .service(
        web::scope("/api")
            .route("/login", web::post().to(account::login))
            .route("/logout", web::post().to(account::logout))
            .route("/setup", web::get().to(account::setup_state))
            .route("/setup", web::post().to(account::setup))
            .route("/me", web::get().to(account::me))
            .route("/me", web::patch().to(account::update_me))
            .route("/operators", web::get().to(account::list_operators))
            .route("/operators", web::post().to(account::add_operator))
            .route("/operators/{id}", web::patch().to(account::update_operator))
            .route("/groups", web::get().to(admin::list_groups))
            .route("/groups", web::post().to(admin::add_group))
            .route("/groups/{id}", web::patch().to(admin::update_group))
            .route("/teams", web::get().to(admin::list_teams))
            .route("/teams", web::post().to(admin::add_team))
            .route("/channels", web::get().to(admin::list_channels))
            .route("/channels", web::post().to(admin::add_channel))
            .route("/channels/{id}", web::patch().to(admin::update_channel))
            .route("/routing", web::get().to(admin::routing))
            .route(
                "/settings/routing",
                web::get().to(admin::get_routing_settings),
            )
            .route(
                "/settings/routing",
                web::put().to(admin::put_routing_settings),
            )
            .route("/widget/{channel}", web::get().to(widget::config))
            .route(
                "/widget/{channel}",
                web::method(actix_web::http::Method::OPTIONS).to(widget::preflight),
            )
            .route("/uploads", web::post().to(files::upload))
            .route(
                "/uploads",
                web::method(actix_web::http::Method::OPTIONS).to(widget::preflight),
            )
            .route("/contacts", web::get().to(crm::find))
            .route("/contacts/{id}", web::get().to(crm::card))
            .route("/contacts/{id}", web::patch().to(crm::update))
            .route("/contacts/{id}", web::delete().to(crm::erase))
            .route("/contacts/{id}/merge", web::post().to(crm::merge))
            .route("/contacts/{id}/export", web::get().to(crm::export))
            .route("/suggestions", web::get().to(crm::suggestions))
            .route("/suggestions/{id}/accept", web::post().to(crm::accept))
            .route("/suggestions/{id}/reject", web::post().to(crm::reject))
            .route(
                "/channels/{id}/secret",
                web::get().to(admin::channel_secret),
            )
            .route(
                "/channels/{id}/secret",
                web::post().to(admin::rotate_channel_secret),
            )
            .route("/inbound/email", web::post().to(mail::inbound))
            .route(
                "/conversations/{id}/ask-email",
                web::post().to(mail::ask_email),
            )
            .route("/conversations/{id}/emails", web::get().to(mail::emails))
            .route("/search", web::get().to(conversations::search))
            .route("/internal", web::post().to(conversations::internal))
            .route("/conversations", web::get().to(conversations::list))
            .route("/conversations/{id}", web::get().to(conversations::show))
            .route(
                "/conversations/{id}/assign",
                web::post().to(conversations::assign),
            )
            .route(
                "/conversations/{id}/take",
                web::post().to(conversations::take),
            )
            .route(
                "/conversations/{id}/assignments",
                web::get().to(conversations::assignments),
            )
            .route(
                "/conversations/{id}/draft",
                web::get().to(conversations::get_draft),
            )
            .route(
                "/conversations/{id}/draft",
                web::put().to(conversations::put_draft),
            )
            .route(
                "/conversations/{id}/contact",
                web::post().to(conversations::link_contact),
            )
            .route(
                "/conversations/{id}/messages",
                web::post().to(conversations::reply),
            )
            .route(
                "/conversations/{id}/close",
                web::post().to(conversations::close),
            )
            .route(
                "/conversations/{id}/reopen",
                web::post().to(conversations::reopen),
            )
            .default_service(web::to(|| async {
                Err::<HttpResponse, _>(AppError::not_found("no such API endpoint"))
            })),
    );
    if static_dir.is_dir() {
        cfg.service(
            actix_files::Files::new("/", static_dir)
                .index_file("index.html")
                .redirect_to_slash_directory()
                .prefer_utf8(true),
        );
    }
}

fn json_error(err: JsonPayloadError) -> AppError {
    match err {
        JsonPayloadError::Overflow { .. } | JsonPayloadError::OverflowKnownLength { .. } => {
            AppError::new(
                ErrorCode::TooLarge,
                format!("the body is over {MAX_JSON_BODY} bytes"),
            )
        }
        JsonPayloadError::Deserialize(e) if e.is_syntax() || e.is_eof() => {
            AppError::new(ErrorCode::BadJson, format!("malformed JSON: {e}"))
        }
        JsonPayloadError::Deserialize(e) => AppError::bad_request(format!("invalid body: {e}")),
        JsonPayloadError::ContentType => {
            AppError::bad_request("the body must be JSON (Content-Type: application/json)")
        }
        other => AppError::bad_request(other.to_string()),
    }
}

async fn healthz(rt: web::Data<Runtime>) -> HttpResponse {
    match rt.core.store.call(|s| s.ping()).await {
        Ok(()) => HttpResponse::Ok().json(serde_json::json!({
            "status": "ok",
            "database": rt.core.store.backend_name(),
        })),
        Err(_) => HttpResponse::ServiceUnavailable().json(serde_json::json!({
            "status": "unavailable",
            "database": rt.core.store.backend_name(),
        })),
    }
}

async fn metrics(rt: web::Data<Runtime>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(rt.core.metrics.render())
}

/// `/ws/visitor` and `/ws/operator` asked for without an upgrade: the upgrade itself never
/// reaches the application, the websocket transport (`websocket`) takes it first.
async fn websocket_only() -> Result<HttpResponse, AppError> {
    Err(AppError::bad_request(
        "this address serves a websocket: send an upgrade request",
    ))
}
