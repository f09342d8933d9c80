//! The VisitorSession actor: one per widget websocket. It authenticates the visitor (a new
//! random token, or one issued before), attaches to the visitor's conversation with the
//! last sequence number the widget holds, and forwards typed frames. It holds no business
//! state beyond what it needs to deliver each message once.

use super::conversation::{
    Attach, Attached, Conversation, Detach, FormSubmitted, MarkRead, Post, Reply, Requester, Typing,
};
use super::persister::{PersistReply, PersistRequest};
use super::router::Open;
use super::session::{
    check_size, close_with, handle_input, Backlog, Drained, RateLimit, Undecoded, WsSession,
    CLIENT_TIMEOUT, HEARTBEAT_INTERVAL,
};
use super::{Outbound, Runtime, Shutdown};
use crate::auth;
use crate::crm::contacts::{Claim, IdKind};
use crate::crm::{identity, FormFields};
use crate::error::{AppError, ErrorCode};
use crate::model::{MessageKind, Named};
use crate::protocol::{
    error_frame, parse_frame, validate_message_with, ServerFrame, SignedIdentity, VisitorFrame,
    VISITOR_TYPES,
};
use crate::store::messages::Write;
use crate::store::teams::{FieldRule, Prechat};
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
                identity,
                continue_code,
            } => self.hello(
                ctx,
                v,
                token,
                conversation_id,
                last_seq.unwrap_or(0),
                channel,
                identity,
                continue_code,
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
                attachment,
            } => self.message(ctx, client_id, body, reply_to, attachment),
            VisitorFrame::Form {
                client_id,
                form,
                fields,
            } => self.form(ctx, client_id, form, fields),
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

    #[expect(clippy::too_many_arguments, reason = "the fields of the `hello` frame")]
    fn hello(
        &mut self,
        ctx: &mut ws::WebsocketContext<Self>,
        v: Option<u32>,
        token: Option<String>,
        conversation_id: Option<i64>,
        last_seq: i64,
        channel: Option<String>,
        identity: Option<SignedIdentity>,
        continue_code: Option<String>,
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
        if identity
            .as_ref()
            .is_some_and(|i| i.user_id.is_empty() || i.user_id.len() > identity::MAX_USER_ID)
        {
            return self.send_error(
                ctx,
                &AppError::bad_request("identity.user_id must be 1 to 128 bytes"),
                None,
            );
        }
        let rt = self.rt.clone();
        let session_id = self.id;
        let sink = ctx.address().recipient::<Outbound>();
        let channel_name = self.channel.clone();
        let fut = async move {
            let channel = rt.channel(&channel_name).await?;
            // A site's signature vouches for its user (ID8); a forged one is refused even
            // where signing is optional, and a channel may require one.
            match &identity {
                Some(i)
                    if !identity::verify_user_id(
                        &channel.identity_secret,
                        &i.user_id,
                        &i.signature,
                    ) =>
                {
                    return Err(AppError::unauthorized(
                        "the identity signature does not match this channel's secret",
                    ));
                }
                None if channel.settings.require_identity => {
                    return Err(AppError::unauthorized(
                        "this channel requires a signed identity (identity.user_id and identity.signature)",
                    ));
                }
                _ => {}
            }
            let now = rt.core.clock.now_ms();
            // A "continue the conversation" link from an e-mail (CF8): this visitor, this
            // conversation, on whatever device opened the link.
            let continued = match &continue_code {
                Some(code) => {
                    let secret = &rt.core.mail.composer.secret;
                    match crate::mail::links::check_continue_code(secret, code, now) {
                        Ok(pair) => Some(pair),
                        Err(crate::mail::links::LinkError::Expired) => {
                            return Err(AppError::unauthorized(
                                "this link has expired; write to us again and we will answer here",
                            ))
                        }
                        Err(crate::mail::links::LinkError::Invalid) => {
                            return Err(AppError::unauthorized("this link is not valid"))
                        }
                    }
                }
                None => None,
            };
            if let Some((conversation, visitor)) = continued {
                let token = auth::new_token();
                let digest = auth::token_digest(&token);
                rt.core
                    .store
                    .call(move |s| s.add_visitor_token(visitor, &digest, now))
                    .await?;
                let addr = rt.conversation(conversation).await?;
                let attached = attach(&addr, session_id, visitor, last_seq, sink).await?;
                return Ok((visitor, Some(token), Some((conversation, addr, attached))));
            }
            let mut known = match token {
                Some(token) => {
                    let digest = auth::token_digest(&token);
                    let id = rt
                        .core
                        .store
                        .call(move |s| s.visitor_by_token(&digest))
                        .await?
                        .ok_or_else(|| AppError::unauthorized("unknown visitor token"))?;
                    Some(id)
                }
                None => None,
            };
            // The site user as the CRM keeps them: scoped by the channel that vouches.
            let site_user = identity
                .as_ref()
                .map(|i| identity::channel_user_id(channel.id, &i.user_id));
            if let (Some(id), Some(user)) = (known, site_user.clone()) {
                // The browser's last visitor was another logged-in user: start afresh
                // rather than mix two people's conversations.
                let theirs = rt
                    .core
                    .store
                    .call(move |s| s.visitor_external_ids(id))
                    .await?;
                if !theirs.is_empty() && !theirs.contains(&user) {
                    known = None;
                }
            }
            let (visitor_id, issued) = match known {
                Some(id) => (id, None),
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
            if let (Some(i), Some(site_user)) = (identity, site_user) {
                let mut claims = vec![Claim {
                    kind: IdKind::ExternalId,
                    value: site_user,
                    verified: true,
                    source: "widget_identity",
                }];
                // What the site says besides the id is not signed: kept as typed.
                if let Some(email) = i.email.and_then(|e| identity::normalise_email(&e).ok()) {
                    claims.push(Claim {
                        kind: IdKind::Email,
                        value: email,
                        verified: false,
                        source: "widget_identity",
                    });
                }
                crate::crm::identify(&rt, visitor_id, i.name, claims).await?;
            }
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
                    let attached = attach(&addr, session_id, visitor_id, last_seq, sink).await?;
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

    /// The live conversation, when the session has one whose actor is alive.
    fn live(&self) -> Option<Addr<Conversation>> {
        self.conversation
            .as_ref()
            .map(|(_, a)| a.clone())
            .filter(|a| a.connected())
    }

    /// Runs `then` with the session's conversation, opening (or restoring) it first when
    /// needed: the session waits meanwhile, so later frames keep their order. `prepare`
    /// runs first (checks that need the database); its error is the frame's error.
    fn with_conversation<P, T>(
        &mut self,
        ctx: &mut ws::WebsocketContext<Self>,
        client_id: String,
        prepare: P,
        then: impl FnOnce(&mut Self, &mut ws::WebsocketContext<Self>, Addr<Conversation>, i64, T)
            + 'static,
    ) where
        P: std::future::Future<Output = Result<T, AppError>> + 'static,
        T: 'static,
    {
        let Some(visitor_id) = self.visitor_id else {
            return;
        };
        let rt = self.rt.clone();
        let existing = self.conversation.as_ref().map(|(id, _)| *id);
        let live = self.live();
        let channel = self.channel.clone();
        let session_id = self.id;
        let sink = ctx.address().recipient::<Outbound>();
        let after_seq = self.delivered_seq;
        let fut = async move {
            let prepared = prepare.await?;
            if let (Some(addr), Some(id)) = (live, existing) {
                return Ok((addr, id, None, prepared));
            }
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
            let attached = attach(&addr, session_id, visitor_id, after_seq, sink).await?;
            let id = attached.view.id;
            Ok::<_, AppError>((addr, id, Some(attached), prepared))
        };
        ctx.wait(fut.into_actor(self).map(move |res, act, ctx| match res {
            Ok((addr, id, attached, prepared)) => {
                if let Some(attached) = attached {
                    ctx.text(
                        ServerFrame::Conversation {
                            conversation: &attached.view,
                        }
                        .encode(),
                    );
                    act.attached(ctx, id, attached);
                    act.conversation = Some((id, addr.clone()));
                }
                then(act, ctx, addr, id, prepared);
            }
            Err(e) => act.send_error(ctx, &e, Some(&client_id)),
        }));
    }

    fn message(
        &mut self,
        ctx: &mut ws::WebsocketContext<Self>,
        client_id: String,
        body: String,
        reply_to: Option<i64>,
        attachment: Option<String>,
    ) {
        let max_chars = self.rt.core.config.max_message_chars;
        if let Err(e) = validate_message_with(&client_id, &body, max_chars, attachment.is_some()) {
            return self.send_error(ctx, &e, Some(&client_id));
        }
        let Some(visitor_id) = self.visitor_id else {
            return;
        };
        let mut post = Post {
            by: Requester::Visitor(visitor_id),
            kind: MessageKind::Text,
            client_id: client_id.clone(),
            body,
            reply_to,
            mentions: Vec::new(),
            attachment: None,
            reply: Reply::Session(ctx.address().recipient()),
            from_session: Some(self.id),
        };
        if attachment.is_none() {
            // The common case goes straight to the live conversation.
            if let Some(addr) = self.live() {
                if let Err(e) = self.rt.deliver(&addr, post) {
                    self.send_error(ctx, &e, Some(&client_id));
                }
                return;
            }
        }
        let rt = self.rt.clone();
        let conversation = self.conversation.as_ref().map(|(id, _)| *id);
        let channel = self.channel.clone();
        let prepare = async move {
            if conversation.is_none() {
                // This message opens the conversation.
                prechat_gate(&rt, &channel, visitor_id, &FormFields::default()).await?;
            }
            match attachment {
                Some(file) => Ok(Some(
                    crate::files::reference(&rt, &file, "visitor", visitor_id, conversation)
                        .await?,
                )),
                None => Ok(None),
            }
        };
        let cid = client_id.clone();
        self.with_conversation(ctx, client_id, prepare, move |act, ctx, addr, _, file| {
            post.attachment = file;
            if let Err(e) = act.rt.deliver(&addr, post) {
                act.send_error(ctx, &e, Some(&cid));
            }
        });
    }

    /// A form the widget showed (CF2 name, ID7 pre-chat, CF7 offline): cleaned and checked
    /// against the channel's rules, identified in the CRM (a lead, a link, a suggestion:
    /// XB11), and recorded in the conversation for the operator to see (CF3).
    fn form(
        &mut self,
        ctx: &mut ws::WebsocketContext<Self>,
        client_id: String,
        form: String,
        fields: FormFields,
    ) {
        if let Err(e) = crate::protocol::validate_client_id(&client_id) {
            return self.send_error(ctx, &e, None);
        }
        if !["name", "prechat", "offline", "email", "transcript"].contains(&form.as_str()) {
            return self.send_error(
                ctx,
                &AppError::bad_request("form must be name, prechat, offline, email or transcript"),
                Some(&client_id),
            );
        }
        let Some(visitor_id) = self.visitor_id else {
            return;
        };
        let rt = self.rt.clone();
        let channel = self.channel.clone();
        let which = form.clone();
        let opening = self.conversation.is_none();
        let check = async move {
            let channel_name = channel;
            let channel = rt.channel(&channel_name).await?;
            let cc = Some(channel.settings.default_country_code.as_str()).filter(|c| !c.is_empty());
            let fields = fields.clean(cc)?;
            required_fields(&which, &channel.settings.prechat, &fields)?;
            if opening && which != "prechat" {
                // Another form would open the conversation: the pre-chat rules hold too.
                prechat_gate(&rt, &channel_name, visitor_id, &fields).await?;
            }
            Ok::<_, AppError>(fields)
        };
        let rt = self.rt.clone();
        let cid = client_id.clone();
        let session = self.id;
        self.with_conversation(ctx, client_id, check, move |act, ctx, addr, id, fields| {
            let sink = ctx.address().recipient::<Outbound>();
            ctx.wait(
                async move {
                    let done =
                        crate::crm::identify(&rt, visitor_id, fields.name.clone(), fields.claims())
                            .await
                            .map_err(|e| (e, cid.clone()))?;
                    rt.deliver(
                        &addr,
                        FormSubmitted {
                            visitor_id,
                            client_id: cid.clone(),
                            form,
                            fields,
                            relink: !done.kept.contains(&id),
                            contact: Named {
                                id: done.contact_id,
                                name: done.name,
                            },
                            suggestions: done.suggestions.len(),
                            reply: Reply::Session(sink),
                            from_session: Some(session),
                        },
                    )
                    .map_err(|e| (e, cid))
                }
                .into_actor(act)
                .map(|res: Result<(), (AppError, String)>, act, ctx| {
                    if let Err((e, cid)) = res {
                        act.send_error(ctx, &e, Some(&cid));
                    }
                }),
            );
        });
    }
}

/// Refuses to open a conversation for a visitor who has not given what the channel's
/// pre-chat form requires (ID7), so a client that skips the widget's form cannot skip the
/// rule: neither the visitor's contact nor the form being sent (`given`) has it. Visitors
/// the site vouches for (ID8) are not asked, as in the widget.
async fn prechat_gate(
    rt: &Runtime,
    channel: &str,
    visitor_id: i64,
    given: &FormFields,
) -> Result<(), AppError> {
    let required = rt.channel(channel).await?.settings.prechat.required();
    if required.is_empty() {
        return Ok(());
    }
    let missing = rt
        .core
        .store
        .call(move |s| s.missing_fields(visitor_id, &required))
        .await?;
    let missing: Vec<&str> = missing
        .into_iter()
        .filter(|f| match *f {
            "name" => given.name.is_none(),
            "email" => given.email.is_none(),
            "phone" => given.phone.is_none(),
            _ => true,
        })
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(AppError::new(
        ErrorCode::PrechatRequired,
        format!(
            "fill in the pre-chat form first (required: {})",
            missing.join(", ")
        ),
    ))
}

/// Refuses a form without what the channel requires (ID7) or what the form is for.
fn required_fields(form: &str, rules: &Prechat, fields: &FormFields) -> Result<(), AppError> {
    let missing = |what: &str| AppError::bad_request(format!("the {what} is required"));
    match form {
        "name" if fields.name.is_none() => Err(missing("name")),
        "offline" | "email" | "transcript" if fields.email.is_none() => Err(missing("e-mail")),
        "prechat" => {
            for (rule, value, what) in [
                (rules.name, &fields.name, "name"),
                (rules.email, &fields.email, "e-mail"),
                (rules.phone, &fields.phone, "phone"),
            ] {
                if rule == FieldRule::Required && value.is_none() {
                    return Err(missing(what));
                }
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Attaches a session to a conversation actor.
async fn attach(
    addr: &Addr<Conversation>,
    session_id: u64,
    visitor_id: i64,
    after_seq: i64,
    sink: Recipient<Outbound>,
) -> Result<Attached, AppError> {
    addr.send(Attach {
        session_id,
        visitor_id,
        after_seq,
        sink,
    })
    .await
    .map_err(|_| {
        AppError::new(ErrorCode::Busy, "the conversation is restarting; retry").retry_after(100)
    })?
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
