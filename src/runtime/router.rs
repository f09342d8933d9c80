//! The Router: one per node. It creates conversation actors (spread over a pool of
//! arbiters, one per core), keeps the registry sessions read without queueing behind it,
//! and supervises: a conversation actor that died (a panic drops it) is found disconnected
//! on the next lookup and restarted from the database, where everything acknowledged is.
//!
//! It also routes: it knows which operators are online with how many open conversations
//! each, hands new conversations to the least busy operator with free capacity (OC4), keeps
//! the others in a first-in-first-out queue that drains as soon as someone frees up, tells
//! waiting visitors their place (XB13), applies the default assignee when distribution is
//! off (OC3), and closes conversations left inactive (OC3) from a sweep over the database,
//! so the timer survives restarts. Conversations nobody was given while distribution was
//! off are remembered in arrival order and routed as soon as it is switched on; at start
//! every open conversation without an operator is routed, not only the queued ones.

use super::conversation::{
    Conversation, Distribute, Loaded, QueuePosition, Requester, SetStatus, CLIENT_IDS_REMEMBERED,
};
use super::Core;
use crate::error::{AppError, ErrorCode};
use crate::model::{ConversationStatus, Named};
use crate::store::operators::Operator;
use crate::store::settings::RoutingSettings;
use actix::prelude::*;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

/// Committed messages loaded into a restarted conversation's replay tail.
const TAIL_LOADED: i64 = 64;
/// How often the router looks for conversations to auto-close.
const INACTIVITY_SWEEP: Duration = Duration::from_secs(30);
/// Most conversations one sweep closes (the next sweep takes the rest).
const SWEEP_BATCH: i64 = 500;
/// How long the queue waits before handing out again after a retryable failure.
const DISTRIBUTION_RETRY: Duration = Duration::from_secs(1);

/// What the router knows about an operator with a console open.
#[derive(Debug, Clone)]
struct Online {
    name: String,
    sessions: HashSet<u64>,
    capacity: i64,
    available: bool,
    may_chat: bool,
    teams: Vec<i64>,
    /// When distribution last gave them a conversation (ties go to who waited longest).
    last_assigned: u64,
}

/// The routing state the router starts from, read from the database.
pub struct RoutingState {
    /// Settings.
    pub settings: RoutingSettings,
    /// Open conversations per operator.
    pub loads: Vec<(i64, i64)>,
    /// The waiting queue, in order: conversation and team.
    pub queue: Vec<(i64, Option<i64>)>,
    /// Open conversations without an operator that wait for distribution to be switched
    /// on, in arrival order.
    pub unrouted: Vec<(i64, Option<i64>)>,
}

impl RoutingState {
    /// Reads the state from the store.
    ///
    /// With distribution on, every open conversation nobody has waits in the queue in
    /// arrival order (a restart is when distribution "comes on" for this process); with it
    /// off, the queued ones keep their places and the others wait for it to come on.
    pub fn load(store: &crate::store::Store) -> Result<RoutingState, AppError> {
        let settings = store.routing_settings()?;
        let mut queue = Vec::new();
        let mut unrouted = Vec::new();
        for (id, team, queued) in store.unassigned_open_conversations()? {
            if queued || settings.distribution {
                queue.push((id, team));
            } else {
                unrouted.push((id, team));
            }
        }
        Ok(RoutingState {
            loads: store.open_loads()?,
            settings,
            queue,
            unrouted,
        })
    }
}

/// A snapshot of routing for the console's overview and the tests.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RoutingSnapshot {
    /// Conversations waiting, in order.
    pub queue: Vec<i64>,
    /// Operators online: id, name, open conversations, capacity, available.
    pub online: Vec<OnlineOperator>,
    /// The settings in force.
    pub settings: RoutingSettings,
}

/// One online operator in a [`RoutingSnapshot`].
#[derive(Debug, Clone, serde::Serialize)]
pub struct OnlineOperator {
    /// Id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// Open conversations they are responsible for.
    pub load: i64,
    /// Their capacity.
    pub capacity: i64,
    /// Takes new conversations.
    pub available: bool,
}

