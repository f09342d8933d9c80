//! The OperatorSession actor: one per console websocket. It authenticates with the bearer
//! token from login, joins the live feed (resuming from the console's last event id when it
//! can, XB14), tells the router the operator is online, and turns frames into messages to
//! conversation actors, which judge ownership.

use super::conversation::{MarkRead, Post, Reply, Requester, SetStatus, Typing};
use super::router::{OperatorOffline, OperatorOnline};
use super::session::{
    check_size, close_with, handle_input, Backlog, Drained, RateLimit, Undecoded, WsSession,
    CLIENT_TIMEOUT, HEARTBEAT_INTERVAL,
};
use super::{AccountChanged, Outbound, Runtime, Shutdown};
use crate::auth;
use crate::console;
use crate::error::{AppError, ErrorCode};
use crate::model::ConversationStatus;
use crate::protocol::{
    error_frame, parse_frame, validate_message_with, OperatorFrame, Resume, ServerFrame,
    OPERATOR_TYPES,
};
use crate::store::operators::{Operator, OperatorChange};
use actix::prelude::*;
use actix_web_actors::ws;
use std::sync::atomic::Ordering;
use std::time::Instant;

/// The session actor.
pub struct OperatorSession {
    id: u64,
    rt: Runtime,
    /// The operator, the login's expiry, and the token's digest (re-checked on every
    /// heartbeat, so a logout takes effect on open sockets; an account change, such as a
    /// revoked permission, arrives at once as [`AccountChanged`]).
    operator: Option<(Operator, i64, String)>,
    /// On the live feed (and counted online by the router).
    on_feed: bool,
    /// Bumped by every [`AccountChanged`], so a heartbeat's re-read that started before a
    /// change cannot put the older account back.
    account_version: u64,
    last_heard: Instant,
    limit: RateLimit,
    /// Bytes received since the last decoded frame (see `session::BoundedPayload`).
    undecoded: Undecoded,
    /// Bytes queued for the client but not yet written (see `session::Backlog`).
    backlog: Backlog,
}

/// Whether an operator may touch conversations (OC1: administrators always may).
pub fn may_chat(op: &Operator) -> bool {
    op.may_chat()
}

/// A frame turned into the message its conversation actor takes.
enum Action {
    Post(Post),
    Status(SetStatus),
    Typing(Typing),
    Read(MarkRead),
}

impl Action {
    fn deliver(
        self,
        rt: &Runtime,
        addr: &Addr<super::conversation::Conversation>,
    ) -> Result<(), AppError> {
        match self {
            Action::Post(m) => rt.deliver(addr, m),
            Action::Status(m) => rt.deliver(addr, m),
            Action::Typing(m) => rt.deliver(addr, m),
            Action::Read(m) => rt.deliver(addr, m),
        }
    }
}

