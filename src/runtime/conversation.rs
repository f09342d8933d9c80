//! The Conversation actor: the single writer of one conversation. It assigns each message
//! its sequence number, hands it to the persister, and once the batch is durable acks the
//! sender and fans the message out, so every participant sees messages in sequence order,
//! each once. It enforces ownership (only the responsible operator writes, only they or an
//! administrator reassign: OC8, OC14, XB12), tracks read and delivery marks (OC15),
//! recognises retried client ids, and stops when idle; the router recreates it from the
//! database on demand.

use super::hub::Audience;
use super::persister::{PersistReply, PersistRequest, Persisted};
use super::router::{AssignmentChanged, ConversationStopped, Router, StatusChanged};
use super::{Core, Outbound};
use crate::error::{AppError, ErrorCode};
use crate::model::{
    Author, AuthorKind, ConversationKind, ConversationStatus, ConversationView, MessageKind,
    MessageView, Named,
};
use crate::protocol::{error_frame, ServerFrame};
use crate::store::conversations::ConversationRecord;
use crate::store::messages::{NewMessage, StoredClientId, Write};
use actix::prelude::*;
use bytestring::ByteString;
use std::collections::{HashMap, HashSet, VecDeque};
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
    /// Nobody waits (the server's own writes).
    None,
}

/// A write's success.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Posted {
    /// Conversation.
    pub conversation_id: i64,
    /// Sequence number of the message or event.
    pub seq: i64,
    /// The client id had been seen before, or the request changed nothing; nothing new
    /// was stored.
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
            Reply::None => {}
        }
    }

    fn err(self, err: AppError, client_id: Option<&str>) {
        match self {
            Reply::Session(sink) => sink.do_send(Outbound::plain(error_frame(&err, client_id))),
            Reply::Http(tx) => {
                let _ = tx.send(Err(err));
            }
            Reply::None => {}
        }
    }
}

/// The operator behind a request, as far as permissions go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Staff {
    /// Operator id.
    pub id: i64,
    /// Display name (authors and events show it).
    pub name: String,
    /// Administrators may close and reassign any conversation.
    pub admin: bool,
}

impl Staff {
    fn author(&self) -> Author {
        Author::operator(self.id, self.name.clone())
    }

    fn named(&self) -> Named {
        Named {
            id: self.id,
            name: self.name.clone(),
        }
    }
}

/// Who asks for a write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requester {
    /// The conversation's visitor.
    Visitor(i64),
    /// An operator.
    Operator(Staff),
    /// The server itself (auto-close).
    System,
}

impl Requester {
    fn author(&self) -> (Author, i64) {
        match self {
            Requester::Visitor(id) => (Author::visitor(), *id),
            Requester::Operator(s) => (s.author(), s.id),
            Requester::System => (Author::system(), 0),
        }
    }
}

/// What the router loads from the database to start a conversation actor.
pub struct Loaded {
    /// The stored conversation with its names.
    pub record: ConversationRecord,
    /// Highest stored sequence number.
    pub max_seq: i64,
    /// Recent client ids, newest first.
    pub client_ids: Vec<StoredClientId>,
    /// The last committed messages, oldest first.
    pub tail: Vec<MessageView>,
    /// Just created: record the `opened` event and announce it to operators.
    pub fresh: bool,
    /// Operators with a draft in the conversation.
    pub drafters: Vec<i64>,
    /// Its channel's settings when it was loaded.
    pub settings: crate::store::teams::ChannelSettings,
}

struct Item {
    view: MessageView,
    key: Option<ClientKey>,
    replies: Vec<Reply>,
    from_session: Option<u64>,
}

/// What a request changes besides its messages: applied when it is queued (so later
/// requests are judged against it), undone if the write fails, announced once it commits.
#[derive(Default)]
struct Change {
    /// New status and the one to go back to.
    status: Option<(ConversationStatus, ConversationStatus)>,
    /// New assignee and the one to go back to.
    assignee: Option<(Option<Named>, Option<Named>)>,
    /// New CRM contact and the one to go back to.
    contact: Option<(Option<Named>, Option<Named>)>,
    /// The request left the waiting queue.
    dequeued: bool,
    /// Tell the router about the assignment (manual changes; distribution hears back
    /// through `distributed`).
    notify_router: bool,
    /// The router's distribution waits for this outcome.
    distributed: Option<oneshot::Sender<Result<bool, AppError>>>,
}

struct Pending {
    ticket: u64,
    items: Vec<Item>,
    change: Change,
}

/// A committed frame kept for replay, and whether the visitor may see it.
struct TailEntry {
    seq: i64,
    for_visitor: bool,
    frame: ByteString,
}

/// The actor.
pub struct Conversation {
    id: i64,
    kind: ConversationKind,
    visitor_id: Option<i64>,
    channel: String,
    created_at: i64,
    updated_at: i64,
    /// Status including writes not yet committed (what new requests are judged against).
    status: ConversationStatus,
    /// The responsible operator, including writes not yet committed.
    assignee: Option<Named>,
    team_id: Option<i64>,
    contact: Option<Named>,
    /// Internal chats: who takes part.
    members: Vec<Named>,
    title: Option<String>,
    /// Waiting in the queue, and where (XB13).
    queued: bool,
    queue_position: Option<usize>,
    next_seq: i64,
    committed_seq: i64,
    visitor_read_seq: i64,
    operator_read_seq: i64,
    visitor_delivered_seq: i64,
    /// Highest sequence number of an operator's text, to tell when "delivered" news.
    last_operator_seq: i64,
    /// The delivered mark moved since it was last stored (it is stored lazily: on the
    /// visitor's leaving, on the idle check and when the actor stops).
    delivered_dirty: bool,
    visitors: HashMap<u64, Recipient<Outbound>>,
    /// Operators with a stored draft here, whose draft a sent reply clears.
    drafts: HashSet<i64>,
    /// The channel's settings as loaded (the channel cache has fresher ones).
    settings: crate::store::teams::ChannelSettings,
    /// When the pending `unread` e-mail timer fires, as far as this actor knows (replies
    /// in the window fold into it, so one write schedules the window).
    unread_due: Option<i64>,
    pending: VecDeque<Pending>,
    next_ticket: u64,
    seen: HashMap<ClientKey, i64>,
    seen_order: VecDeque<ClientKey>,
    tail: VecDeque<TailEntry>,
    core: Arc<Core>,
    router: Addr<Router>,
    last_activity: Instant,
    fresh: bool,
}

