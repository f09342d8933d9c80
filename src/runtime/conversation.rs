//! The Conversation actor: the single writer of one conversation. It assigns each message
//! its sequence number, hands it to the persister, and once the batch is durable acks the
//! sender and fans the message out, so every participant sees messages in sequence order,
//! each once. It tracks read marks, recognises retried client ids, and stops when idle;
//! the router recreates it from the database on demand.

use super::persister::{PersistReply, PersistRequest, Persisted};
use super::router::{ConversationStopped, Router};
use super::{Core, Outbound};
use crate::error::{AppError, ErrorCode};
use crate::model::{
    Author, AuthorKind, ConversationStatus, ConversationView, MessageKind, MessageView,
};
use crate::protocol::{error_frame, ServerFrame};
use crate::store::conversations::ConversationRow;
use crate::store::messages::{NewMessage, StoredClientId, Write};
use actix::prelude::*;
use bytestring::ByteString;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// Committed messages kept in memory for replay to a reconnecting client.
const TAIL_LEN: usize = 256;
/// Client ids remembered per conversation to recognise retries.
pub const CLIENT_IDS_REMEMBERED: usize = 4096;
/// How often an idle conversation checks whether it may stop.
const IDLE_CHECK: Duration = Duration::from_secs(10);
/// Messages read from the database per query when replaying a long gap.
const REPLAY_PAGE: i64 = 1000;

/// Who sent a client id: kind, author id, key.
type ClientKey = (AuthorKind, i64, String);

/// Where the outcome of a write goes: a websocket session (as an `ack` or `error` frame)
/// or an HTTP handler waiting on a channel.
pub enum Reply {
    /// A session's sink.
    Session(Recipient<Outbound>),
    /// An HTTP handler.
    Http(oneshot::Sender<Result<Posted, AppError>>),
}

/// A write's success.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Posted {
    /// Conversation.
    pub conversation_id: i64,
    /// Sequence number of the message or event.
    pub seq: i64,
    /// The client id had been seen before; nothing new was stored.
    pub duplicate: bool,
}

impl Reply {
    fn ok(self, posted: Posted, client_id: Option<&str>) {
        match self {
            Reply::Session(sink) => {
                if let Some(client_id) = client_id {
                    sink.do_send(Outbound::plain(
                        ServerFrame::Ack {
                            client_id,
                            conversation_id: posted.conversation_id,
                            seq: posted.seq,
                            duplicate: posted.duplicate,
                        }
                        .encode(),
                    ));
                }
            }
            Reply::Http(tx) => {
                let _ = tx.send(Ok(posted));
            }
        }
    }

    fn err(self, err: AppError, client_id: Option<&str>) {
        match self {
            Reply::Session(sink) => sink.do_send(Outbound::plain(error_frame(&err, client_id))),
            Reply::Http(tx) => {
                let _ = tx.send(Err(err));
            }
        }
    }
}

/// What the router loads from the database to start a conversation actor.
pub struct Loaded {
    /// The stored row.
    pub row: ConversationRow,
    /// Highest stored sequence number.
    pub max_seq: i64,
    /// Recent client ids, newest first.
    pub client_ids: Vec<StoredClientId>,
    /// The last committed messages, oldest first.
    pub tail: Vec<MessageView>,
    /// Just created: record the `opened` event and announce it to operators.
    pub fresh: bool,
}

struct Item {
    view: MessageView,
    key: Option<ClientKey>,
    replies: Vec<Reply>,
    from_session: Option<u64>,
}

struct Pending {
    ticket: u64,
    items: Vec<Item>,
    /// Status this request sets, and the one to go back to if it fails.
    status: Option<(ConversationStatus, ConversationStatus)>,
}