/// The router actor.
pub struct Router {
    core: Arc<Core>,
    arbiters: Vec<Arbiter>,
    next: usize,
    settings: RoutingSettings,
    online: HashMap<i64, Online>,
    /// Open conversations each operator is responsible for.
    load: HashMap<i64, i64>,
    /// Distributions sent but not answered yet, counted against capacity.
    in_flight: HashMap<i64, i64>,
    queue: VecDeque<(i64, Option<i64>)>,
    /// Open conversations nobody was given because distribution was off and there is no
    /// default assignee, in arrival order: routed when distribution comes on (OC4).
    unrouted: VecDeque<(i64, Option<i64>)>,
    assignments_made: u64,
}

impl Router {
    /// A router that runs conversations on `threads` arbiters, starting from `state`.
    pub fn new(core: Arc<Core>, threads: usize, state: RoutingState) -> Self {
        let arbiters = (0..threads.max(1)).map(|_| Arbiter::new()).collect();
        Router {
            core,
            arbiters,
            next: 0,
            settings: state.settings,
            online: HashMap::new(),
            load: state.loads.into_iter().collect(),
            in_flight: HashMap::new(),
            queue: state.queue.into_iter().collect(),
            unrouted: state.unrouted.into_iter().collect(),
            assignments_made: 0,
        }
    }

    fn spawn(&mut self, loaded: Loaded, me: Addr<Router>) -> Addr<Conversation> {
        let id = loaded.record.row.id;
        if let Some(existing) = self.core.registry.get(&id).map(|a| a.clone()) {
            if existing.connected() {
                return existing;
            }
            tracing::warn!(
                conversation_id = id,
                "conversation actor had died; restarting it from the database"
            );
        }
        let arbiter = &self.arbiters[self.next % self.arbiters.len()];
        self.next = self.next.wrapping_add(1);
        let core = self.core.clone();
        let addr = Conversation::start_in_arbiter(&arbiter.handle(), move |_| {
            Conversation::new(loaded, core, me)
        });
        self.core.registry.insert(id, addr.clone());
        if let Some(position) = self.queue.iter().position(|(q, _)| *q == id) {
            addr.do_send(QueuePosition {
                position: Some(position + 1),
            });
        }
        addr
    }

    /// Open conversations an operator has or is being given.
    fn busy(&self, operator_id: i64) -> i64 {
        self.load.get(&operator_id).copied().unwrap_or(0)
            + self.in_flight.get(&operator_id).copied().unwrap_or(0)
    }

    /// The operator distribution picks for a conversation of `team`: online, available,
    /// with the chat permission, in the team (when it has one), under capacity; the least
    /// busy, then the one who waited longest since their last conversation.
    fn pick(&self, team: Option<i64>) -> Option<i64> {
        self.online
            .iter()
            .filter(|(_, o)| o.available && o.may_chat)
            .filter(|(_, o)| team.is_none_or(|t| o.teams.contains(&t)))
            .filter(|(id, o)| self.busy(**id) < o.capacity)
            .min_by_key(|(id, o)| (self.busy(**id), o.last_assigned, **id))
            .map(|(id, _)| *id)
    }

    /// Routes a conversation that needs an operator: to someone now, or to the queue.
    fn route(&mut self, ctx: &mut Context<Self>, id: i64, team: Option<i64>) {
        if self.place(ctx, id, team) {
            self.tell_positions();
        }
    }

    /// [`Router::route`] without telling the queue its places; `true` when the
    /// conversation joined the queue (the caller tells the places once for many).
    fn place(&mut self, ctx: &mut Context<Self>, id: i64, team: Option<i64>) -> bool {
        if !self.settings.distribution {
            match self.settings.default_assignee_id {
                Some(default) => self.give(ctx, id, team, default, "default assignee"),
                None => {
                    if !self.unrouted.iter().any(|(u, _)| *u == id) {
                        self.unrouted.push_back((id, team));
                    }
                }
            }
            return false;
        }
        match self.pick(team) {
            Some(op) => {
                self.give(ctx, id, team, op, "distribution");
                false
            }
            None if self.queue.iter().any(|(q, _)| *q == id) => false,
            None => {
                self.queue.push_back((id, team));
                true
            }
        }
    }