impl Conversation {
    /// Builds the actor from what the router loaded.
    pub fn new(loaded: Loaded, core: Arc<Core>, router: Addr<Router>) -> Self {
        let rec = loaded.record;
        let row = rec.row;
        let mut conv = Conversation {
            id: row.id,
            kind: ConversationKind::parse(&row.kind),
            visitor_id: row.visitor_id,
            channel: row.channel,
            created_at: row.created_at,
            updated_at: row.updated_at,
            status: ConversationStatus::parse(&row.status),
            assignee: rec.assignee,
            team_id: row.team_id,
            contact: rec.contact,
            members: rec.members,
            title: rec.title,
            queued: row.queued_at.is_some(),
            queue_position: None,
            next_seq: loaded.max_seq + 1,
            committed_seq: loaded.max_seq,
            visitor_read_seq: row.visitor_read_seq,
            operator_read_seq: row.operator_read_seq,
            visitor_delivered_seq: row.visitor_delivered_seq,
            last_operator_seq: 0,
            delivered_dirty: false,
            visitors: HashMap::new(),
            drafts: loaded.drafters.into_iter().collect(),
            settings: loaded.settings,
            unread_due: None,
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
            if m.author.kind == AuthorKind::Operator && m.kind == MessageKind::Text {
                conv.last_operator_seq = m.seq;
            }
            let frame = ServerFrame::Message { message: &m }.encode();
            conv.push_tail(m.seq, m.kind.visible_to_visitor(), frame);
        }
        conv
    }

    fn view(&self) -> ConversationView {
        ConversationView {
            id: self.id,
            number: self.id,
            kind: self.kind,
            status: self.status,
            channel: self.channel.clone(),
            last_seq: self.committed_seq,
            visitor_read_seq: self.visitor_read_seq,
            operator_read_seq: self.operator_read_seq,
            visitor_delivered_seq: self.visitor_delivered_seq,
            visitor_online: !self.visitors.is_empty(),
            assignee: self.assignee.clone(),
            team_id: self.team_id,
            contact: self.contact.clone(),
            queued: self.queued,
            title: self.title.clone(),
            members: self.members.clone(),
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }

    /// The operators who follow this conversation: everyone with the chat permission for a
    /// visitor conversation, the members for an internal chat.
    fn audience(&self) -> Audience {
        if self.kind.is_internal() {
            Audience::Only(self.members.iter().map(|m| m.id).collect())
        } else {
            Audience::All
        }
    }

    fn is_member(&self, operator_id: i64) -> bool {
        self.members.iter().any(|m| m.id == operator_id)
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

    fn push_tail(&mut self, seq: i64, for_visitor: bool, frame: ByteString) {
        self.tail.push_back(TailEntry {
            seq,
            for_visitor,
            frame,
        });
        if self.tail.len() > TAIL_LEN {
            self.tail.pop_front();
        }
    }

    fn now(&self) -> i64 {
        self.core.clock.now_ms()
    }

    /// The channel's settings: from the cache when an administrator's change reached it,
    /// else as loaded.
    fn channel_settings(&self) -> crate::store::teams::ChannelSettings {
        self.core
            .channels
            .get(&self.channel)
            .map(|c| c.settings.clone())
            .unwrap_or_else(|| self.settings.clone())
    }

    /// The write that schedules the unread e-mail (CF8), unless one is pending already.
    fn unread_timer(&mut self, due_at: i64) -> Option<Write> {
        let now = self.now();
        if self.kind.is_internal() || self.unread_due.is_some_and(|d| d > now && d <= due_at) {
            return None;
        }
        self.unread_due = Some(due_at);
        Some(Write::Timer {
            kind: "unread",
            conversation_id: self.id,
            due_at,
            now,
        })
    }

    fn new_item(
        &mut self,
        kind: MessageKind,
        author: Author,
        author_id: i64,
        client_id: Option<String>,
        body: String,
        meta: Option<serde_json::Value>,
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
            meta: meta.as_ref().map(|m| m.to_string()),
        });
        let view = MessageView {
            conversation_id: self.id,
            seq,
            kind,
            author,
            body,
            client_id,
            created_at,
            meta,
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

    /// Hands writes to the persister and applies `change` at once; on refusal, undoes the
    /// sequence numbers and the change.
    fn submit(
        &mut self,
        ctx: &mut Context<Self>,
        items: Vec<Item>,
        writes: Vec<Write>,
        change: Change,
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
                if let Some((new, _)) = change.status {
                    self.status = new;
                }
                if let Some((new, _)) = &change.assignee {
                    self.assignee = new.clone();
                }
                if let Some((new, _)) = &change.contact {
                    self.contact = new.clone();
                }
                self.pending.push_back(Pending {
                    ticket,
                    items,
                    change,
                });
            }
            Err(err) => {
                // Nothing was queued, and nothing after these numbers was assigned yet.
                self.next_seq -= items.len() as i64;
                if let Some(tx) = change.distributed {
                    let _ = tx.send(Err(err.clone()));
                }
                for item in items {
                    let client_id = item.view.client_id.as_deref();
                    for reply in item.replies {
                        reply.err(err.clone(), client_id);
                    }
                }
            }
        }
    }

