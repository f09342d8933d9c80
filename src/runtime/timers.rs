//! The Timers actor: fires the durable timers (XB9) when they fall due, including the ones
//! that fell due while the process was down (it looks at start and every second). E-mail
//! timers compose their e-mail in the store, in one transaction with the firing; the
//! transcript offer goes through its conversation's actor, which records it as an event.

use super::conversation::{Offer, Reply, Requester};
use super::router::Router;
use super::Core;
use crate::error::AppError;
use crate::mail::outbox::DueTimer;
use actix::prelude::*;
use std::sync::Arc;
use std::time::Duration;

/// How often due timers are looked for.
const TICK: Duration = Duration::from_secs(1);
/// Timers fired per tick (the next tick takes the rest).
const PER_TICK: i64 = 200;

/// The actor.
pub struct Timers {
    core: Arc<Core>,
    router: Addr<Router>,
    /// A round is under way; ticks meanwhile are skipped.
    busy: bool,
}

impl Timers {
    /// The actor for a runtime.
    pub fn new(core: Arc<Core>, router: Addr<Router>) -> Self {
        Timers {
            core,
            router,
            busy: false,
        }
    }

    fn round(&mut self, ctx: &mut Context<Self>) {
        if self.busy {
            return;
        }
        self.busy = true;
        let core = self.core.clone();
        let router = self.router.clone();
        let fut = async move {
            let now = core.clock.now_ms();
            let due = core
                .store
                .call(move |s| s.due_timers(now, PER_TICK))
                .await?;
            let mut mailed = false;
            for timer in due {
                let (id, conversation_id) = (timer.id, timer.conversation_id);
                let kind = timer.kind.clone();
                // One timer that cannot fire must not hold up the others: it stays due and
                // is tried again next tick, the rest of the round goes on.
                match fire(&core, &router, timer, now).await {
                    Ok(wrote) => mailed |= wrote,
                    Err(e) => tracing::warn!(
                        timer_id = id,
                        conversation_id,
                        kind = %kind,
                        code = e.code.as_str(),
                        "a timer failed; skipped this round"
                    ),
                }
            }
            if mailed {
                core.mail_wake.notify_one();
            }
            Ok::<_, AppError>(())
        };
        ctx.spawn(fut.into_actor(self).map(|res, act, _| {
            act.busy = false;
            if let Err(e) = res {
                tracing::warn!(code = e.code.as_str(), "firing timers failed; retrying");
            }
        }));
    }
}

/// Fires one due timer; `true` when it wrote an e-mail to the outbox.
async fn fire(
    core: &Arc<Core>,
    router: &Addr<Router>,
    timer: DueTimer,
    now: i64,
) -> Result<bool, AppError> {
    let composer = core.mail.composer.clone();
    let id = timer.id;
    match timer.kind.as_str() {
        "unread" => Ok(core
            .store
            .call(move |s| s.fire_unread(id, &composer, now))
            .await?
            .is_some()),
        "transcript" => Ok(core
            .store
            .call(move |s| s.fire_transcript(id, &composer, now))
            .await?
            .is_some()),
        "transcript_offer" => {
            let addr = match core.registry.get(&timer.conversation_id) {
                Some(a) if a.connected() => a.clone(),
                _ => router
                    .send(super::router::Lookup {
                        id: timer.conversation_id,
                    })
                    .await
                    .map_err(|_| AppError::internal())??,
            };
            // The timer's id is the event's client id: a second tick before the first
            // commits is recognised as the same request.
            let _ = addr.try_send(Offer {
                form: "transcript",
                by: Requester::System,
                client_id: Some(format!("timer-{id}")),
                timer: Some(id),
                reply: Reply::None,
                from_session: None,
            });
            Ok(false)
        }
        other => {
            tracing::warn!(timer_id = id, kind = other, "unknown timer; dropped");
            Ok(false)
        }
    }
}

impl Actor for Timers {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Timers that fell due while the process was down fire now.
        self.round(ctx);
        ctx.run_interval(TICK, |act, ctx| act.round(ctx));
    }
}

/// Fires what is due now (tests move the clock, then ask).
#[derive(Message)]
#[rtype(result = "()")]
pub struct FireNow;

impl Handler<FireNow> for Timers {
    type Result = ();

    fn handle(&mut self, _msg: FireNow, ctx: &mut Self::Context) {
        self.round(ctx);
    }
}