    /// Sends a conversation to an operator; on refusal or failure it goes back to the head
    /// of the queue (distribution) so its turn is not lost.
    fn give(
        &mut self,
        ctx: &mut Context<Self>,
        id: i64,
        team: Option<i64>,
        operator_id: i64,
        reason: &'static str,
    ) {
        let name = self
            .online
            .get(&operator_id)
            .map(|o| o.name.clone())
            .unwrap_or_default();
        *self.in_flight.entry(operator_id).or_insert(0) += 1;
        self.assignments_made += 1;
        if let Some(o) = self.online.get_mut(&operator_id) {
            o.last_assigned = self.assignments_made;
        }
        let core = self.core.clone();
        let router = ctx.address();
        let distributing = reason == "distribution";
        let fut = async move {
            let name = if name.is_empty() {
                // The default assignee may be offline: read their name.
                core.store
                    .call(move |s| s.operator(operator_id))
                    .await
                    .ok()
                    .flatten()
                    .map(|o| o.name)
                    .unwrap_or_default()
            } else {
                name
            };
            let addr = lookup(&core, &router, id).await?;
            let (tx, rx) = tokio::sync::oneshot::channel();
            addr.try_send(Distribute {
                to: Named {
                    id: operator_id,
                    name,
                },
                reason,
                reply: tx,
            })
            .map_err(|_| AppError::new(ErrorCode::Busy, "conversation restarting"))?;
            rx.await
                .map_err(|_| AppError::new(ErrorCode::Busy, "conversation stopped"))?
        };
        ctx.spawn(fut.into_actor(self).map(move |res, act, ctx| {
            if let Some(n) = act.in_flight.get_mut(&operator_id) {
                *n -= 1;
            }
            match res {
                Ok(true) => {
                    *act.load.entry(operator_id).or_insert(0) += 1;
                }
                Ok(false) => {
                    // Someone took it, or it closed, meanwhile: nothing to do.
                }
                Err(e) => {
                    // A conversation restarting or a database that is down comes back: its
                    // place is kept and the queue is tried again a moment later (at once
                    // would spin on the same failure). One that no longer exists leaves.
                    let retry = matches!(e.code, ErrorCode::Busy | ErrorCode::StorageUnavailable);
                    tracing::warn!(
                        conversation_id = id,
                        code = e.code.as_str(),
                        retry,
                        "distribution failed"
                    );
                    if retry {
                        if distributing && !act.queue.iter().any(|(q, _)| *q == id) {
                            act.queue.push_front((id, team));
                        }
                        ctx.run_later(DISTRIBUTION_RETRY, |act, ctx| act.drain(ctx));
                        return;
                    }
                }
            }
            act.drain(ctx);
        }));
    }

    /// Hands waiting conversations out, oldest first, while someone has capacity.
    fn drain(&mut self, ctx: &mut Context<Self>) {
        if !self.settings.distribution {
            return;
        }
        let mut changed = false;
        let mut i = 0;
        while i < self.queue.len() {
            let (id, team) = self.queue[i];
            match self.pick(team) {
                Some(op) => {
                    self.queue.remove(i);
                    changed = true;
                    self.tell_position(id, None);
                    self.give(ctx, id, team, op, "distribution");
                }
                // This one's team is full; a later one's team may not be.
                None => i += 1,
            }
        }
        if changed {
            self.tell_positions();
        }
    }

    fn tell_position(&self, id: i64, position: Option<usize>) {
        if let Some(addr) = self.core.registry.get(&id).map(|a| a.clone()) {
            addr.do_send(QueuePosition { position });
        }
    }

    /// Tells every waiting conversation its place.
    fn tell_positions(&self) {
        for (i, (id, _)) in self.queue.iter().enumerate() {
            self.tell_position(*id, Some(i + 1));
        }
    }