/// The actor.
pub struct Conversation {
    id: i64,
    visitor_id: i64,
    channel: String,
    created_at: i64,
    updated_at: i64,
    /// Status including writes not yet committed (what new requests are judged against).
    status: ConversationStatus,
    next_seq: i64,
    committed_seq: i64,
    visitor_read_seq: i64,
    operator_read_seq: i64,
    visitors: HashMap<u64, Recipient<Outbound>>,
    pending: VecDeque<Pending>,
    next_ticket: u64,
    seen: HashMap<ClientKey, i64>,
    seen_order: VecDeque<ClientKey>,
    tail: VecDeque<(i64, ByteString)>,
    core: Arc<Core>,
    router: Addr<Router>,
    last_activity: Instant,
    fresh: bool,
}

impl Conversation {
    /// Builds the actor from what the router loaded.
    pub fn new(loaded: Loaded, core: Arc<Core>, router: Addr<Router>) -> Self {
        let row = loaded.row;
        let mut conv = Conversation {
            id: row.id,
            visitor_id: row.visitor_id,
            channel: row.channel,
            created_at: row.created_at,
            updated_at: row.updated_at,
            status: ConversationStatus::parse(&row.status),
            next_seq: loaded.max_seq + 1,
            committed_seq: loaded.max_seq,
            visitor_read_seq: row.visitor_read_seq,
            operator_read_seq: row.operator_read_seq,
            visitors: HashMap::new(),
            pending: VecDeque::new(),
            next_ticket: 1,
            seen: HashMap::new(),
            seen_order: VecDeque::new(),
            tail: VecDeque::new(),
            core,
            router,
            last_activity: Instant::now(),
            fresh: loaded.fresh,
        };
        for c in loaded.client_ids.into_iter().rev() {
            if let Some(client_id) = c.client_id {
                conv.remember(
                    (AuthorKind::parse(&c.author_kind), c.author_id, client_id),
                    c.seq,
                );
            }
        }
        for m in loaded.tail {
            let frame = ServerFrame::Message { message: &m }.encode();
            conv.push_tail(m.seq, frame);
        }
        conv
    }

