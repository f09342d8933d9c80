//! The Persister: one thread that owns the write path. Conversations hand it requests; it
//! drains its queue into a batch (up to `batch_max` writes, waiting at most `batch_wait_us`
//! for more once it holds one), commits the batch in one transaction, and only then answers
//! each request. A message is acknowledged to its sender after that answer, never before.
//!
//! It is a thread-backed actor rather than an actix actor because group commit needs to
//! drain the whole mailbox at once, which actix's `SyncArbiter` cannot do. The queue is
//! bounded: when it is full `submit` refuses at once and the sender is told to retry
//! (`busy`), so nothing is dropped silently and memory stays bounded when the database falls
//! behind.

use crate::error::{AppError, ErrorCode};
use crate::store::messages::Write;
use crate::store::{Store, StoreError};
use crate::telemetry::Metrics;
use actix::{Message, Recipient};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TryRecvError, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a batch is retried while the database is unreachable before its senders are
/// told `storage_unavailable`.
const RETRY_WINDOW: Duration = Duration::from_secs(5);
/// First pause between retries; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(10);
/// Longest pause between retries.
const MAX_BACKOFF: Duration = Duration::from_millis(500);

/// Writes to commit together, and whom to tell.
pub struct PersistRequest {
    /// The writes, committed in this order within the batch.
    pub writes: Vec<Write>,
    /// The requester's number for this request, echoed in [`Persisted`].
    pub ticket: u64,
    /// Who to tell once the writes are durable (or failed).
    pub reply: PersistReply,
}

/// Where the persister reports a request's outcome.
pub enum PersistReply {
    /// Nobody waits (read marks).
    None,
    /// An actor, as a [`Persisted`] message with the request's ticket.
    Actor(Recipient<Persisted>),
    /// A task awaiting the outcome.
    Channel(tokio::sync::oneshot::Sender<Result<(), AppError>>),
}

/// The outcome of a [`PersistRequest`].
#[derive(Message)]
#[rtype(result = "()")]
pub struct Persisted {
    /// The request's ticket.
    pub ticket: u64,
    /// `Ok` once committed.
    pub result: Result<(), AppError>,
}

enum Job {
    Write(PersistRequest),
    Stop(mpsc::Sender<()>),
}

/// Handle to the persister thread; cheap to clone.
#[derive(Clone)]
pub struct Persister {
    tx: SyncSender<Job>,
    metrics: Arc<Metrics>,
}

/// Batch limits.
#[derive(Debug, Clone, Copy)]
pub struct BatchLimits {
    /// Most writes per transaction.
    pub max_writes: usize,
    /// Longest wait for more writes once one is held.
    pub max_wait: Duration,
    /// Requests the queue holds.
    pub queue: usize,
}

impl Persister {
    /// Starts the persister thread.
    pub fn start(
        store: Store,
        metrics: Arc<Metrics>,
        limits: BatchLimits,
    ) -> std::io::Result<Persister> {
        let (tx, rx) = mpsc::sync_channel(limits.queue);
        let thread_metrics = metrics.clone();
        std::thread::Builder::new()
            .name("charla-persister".into())
            .spawn(move || run(rx, store, thread_metrics, limits))?;
        Ok(Persister { tx, metrics })
    }