impl OperatorSession {
    /// A session on a fresh socket.
    pub fn new(rt: Runtime, undecoded: Undecoded, drained: Drained) -> Self {
        let cfg = &rt.core.config;
        let limit = RateLimit::new(cfg.rate_per_sec, cfg.rate_burst);
        let backlog = Backlog::new(drained, cfg.max_send_backlog_bytes);
        OperatorSession {
            id: rt.core.hub.next_session_id(),
            rt,
            operator: None,
            on_feed: false,
            account_version: 0,
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

    fn on_text(&mut self, text: &str, ctx: &mut ws::WebsocketContext<Self>) {
        let max = self.rt.core.config.max_frame_bytes;
        if let Err(e) = check_size(text.len(), max).and_then(|_| self.limit.check()) {
            return self.send_error(ctx, &e, None);
        }
        let frame = match parse_frame::<OperatorFrame>(text, OPERATOR_TYPES) {
            Ok(f) => f,
            Err(e) => return self.send_error(ctx, &e, None),
        };
        if let OperatorFrame::Auth { token, resume } = frame {
            return self.auth(ctx, token, resume);
        }
        let Some((op, expires_at, _)) = self.operator.clone() else {
            if let OperatorFrame::Ping {} = frame {
                return ctx.text(ServerFrame::Pong {}.encode());
            }
            return self.send_error(
                ctx,
                &AppError::new(ErrorCode::HelloRequired, "send `auth` first"),
                None,
            );
        };
        if self.rt.core.clock.now_ms() >= expires_at {
            return self.end_login(ctx, "the login has expired; log in again");
        }
        if let OperatorFrame::Ping {} = frame {
            return ctx.text(ServerFrame::Pong {}.encode());
        }
        let client_id = match &frame {
            OperatorFrame::Message { client_id, .. }
            | OperatorFrame::Close { client_id, .. }
            | OperatorFrame::Reopen { client_id, .. }
            | OperatorFrame::Assign { client_id, .. }
            | OperatorFrame::Take { client_id, .. } => Some(client_id.clone()),
            _ => None,
        };
        if let Some(id) = &client_id {
            if let Err(e) = crate::protocol::validate_client_id(id) {
                return self.send_error(ctx, &e, None);
            }
        }
        if !may_chat(&op) {
            return self.send_error(
                ctx,
                &AppError::forbidden("your user group has no chat permission"),
                client_id.as_deref(),
            );
        }
        let staff = console::staff(&op);
        let sink = ctx.address().recipient::<Outbound>();
        let (conversation_id, action): (i64, Action) = match frame {
            OperatorFrame::Message {
                conversation_id,
                client_id,
                body,
                reply_to,
                kind,
                mentions,
                attachment,
            } => {
                let checked = validate_message_with(
                    &client_id,
                    &body,
                    self.rt.core.config.max_message_chars,
                    attachment.is_some(),
                )
                .and_then(|_| console::message_kind(kind.as_deref()))
                .and_then(|kind| Ok((kind, console::mentions(mentions)?)));
                let (kind, mentions) = match checked {
                    Ok(v) => v,
                    Err(e) => return self.send_error(ctx, &e, Some(&client_id)),
                };
                let post = Post {
                    by: Requester::Operator(staff),
                    kind,
                    client_id: client_id.clone(),
                    body,
                    reply_to,
                    mentions,
                    attachment: None,
                    reply: Reply::Session(sink),
                    from_session: Some(self.id),
                };
                if let Some(file) = attachment {
                    return self.post_with_file(ctx, conversation_id, post, file, op.id);
                }
                (conversation_id, Action::Post(post))
            }
            OperatorFrame::Close {
                conversation_id,
                client_id,
            } => (
                conversation_id,
                Action::Status(status(
                    staff,
                    ConversationStatus::Closed,
                    client_id,
                    sink,
                    self.id,
                )),
            ),
            OperatorFrame::Reopen {
                conversation_id,
                client_id,
            } => (
                conversation_id,
                Action::Status(status(
                    staff,
                    ConversationStatus::Open,
                    client_id,
                    sink,
                    self.id,
                )),
            ),
            OperatorFrame::Typing {
                conversation_id,
                on,
            } => (
                conversation_id,
                Action::Typing(Typing {
                    from: Requester::Operator(staff),
                    on,
                    from_session: self.id,
                }),
            ),
            OperatorFrame::Read {
                conversation_id,
                seq,
            } => (
                conversation_id,
                Action::Read(MarkRead {
                    by: Requester::Operator(staff),
                    seq,
                }),
            ),
            OperatorFrame::Assign {
                conversation_id,
                client_id,
                operator_id,
                reason,
            } => return self.reassign(ctx, op, conversation_id, operator_id, reason, client_id),
            OperatorFrame::Take {
                conversation_id,
                client_id,
            } => {
                let me = Some(op.id);
                return self.reassign(ctx, op, conversation_id, me, None, client_id);
            }
            OperatorFrame::Draft {
                conversation_id,
                body,
                reply_to,
            } => return self.draft(ctx, op.id, conversation_id, body, reply_to),
            OperatorFrame::Availability { available } => {
                return self.availability(ctx, op.id, available)
            }
            OperatorFrame::Auth { .. } | OperatorFrame::Ping {} => return,
        };
        self.dispatch(ctx, conversation_id, action, client_id);
    }

    /// Hands an action to its conversation's actor, loading the actor first if needed.
    fn dispatch(
        &mut self,
        ctx: &mut ws::WebsocketContext<Self>,
        conversation_id: i64,
        action: Action,
        client_id: Option<String>,
    ) {
        if let Some(addr) = self.rt.live_conversation(conversation_id) {
            if let Err(e) = action.deliver(&self.rt, &addr) {
                self.send_error(ctx, &e, client_id.as_deref());
            }
            return;
        }
        // Not in memory: load it first, holding later frames back so order is kept.
        let rt = self.rt.clone();
        ctx.wait(
            async move {
                let addr = rt.conversation(conversation_id).await?;
                action.deliver(&rt, &addr)
            }
            .into_actor(self)
            .map(move |res, act, ctx| {
                if let Err(e) = res {
                    act.send_error(ctx, &e, client_id.as_deref());
                }
            }),
        );
    }

    /// Checks that the file is the operator's own upload, then posts (in frame order).
    fn post_with_file(
        &mut self,
        ctx: &mut ws::WebsocketContext<Self>,
        conversation_id: i64,
        mut post: Post,
        file: String,
        operator_id: i64,
    ) {
        let rt = self.rt.clone();
        let client_id = post.client_id.clone();
        ctx.wait(
            async move {
                let info = crate::files::reference(
                    &rt,
                    &file,
                    "operator",
                    operator_id,
                    Some(conversation_id),
                )
                .await?;
                post.attachment = Some(info);
                let addr = rt.conversation(conversation_id).await?;
                rt.deliver(&addr, post)
            }
            .into_actor(self)
            .map(move |res, act, ctx| {
                if let Err(e) = res {
                    act.send_error(ctx, &e, Some(&client_id));
                }
            }),
        );
    }

    fn reassign(
        &mut self,
        ctx: &mut ws::WebsocketContext<Self>,
        op: Operator,
        conversation_id: i64,
        to: Option<i64>,
        reason: Option<String>,
        client_id: String,
    ) {
        let rt = self.rt.clone();
        let sink = ctx.address().recipient::<Outbound>();
        let session = self.id;
        let cid = client_id.clone();
        ctx.wait(
            async move {
                let msg = console::reassignment(
                    &rt,
                    &op,
                    to,
                    reason,
                    Some(cid),
                    Reply::Session(sink),
                    Some(session),
                )
                .await?;
                let addr = rt.conversation(conversation_id).await?;
                rt.deliver(&addr, msg)
            }
            .into_actor(self)
            .map(move |res, act, ctx| {
                if let Err(e) = res {
                    act.send_error(ctx, &e, Some(&client_id));
                }
            }),
        );
    }

    fn draft(
        &mut self,
        ctx: &mut ws::WebsocketContext<Self>,
        operator_id: i64,
        conversation_id: i64,
        body: String,
        reply_to: Option<i64>,
    ) {
        let rt = self.rt.clone();
        let session = self.id;
        // Drafts of one conversation are saved in the order typed.
        ctx.wait(
            async move {
                console::save_draft(
                    &rt,
                    operator_id,
                    conversation_id,
                    body,
                    reply_to,
                    Some(session),
                )
                .await
            }
            .into_actor(self)
            .map(|res, act, ctx| {
                if let Err(e) = res {
                    act.send_error(ctx, &e, None);
                }
            }),
        );
    }

    fn availability(
        &mut self,
        ctx: &mut ws::WebsocketContext<Self>,
        operator_id: i64,
        available: bool,
    ) {
        let rt = self.rt.clone();
        ctx.spawn(
            async move {
                let change = OperatorChange {
                    available: Some(available),
                    ..OperatorChange::default()
                };
                console::change_operator(&rt, operator_id, change).await
            }
            .into_actor(self)
            .map(|res, act, ctx| match res {
                Ok(op) => {
                    if let Some(current) = act.operator.as_mut() {
                        current.0 = op;
                    }
                }
                Err(e) => act.send_error(ctx, &e, None),
            }),
        );
    }

    /// Tells the client its login ended and closes the socket (1008).
    fn end_login(&mut self, ctx: &mut ws::WebsocketContext<Self>, why: &str) {
        self.send_error(ctx, &AppError::unauthorized(why), None);
        self.leave_feed();
        close_with(ctx, ws::CloseCode::Policy, "login ended");
    }

    /// Re-reads the login: a logout, an expiry or a changed permission reaches open sockets
    /// within one heartbeat.
    fn recheck(&mut self, ctx: &mut ws::WebsocketContext<Self>) {
        let Some((_, _, digest)) = self.operator.clone() else {
            return;
        };
        let rt = self.rt.clone();
        let now = rt.core.clock.now_ms();
        let version = self.account_version;
        let fut = async move {
            rt.core
                .store
                .call(move |s| s.operator_by_token(&digest, now))
                .await
        };
        ctx.spawn(fut.into_actor(self).map(move |res, act, ctx| match res {
            // The account changed while this was read: what the change said stands.
            Ok(Some(_)) if act.account_version != version => {}
            Ok(Some((op, expires_at))) => {
                act.follow_permission(ctx, &op, None);
                if let Some(current) = act.operator.as_mut() {
                    current.0 = op;
                    current.1 = expires_at;
                }
            }
            Ok(None) => act.end_login(ctx, "the login ended (logout or expiry); log in again"),
            // The database is unreachable: keep the session; the next heartbeat retries.
            Err(_) => {}
        }));
    }

    fn leave_feed(&mut self) {
        if !self.on_feed {
            return;
        }
        self.on_feed = false;
        self.rt.core.hub.leave_operators(self.id);
        if let Some((op, _, _)) = &self.operator {
            self.rt.router.do_send(OperatorOffline {
                session: self.id,
                operator_id: op.id,
            });
        }
    }

    /// Joins the live feed only with the chat permission (OC1): without it an operator sees
    /// no conversation, over HTTP or websocket. Returns the replay of a resumed console.
    fn follow_permission(
        &mut self,
        ctx: &mut ws::WebsocketContext<Self>,
        op: &Operator,
        resume: Option<&Resume>,
    ) -> Option<crate::runtime::hub::Joined> {
        if !may_chat(op) {
            self.leave_feed();
            return None;
        }
        let joined = if self.on_feed {
            None
        } else {
            self.on_feed = true;
            Some(self.rt.core.hub.join_operator(
                self.id,
                op.id,
                ctx.address().recipient(),
                resume.map(|r| (r.epoch.as_str(), r.last_eid)),
            ))
        };
        self.rt.router.do_send(OperatorOnline {
            session: self.id,
            operator: op.clone(),
        });
        joined
    }

    fn auth(
        &mut self,
        ctx: &mut ws::WebsocketContext<Self>,
        token: String,
        resume: Option<Resume>,
    ) {
        if self.operator.is_some() {
            return self.send_error(ctx, &AppError::bad_request("already authenticated"), None);
        }
        let rt = self.rt.clone();
        let digest = auth::token_digest(&token);
        let fut = async move {
            let now = rt.core.clock.now_ms();
            let lookup = digest.clone();
            rt.core
                .store
                .call(move |s| s.operator_by_token(&lookup, now))
                .await?
                .map(|(op, exp)| (op, exp, digest))
                .ok_or_else(|| AppError::unauthorized("unknown or expired token"))
        };
        ctx.wait(fut.into_actor(self).map(move |res, act, ctx| match res {
            Ok((op, expires_at, digest)) => {
                // Join first, so nothing published after the replay is cut is missed.
                act.operator = Some((op.clone(), expires_at, digest));
                act.rt
                    .core
                    .hub
                    .join_account(act.id, op.id, ctx.address().recipient());
                let joined = act.follow_permission(ctx, &op, resume.as_ref());
                let resumed = joined.as_ref().is_some_and(|j| j.resumed);
                ctx.text(
                    ServerFrame::Ready {
                        v: crate::protocol::PROTOCOL_VERSION,
                        operator: &op,
                        epoch: act.rt.core.hub.epoch(),
                        resumed,
                    }
                    .encode(),
                );
                for frame in joined.map(|j| j.replay).unwrap_or_default() {
                    ctx.text(frame);
                }
            }
            Err(e) => act.send_error(ctx, &e, None),
        }));
    }
}

fn status(
    staff: super::conversation::Staff,
    status: ConversationStatus,
    client_id: String,
    sink: Recipient<Outbound>,
    session: u64,
) -> SetStatus {
    SetStatus {
        by: Requester::Operator(staff),
        status,
        client_id: Some(client_id),
        reason: None,
        inactive_before: None,
        reply: Reply::Session(sink),
        from_session: Some(session),
    }
}

impl Actor for OperatorSession {
    type Context = ws::WebsocketContext<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.rt
            .core
            .metrics
            .operator_connections
            .fetch_add(1, Ordering::Relaxed);
        self.rt.core.hub.join(self.id, ctx.address().recipient());
        ctx.run_interval(HEARTBEAT_INTERVAL, |act, ctx| {
            if act.last_heard.elapsed() > CLIENT_TIMEOUT {
                ctx.stop();
            } else {
                ctx.ping(b"");
                act.recheck(ctx);
            }
        });
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        self.rt
            .core
            .metrics
            .operator_connections
            .fetch_sub(1, Ordering::Relaxed);
        self.leave_feed();
        self.rt.core.hub.leave(self.id);
    }
}

impl Handler<Outbound> for OperatorSession {
    type Result = ();

