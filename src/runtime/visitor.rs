//! The VisitorSession actor: one per widget websocket. It authenticates the visitor (a new
//! random token, or one issued before), attaches to the visitor's conversation with the
//! last sequence number the widget holds, and forwards typed frames. It holds no business
//! state beyond what it needs to deliver each message once.

use super::conversation::{
    Attach, Attached, Conversation, Detach, MarkRead, Post, Reply, Requester, Typing,
};
use super::persister::{PersistReply, PersistRequest};
use super::router::Open;
use super::session::{
    check_size, close_with, handle_input, Backlog, Drained, RateLimit, Undecoded, WsSession,
    CLIENT_TIMEOUT, HEARTBEAT_INTERVAL,
};
use super::{Outbound, Runtime, Shutdown};
use crate::auth;
use crate::error::{AppError, ErrorCode};
use crate::model::MessageKind;
use crate::protocol::{
    error_frame, parse_frame, validate_message, ServerFrame, VisitorFrame, VISITOR_TYPES,
};
use crate::store::messages::Write;
use actix::prelude::*;
use actix_web_actors::ws;
use std::sync::atomic::Ordering;
use std::time::Instant;

/// A random positive id for a new visitor, chosen here so that creating the visitor needs
/// no round trip for the database to pick one.
fn new_visitor_id() -> i64 {
    use rand::Rng;
    rand::thread_rng().gen_range(1..i64::MAX)
}

/// Longest channel name accepted in `hello`.
const MAX_CHANNEL_LEN: usize = 64;

/// The session actor.
pub struct VisitorSession {
    id: u64,
    rt: Runtime,
    visitor_id: Option<i64>,
    conversation: Option<(i64, Addr<Conversation>)>,
    /// Highest sequence number delivered to this client; nothing at or below it is sent again.
    delivered_seq: i64,
    channel: String,
    last_heard: Instant,
    limit: RateLimit,
    /// Bytes received since the last decoded frame (see `session::BoundedPayload`).
    undecoded: Undecoded,
    /// Bytes queued for the client but not yet written (see `session::Backlog`).
    backlog: Backlog,
}

impl VisitorSession {
    /// A session on a fresh socket.
    pub fn new(rt: Runtime, undecoded: Undecoded, drained: Drained) -> Self {
        let cfg = &rt.core.config;
        let limit = RateLimit::new(cfg.rate_per_sec, cfg.rate_burst);
        let backlog = Backlog::new(drained, cfg.max_send_backlog_bytes);
        VisitorSession {
            id: rt.core.hub.next_session_id(),
            rt,
            visitor_id: None,
            conversation: None,
            delivered_seq: 0,
            channel: "web".into(),
            last_heard: Instant::now(),
            limit,
            undecoded,
            backlog,
        }
    }

    fn send_error(
        &self,
        ctx: &mut ws::WebsocketContext<Self>,
        err: &AppError,
        client_id: Option<&str>,
    ) {
        self.rt
            .core
            .metrics
            .client_errors
            .fetch_add(1, Ordering::Relaxed);
        ctx.text(error_frame(err, client_id));
    }

    fn deliver(
        &mut self,
        ctx: &mut ws::WebsocketContext<Self>,
        seq: Option<i64>,
        frame: bytestring::ByteString,
    ) {
        if let Some(seq) = seq {
            if seq <= self.delivered_seq {
                return;
            }
            self.delivered_seq = seq;
        }
        ctx.text(frame);
    }

    fn on_text(&mut self, text: &str, ctx: &mut ws::WebsocketContext<Self>) {
        let max = self.rt.core.config.max_frame_bytes;
        if let Err(e) = check_size(text.len(), max).and_then(|_| self.limit.check()) {
            return self.send_error(ctx, &e, None);
        }
        let frame = match parse_frame::<VisitorFrame>(text, VISITOR_TYPES) {
            Ok(f) => f,
            Err(e) => return self.send_error(ctx, &e, None),
        };
        match frame {
            VisitorFrame::Hello {
                v,
                token,
                conversation_id,
                last_seq,
                channel,
            } => self.hello(
                ctx,
                v,
                token,
                conversation_id,
                last_seq.unwrap_or(0),
                channel,
            ),
            VisitorFrame::Ping {} => ctx.text(ServerFrame::Pong {}.encode()),
            _ if self.visitor_id.is_none() => self.send_error(
                ctx,
                &AppError::new(ErrorCode::HelloRequired, "send `hello` first"),
                None,
            ),
            VisitorFrame::Message {
                client_id,
                body,
                reply_to,
            } => self.message(ctx, client_id, body, reply_to),
            VisitorFrame::Typing { on } => {
                if let (Some((_, addr)), Some(visitor)) = (&self.conversation, self.visitor_id) {
                    let _ = self.rt.deliver(
                        addr,
                        Typing {
                            from: Requester::Visitor(visitor),
                            on,
                            from_session: self.id,
                        },
                    );
                }
            }
            VisitorFrame::Read { seq } => {
                if let (Some((_, addr)), Some(visitor)) = (&self.conversation, self.visitor_id) {
                    let _ = self.rt.deliver(
                        addr,
                        MarkRead {
                            by: Requester::Visitor(visitor),
                            seq,
                        },
                    );
                }
            }
        }
    }