    fn view(&self) -> ConversationView {
        ConversationView {
            id: self.id,
            number: self.id,
            status: self.status,
            channel: self.channel.clone(),
            last_seq: self.committed_seq,
            visitor_read_seq: self.visitor_read_seq,
            operator_read_seq: self.operator_read_seq,
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }

    fn remember(&mut self, key: ClientKey, seq: i64) {
        if self.seen.insert(key.clone(), seq).is_none() {
            self.seen_order.push_back(key);
            if self.seen_order.len() > CLIENT_IDS_REMEMBERED {
                if let Some(old) = self.seen_order.pop_front() {
                    self.seen.remove(&old);
                }
            }
        }
    }

    fn push_tail(&mut self, seq: i64, frame: ByteString) {
        self.tail.push_back((seq, frame));
        if self.tail.len() > TAIL_LEN {
            self.tail.pop_front();
        }
    }

    fn now(&self) -> i64 {
        self.core.clock.now_ms()
    }

    fn new_item(
        &mut self,
        kind: MessageKind,
        author: Author,
        author_id: i64,
        client_id: Option<String>,
        body: String,
    ) -> (Item, Write) {
        let seq = self.next_seq;
        self.next_seq += 1;
        let created_at = self.now();
        let key = client_id.clone().map(|c| (author.kind, author_id, c));
        let write = Write::Message(NewMessage {
            conversation_id: self.id,
            seq,
            kind: kind.as_str(),
            author_kind: author.kind.as_str(),
            author_id,
            client_id: client_id.clone(),
            body: body.clone(),
            created_at,
        });
        let view = MessageView {
            conversation_id: self.id,
            seq,
            kind,
            author,
            body,
            client_id,
            created_at,
        };
        (
            Item {
                view,
                key,
                replies: Vec::new(),
                from_session: None,
            },
            write,
        )
    }

    /// Hands writes to the persister; on refusal, undoes the sequence numbers and status.
    fn submit(
        &mut self,
        ctx: &mut Context<Self>,
        items: Vec<Item>,
        writes: Vec<Write>,
        status: Option<(ConversationStatus, ConversationStatus)>,
    ) {
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        let req = PersistRequest {
            writes,
            ticket,
            reply: PersistReply::Actor(ctx.address().recipient()),
        };
        match self.core.persister.submit(req) {
            Ok(()) => {
                if let Some((new, _)) = status {
                    self.status = new;
                }
                self.pending.push_back(Pending {
                    ticket,
                    items,
                    status,
                });
            }
            Err(err) => {
                // Nothing was queued, and nothing after these numbers was assigned yet.
                self.next_seq -= items.len() as i64;
                for item in items {
                    let client_id = item.view.client_id.as_deref();
                    for reply in item.replies {
                        reply.err(err.clone(), client_id);
                    }
                }
            }
        }
    }

    fn fan_out(&self, out: &Outbound, except: Option<u64>) {
        for (id, sink) in &self.visitors {
            if Some(*id) != except {
                sink.do_send(out.clone());
            }
        }
        self.core.hub.publish_operators(out, except);
    }

    fn announce(&self) {
        let view = self.view();
        let out = Outbound::plain(
            ServerFrame::Conversation {
                conversation: &view,
            }
            .encode(),
        );
        self.fan_out(&out, None);
    }

    /// A retried client id turned out to be stored already (too old to be remembered):
    /// answer with the sequence number it was stored under.
    fn answer_stored_duplicate(
        &mut self,
        ctx: &mut Context<Self>,
        key: ClientKey,
        replies: Vec<Reply>,
        err: AppError,
    ) {
        let store = self.core.store.clone();
        let id = self.id;
        let (kind, author_id, client_id) = key.clone();
        let fut = async move {
            store
                .call(move |s| s.client_id_seq(id, kind, author_id, &client_id))
                .await
        };
        ctx.spawn(fut.into_actor(self).map(move |found, act, _| {
            let client_id = key.2.clone();
            match found {
                Ok(Some(seq)) => {
                    act.remember(key, seq);
                    for reply in replies {
                        let posted = Posted {
                            conversation_id: act.id,
                            seq,
                            duplicate: true,
                        };
                        reply.ok(posted, Some(&client_id));
                    }
                }
                Ok(None) | Err(_) => {
                    for reply in replies {
                        reply.err(err.clone(), Some(&client_id));
                    }
                }
            }
        }));
    }

    /// The pending item carrying a client id, if one is on its way to the database.
    fn pending_item(&mut self, key: &ClientKey) -> Option<&mut Item> {
        self.pending
            .iter_mut()
            .flat_map(|p| p.items.iter_mut())
            .find(|i| i.key.as_ref() == Some(key))
    }

    /// Records an event (opened, closed, reopened) as an entry of the history.
    fn event_item(
        &mut self,
        name: &str,
        author: Author,
        author_id: i64,
        client_id: Option<String>,
    ) -> (Item, Write) {
        self.new_item(
            MessageKind::Event,
            author,
            author_id,
            client_id,
            name.to_string(),
        )
    }
}

impl Actor for Conversation {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Sessions use `try_send`; a roomy mailbox keeps that from failing under bursts,
        // while the persister's bounded queue is what pushes back on senders.
        ctx.set_mailbox_capacity(1 << 20);
        self.core
            .metrics
            .conversations_active
            .fetch_add(1, Ordering::Relaxed);
        if self.fresh {
            self.fresh = false;
            self.announce();
            let (item, write) = self.event_item("opened", Author::visitor(), self.visitor_id, None);
            self.submit(ctx, vec![item], vec![write], None);
        }
        let idle = Duration::from_secs(self.core.config.conversation_idle_secs);
        ctx.run_interval(
            IDLE_CHECK.min(idle.max(Duration::from_secs(1))),
            move |act, ctx| {
                if act.visitors.is_empty()
                    && act.pending.is_empty()
                    && act.last_activity.elapsed() >= idle
                {
                    ctx.stop();
                }
            },
        );
    }

    fn stopped(&mut self, ctx: &mut Self::Context) {
        self.core
            .metrics
            .conversations_active
            .fetch_sub(1, Ordering::Relaxed);
        self.router.do_send(ConversationStopped {
            id: self.id,
            addr: ctx.address(),
        });
    }
}