    /// A conversation got an operator or closed: it waits no more.
    fn forget_queued(&mut self, id: i64) {
        if let Some(pos) = self.unrouted.iter().position(|(u, _)| *u == id) {
            self.unrouted.remove(pos);
        }
        if let Some(pos) = self.queue.iter().position(|(q, _)| *q == id) {
            self.queue.remove(pos);
            self.tell_positions();
        }
    }

    fn add_load(&mut self, operator_id: Option<i64>, delta: i64) {
        if let Some(op) = operator_id {
            let n = self.load.entry(op).or_insert(0);
            *n = (*n + delta).max(0);
        }
    }

    /// Closes open conversations without a message for the configured time (OC3).
    fn sweep_inactive(&mut self, ctx: &mut Context<Self>) {
        let minutes = self.settings.auto_close_minutes;
        if minutes <= 0 {
            return;
        }
        let core = self.core.clone();
        let router = ctx.address();
        let before = core.clock.now_ms() - minutes * 60_000;
        let fut = async move {
            let ids = core
                .store
                .call(move |s| s.inactive_open_conversations(before, SWEEP_BATCH))
                .await?;
            for id in ids {
                let addr = lookup(&core, &router, id).await?;
                let _ = addr.try_send(SetStatus {
                    by: Requester::System,
                    status: ConversationStatus::Closed,
                    client_id: None,
                    reason: Some("inactivity"),
                    inactive_before: Some(before),
                    reply: super::conversation::Reply::None,
                    from_session: None,
                });
            }
            Ok::<_, AppError>(())
        };
        ctx.spawn(fut.into_actor(self).map(|res, _, _| {
            if let Err(e) = res {
                tracing::warn!(code = e.code.as_str(), "inactivity sweep failed");
            }
        }));
    }
}

/// The live actor of a conversation, started through the router if needed.
async fn lookup(
    core: &Core,
    router: &Addr<Router>,
    id: i64,
) -> Result<Addr<Conversation>, AppError> {
    if let Some(addr) = core.registry.get(&id).map(|a| a.clone()) {
        if addr.connected() {
            return Ok(addr);
        }
    }
    router
        .send(Lookup { id })
        .await
        .map_err(|_| AppError::new(ErrorCode::Busy, "the router is unavailable").retry_after(100))?
}

impl Actor for Router {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(1 << 16);
        // Conversations that fell due while the process was down close now.
        self.sweep_inactive(ctx);
        ctx.run_interval(INACTIVITY_SWEEP, |act, ctx| act.sweep_inactive(ctx));
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        for arbiter in &self.arbiters {
            arbiter.stop();
        }
    }
}

fn load(core: &Core, id: i64, fresh: bool) -> Result<Loaded, AppError> {
    let store = &core.store;
    let record = store
        .conversation(id)?
        .ok_or_else(|| AppError::not_found("no such conversation"))?;
    let max_seq = store.max_seq(id)?;
    let client_ids = store.recent_client_ids(id, CLIENT_IDS_REMEMBERED as i64)?;
    let tail = store.messages_between(
        id,
        (max_seq - TAIL_LOADED).max(0),
        max_seq,
        TAIL_LOADED,
        false,
    )?;
    let drafters = store.drafters(id)?;
    let settings = store
        .channel_by_name(&record.row.channel)?
        .map(|c| c.settings)
        .unwrap_or_default();
    Ok(Loaded {
        record,
        max_seq,
        client_ids,
        tail,
        fresh,
        drafters,
        settings,
    })
}

/// Finds (or restarts from the database) the actor of a conversation.
#[derive(Message)]
#[rtype(result = "Result<Addr<Conversation>, AppError>")]
pub struct Lookup {
    /// Conversation id.
    pub id: i64,
}

impl Handler<Lookup> for Router {
    type Result = ResponseActFuture<Self, Result<Addr<Conversation>, AppError>>;

