//! The hub: which sessions are connected, so conversations can fan out to operators and
//! shutdown can reach every socket. Kept narrow on purpose (publish, join, leave) so the
//! real-time transport behind it can change without touching the actors.
//!
//! Operators' frames carry an event id (`eid`) and the last [`RESUME_EVENTS`] of them stay
//! in a ring, so a console that lost its socket resumes from its last event id and misses
//! nothing (XB14); a console further behind, or one that talked to an earlier process, is
//! told to reload instead.

use super::{AccountChanged, Outbound, Shutdown};
use actix::Recipient;
use bytestring::ByteString;
use dashmap::DashMap;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Operator events kept for consoles that reconnect.
pub const RESUME_EVENTS: usize = 10_000;

/// Which operators a frame is for.
#[derive(Debug, Clone)]
pub enum Audience {
    /// Every operator on the live feed (everyone with the chat permission).
    All,
    /// These operators only (an internal chat's members, a draft's owner).
    Only(Arc<[i64]>),
}

impl Audience {
    fn includes(&self, operator_id: i64) -> bool {
        match self {
            Audience::All => true,
            Audience::Only(ids) => ids.contains(&operator_id),
        }
    }
}

struct FeedSession {
    operator_id: i64,
    sink: Recipient<Outbound>,
}

/// The operators' feed: who listens, and the recent events for resumption.
struct Feed {
    next_eid: u64,
    ring: VecDeque<(u64, Audience, ByteString)>,
    sessions: HashMap<u64, FeedSession>,
}

/// What a console gets when it joins the feed.
pub struct Joined {
    /// The events it missed, in order (empty when it was not resuming or could not).
    pub replay: Vec<ByteString>,
    /// Whether `replay` covers everything since the console's last event id; `false`
    /// means the console must reload its lists and open conversations.
    pub resumed: bool,
}

/// Every connected session.
pub struct Hub {
    next_id: AtomicU64,
    sessions: DashMap<u64, Recipient<Shutdown>>,
    /// Authenticated operator sessions, on the feed or not: operator and where account
    /// changes go.
    accounts: DashMap<u64, (i64, Recipient<AccountChanged>)>,
    feed: Mutex<Feed>,
    /// Changes on every start, so event ids from an earlier process are never mistaken
    /// for this one's.
    epoch: String,
}

impl Default for Hub {
    fn default() -> Self {
        Hub {
            next_id: AtomicU64::new(0),
            sessions: DashMap::new(),
            accounts: DashMap::new(),
            feed: Mutex::new(Feed {
                next_eid: 1,
                ring: VecDeque::new(),
                sessions: HashMap::new(),
            }),
            epoch: crate::auth::new_token().chars().take(12).collect(),
        }
    }
}

impl Hub {
    /// A new session id, unique in this process.
    pub fn next_session_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// This process's event-id epoch.
    pub fn epoch(&self) -> &str {
        &self.epoch
    }

    /// Registers any session for shutdown.
    pub fn join(&self, id: u64, shutdown: Recipient<Shutdown>) {
        self.sessions.insert(id, shutdown);
    }

    fn feed(&self) -> std::sync::MutexGuard<'_, Feed> {
        // A panic while holding the lock leaves the feed consistent (every change is one
        // push or insert), so a poisoned lock is still usable.
        self.feed.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Puts an operator session on the live feed. With `resume` (epoch, last event id),
    /// the events it missed come back in `Joined::replay`; the session receives every later
    /// event live, with nothing lost or doubled in between.
    pub fn join_operator(
        &self,
        id: u64,
        operator_id: i64,
        sink: Recipient<Outbound>,
        resume: Option<(&str, u64)>,
    ) -> Joined {
        let mut feed = self.feed();
        let mut joined = Joined {
            replay: Vec::new(),
            resumed: false,
        };
        if let Some((epoch, last)) = resume {
            let oldest = feed.ring.front().map_or(feed.next_eid, |e| e.0);
            // Resumable when nothing after `last` has fallen off the ring.
            if epoch == self.epoch && last + 1 >= oldest && last < feed.next_eid {
                joined.resumed = true;
                joined.replay = feed
                    .ring
                    .iter()
                    .filter(|(eid, audience, _)| *eid > last && audience.includes(operator_id))
                    .map(|(_, _, frame)| frame.clone())
                    .collect();
            }
        }
        feed.sessions.insert(id, FeedSession { operator_id, sink });
        joined
    }

    /// Takes an operator session off the live feed (it stays registered for shutdown).
    pub fn leave_operators(&self, id: u64) {
        self.feed().sessions.remove(&id);
    }

    /// Forgets a session.
    pub fn leave(&self, id: u64) {
        self.sessions.remove(&id);
        self.accounts.remove(&id);
        self.leave_operators(id);
    }

    /// Registers an authenticated operator session for [`Hub::account_changed`].
    pub fn join_account(&self, id: u64, operator_id: i64, sink: Recipient<AccountChanged>) {
        self.accounts.insert(id, (operator_id, sink));
    }

    /// Tells every session of the operator that their account changed.
    pub fn account_changed(&self, operator: &crate::store::operators::Operator) {
        for entry in self.accounts.iter() {
            let (operator_id, sink) = entry.value();
            if *operator_id == operator.id {
                sink.do_send(AccountChanged {
                    operator: operator.clone(),
                });
            }
        }
    }

    /// Sends an event to the operators of `audience` but the session `except`, with an
    /// event id, and keeps it for consoles that resume.
    pub fn publish_operators(&self, frame: &ByteString, audience: Audience, except: Option<u64>) {
        let mut feed = self.feed();
        let eid = feed.next_eid;
        feed.next_eid += 1;
        let stamped = stamp(frame, eid);
        for (sid, s) in &feed.sessions {
            if Some(*sid) != except && audience.includes(s.operator_id) {
                s.sink.do_send(Outbound {
                    seq: None,
                    frame: stamped.clone(),
                });
            }
        }
        feed.ring.push_back((eid, audience, stamped));
        if feed.ring.len() > RESUME_EVENTS {
            feed.ring.pop_front();
        }
    }

    /// Sends a passing signal (typing) to the operators of `audience`; it is not kept.
    pub fn signal_operators(&self, frame: &ByteString, audience: &Audience, except: Option<u64>) {
        let feed = self.feed();
        for (sid, s) in &feed.sessions {
            if Some(*sid) != except && audience.includes(s.operator_id) {
                s.sink.do_send(Outbound::plain(frame.clone()));
            }
        }
    }

    /// Whether an operator has a console on the live feed.
    pub fn operator_online(&self, operator_id: i64) -> bool {
        self.feed()
            .sessions
            .values()
            .any(|s| s.operator_id == operator_id)
    }

    /// Asks every session to close with "going away".
    pub fn shutdown_all(&self) {
        for entry in self.sessions.iter() {
            entry.value().do_send(Shutdown);
        }
    }

    /// Sessions connected now.
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }
}

/// The frame with `"eid":N` as its first field; frames are JSON objects, so this is a
/// splice, not a second encoding.
fn stamp(frame: &ByteString, eid: u64) -> ByteString {
    match frame.strip_prefix('{') {
        Some(rest) => ByteString::from(format!("{{\"eid\":{eid},{rest}")),
        None => frame.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamping_keeps_the_frame_valid_json() {
        let f = ByteString::from_static(r#"{"type":"pong"}"#);
        let s = stamp(&f, 42);
        let v: serde_json::Value = serde_json::from_str(&s).expect("json");
        assert_eq!(v["eid"], 42);
        assert_eq!(v["type"], "pong");
    }
}