/// A visitor session joins the conversation and asks for what it missed.
#[derive(Message)]
#[rtype(result = "Result<Attached, AppError>")]
pub struct Attach {
    /// The session.
    pub session_id: u64,
    /// The visitor the session authenticated as; must own the conversation.
    pub visitor_id: i64,
    /// The last sequence number the client holds.
    pub after_seq: i64,
    /// Where frames go.
    pub sink: Recipient<Outbound>,
}

/// The answer to [`Attach`]: the header and the frames to replay, in order. Live frames
/// the session receives afterwards all have higher sequence numbers.
pub struct Attached {
    /// The conversation.
    pub view: ConversationView,
    /// `message` frames after the client's last sequence number.
    pub replay: Vec<(i64, ByteString)>,
}

impl Handler<Attach> for Conversation {
    type Result = ResponseFuture<Result<Attached, AppError>>;

    fn handle(&mut self, msg: Attach, _ctx: &mut Self::Context) -> Self::Result {
        if msg.visitor_id != self.visitor_id {
            return Box::pin(async {
                Err(AppError::forbidden(
                    "this conversation belongs to another visitor",
                ))
            });
        }
        self.last_activity = Instant::now();
        self.visitors.insert(msg.session_id, msg.sink);
        let view = self.view();
        let after = msg.after_seq.max(0);
        let upto = self.committed_seq;
        let tail_start = self.tail.front().map(|(s, _)| *s).unwrap_or(upto + 1);
        if after + 1 >= tail_start || after >= upto {
            let replay = self
                .tail
                .iter()
                .filter(|(s, _)| *s > after)
                .cloned()
                .collect();
            return Box::pin(async move { Ok(Attached { view, replay }) });
        }
        // The client is further behind than the in-memory tail: read the gap from the
        // database, up to what was committed when it attached; later messages reach the
        // session live.
        let store = self.core.store.clone();
        let id = self.id;
        Box::pin(async move {
            let mut replay = Vec::new();
            let mut from = after;
            while from < upto {
                let rows = store
                    .call(move |s| s.messages_between(id, from, upto, REPLAY_PAGE))
                    .await?;
                let Some(last) = rows.last() else { break };
                from = last.seq;
                replay.extend(
                    rows.iter()
                        .map(|m| (m.seq, ServerFrame::Message { message: m }.encode())),
                );
            }
            Ok(Attached { view, replay })
        })
    }
}

/// A session leaves.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Detach {
    /// The session.
    pub session_id: u64,
}

impl Handler<Detach> for Conversation {
    type Result = ();

    fn handle(&mut self, msg: Detach, _ctx: &mut Self::Context) {
        self.visitors.remove(&msg.session_id);
        self.last_activity = Instant::now();
    }
}

/// A text message from the visitor or an operator.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Post {
    /// Who writes.
    pub author: Author,
    /// Visitor id or operator id.
    pub author_id: i64,
    /// Idempotency key.
    pub client_id: String,
    /// Text, already checked against the limits.
    pub body: String,
    /// Where the ack or error goes.
    pub reply: Reply,
    /// The sending session, which gets the ack instead of the message frame.
    pub from_session: Option<u64>,
}

impl Handler<Post> for Conversation {
    type Result = ();