    /// Sends a committed frame to the visitors (when they may see it) and the operators.
    fn fan_out(&self, out: &Outbound, for_visitor: bool, except: Option<u64>) {
        if for_visitor {
            for (id, sink) in &self.visitors {
                if Some(*id) != except {
                    sink.do_send(out.clone());
                }
            }
        }
        self.core
            .hub
            .publish_operators(&out.frame, self.audience(), except);
    }

    fn announce(&self) {
        let view = self.view();
        let out = Outbound::plain(
            ServerFrame::Conversation {
                conversation: &view,
            }
            .encode(),
        );
        self.fan_out(&out, !self.kind.is_internal(), None);
    }

    /// Tells operators only of a header change the visitor has no use for (their own
    /// presence).
    fn announce_to_operators(&self) {
        let view = self.view();
        let frame = ServerFrame::Conversation {
            conversation: &view,
        }
        .encode();
        self.core
            .hub
            .publish_operators(&frame, self.audience(), None);
    }

    /// The visitor's widget has the messages up to `seq` (OC15). A message committed while
    /// the visitor is online is delivered with it (consoles know from `visitor_online`), so
    /// only a replay to a returning widget is news worth a `delivered` frame.
    fn mark_delivered(&mut self, seq: i64, announce: bool) {
        if seq <= self.visitor_delivered_seq {
            return;
        }
        let news = self.last_operator_seq > self.visitor_delivered_seq;
        self.visitor_delivered_seq = seq;
        self.delivered_dirty = true;
        if announce && news {
            let frame = ServerFrame::Delivered {
                conversation_id: self.id,
                seq,
            }
            .encode();
            self.core
                .hub
                .publish_operators(&frame, self.audience(), None);
        }
    }

    /// Stores the delivered mark if it moved.
    fn store_delivered(&mut self) {
        if !self.delivered_dirty {
            return;
        }
        let req = PersistRequest {
            writes: vec![Write::Delivered {
                conversation_id: self.id,
                seq: self.visitor_delivered_seq,
            }],
            ticket: 0,
            reply: PersistReply::None,
        };
        match self.core.persister.submit(req) {
            Ok(()) => self.delivered_dirty = false,
            Err(err) => tracing::debug!(
                conversation_id = self.id,
                code = err.code.as_str(),
                "delivered mark not queued; kept for the next try"
            ),
        }
    }

    fn send_queue_position(&self) {
        let out = Outbound::plain(
            ServerFrame::Queue {
                conversation_id: self.id,
                position: self.queue_position,
            }
            .encode(),
        );
        for sink in self.visitors.values() {
            sink.do_send(out.clone());
        }
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

    /// Answers a request whose client id was seen before (or is on its way); `None` when
    /// the request is new and the caller goes on with it.
    fn answer_retry(&mut self, key: Option<ClientKey>, reply: Reply) -> Option<Reply> {
        let Some(key) = key else {
            return Some(reply);
        };
        if let Some(seq) = self.seen.get(&key) {
            let posted = Posted {
                conversation_id: self.id,
                seq: *seq,
                duplicate: true,
            };
            reply.ok(posted, Some(&key.2));
            return None;
        }
        if let Some(item) = self.pending_item(&key) {
            // The same request is on its way to the database: answer both senders when it
            // lands (or fails).
            item.replies.push(reply);
            return None;
        }
        Some(reply)
    }

    /// Records an event (opened, closed, reopened, assigned) as an entry of the history.
    fn event_item(
        &mut self,
        name: &str,
        by: &Requester,
        client_id: Option<String>,
        meta: Option<serde_json::Value>,
    ) -> (Item, Write) {
        let (author, author_id) = by.author();
        self.new_item(
            MessageKind::Event,
            author,
            author_id,
            client_id,
            name.to_string(),
            meta,
        )
    }

    /// The writes that make `to` responsible, with the `assigned` event of the history.
    fn assignment(
        &mut self,
        by: &Requester,
        to: Option<Named>,
        reason: String,
        client_id: Option<String>,
    ) -> (Item, Vec<Write>, Change) {
        let from = self.assignee.clone();
        let meta = serde_json::json!({ "from": from, "to": to });
        let (item, event) = self.event_item("assigned", by, client_id, Some(meta));
        let by_id = match by {
            Requester::Operator(s) => Some(s.id),
            _ => None,
        };
        let writes = vec![
            event,
            Write::Assign {
                conversation_id: self.id,
                from: from.as_ref().map(|n| n.id),
                to: to.as_ref().map(|n| n.id),
                by: by_id,
                reason,
                at: self.now(),
            },
        ];
        let change = Change {
            assignee: Some((to, from)),
            dequeued: self.queued,
            ..Change::default()
        };
        (item, writes, change)
    }

    /// Whether an operator may close, reopen or reassign: the responsible operator, an
    /// administrator, or anyone while nobody is responsible.
    fn may_manage(&self, staff: &Staff) -> bool {
        staff.admin || self.assignee.as_ref().is_none_or(|a| a.id == staff.id)
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
            if let Some(visitor) = self.visitor_id {
                let (item, write) =
                    self.event_item("opened", &Requester::Visitor(visitor), None, None);
                self.submit(ctx, vec![item], vec![write], Change::default());
            }
        }
        let idle = Duration::from_secs(self.core.config.conversation_idle_secs);
        let every = IDLE_CHECK.min(idle.max(Duration::from_secs(1)));
        // Conversations started together check at spread moments, not all at once.
        let offset = {
            use rand::Rng;
            every.mul_f64(rand::thread_rng().gen_range(0.0..1.0))
        };
        ctx.run_later(offset, move |_, ctx| {
            ctx.run_interval(every, move |act, ctx| {
                act.store_delivered();
                if act.visitors.is_empty()
                    && act.pending.is_empty()
                    && act.last_activity.elapsed() >= idle
                {
                    ctx.stop();
                }
            });
        });
    }

    fn stopped(&mut self, ctx: &mut Self::Context) {
        self.store_delivered();
        self.core.visitors_online.remove(&self.id);
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
    /// The visitor's place in the waiting queue.
    pub queue_position: Option<usize>,
}

impl Handler<Attach> for Conversation {
    type Result = ResponseActFuture<Self, Result<Attached, AppError>>;

