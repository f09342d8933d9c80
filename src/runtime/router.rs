//! The Router: one per node. It creates conversation actors (spread over a pool of
//! arbiters, one per core), keeps the registry sessions read without queueing behind it,
//! and supervises: a conversation actor that died (a panic drops it) is found disconnected
//! on the next lookup and restarted from the database, where everything acknowledged is.

use super::conversation::{Conversation, Loaded, CLIENT_IDS_REMEMBERED};
use super::Core;
use crate::error::AppError;
use actix::prelude::*;
use std::sync::Arc;

/// Committed messages loaded into a restarted conversation's replay tail.
const TAIL_LOADED: i64 = 64;

/// The router actor.
pub struct Router {
    core: Arc<Core>,
    arbiters: Vec<Arbiter>,
    next: usize,
}

impl Router {
    /// A router that runs conversations on `threads` arbiters.
    pub fn new(core: Arc<Core>, threads: usize) -> Self {
        let arbiters = (0..threads.max(1)).map(|_| Arbiter::new()).collect();
        Router {
            core,
            arbiters,
            next: 0,
        }
    }

    fn spawn(&mut self, loaded: Loaded, me: Addr<Router>) -> Addr<Conversation> {
        let id = loaded.row.id;
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
        addr
    }
}

impl Actor for Router {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(1 << 16);
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        for arbiter in &self.arbiters {
            arbiter.stop();
        }
    }
}

fn load(core: &Core, id: i64, fresh: bool) -> Result<Loaded, AppError> {
    let store = &core.store;
    let row = store
        .conversation(id)?
        .ok_or_else(|| AppError::not_found("no such conversation"))?;
    let max_seq = store.max_seq(id)?;
    let client_ids = store.recent_client_ids(id, CLIENT_IDS_REMEMBERED as i64)?;
    let tail = store.messages_between(id, (max_seq - TAIL_LOADED).max(0), max_seq, TAIL_LOADED)?;
    Ok(Loaded {
        row,
        max_seq,
        client_ids,
        tail,
        fresh,
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

/// Opens a new conversation for a visitor.
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
                    let row = core2
                        .store
                        .add_conversation(msg.visitor_id, &msg.channel, now)?;
                    Ok::<_, AppError>(Loaded {
                        row,
                        max_seq: 0,
                        client_ids: Vec::new(),
                        tail: Vec::new(),
                        fresh: true,
                    })
                })
                .await
                .map_err(|_| AppError::internal())?
            }
            .into_actor(self)
            .map(|loaded, act, ctx| Ok(act.spawn(loaded?, ctx.address()))),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Author;
    use crate::runtime::conversation::{InjectPanic, Post, Posted, Reply};
    use std::time::Duration;

    async fn post(rt: &crate::runtime::Runtime, id: i64, visitor: i64, client_id: &str) -> Posted {
        let addr = rt.conversation(id).await.expect("conversation");
        let (tx, rx) = tokio::sync::oneshot::channel();
        rt.deliver(
            &addr,
            Post {
                author: Author::visitor(),
                author_id: visitor,
                client_id: client_id.into(),
                body: "hello".into(),
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