    fn handle(&mut self, msg: Post, ctx: &mut Self::Context) {
        self.last_activity = Instant::now();
        if msg.author.kind == AuthorKind::Visitor && msg.author_id != self.visitor_id {
            msg.reply.err(
                AppError::forbidden("this conversation belongs to another visitor"),
                Some(&msg.client_id),
            );
            return;
        }
        let key: ClientKey = (msg.author.kind, msg.author_id, msg.client_id.clone());
        if let Some(seq) = self.seen.get(&key) {
            let posted = Posted {
                conversation_id: self.id,
                seq: *seq,
                duplicate: true,
            };
            msg.reply.ok(posted, Some(&msg.client_id));
            return;
        }
        if let Some(item) = self.pending_item(&key) {
            // The same message is already on its way to the database: answer both
            // senders when it lands.
            item.replies.push(msg.reply);
            return;
        }
        let mut items = Vec::with_capacity(2);
        let mut writes = Vec::with_capacity(3);
        let mut status = None;
        if self.status == ConversationStatus::Closed {
            if msg.author.kind != AuthorKind::Visitor {
                msg.reply.err(
                    AppError::new(
                        ErrorCode::ConversationClosed,
                        "the conversation is closed; reopen it to write",
                    ),
                    Some(&msg.client_id),
                );
                return;
            }
            // A visitor who writes again after closing reopens the conversation.
            let (item, write) =
                self.event_item("reopened", Author::visitor(), self.visitor_id, None);
            items.push(item);
            writes.push(write);
            writes.push(Write::Status {
                conversation_id: self.id,
                status: ConversationStatus::Open,
                at: self.now(),
            });
            status = Some((ConversationStatus::Open, ConversationStatus::Closed));
        }
        self.core
            .metrics
            .messages_received
            .fetch_add(1, Ordering::Relaxed);
        let (mut item, write) = self.new_item(
            MessageKind::Text,
            msg.author,
            msg.author_id,
            Some(msg.client_id),
            msg.body,
        );
        item.replies.push(msg.reply);
        item.from_session = msg.from_session;
        items.push(item);
        writes.push(write);
        self.submit(ctx, items, writes, status);
    }
}

/// An operator closes or reopens the conversation.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetStatus {
    /// The operator.
    pub author: Author,
    /// The operator's id.
    pub author_id: i64,
    /// Open or closed.
    pub status: ConversationStatus,
    /// Optional idempotency key for the event.
    pub client_id: Option<String>,
    /// Where the outcome goes.
    pub reply: Reply,
    /// The requesting session.
    pub from_session: Option<u64>,
}

impl Handler<SetStatus> for Conversation {
    type Result = ();

    fn handle(&mut self, msg: SetStatus, ctx: &mut Self::Context) {
        self.last_activity = Instant::now();
        if let Some(client_id) = &msg.client_id {
            let key = (msg.author.kind, msg.author_id, client_id.clone());
            if let Some(seq) = self.seen.get(&key) {
                let posted = Posted {
                    conversation_id: self.id,
                    seq: *seq,
                    duplicate: true,
                };
                msg.reply.ok(posted, Some(client_id));
                return;
            }
            if let Some(item) = self.pending_item(&key) {
                // The same request is on its way: answer it when it lands (or fails).
                item.replies.push(msg.reply);
                return;
            }
        }
        if self.status == msg.status {
            // Already there: nothing to record.
            let posted = Posted {
                conversation_id: self.id,
                seq: self.committed_seq,
                duplicate: true,
            };
            msg.reply.ok(posted, msg.client_id.as_deref());
            return;
        }
        let name = match msg.status {
            ConversationStatus::Closed => "closed",
            ConversationStatus::Open => "reopened",
        };
        let (mut item, write) = self.event_item(name, msg.author, msg.author_id, msg.client_id);
        item.replies.push(msg.reply);
        item.from_session = msg.from_session;
        let writes = vec![
            write,
            Write::Status {
                conversation_id: self.id,
                status: msg.status,
                at: self.now(),
            },
        ];
        let previous = self.status;
        self.submit(ctx, vec![item], writes, Some((msg.status, previous)));
    }
}

impl Handler<Persisted> for Conversation {
    type Result = ();

