//! The hidden `__echo` subcommand: a bare websocket server on Charla's own stack (actix-web
//! with actix-web-actors, the same worker count) that answers `hello` with `welcome` and
//! every `message` with an immediate `ack`, storing nothing. The `echo` scenario runs the
//! same client against it and against Charla, so the difference is what durability,
//! ordering and routing cost on top of the transport (the ceiling).

use actix::{Actor, ActorContext, StreamHandler};
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use actix_web_actors::ws;
use serde::Deserialize;

/// The fields of a client frame the echo needs.
#[derive(Deserialize)]
struct Incoming {
    #[serde(rename = "type")]
    ty: String,
    #[serde(default)]
    client_id: Option<String>,
}

/// One socket.
struct EchoSession {
    seq: i64,
}

impl Actor for EchoSession {
    type Context = ws::WebsocketContext<Self>;
}

impl StreamHandler<Result<ws::Message, ws::ProtocolError>> for EchoSession {
    fn handle(&mut self, item: Result<ws::Message, ws::ProtocolError>, ctx: &mut Self::Context) {
        match item {
            Ok(ws::Message::Text(text)) => {
                // Parse as the real server does, so both sides pay for JSON.
                let Ok(frame) = serde_json::from_str::<Incoming>(&text) else {
                    return ctx.text(r#"{"type":"error","code":"bad_json","message":"malformed JSON","retryable":false}"#);
                };
                match (frame.ty.as_str(), frame.client_id) {
                    ("hello", _) => ctx.text(
                        r#"{"type":"welcome","v":1,"visitor_token":"echo","conversation":null}"#,
                    ),
                    ("message", Some(client_id)) => {
                        self.seq += 1;
                        let ack = serde_json::json!({
                            "type": "ack",
                            "client_id": client_id,
                            "conversation_id": 1,
                            "seq": self.seq,
                            "duplicate": false,
                        });
                        ctx.text(ack.to_string());
                    }
                    _ => {}
                }
            }
            Ok(ws::Message::Ping(p)) => ctx.pong(&p),
            Ok(ws::Message::Close(_)) | Err(_) => ctx.stop(),
            Ok(_) => {}
        }
    }
}

async fn visitor(req: HttpRequest, stream: web::Payload) -> Result<HttpResponse, actix_web::Error> {
    ws::start(EchoSession { seq: 0 }, &req, stream)
}

/// Runs the echo server on `CHARLA_ADDR` until SIGTERM or SIGINT.
pub fn serve() -> Result<(), String> {
    let addr = std::env::var("CHARLA_ADDR").unwrap_or_else(|_| "127.0.0.1:8080".into());
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    let system = actix_rt::System::new();
    system.block_on(async move {
        let server = HttpServer::new(|| {
            App::new()
                .route(
                    "/healthz",
                    web::get().to(|| async { HttpResponse::Ok().body(r#"{"status":"ok"}"#) }),
                )
                .route("/ws/visitor", web::get().to(visitor))
        })
        .workers(workers)
        .disable_signals()
        .on_connect(|conn, _ext| {
            // As Charla does, so the comparison is like for like.
            if let Some(tcp) = conn.downcast_ref::<actix_web::rt::net::TcpStream>() {
                let _ = tcp.set_nodelay(true);
            }
        })
        .bind(&addr)
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?
        .run();
        let handle = server.handle();
        let running = actix_rt::spawn(server);
        crate::server::wait_for_signal().await;
        handle.stop(true).await;
        let _ = running.await;
        Ok(())
    })
}