    fn handle(&mut self, msg: Attach, _ctx: &mut Self::Context) -> Self::Result {
        if self.visitor_id != Some(msg.visitor_id) {
            return Box::pin(fut::ready(Err(AppError::forbidden(
                "this conversation belongs to another visitor",
            ))));
        }
        self.last_activity = Instant::now();
        let arrived = self.visitors.is_empty();
        self.visitors.insert(msg.session_id, msg.sink);
        if arrived {
            // Operators see the visitor come online (delivery states depend on it).
            self.core.visitors_online.insert(self.id);
            self.announce_to_operators();
        }
        let view = self.view();
        let queue_position = self.queue_position;
        let after = msg.after_seq.max(0);
        let upto = self.committed_seq;
        let tail_start = self.tail.front().map(|e| e.seq).unwrap_or(upto + 1);
        if after + 1 >= tail_start || after >= upto {
            let replay: Vec<(i64, ByteString)> = self
                .tail
                .iter()
                .filter(|e| e.seq > after && e.for_visitor)
                .map(|e| (e.seq, e.frame.clone()))
                .collect();
            self.mark_delivered(upto, true);
            return Box::pin(fut::ready(Ok(Attached {
                view,
                replay,
                queue_position,
            })));
        }
        // The client is further behind than the in-memory tail: read the gap from the
        // database, up to what was committed when it attached; later messages reach the
        // session live.
        let store = self.core.store.clone();
        let id = self.id;
        Box::pin(
            async move {
                let mut replay = Vec::new();
                let mut from = after;
                while from < upto {
                    let rows = store
                        .call(move |s| s.messages_between(id, from, upto, REPLAY_PAGE, true))
                        .await?;
                    let Some(last) = rows.last() else { break };
                    from = last.seq;
                    replay.extend(
                        rows.iter()
                            .map(|m| (m.seq, ServerFrame::Message { message: m }.encode())),
                    );
                }
                Ok(replay)
            }
            .into_actor(self)
            .map(move |replay: Result<_, AppError>, act, _| {
                let replay = replay?;
                act.mark_delivered(upto, true);
                Ok(Attached {
                    view,
                    replay,
                    queue_position,
                })
            }),
        )
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
        if self.visitors.remove(&msg.session_id).is_some() && self.visitors.is_empty() {
            self.core.visitors_online.remove(&self.id);
            self.store_delivered();
            self.announce_to_operators();
        }
        self.last_activity = Instant::now();
    }
}

/// A message from the visitor, or an operator's reply or note.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Post {
    /// Who writes (not the system).
    pub by: Requester,
    /// Text, or an operators-only note.
    pub kind: MessageKind,
    /// Idempotency key.
    pub client_id: String,
    /// Text, already checked against the limits.
    pub body: String,
    /// The message this one answers (OC10).
    pub reply_to: Option<i64>,
    /// Operators a note mentions (XB15).
    pub mentions: Vec<i64>,
    /// A file sent with the message (XB1), already checked to be the sender's and not
    /// sent in another conversation.
    pub attachment: Option<crate::store::attachments::AttachmentInfo>,
    /// Where the ack or error goes.
    pub reply: Reply,
    /// The sending session, which gets the ack instead of the message frame.
    pub from_session: Option<u64>,
}

impl Handler<Post> for Conversation {
    type Result = ();

    fn handle(&mut self, msg: Post, ctx: &mut Self::Context) {
        self.last_activity = Instant::now();
        let Post {
            by,
            kind,
            client_id,
            body,
            reply_to,
            mentions,
            attachment,
            reply,
            from_session,
        } = msg;
        let (author, author_id) = by.author();
        let refuse = |reply: Reply, err: AppError| reply.err(err, Some(&client_id));
        // Who may write what, checked before anything else so a refused request reveals
        // nothing about earlier ones.
        match &by {
            Requester::Visitor(id) => {
                if self.visitor_id != Some(*id) {
                    return refuse(
                        reply,
                        AppError::forbidden("this conversation belongs to another visitor"),
                    );
                }
            }
            Requester::Operator(staff) if self.kind.is_internal() => {
                if !self.is_member(staff.id) {
                    return refuse(
                        reply,
                        AppError::forbidden("you are not a member of this internal chat"),
                    );
                }
                if kind == MessageKind::Note {
                    return refuse(
                        reply,
                        AppError::bad_request("notes belong in visitor conversations"),
                    );
                }
            }
            Requester::Operator(staff) => {
                let other = self.assignee.as_ref().filter(|a| a.id != staff.id);
                if kind == MessageKind::Text && other.is_some() {
                    return refuse(
                        reply,
                        AppError::new(
                            ErrorCode::NotAssigned,
                            "not assigned to you: the conversation has another responsible operator",
                        ),
                    );
                }
            }
            Requester::System => {}
        }
        let key: ClientKey = (author.kind, author_id, client_id.clone());
        let Some(reply) = self.answer_retry(Some(key), reply) else {
            return;
        };
        if reply_to.is_some_and(|r| r < 1 || r > self.committed_seq) {
            return reply.err(
                AppError::bad_request("reply_to names no message of this conversation"),
                Some(&client_id),
            );
        }
        let mut items = Vec::with_capacity(3);
        let mut writes = Vec::with_capacity(4);
        let mut change = Change::default();
        if self.status == ConversationStatus::Closed && kind == MessageKind::Text {
            if author.kind != AuthorKind::Visitor {
                return reply.err(
                    AppError::new(
                        ErrorCode::ConversationClosed,
                        "the conversation is closed; reopen it to write",
                    ),
                    Some(&client_id),
                );
            }
            // A visitor who writes again after closing reopens the conversation.
            let (item, write) = self.event_item("reopened", &by, None, None);
            items.push(item);
            writes.push(write);
            writes.push(Write::Status {
                conversation_id: self.id,
                status: ConversationStatus::Open,
                at: self.now(),
            });
            change.status = Some((ConversationStatus::Open, ConversationStatus::Closed));
        }
        if let Requester::Operator(staff) = &by {
            if kind == MessageKind::Text && !self.kind.is_internal() && self.assignee.is_none() {
                // Answering an unassigned conversation takes it (OC8), recorded like any
                // other assignment.
                let (item, w, c) = self.assignment(
                    &by,
                    Some(staff.named()),
                    "took the conversation by answering".into(),
                    None,
                );
                items.push(item);
                writes.extend(w);
                change.assignee = c.assignee;
                change.dequeued = c.dequeued;
                change.notify_router = true;
            }
        }
        self.core
            .metrics
            .messages_received
            .fetch_add(1, Ordering::Relaxed);
        let mut meta = serde_json::Map::new();
        if let Some(seq) = reply_to {
            meta.insert("reply_to".into(), seq.into());
        }
        if !mentions.is_empty() {
            meta.insert("mentions".into(), mentions.into());
        }
        if let Some(file) = &attachment {
            meta.insert(
                "attachment".into(),
                serde_json::to_value(file).unwrap_or_default(),
            );
            writes.push(Write::BindAttachment {
                id: file.id.clone(),
                conversation_id: self.id,
            });
        }
        let meta = (!meta.is_empty()).then_some(serde_json::Value::Object(meta));
        let operator_text = author.kind == AuthorKind::Operator && kind == MessageKind::Text;
        let (mut item, write) = self.new_item(kind, author, author_id, Some(client_id), body, meta);
        item.replies.push(reply);
        item.from_session = from_session;
        items.push(item);
        writes.push(write);
        if operator_text {
            // If the visitor does not read it within the window, it is e-mailed (CF8,
            // EC2); the timer is written with the reply, in one transaction.
            let window = (self.core.config.unread_email_secs as i64).saturating_mul(1000);
            let due = self.now() + window;
            writes.extend(self.unread_timer(due));
        }
        self.submit(ctx, items, writes, change);
    }
}