    fn handle(&mut self, msg: Outbound, ctx: &mut Self::Context) {
        if !self.backlog.push(msg.frame.len()) {
            return super::visitor::shed_slow_client(ctx);
        }
        ctx.text(msg.frame);
    }
}

impl Handler<AccountChanged> for OperatorSession {
    type Result = ();

    fn handle(&mut self, msg: AccountChanged, ctx: &mut Self::Context) {
        let Some(current) = self.operator.as_mut() else {
            return;
        };
        if current.0.id != msg.operator.id {
            return;
        }
        current.0 = msg.operator.clone();
        self.account_version += 1;
        self.follow_permission(ctx, &msg.operator, None);
    }
}

impl Handler<Shutdown> for OperatorSession {
    type Result = ();

    fn handle(&mut self, _msg: Shutdown, ctx: &mut Self::Context) {
        close_with(ctx, ws::CloseCode::Away, "server shutting down");
    }
}

impl StreamHandler<Result<ws::Message, ws::ProtocolError>> for OperatorSession {
    fn handle(&mut self, item: Result<ws::Message, ws::ProtocolError>, ctx: &mut Self::Context) {
        handle_input(self, item, ctx);
    }
}

impl WsSession for OperatorSession {
    fn heard(&mut self, payload_len: usize) {
        self.last_heard = Instant::now();
        self.undecoded.handled(payload_len);
    }

    fn on_text(&mut self, text: &str, ctx: &mut ws::WebsocketContext<Self>) {
        OperatorSession::on_text(self, text, ctx);
    }

    fn send_error(
        &self,
        ctx: &mut ws::WebsocketContext<Self>,
        err: &AppError,
        client_id: Option<&str>,
    ) {
        OperatorSession::send_error(self, ctx, err, client_id);
    }
}