    fn handle(&mut self, msg: Persisted, ctx: &mut Self::Context) {
        // The persister answers in submission order, so the request is at the front.
        let Some(pos) = self.pending.iter().position(|p| p.ticket == msg.ticket) else {
            return;
        };
        let Some(done) = self.pending.remove(pos) else {
            return;
        };
        match msg.result {
            Ok(()) => {
                for item in done.items {
                    let seq = item.view.seq;
                    self.committed_seq = self.committed_seq.max(seq);
                    self.updated_at = item.view.created_at;
                    if let Some(key) = item.key.clone() {
                        self.remember(key, seq);
                    }
                    let frame = ServerFrame::Message {
                        message: &item.view,
                    }
                    .encode();
                    self.push_tail(seq, frame.clone());
                    let posted = Posted {
                        conversation_id: self.id,
                        seq,
                        duplicate: false,
                    };
                    let client_id = item.view.client_id.as_deref();
                    let mut replies = item.replies.into_iter();
                    if let Some(first) = replies.next() {
                        first.ok(posted, client_id);
                    }
                    for retry in replies {
                        retry.ok(
                            Posted {
                                duplicate: true,
                                ..posted
                            },
                            client_id,
                        );
                    }
                    self.fan_out(
                        &Outbound {
                            seq: Some(seq),
                            frame,
                        },
                        item.from_session,
                    );
                }
                if done.status.is_some() {
                    self.announce();
                }
            }
            Err(err) => {
                if err.code == ErrorCode::Conflict {
                    tracing::debug!(conversation_id = self.id, "retry of a stored message");
                } else {
                    tracing::warn!(
                        conversation_id = self.id,
                        code = err.code.as_str(),
                        "write failed"
                    );
                }
                if let Some((_, previous)) = done.status {
                    self.status = previous;
                }
                for item in done.items {
                    if err.code == ErrorCode::Conflict {
                        if let Some(key) = item.key.clone() {
                            self.answer_stored_duplicate(ctx, key, item.replies, err.clone());
                            continue;
                        }
                    }
                    let client_id = item.view.client_id.as_deref();
                    for reply in item.replies {
                        reply.err(err.clone(), client_id);
                    }
                }
            }
        }
    }
}

/// Someone started or stopped typing.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Typing {
    /// Visitor or operator.
    pub from: AuthorKind,
    /// Typing now.
    pub on: bool,
    /// The session typing, which gets no echo.
    pub from_session: u64,
}

impl Handler<Typing> for Conversation {
    type Result = ();

    fn handle(&mut self, msg: Typing, _ctx: &mut Self::Context) {
        let out = Outbound::plain(
            ServerFrame::Typing {
                conversation_id: self.id,
                from: msg.from.as_str(),
                on: msg.on,
            }
            .encode(),
        );
        self.fan_out(&out, Some(msg.from_session));
    }
}

/// Someone has seen the conversation up to a sequence number.
#[derive(Message)]
#[rtype(result = "()")]
pub struct MarkRead {
    /// Visitor or operator side.
    pub by: AuthorKind,
    /// Seen up to here.
    pub seq: i64,
}

impl Handler<MarkRead> for Conversation {
    type Result = ();

    fn handle(&mut self, msg: MarkRead, _ctx: &mut Self::Context) {
        let seq = msg.seq.min(self.committed_seq);
        let mark = match msg.by {
            AuthorKind::Visitor => &mut self.visitor_read_seq,
            _ => &mut self.operator_read_seq,
        };
        if seq <= *mark {
            return;
        }
        *mark = seq;
        let req = PersistRequest {
            writes: vec![Write::Read {
                conversation_id: self.id,
                by: msg.by,
                seq,
            }],
            ticket: 0,
            reply: PersistReply::None,
        };
        if let Err(err) = self.core.persister.submit(req) {
            tracing::debug!(
                conversation_id = self.id,
                code = err.code.as_str(),
                "read mark not queued"
            );
        }
        let out = Outbound::plain(
            ServerFrame::Read {
                conversation_id: self.id,
                by: msg.by.as_str(),
                seq,
            }
            .encode(),
        );
        self.fan_out(&out, None);
    }
}

/// Test-only: makes the actor fail the way a bug would, to exercise supervision.
#[cfg(test)]
#[derive(Message)]
#[rtype(result = "()")]
pub struct InjectPanic;

#[cfg(test)]
impl Handler<InjectPanic> for Conversation {
    type Result = ();

    fn handle(&mut self, _msg: InjectPanic, _ctx: &mut Self::Context) {
        panic!("injected failure for a supervision test");
    }
}