/// The visitor filled in a form (CF2, CF3, ID7, CF7): recorded as a `form` event so the
/// operator sees the data in the chat at once, with the contact it identified.
#[derive(Message)]
#[rtype(result = "()")]
pub struct FormSubmitted {
    /// The visitor.
    pub visitor_id: i64,
    /// Idempotency key of the event.
    pub client_id: String,
    /// `name`, `prechat` or `offline`.
    pub form: String,
    /// The cleaned fields.
    pub fields: crate::crm::FormFields,
    /// The contact the visitor is now.
    pub contact: Named,
    /// Whether this conversation follows the visitor's contact: not when an operator
    /// linked it to another contact by hand (XB2), a link a form never undoes.
    pub relink: bool,
    /// Merge suggestions the form raised.
    pub suggestions: usize,
    /// Where the ack goes.
    pub reply: Reply,
    /// The sending session.
    pub from_session: Option<u64>,
}

impl Handler<FormSubmitted> for Conversation {
    type Result = ();

    fn handle(&mut self, msg: FormSubmitted, ctx: &mut Self::Context) {
        self.last_activity = Instant::now();
        if self.visitor_id != Some(msg.visitor_id) {
            return msg.reply.err(
                AppError::forbidden("this conversation belongs to another visitor"),
                Some(&msg.client_id),
            );
        }
        let by = Requester::Visitor(msg.visitor_id);
        let key = (AuthorKind::Visitor, msg.visitor_id, msg.client_id.clone());
        let Some(reply) = self.answer_retry(Some(key), msg.reply) else {
            return;
        };
        let meta = serde_json::json!({
            "form": msg.form,
            "fields": msg.fields,
            "contact": msg.contact,
            "suggestions": msg.suggestions,
        });
        let (mut item, write) = self.event_item("form", &by, Some(msg.client_id), Some(meta));
        item.replies.push(reply);
        item.from_session = msg.from_session;
        let change = Change {
            contact: msg
                .relink
                .then(|| (Some(msg.contact.clone()), self.contact.clone())),
            ..Change::default()
        };
        let mut writes = vec![write];
        if msg.relink {
            writes.push(Write::Contact {
                conversation_id: self.id,
                contact_id: Some(msg.contact.id),
            });
        }
        let now = self.now();
        if msg.fields.email.is_some() && self.last_operator_seq > self.visitor_read_seq {
            // An address at last: the replies not read yet go now (CF9).
            writes.extend(self.unread_timer(now));
        }
        if msg.form == "transcript" {
            writes.push(Write::Timer {
                kind: "transcript",
                conversation_id: self.id,
                due_at: now,
                now,
            });
        }
        self.submit(ctx, vec![item], writes, change);
    }
}

/// A card in the chat that asks the visitor for something: a copy of the conversation
/// by e-mail (CF5, from a timer after closing) or their e-mail address (EC3, from an
/// operator). Recorded as an `offer` event the widget shows as a form.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Offer {
    /// `transcript` or `email`.
    pub form: &'static str,
    /// The server (a timer) or an operator.
    pub by: Requester,
    /// Idempotency key of the event.
    pub client_id: Option<String>,
    /// The timer that fired it, marked fired in the same transaction.
    pub timer: Option<i64>,
    /// Where the outcome goes.
    pub reply: Reply,
    /// The requesting session.
    pub from_session: Option<u64>,
}

impl Handler<Offer> for Conversation {
    type Result = ();