    /// Queues a request, or refuses at once with `busy` when the queue is full.
    pub fn submit(&self, req: PersistRequest) -> Result<(), AppError> {
        match self.tx.try_send(Job::Write(req)) {
            Ok(()) => {
                self.metrics
                    .persist_queue_depth
                    .fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(TrySendError::Full(_)) => {
                self.metrics
                    .persist_rejected
                    .fetch_add(1, Ordering::Relaxed);
                Err(AppError::new(
                    ErrorCode::Busy,
                    "the server is saturated; retry the same message",
                )
                .retry_after(50))
            }
            Err(TrySendError::Disconnected(_)) => Err(AppError::new(
                ErrorCode::Busy,
                "the server is shutting down; retry the same message later",
            )
            .retry_after(1000)),
        }
    }

    /// Commits everything queued so far, then stops the thread. Blocks until done.
    pub fn stop(&self) {
        let (ack_tx, ack_rx) = mpsc::channel();
        if self.tx.send(Job::Stop(ack_tx)).is_ok() {
            let _ = ack_rx.recv();
        }
    }
}

fn run(rx: Receiver<Job>, store: Store, metrics: Arc<Metrics>, limits: BatchLimits) {
    let mut batch: Vec<PersistRequest> = Vec::new();
    loop {
        let mut stop: Option<mpsc::Sender<()>> = None;
        let mut writes = 0usize;
        match rx.recv() {
            Ok(Job::Write(r)) => {
                writes += r.writes.len();
                batch.push(r);
            }
            Ok(Job::Stop(ack)) => stop = Some(ack),
            Err(_) => return,
        }
        let deadline = Instant::now() + limits.max_wait;
        while stop.is_none() && writes < limits.max_writes {
            let next = match rx.try_recv() {
                Ok(job) => job,
                Err(TryRecvError::Disconnected) => break,
                Err(TryRecvError::Empty) => {
                    let now = Instant::now();
                    if now >= deadline {
                        break;
                    }
                    match rx.recv_timeout(deadline - now) {
                        Ok(job) => job,
                        Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
                    }
                }
            };
            match next {
                Job::Write(r) => {
                    writes += r.writes.len();
                    batch.push(r);
                }
                Job::Stop(ack) => stop = Some(ack),
            }
        }
        if stop.is_some() {
            // Shutting down: whatever is still queued is committed too.
            while let Ok(job) = rx.try_recv() {
                if let Job::Write(r) = job {
                    batch.push(r);
                }
            }
        }
        metrics
            .persist_queue_depth
            .fetch_sub(batch.len() as i64, Ordering::Relaxed);
        commit(&store, &metrics, std::mem::take(&mut batch));
        if let Some(ack) = stop {
            let _ = ack.send(());
            return;
        }
    }
}

fn commit(store: &Store, metrics: &Metrics, batch: Vec<PersistRequest>) {
    if batch.is_empty() {
        return;
    }
    let writes: Vec<&Write> = batch.iter().flat_map(|r| r.writes.iter()).collect();
    match commit_with_retry(store, metrics, &writes) {
        Ok(()) => {
            drop(writes);
            for r in batch {
                answer(r, Ok(()));
            }
        }
        Err(e) if batch.len() > 1 && !e.is_transient() => {
            // One request poisons the batch: commit each alone so only it fails.
            drop(writes);
            for r in batch {
                let own: Vec<&Write> = r.writes.iter().collect();
                let result = commit_with_retry(store, metrics, &own).map_err(AppError::from);
                answer(r, result);
            }
        }
        Err(e) => {
            drop(writes);
            let err = AppError::from(e);
            for r in batch {
                answer(r, Err(err.clone()));
            }
        }
    }
}

fn commit_with_retry(
    store: &Store,
    metrics: &Metrics,
    writes: &[&Write],
) -> Result<(), StoreError> {
    let started = Instant::now();
    let mut backoff = FIRST_BACKOFF;
    loop {
        let attempt = Instant::now();
        match store.commit_batch(writes) {
            Ok(()) => {
                metrics
                    .commit_seconds
                    .observe(attempt.elapsed().as_secs_f64());
                metrics.batch_size.observe(writes.len() as f64);
                let messages = writes
                    .iter()
                    .filter(|w| matches!(w, Write::Message(_)))
                    .count();
                metrics
                    .messages_persisted
                    .fetch_add(messages as u64, Ordering::Relaxed);
                return Ok(());
            }
            Err(e) if e.is_transient() && started.elapsed() < RETRY_WINDOW => {
                tracing::warn!(error = %e, backoff_ms = backoff.as_millis() as u64, "batch commit failed; retrying");
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
            Err(e @ StoreError::Conflict(_)) => {
                // An old retry the conversation no longer remembered; it is answered with
                // the stored sequence number, so this is routine, not a failure.
                tracing::debug!(error = %e, writes = writes.len(), "batch refused by a uniqueness rule");
                return Err(e);
            }
            Err(e) => {
                metrics.persist_failures.fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %e, writes = writes.len(), "batch commit failed");
                return Err(e);
            }
        }
    }
}

fn answer(r: PersistRequest, result: Result<(), AppError>) {
    match r.reply {
        PersistReply::None => {}
        PersistReply::Actor(reply) => reply.do_send(Persisted {
            ticket: r.ticket,
            result,
        }),
        PersistReply::Channel(tx) => {
            let _ = tx.send(result);
        }
    }
}