    fn handle(&mut self, msg: Lookup, _ctx: &mut Self::Context) -> Self::Result {
        if let Some(addr) = self.core.registry.get(&msg.id).map(|a| a.clone()) {
            if addr.connected() {
                return Box::pin(fut::ready(Ok(addr)));
            }
        }
        let core = self.core.clone();
        let id = msg.id;
        Box::pin(
            async move {
                let core2 = core.clone();
                tokio::task::spawn_blocking(move || load(&core2, id, false))
                    .await
                    .map_err(|_| AppError::internal())?
            }
            .into_actor(self)
            .map(|loaded, act, ctx| {
                // Another lookup may have started it while this one was loading.
                Ok(act.spawn(loaded?, ctx.address()))
            }),
        )
    }
}

/// Opens a new conversation for a visitor and routes it.
#[derive(Message)]
#[rtype(result = "Result<Addr<Conversation>, AppError>")]
pub struct Open {
    /// The visitor.
    pub visitor_id: i64,
    /// The channel.
    pub channel: String,
}

impl Handler<Open> for Router {
    type Result = ResponseActFuture<Self, Result<Addr<Conversation>, AppError>>;

    fn handle(&mut self, msg: Open, _ctx: &mut Self::Context) -> Self::Result {
        let core = self.core.clone();
        Box::pin(
            async move {
                let now = core.clock.now_ms();
                let core2 = core.clone();
                tokio::task::spawn_blocking(move || {
                    let store = &core2.store;
                    let channel = store.channel_by_name(&msg.channel)?.ok_or_else(|| {
                        AppError::bad_request(format!("unknown channel `{}`", msg.channel))
                    })?;
                    let row = store.add_conversation(
                        msg.visitor_id,
                        &channel.name,
                        channel.team_id,
                        now,
                    )?;
                    let record = store
                        .conversation(row.id)?
                        .ok_or_else(|| AppError::not_found("no such conversation"))?;
                    Ok::<_, AppError>(Loaded {
                        record,
                        max_seq: 0,
                        client_ids: Vec::new(),
                        tail: Vec::new(),
                        fresh: true,
                        drafters: Vec::new(),
                        settings: channel.settings.clone(),
                    })
                })
                .await
                .map_err(|_| AppError::internal())?
            }
            .into_actor(self)
            .map(|loaded, act, ctx| {
                let loaded = loaded?;
                let (id, team) = (loaded.record.row.id, loaded.record.row.team_id);
                let addr = act.spawn(loaded, ctx.address());
                act.route(ctx, id, team);
                Ok(addr)
            }),
        )
    }
}

/// A conversation actor stopped (idle, or its arbiter shut down).
#[derive(Message)]
#[rtype(result = "()")]
pub struct ConversationStopped {
    /// Conversation id.
    pub id: i64,
    /// The actor that stopped; a newer actor for the same id stays registered.
    pub addr: Addr<Conversation>,
}

impl Handler<ConversationStopped> for Router {
    type Result = ();

    fn handle(&mut self, msg: ConversationStopped, _ctx: &mut Self::Context) {
        self.core.registry.remove_if(&msg.id, |_, a| *a == msg.addr);
    }
}

/// An operator changed a conversation's responsible operator (reassigned, took it, or
/// answered it unassigned).
#[derive(Message)]
#[rtype(result = "()")]
pub struct AssignmentChanged {
    /// Conversation.
    pub id: i64,
    /// Who had it.
    pub from: Option<i64>,
    /// Who has it now; `None` sends it back to routing.
    pub to: Option<i64>,
    /// Whether it is open (only open conversations count against capacity).
    pub open: bool,
    /// Its team.
    pub team_id: Option<i64>,
}

impl Handler<AssignmentChanged> for Router {
    type Result = ();

    fn handle(&mut self, msg: AssignmentChanged, ctx: &mut Self::Context) {
        self.forget_queued(msg.id);
        if msg.open {
            self.add_load(msg.from, -1);
            self.add_load(msg.to, 1);
            if msg.to.is_none() {
                self.route(ctx, msg.id, msg.team_id);
            }
        }
        self.drain(ctx);
    }
}

/// A conversation closed or reopened.
#[derive(Message)]
#[rtype(result = "()")]
pub struct StatusChanged {
    /// Conversation.
    pub id: i64,
    /// Its responsible operator.
    pub assignee: Option<i64>,
    /// Open now.
    pub open: bool,
    /// Its team.
    pub team_id: Option<i64>,
}