    fn handle(&mut self, msg: Offer, ctx: &mut Self::Context) {
        let client_id = msg.client_id.clone();
        if self.kind.is_internal() {
            return msg.reply.err(
                AppError::bad_request("internal chats have no visitor to ask"),
                client_id.as_deref(),
            );
        }
        if let Requester::Operator(staff) = &msg.by {
            if self.assignee.as_ref().is_some_and(|a| a.id != staff.id) {
                return msg.reply.err(
                    AppError::new(ErrorCode::NotAssigned, "not assigned to you"),
                    client_id.as_deref(),
                );
            }
        }
        let (author, author_id) = msg.by.author();
        let key = msg.client_id.clone().map(|c| (author.kind, author_id, c));
        let Some(reply) = self.answer_retry(key, msg.reply) else {
            return;
        };
        let meta = serde_json::json!({ "form": msg.form });
        let (mut item, write) = self.event_item("offer", &msg.by, msg.client_id, Some(meta));
        item.replies.push(reply);
        item.from_session = msg.from_session;
        let mut writes = vec![write];
        if let Some(id) = msg.timer {
            writes.push(Write::TimerFired { id, at: self.now() });
        }
        self.submit(ctx, vec![item], writes, Change::default());
    }
}

/// Closes or reopens the conversation.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetStatus {
    /// An operator, or the system (auto-close).
    pub by: Requester,
    /// Open or closed.
    pub status: ConversationStatus,
    /// Optional idempotency key for the event.
    pub client_id: Option<String>,
    /// Why, when the server closes by itself (`inactivity`).
    pub reason: Option<&'static str>,
    /// Auto-close only: the cutoff (ms) the inactivity sweep read the database with. The
    /// sweep reads first and asks later, one conversation after another, so a message may
    /// land in between: a conversation with activity at or after the cutoff stays open.
    pub inactive_before: Option<i64>,
    /// Where the outcome goes.
    pub reply: Reply,
    /// The requesting session.
    pub from_session: Option<u64>,
}

impl Handler<SetStatus> for Conversation {
    type Result = ();

    fn handle(&mut self, msg: SetStatus, ctx: &mut Self::Context) {
        if self.kind.is_internal() {
            return msg.reply.err(
                AppError::bad_request("internal chats are never closed"),
                msg.client_id.as_deref(),
            );
        }
        if let Requester::Operator(staff) = &msg.by {
            if !self.may_manage(staff) {
                return msg.reply.err(
                    AppError::new(
                        ErrorCode::NotAssigned,
                        "not assigned to you: only the responsible operator or an administrator may do this",
                    ),
                    msg.client_id.as_deref(),
                );
            }
        }
        if let Some(cutoff) = msg.inactive_before {
            // Anything written since the sweep's cutoff, committed or on its way, wins: the
            // conversation is not inactive any more, and nothing is recorded.
            if !self.pending.is_empty() || self.updated_at >= cutoff {
                let posted = Posted {
                    conversation_id: self.id,
                    seq: self.committed_seq,
                    duplicate: true,
                };
                return msg.reply.ok(posted, msg.client_id.as_deref());
            }
        } else {
            self.last_activity = Instant::now();
        }
        let (author, author_id) = msg.by.author();
        let key = msg.client_id.clone().map(|c| (author.kind, author_id, c));
        let Some(reply) = self.answer_retry(key, msg.reply) else {
            return;
        };
        if self.status == msg.status {
            // Already there: nothing to record.
            let posted = Posted {
                conversation_id: self.id,
                seq: self.committed_seq,
                duplicate: true,
            };
            return reply.ok(posted, msg.client_id.as_deref());
        }
        let name = match msg.status {
            ConversationStatus::Closed => "closed",
            ConversationStatus::Open => "reopened",
        };
        let meta = msg.reason.map(|r| serde_json::json!({ "reason": r }));
        let (mut item, write) = self.event_item(name, &msg.by, msg.client_id, meta);
        item.replies.push(reply);
        item.from_session = msg.from_session;
        let mut writes = vec![
            write,
            Write::Status {
                conversation_id: self.id,
                status: msg.status,
                at: self.now(),
            },
        ];
        let mut change = Change {
            status: Some((msg.status, self.status)),
            ..Change::default()
        };
        if msg.status == ConversationStatus::Closed && self.queued {
            writes.push(Write::Queue {
                conversation_id: self.id,
                queued_at: None,
            });
            change.dequeued = true;
        }
        let settings = self.channel_settings();
        if msg.status == ConversationStatus::Closed && settings.transcript_offer {
            // "Send a copy of this conversation to your e-mail?", a few seconds later (CF5),
            // from a stored timer, so a restart in between does not lose it.
            let now = self.now();
            writes.push(Write::Timer {
                kind: "transcript_offer",
                conversation_id: self.id,
                due_at: now + i64::from(settings.transcript_delay_secs) * 1000,
                now,
            });
        }
        self.submit(ctx, vec![item], writes, change);
    }
}

/// Hands the conversation to another operator, or back to the queue (OC8, XB12).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Reassign {
    /// Who asks: the responsible operator or an administrator; or anyone taking an
    /// unassigned conversation for themselves.
    pub by: Staff,
    /// The new responsible operator (already checked to have the chat permission);
    /// `None` sends the conversation back to the queue.
    pub to: Option<Named>,
    /// Why, for the audit trail.
    pub reason: String,
    /// Idempotency key for the `assigned` event.
    pub client_id: Option<String>,
    /// Where the outcome goes.
    pub reply: Reply,
    /// The requesting session.
    pub from_session: Option<u64>,
}

impl Handler<Reassign> for Conversation {
    type Result = ();

