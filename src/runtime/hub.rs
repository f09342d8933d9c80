//! The hub: which sessions are connected, so conversations can fan out to every operator
//! and shutdown can reach every socket. Kept narrow on purpose (publish, join, leave) so the
//! real-time transport behind it can change without touching the actors.

use super::{Outbound, Shutdown};
use actix::Recipient;
use dashmap::DashMap;
use std::sync::atomic::{AtomicU64, Ordering};

/// Every connected session.
#[derive(Default)]
pub struct Hub {
    next_id: AtomicU64,
    operators: DashMap<u64, Recipient<Outbound>>,
    sessions: DashMap<u64, Recipient<Shutdown>>,
}

impl Hub {
    /// A new session id, unique in this process.
    pub fn next_session_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Registers any session for shutdown.
    pub fn join(&self, id: u64, shutdown: Recipient<Shutdown>) {
        self.sessions.insert(id, shutdown);
    }

    /// Registers an operator session for the live feed.
    pub fn join_operator(&self, id: u64, sink: Recipient<Outbound>) {
        self.operators.insert(id, sink);
    }

    /// Takes an operator session off the live feed (it stays registered for shutdown).
    pub fn leave_operators(&self, id: u64) {
        self.operators.remove(&id);
    }

    /// Forgets a session.
    pub fn leave(&self, id: u64) {
        self.sessions.remove(&id);
        self.operators.remove(&id);
    }

    /// Sends a frame to every operator session but `except`.
    pub fn publish_operators(&self, out: &Outbound, except: Option<u64>) {
        for entry in self.operators.iter() {
            if Some(*entry.key()) != except {
                entry.value().do_send(out.clone());
            }
        }
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
