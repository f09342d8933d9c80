//! The actor runtime: a [`router::Router`] that owns the registry of conversations and
//! supervises them, one [`conversation::Conversation`] actor per active conversation (the
//! single writer of its sequence), one session actor per websocket, and the
//! [`persister::Persister`] that commits in batches.

pub mod conversation;
pub mod hub;
pub mod operator;
pub mod persister;
pub mod router;
pub mod session;
pub mod timers;
pub mod visitor;

use crate::clock::SharedClock;
use crate::config::Config;
use crate::error::{AppError, ErrorCode};
use crate::store::Store;
use crate::telemetry::Metrics;
use actix::{Addr, Message};
use bytestring::ByteString;
use conversation::Conversation;
use dashmap::DashMap;
use std::sync::Arc;

/// A serialised frame for one websocket; cheap to clone, so one encoding serves every
/// recipient.
#[derive(Message, Clone, Debug)]
#[rtype(result = "()")]
pub struct Outbound {
    /// For `message` frames, the sequence number, so a session never delivers one twice.
    pub seq: Option<i64>,
    /// The JSON text.
    pub frame: ByteString,
}

impl Outbound {
    /// A frame that carries no sequence number.
    pub fn plain(frame: ByteString) -> Self {
        Outbound { seq: None, frame }
    }
}

/// An operator's account changed (groups and so the chat permission, administrator,
/// capacity...): their open consoles judge the next frame by it at once, not a heartbeat
/// later (OC1).
#[derive(Message, Clone, Debug)]
#[rtype(result = "()")]
pub struct AccountChanged {
    /// The operator as stored now.
    pub operator: crate::store::operators::Operator,
}

/// Asks a session to close its socket with "going away" (server shutdown).
#[derive(Message, Clone, Copy, Debug)]
#[rtype(result = "()")]
pub struct Shutdown;

/// What every actor shares: settings, storage, the persister, metrics, the clock, the
/// registry of live conversations and the hub of sessions.
pub struct Core {
    /// Settings.
    pub config: Arc<Config>,
    /// Storage.
    pub store: Store,
    /// The write path.
    pub persister: persister::Persister,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Time.
    pub clock: SharedClock,
    /// Live conversation actors by id; sessions look here first so they need not queue
    /// behind the router.
    pub registry: DashMap<i64, Addr<Conversation>>,
    /// Sessions, for fan-out to operators and for shutdown.
    pub hub: hub::Hub,
    /// Conversations with a visitor's widget connected now (headers read from the
    /// database take `visitor_online` from here).
    pub visitors_online: dashmap::DashSet<i64>,
    /// Channels by name, read once: every visitor's `hello` needs its channel's settings.
    /// Administrators' changes evict the entry.
    pub channels: DashMap<String, Arc<crate::store::teams::Channel>>,
    /// E-mail settings (signing key, addresses, SMTP server).
    pub mail: Arc<crate::mail::MailSettings>,
    /// Wakes the sender when the outbox has something new.
    pub mail_wake: Arc<tokio::sync::Notify>,
}

/// The runtime as handlers and sessions use it.
#[derive(Clone)]
pub struct Runtime {
    /// Shared state.
    pub core: Arc<Core>,
    /// The router actor.
    pub router: Addr<router::Router>,
    /// The durable timers.
    pub timers: Addr<timers::Timers>,
}

impl Runtime {
    /// The live actor of a conversation, started from the database if needed.
    pub async fn conversation(&self, id: i64) -> Result<Addr<Conversation>, AppError> {
        if let Some(addr) = self.live_conversation(id) {
            return Ok(addr);
        }
        self.router.send(router::Lookup { id }).await.map_err(|_| {
            AppError::new(ErrorCode::Busy, "the router is unavailable").retry_after(100)
        })?
    }

    /// A channel by name (from the cache when possible); `bad_request` when unknown.
    pub async fn channel(&self, name: &str) -> Result<Arc<crate::store::teams::Channel>, AppError> {
        if let Some(c) = self.core.channels.get(name) {
            return Ok(c.clone());
        }
        let key = name.to_string();
        let found = self
            .core
            .store
            .call(move |s| s.channel_by_name(&key))
            .await?
            .ok_or_else(|| {
                AppError::bad_request(format!(
                    "unknown channel `{}`",
                    name.chars().take(64).collect::<String>()
                ))
            })?;
        let found = Arc::new(found);
        self.core.channels.insert(name.to_string(), found.clone());
        Ok(found)
    }

    /// Forgets cached channels after an administrator changed one.
    pub fn forget_channels(&self) {
        self.core.channels.clear();
    }

    /// The conversation's actor if it is in memory and alive.
    pub fn live_conversation(&self, id: i64) -> Option<Addr<Conversation>> {
        self.core
            .registry
            .get(&id)
            .map(|a| a.clone())
            .filter(|a| a.connected())
    }

    /// Sends a message to a conversation actor, in order with earlier sends from the same
    /// caller; a dead actor is reported as a retryable error.
    pub fn deliver<M>(&self, addr: &Addr<Conversation>, msg: M) -> Result<(), AppError>
    where
        M: Message + Send + 'static,
        M::Result: Send,
        Conversation: actix::Handler<M>,
    {
        addr.try_send(msg).map_err(|_| {
            AppError::new(ErrorCode::Busy, "the conversation is restarting; retry").retry_after(100)
        })
    }
}