    fn handle(&mut self, msg: Reassign, ctx: &mut Self::Context) {
        self.last_activity = Instant::now();
        let client_id = msg.client_id.as_deref();
        if self.kind.is_internal() {
            return msg.reply.err(
                AppError::bad_request("internal chats have no responsible operator"),
                client_id,
            );
        }
        let taking = self.assignee.is_none() && msg.to.as_ref().is_some_and(|t| t.id == msg.by.id);
        let responsible = self.assignee.as_ref().is_some_and(|a| a.id == msg.by.id);
        if !(msg.by.admin || responsible || taking) {
            return msg.reply.err(
                AppError::new(
                    ErrorCode::NotAssigned,
                    "only the responsible operator or an administrator may reassign",
                ),
                client_id,
            );
        }
        let key = msg
            .client_id
            .clone()
            .map(|c| (AuthorKind::Operator, msg.by.id, c));
        let Some(reply) = self.answer_retry(key, msg.reply) else {
            return;
        };
        if self.assignee.as_ref().map(|a| a.id) == msg.to.as_ref().map(|t| t.id) {
            let posted = Posted {
                conversation_id: self.id,
                seq: self.committed_seq,
                duplicate: true,
            };
            return reply.ok(posted, msg.client_id.as_deref());
        }
        let by = Requester::Operator(msg.by);
        let (mut item, writes, mut change) =
            self.assignment(&by, msg.to, msg.reason, msg.client_id);
        change.notify_router = true;
        item.replies.push(reply);
        item.from_session = msg.from_session;
        self.submit(ctx, vec![item], writes, change);
    }
}

/// The router's distribution gives the conversation to an operator (OC4). Applies only
/// while the conversation is open and nobody has it; answers `Ok(true)` once committed.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Distribute {
    /// The chosen operator.
    pub to: Named,
    /// `distribution` or `default assignee`.
    pub reason: &'static str,
    /// The outcome.
    pub reply: oneshot::Sender<Result<bool, AppError>>,
}

impl Handler<Distribute> for Conversation {
    type Result = ();

    fn handle(&mut self, msg: Distribute, ctx: &mut Self::Context) {
        if self.kind.is_internal()
            || self.status != ConversationStatus::Open
            || self.assignee.is_some()
        {
            let _ = msg.reply.send(Ok(false));
            return;
        }
        let (item, writes, mut change) =
            self.assignment(&Requester::System, Some(msg.to), msg.reason.into(), None);
        change.distributed = Some(msg.reply);
        self.submit(ctx, vec![item], writes, change);
    }
}

/// The router put the conversation in the waiting queue (`position` from 1), moved it in
/// the queue, or took it out (`None`).
#[derive(Message)]
#[rtype(result = "()")]
pub struct QueuePosition {
    /// Place in the queue.
    pub position: Option<usize>,
}

impl Handler<QueuePosition> for Conversation {
    type Result = ();

    fn handle(&mut self, msg: QueuePosition, _ctx: &mut Self::Context) {
        let waiting = self.status == ConversationStatus::Open && self.assignee.is_none();
        if msg.position.is_some() && !waiting {
            // Taken or closed meanwhile; the router hears of it and forgets the place.
            return;
        }
        if msg.position.is_some() && !self.queued {
            // Joining the queue is stored, so the order survives a restart.
            self.queued = true;
            let req = PersistRequest {
                writes: vec![Write::Queue {
                    conversation_id: self.id,
                    queued_at: Some(self.now()),
                }],
                ticket: 0,
                reply: PersistReply::None,
            };
            if let Err(err) = self.core.persister.submit(req) {
                tracing::warn!(
                    conversation_id = self.id,
                    code = err.code.as_str(),
                    "queue entry not stored"
                );
            }
            self.announce();
        }
        if self.queue_position != msg.position {
            self.queue_position = msg.position;
            self.send_queue_position();
        }
    }
}

/// The conversation was linked to a CRM contact (or unlinked); the header changes.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetContact {
    /// The contact.
    pub contact: Option<Named>,
}

impl Handler<SetContact> for Conversation {
    type Result = ();

    fn handle(&mut self, msg: SetContact, _ctx: &mut Self::Context) {
        self.contact = msg.contact;
        self.announce();
    }
}

/// An operator saved (or cleared) a draft here.
#[derive(Message)]
#[rtype(result = "()")]
pub struct DraftSaved {
    /// Whose.
    pub operator_id: i64,
    /// Whether a draft is stored now.
    pub present: bool,
}

impl Handler<DraftSaved> for Conversation {
    type Result = ();

    fn handle(&mut self, msg: DraftSaved, _ctx: &mut Self::Context) {
        if msg.present {
            self.drafts.insert(msg.operator_id);
        } else {
            self.drafts.remove(&msg.operator_id);
        }
    }
}

/// The conversation's text was erased from the database (XB6): the actor drops what it
/// holds in memory and stops; the next request loads what remains.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Forget;

impl Handler<Forget> for Conversation {
    type Result = ();

    fn handle(&mut self, _msg: Forget, ctx: &mut Self::Context) {
        self.tail.clear();
        self.contact = None;
        // The visitor's sockets end too: their token no longer works.
        for sink in self.visitors.values() {
            sink.do_send(Outbound::plain(
                ServerFrame::Error {
                    code: ErrorCode::Unauthorized,
                    message: "this conversation was erased",
                    client_id: None,
                    retryable: false,
                    retry_after_ms: None,
                }
                .encode(),
            ));
        }
        self.visitors.clear();
        self.core.visitors_online.remove(&self.id);
        ctx.stop();
    }
}

/// An internal chat's members changed (a team's membership did).
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetMembers {
    /// Everyone taking part now.
    pub members: Vec<Named>,
}

impl Handler<SetMembers> for Conversation {
    type Result = ();

    fn handle(&mut self, msg: SetMembers, _ctx: &mut Self::Context) {
        self.members = msg.members;
        self.announce();
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
            Ok(()) => self.committed(done),
            Err(err) => self.failed(ctx, done, err),
        }
    }
}