impl Handler<StatusChanged> for Router {
    type Result = ();

    fn handle(&mut self, msg: StatusChanged, ctx: &mut Self::Context) {
        if msg.open {
            self.add_load(msg.assignee, 1);
            if msg.assignee.is_none() {
                // A visitor came back to a conversation nobody had: route it again.
                self.route(ctx, msg.id, msg.team_id);
            }
        } else {
            self.forget_queued(msg.id);
            self.add_load(msg.assignee, -1);
            self.drain(ctx);
        }
    }
}

/// An operator's console joined the live feed, or the operator's settings changed while
/// online.
#[derive(Message)]
#[rtype(result = "()")]
pub struct OperatorOnline {
    /// The session.
    pub session: u64,
    /// The operator as stored now.
    pub operator: Operator,
}

impl Handler<OperatorOnline> for Router {
    type Result = ();

    fn handle(&mut self, msg: OperatorOnline, ctx: &mut Self::Context) {
        let op = msg.operator;
        let entry = self.online.entry(op.id).or_insert_with(|| Online {
            name: op.name.clone(),
            sessions: HashSet::new(),
            capacity: op.capacity,
            available: op.available,
            may_chat: op.may_chat(),
            teams: op.teams.clone(),
            last_assigned: 0,
        });
        entry.sessions.insert(msg.session);
        entry.name = op.name.clone();
        entry.capacity = op.capacity;
        entry.available = op.available;
        entry.may_chat = op.may_chat();
        entry.teams = op.teams;
        self.drain(ctx);
    }
}

/// An operator's console left (socket closed, login ended, permission revoked).
#[derive(Message)]
#[rtype(result = "()")]
pub struct OperatorOffline {
    /// The session.
    pub session: u64,
    /// The operator.
    pub operator_id: i64,
}

impl Handler<OperatorOffline> for Router {
    type Result = ();

    fn handle(&mut self, msg: OperatorOffline, _ctx: &mut Self::Context) {
        if let Some(o) = self.online.get_mut(&msg.operator_id) {
            o.sessions.remove(&msg.session);
            if o.sessions.is_empty() {
                self.online.remove(&msg.operator_id);
            }
        }
    }
}

/// An operator's capacity, availability, teams or permission changed (from the API).
#[derive(Message)]
#[rtype(result = "()")]
pub struct OperatorChanged {
    /// The operator as stored now.
    pub operator: Operator,
}

impl Handler<OperatorChanged> for Router {
    type Result = ();

    fn handle(&mut self, msg: OperatorChanged, ctx: &mut Self::Context) {
        let op = msg.operator;
        if let Some(o) = self.online.get_mut(&op.id) {
            o.name = op.name.clone();
            o.capacity = op.capacity;
            o.available = op.available;
            o.may_chat = op.may_chat();
            o.teams = op.teams;
            self.drain(ctx);
        }
    }
}

/// An administrator changed the routing settings.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SettingsChanged {
    /// The new settings.
    pub settings: RoutingSettings,
}

impl Handler<SettingsChanged> for Router {
    type Result = ();

    fn handle(&mut self, msg: SettingsChanged, ctx: &mut Self::Context) {
        let switched_on = msg.settings.distribution && !self.settings.distribution;
        self.settings = msg.settings;
        // Those already waiting go first; then, in arrival order, the conversations opened
        // while distribution was off, which would otherwise stay unassigned however much
        // room the operators have.
        self.drain(ctx);
        if switched_on {
            let mut queued = false;
            for (id, team) in std::mem::take(&mut self.unrouted) {
                queued |= self.place(ctx, id, team);
            }
            if queued {
                self.tell_positions();
            }
        }
    }
}

/// Whether somebody could answer a conversation of `team_id` now: an online operator with
/// the chat permission who is available (the widget offers the offline form otherwise, CF7).
#[derive(Message)]
#[rtype(result = "bool")]
pub struct CanAnswer {
    /// The channel's team.
    pub team_id: Option<i64>,
}