    fn hello(
        &mut self,
        ctx: &mut ws::WebsocketContext<Self>,
        v: Option<u32>,
        token: Option<String>,
        conversation_id: Option<i64>,
        last_seq: i64,
        channel: Option<String>,
    ) {
        if self.visitor_id.is_some() {
            return self.send_error(
                ctx,
                &AppError::bad_request("`hello` was already accepted"),
                None,
            );
        }
        if v.is_some_and(|v| v != crate::protocol::PROTOCOL_VERSION) {
            return self.send_error(
                ctx,
                &AppError::bad_request("unsupported protocol version; this server speaks v1"),
                None,
            );
        }
        if let Some(ch) = channel {
            if ch.is_empty() || ch.len() > MAX_CHANNEL_LEN {
                return self.send_error(ctx, &AppError::bad_request("invalid channel name"), None);
            }
            self.channel = ch;
        }
        if token.is_none() && conversation_id.is_some() {
            // A visitor without an identity owns no conversation.
            return self.send_error(
                ctx,
                &AppError::forbidden("this conversation is not yours"),
                None,
            );
        }
        let rt = self.rt.clone();
        let session_id = self.id;
        let sink = ctx.address().recipient::<Outbound>();
        let fut = async move {
            let now = rt.core.clock.now_ms();
            let (visitor_id, issued) = match token {
                Some(token) => {
                    let digest = auth::token_digest(&token);
                    let id = rt
                        .core
                        .store
                        .call(move |s| s.visitor_by_token(&digest))
                        .await?
                        .ok_or_else(|| AppError::unauthorized("unknown visitor token"))?;
                    (id, None)
                }
                None => {
                    // A new identity goes through the persister, so a crowd arriving at
                    // once is written in a few transactions rather than one each.
                    let token = auth::new_token();
                    let id = new_visitor_id();
                    let (tx, rx) = tokio::sync::oneshot::channel();
                    rt.core.persister.submit(PersistRequest {
                        writes: vec![Write::Visitor {
                            id,
                            token_hash: auth::token_digest(&token),
                            created_at: now,
                        }],
                        ticket: 0,
                        reply: PersistReply::Channel(tx),
                    })?;
                    rx.await.map_err(|_| {
                        AppError::new(ErrorCode::Busy, "the server is shutting down")
                            .retry_after(1000)
                    })??;
                    (id, Some(token))
                }
            };
            let target = match conversation_id {
                Some(id) => Some(id),
                None if issued.is_none() => {
                    rt.core
                        .store
                        .call(move |s| s.latest_conversation_of(visitor_id))
                        .await?
                }
                None => None,
            };
            let attached = match target {
                Some(id) => {
                    let addr = rt.conversation(id).await.map_err(|e| {
                        // Do not reveal whether someone else's conversation exists.
                        if e.code == ErrorCode::NotFound {
                            AppError::forbidden("this conversation is not yours")
                        } else {
                            e
                        }
                    })?;
                    let attached = addr
                        .send(Attach {
                            session_id,
                            visitor_id,
                            after_seq: last_seq,
                            sink,
                        })
                        .await
                        .map_err(|_| {
                            AppError::new(ErrorCode::Busy, "the conversation is restarting; retry")
                                .retry_after(100)
                        })??;
                    Some((id, addr, attached))
                }
                None => None,
            };
            Ok::<_, AppError>((visitor_id, issued, attached))
        };
        ctx.wait(fut.into_actor(self).map(move |res, act, ctx| match res {
            Ok((visitor_id, issued, attached)) => {
                act.visitor_id = Some(visitor_id);
                act.delivered_seq = last_seq.max(0);
                let view = attached.as_ref().map(|(_, _, a)| a.view.clone());
                ctx.text(
                    ServerFrame::Welcome {
                        v: crate::protocol::PROTOCOL_VERSION,
                        visitor_token: issued.as_deref(),
                        conversation: view.as_ref(),
                    }
                    .encode(),
                );
                if let Some((id, addr, attached)) = attached {
                    act.conversation = Some((id, addr));
                    act.attached(ctx, id, attached);
                }
            }
            Err(e) => act.send_error(ctx, &e, None),
        }));
    }

    /// Replays what the client missed and tells it its place in the queue.
    fn attached(&mut self, ctx: &mut ws::WebsocketContext<Self>, id: i64, attached: Attached) {
        for (seq, frame) in attached.replay {
            self.deliver(ctx, Some(seq), frame);
        }
        if attached.queue_position.is_some() {
            ctx.text(
                ServerFrame::Queue {
                    conversation_id: id,
                    position: attached.queue_position,
                }
                .encode(),
            );
        }
    }