impl Conversation {
    /// A request is durable: ack its senders, fan its messages out, apply its change.
    fn committed(&mut self, done: Pending) {
        for item in done.items {
            let seq = item.view.seq;
            self.committed_seq = self.committed_seq.max(seq);
            self.updated_at = item.view.created_at;
            if let Some(key) = item.key.clone() {
                self.remember(key, seq);
            }
            let for_visitor = item.view.kind.visible_to_visitor() && !self.kind.is_internal();
            let operator_text = item.view.author.kind == AuthorKind::Operator
                && item.view.kind == MessageKind::Text;
            if operator_text {
                self.last_operator_seq = seq;
            }
            let frame = ServerFrame::Message {
                message: &item.view,
            }
            .encode();
            self.push_tail(seq, for_visitor, frame.clone());
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
                for_visitor,
                item.from_session,
            );
            if operator_text && for_visitor && !self.visitors.is_empty() {
                self.mark_delivered(seq, false);
            }
            if self.kind.is_internal() {
                // Writing in an internal chat means having read it up to there.
                if let Some(operator_id) = item.view.author.id {
                    let req = PersistRequest {
                        writes: vec![Write::MemberRead {
                            conversation_id: self.id,
                            operator_id,
                            seq,
                        }],
                        ticket: 0,
                        reply: PersistReply::None,
                    };
                    let _ = self.core.persister.submit(req);
                }
            }
            if operator_text {
                // The reply is durable: its author's draft is spent (XB3).
                if let Some(operator_id) = item.view.author.id.filter(|o| self.drafts.contains(o)) {
                    let core = self.core.clone();
                    let id = self.id;
                    let sent_at = item.view.created_at;
                    actix::spawn(crate::console::clear_draft(core, operator_id, id, sent_at));
                }
            }
        }
        let change = done.change;
        let assignment = change.assignee.clone();
        if change.dequeued {
            self.queued = false;
            if self.queue_position.take().is_some() {
                self.send_queue_position();
            }
        }
        if let Some(tx) = change.distributed {
            let _ = tx.send(Ok(true));
        }
        if change.notify_router {
            if let Some((to, from)) = &assignment {
                self.router.do_send(AssignmentChanged {
                    id: self.id,
                    from: from.as_ref().map(|n| n.id),
                    to: to.as_ref().map(|n| n.id),
                    open: self.status == ConversationStatus::Open,
                    team_id: self.team_id,
                });
            }
        }
        if let Some((status, _)) = change.status {
            self.router.do_send(StatusChanged {
                id: self.id,
                assignee: self.assignee.as_ref().map(|a| a.id),
                open: status == ConversationStatus::Open,
                team_id: self.team_id,
            });
        }
        if change.status.is_some()
            || assignment.is_some()
            || change.dequeued
            || change.contact.is_some()
        {
            self.announce();
        }
    }

    /// A request failed: undo its change and tell its senders.
    fn failed(&mut self, ctx: &mut Context<Self>, done: Pending, err: AppError) {
        if err.code == ErrorCode::Conflict {
            tracing::debug!(conversation_id = self.id, "retry of a stored message");
        } else {
            tracing::warn!(
                conversation_id = self.id,
                code = err.code.as_str(),
                "write failed"
            );
        }
        let change = done.change;
        if let Some((_, previous)) = change.status {
            self.status = previous;
        }
        if let Some((_, previous)) = change.assignee {
            self.assignee = previous;
        }
        if let Some((_, previous)) = change.contact {
            self.contact = previous;
        }
        if let Some(tx) = change.distributed {
            let _ = tx.send(Err(err.clone()));
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

/// Someone started or stopped typing.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Typing {
    /// The visitor, or an operator with their name.
    pub from: Requester,
    /// Typing now.
    pub on: bool,
    /// The session typing, which gets no echo.
    pub from_session: u64,
}

impl Handler<Typing> for Conversation {
    type Result = ();

    fn handle(&mut self, msg: Typing, _ctx: &mut Self::Context) {
        let (author, _) = msg.from.author();
        if let Requester::Operator(staff) = &msg.from {
            if self.kind.is_internal() && !self.is_member(staff.id) {
                return;
            }
        }
        let frame = ServerFrame::Typing {
            conversation_id: self.id,
            from: author.kind.as_str(),
            name: author.name.as_deref(),
            on: msg.on,
        }
        .encode();
        if !self.kind.is_internal() {
            for (id, sink) in &self.visitors {
                if *id != msg.from_session {
                    sink.do_send(Outbound::plain(frame.clone()));
                }
            }
        }
        self.core
            .hub
            .signal_operators(&frame, &self.audience(), Some(msg.from_session));
    }
}

/// Someone has seen the conversation up to a sequence number.
#[derive(Message)]
#[rtype(result = "()")]
pub struct MarkRead {
    /// The visitor, or an operator.
    pub by: Requester,
    /// Seen up to here.
    pub seq: i64,
}

impl Handler<MarkRead> for Conversation {
    type Result = ();

    fn handle(&mut self, msg: MarkRead, _ctx: &mut Self::Context) {
        let seq = msg.seq.min(self.committed_seq);
        let (write, by, operator_id) = match &msg.by {
            Requester::Operator(staff) if self.kind.is_internal() => {
                if !self.is_member(staff.id) {
                    return;
                }
                // Each member of an internal chat has a mark of their own, kept in the
                // database only (the list's unread count reads it).
                (
                    Write::MemberRead {
                        conversation_id: self.id,
                        operator_id: staff.id,
                        seq,
                    },
                    AuthorKind::Operator,
                    Some(staff.id),
                )
            }
            Requester::Visitor(_) | Requester::Operator(_) => {
                let by = if matches!(msg.by, Requester::Visitor(_)) {
                    AuthorKind::Visitor
                } else {
                    AuthorKind::Operator
                };
                let mark = match by {
                    AuthorKind::Visitor => &mut self.visitor_read_seq,
                    _ => &mut self.operator_read_seq,
                };
                if seq <= *mark {
                    return;
                }
                *mark = seq;
                (
                    Write::Read {
                        conversation_id: self.id,
                        by,
                        seq,
                    },
                    by,
                    None,
                )
            }
            Requester::System => return,
        };
        let req = PersistRequest {
            writes: vec![write],
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
                by: by.as_str(),
                operator_id,
                seq,
            }
            .encode(),
        );
        self.fan_out(&out, !self.kind.is_internal(), None);
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