impl Handler<CanAnswer> for Router {
    type Result = bool;

    fn handle(&mut self, msg: CanAnswer, _ctx: &mut Self::Context) -> bool {
        self.online
            .values()
            .filter(|o| o.available && o.may_chat)
            .any(|o| msg.team_id.is_none_or(|t| o.teams.contains(&t)))
    }
}

/// Runs the inactivity sweep now (tests move the clock, then ask).
#[derive(Message)]
#[rtype(result = "()")]
pub struct SweepNow;

impl Handler<SweepNow> for Router {
    type Result = ();

    fn handle(&mut self, _msg: SweepNow, ctx: &mut Self::Context) {
        self.sweep_inactive(ctx);
    }
}

/// Asks for the routing state (the console's overview, tests).
#[derive(Message)]
#[rtype(result = "RoutingSnapshot")]
pub struct Snapshot;

impl Handler<Snapshot> for Router {
    type Result = MessageResult<Snapshot>;

    fn handle(&mut self, _msg: Snapshot, _ctx: &mut Self::Context) -> Self::Result {
        let mut online: Vec<OnlineOperator> = self
            .online
            .iter()
            .map(|(id, o)| OnlineOperator {
                id: *id,
                name: o.name.clone(),
                load: self.busy(*id),
                capacity: o.capacity,
                available: o.available,
            })
            .collect();
        online.sort_by_key(|o| o.id);
        MessageResult(RoutingSnapshot {
            queue: self.queue.iter().map(|(id, _)| *id).collect(),
            online,
            settings: self.settings.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::conversation::{InjectPanic, Post, Posted, Reply};

    async fn post(rt: &crate::runtime::Runtime, id: i64, visitor: i64, client_id: &str) -> Posted {
        let addr = rt.conversation(id).await.expect("conversation");
        let (tx, rx) = tokio::sync::oneshot::channel();
        rt.deliver(
            &addr,
            Post {
                by: Requester::Visitor(visitor),
                kind: crate::model::MessageKind::Text,
                client_id: client_id.into(),
                body: "hello".into(),
                reply_to: None,
                mentions: Vec::new(),
                attachment: None,
                reply: Reply::Http(tx),
                from_session: None,
            },
        )
        .expect("delivered");
        rx.await.expect("answered").expect("stored")
    }

    #[actix_rt::test]
    async fn a_conversation_that_panicked_is_restarted_from_the_database() {
        let dir = tempfile::tempdir().expect("dir");
        let mut cfg = crate::config::Config::defaults().expect("defaults");
        cfg.addr = "127.0.0.1:0".parse().expect("addr");
        cfg.database_url = dir.path().join("t.db").to_string_lossy().into_owned();
        cfg.log = "off".into();
        let server = crate::app::start(cfg).await.expect("starts");
        let rt = server.runtime.clone();
        let visitor = rt
            .core
            .store
            .call(|s| s.add_visitor("digest", 0))
            .await
            .expect("visitor");
        let first = rt
            .router
            .send(Open {
                visitor_id: visitor,
                channel: "web".into(),
            })
            .await
            .expect("router")
            .expect("opened");
        let id = rt
            .core
            .registry
            .iter()
            .find(|e| *e.value() == first)
            .map(|e| *e.key())
            .expect("registered");
        let posted = post(&rt, id, visitor, "a").await;
        assert_eq!(posted.seq, 2);

        first.do_send(InjectPanic);
        for _ in 0..100 {
            if !first.connected() {
                break;
            }
            actix_rt::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(!first.connected(), "the failed actor is gone");

        // The next request restarts it from the database, with its sequence and the client
        // ids it had stored.
        let again = post(&rt, id, visitor, "b").await;
        assert_eq!(again.seq, 3);
        let retry = post(&rt, id, visitor, "a").await;
        assert_eq!((retry.seq, retry.duplicate), (2, true));
        let restarted = rt.live_conversation(id).expect("live");
        assert!(restarted != first);
        server.shutdown().await;
    }
}