    fn message(
        &mut self,
        ctx: &mut ws::WebsocketContext<Self>,
        client_id: String,
        body: String,
        reply_to: Option<i64>,
    ) {
        let max_chars = self.rt.core.config.max_message_chars;
        if let Err(e) = validate_message(&client_id, &body, max_chars) {
            return self.send_error(ctx, &e, Some(&client_id));
        }
        let Some(visitor_id) = self.visitor_id else {
            return;
        };
        let post = Post {
            by: Requester::Visitor(visitor_id),
            kind: MessageKind::Text,
            client_id,
            body,
            reply_to,
            mentions: Vec::new(),
            reply: Reply::Session(ctx.address().recipient()),
            from_session: Some(self.id),
        };
        if let Some((_, addr)) = &self.conversation {
            if addr.connected() {
                let client_id = post.client_id.clone();
                if let Err(e) = self.rt.deliver(addr, post) {
                    self.send_error(ctx, &e, Some(&client_id));
                }
                return;
            }
        }
        // No conversation yet (or its actor died): open or restore it, then post. The
        // session waits, so later frames keep their order.
        let rt = self.rt.clone();
        let existing = self.conversation.as_ref().map(|(id, _)| *id);
        let channel = self.channel.clone();
        let session_id = self.id;
        let sink = ctx.address().recipient::<Outbound>();
        let after_seq = self.delivered_seq;
        let fut = async move {
            let addr = match existing {
                Some(id) => rt.conversation(id).await?,
                None => rt
                    .router
                    .send(Open {
                        visitor_id,
                        channel,
                    })
                    .await
                    .map_err(|_| {
                        AppError::new(ErrorCode::Busy, "the router is unavailable").retry_after(100)
                    })??,
            };
            let attached = addr
                .send(Attach {
                    session_id,
                    visitor_id,
                    after_seq,
                    sink,
                })
                .await
                .map_err(|_| {
                    AppError::new(ErrorCode::Busy, "the conversation is restarting; retry")
                        .retry_after(100)
                })??;
            Ok::<_, AppError>((addr, attached))
        };
        ctx.wait(fut.into_actor(self).map(move |res, act, ctx| match res {
            Ok((addr, attached)) => {
                ctx.text(
                    ServerFrame::Conversation {
                        conversation: &attached.view,
                    }
                    .encode(),
                );
                let id = attached.view.id;
                act.attached(ctx, id, attached);
                let client_id = post.client_id.clone();
                if let Err(e) = act.rt.deliver(&addr, post) {
                    act.send_error(ctx, &e, Some(&client_id));
                }
                act.conversation = Some((id, addr));
            }
            Err(e) => {
                let client_id = post.client_id.clone();
                act.send_error(ctx, &e, Some(&client_id));
            }
        }));
    }
}

impl Actor for VisitorSession {
    type Context = ws::WebsocketContext<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.rt
            .core
            .metrics
            .visitor_connections
            .fetch_add(1, Ordering::Relaxed);
        self.rt.core.hub.join(self.id, ctx.address().recipient());
        ctx.run_interval(HEARTBEAT_INTERVAL, |act, ctx| {
            if act.last_heard.elapsed() > CLIENT_TIMEOUT {
                ctx.stop();
            } else {
                ctx.ping(b"");
            }
        });
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        self.rt
            .core
            .metrics
            .visitor_connections
            .fetch_sub(1, Ordering::Relaxed);
        self.rt.core.hub.leave(self.id);
        if let Some((_, addr)) = &self.conversation {
            addr.do_send(Detach {
                session_id: self.id,
            });
        }
    }
}

impl Handler<Outbound> for VisitorSession {
    type Result = ();

    fn handle(&mut self, msg: Outbound, ctx: &mut Self::Context) {
        if !self.backlog.push(msg.frame.len()) {
            return shed_slow_client(ctx);
        }
        self.deliver(ctx, msg.seq, msg.frame);
    }
}

/// Closes the socket of a client that stopped reading (1008), so it costs no more memory
/// and never holds back anyone else; it resumes from its last sequence number when it
/// reconnects.
pub fn shed_slow_client<A>(ctx: &mut ws::WebsocketContext<A>)
where
    A: Actor<Context = ws::WebsocketContext<A>>,
{
    close_with(
        ctx,
        ws::CloseCode::Policy,
        "too slow: the client is not reading its frames",
    );
}

impl Handler<Shutdown> for VisitorSession {
    type Result = ();

    fn handle(&mut self, _msg: Shutdown, ctx: &mut Self::Context) {
        close_with(ctx, ws::CloseCode::Away, "server shutting down");
    }
}

impl StreamHandler<Result<ws::Message, ws::ProtocolError>> for VisitorSession {
    fn handle(&mut self, item: Result<ws::Message, ws::ProtocolError>, ctx: &mut Self::Context) {
        handle_input(self, item, ctx);
    }
}

impl WsSession for VisitorSession {
    fn heard(&mut self, payload_len: usize) {
        self.last_heard = Instant::now();
        self.undecoded.handled(payload_len);
    }

    fn on_text(&mut self, text: &str, ctx: &mut ws::WebsocketContext<Self>) {
        VisitorSession::on_text(self, text, ctx);
    }

    fn send_error(
        &self,
        ctx: &mut ws::WebsocketContext<Self>,
        err: &AppError,
        client_id: Option<&str>,
    ) {
        VisitorSession::send_error(self, ctx, err, client_id);
    }
}
