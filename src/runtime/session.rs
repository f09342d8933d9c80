//! What visitor and operator sessions share: heartbeat constants, the flood limit, frame
//! size checks and the close codes. This, the two session modules and the transport
//! (`http::websocket`) are the only users of `actix-web-actors` (deprecated upstream in
//! favour of actix-ws), so a move touches only them.

use crate::error::{AppError, ErrorCode};
use actix_web::error::PayloadError;
use actix_web::web::Bytes;
use futures_util::Stream;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// How often the server pings a client.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(15);
/// A client silent for this long is disconnected.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(45);
/// The websocket codec's own frame limit: frames above it close the socket (1009). Frames
/// between the configured limit and this one get a `too_large` error frame instead.
pub fn codec_limit(max_frame_bytes: usize) -> usize {
    max_frame_bytes.saturating_mul(4).max(64 * 1024)
}

/// Most bytes of a socket's input held undecoded. The websocket stream reads everything
/// the socket has before decoding a frame, so a client that sends faster than its session
/// handles frames, or announces a huge frame, would otherwise grow that buffer without
/// bound.
pub fn undecoded_limit(max_frame_bytes: usize) -> usize {
    codec_limit(max_frame_bytes).saturating_mul(2) + 64 * 1024
}

/// Upper bound of a frame header (2 bytes, 8 of extended length, 4 of mask).
const FRAME_HEADER_MAX: usize = 14;

/// Input bytes received against input bytes the session has handled, shared between the
/// socket's input stream ([`BoundedPayload`]) and the session.
#[derive(Clone, Default)]
pub struct Undecoded {
    received: Arc<AtomicUsize>,
    handled: Arc<AtomicUsize>,
}

impl Undecoded {
    /// The session handled a frame with this payload length.
    pub fn handled(&self, payload_len: usize) {
        self.handled
            .fetch_add(payload_len + FRAME_HEADER_MAX, Ordering::Relaxed);
    }

    fn buffered(&self) -> usize {
        self.received
            .load(Ordering::Relaxed)
            .saturating_sub(self.handled.load(Ordering::Relaxed))
    }
}

/// The socket's input stream. While more than `limit` bytes wait undecoded it stops
/// reading the socket, which pushes back on the client through TCP; what is buffered always
/// holds a whole frame then (frames are shorter than half the limit), so the session keeps
/// handling frames and reading resumes. A client stuck mid-frame is dropped by the
/// heartbeat.
pub struct BoundedPayload<S> {
    inner: S,
    undecoded: Undecoded,
    limit: usize,
}

impl<S> BoundedPayload<S> {
    /// Wraps the request payload.
    pub fn new(inner: S, undecoded: Undecoded, limit: usize) -> Self {
        BoundedPayload {
            inner,
            undecoded,
            limit,
        }
    }
}

impl<S> Stream for BoundedPayload<S>
where
    S: Stream<Item = Result<Bytes, PayloadError>> + Unpin,
{
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.undecoded.buffered() > self.limit {
            // The session is re-polled after each frame it handles; no waker is needed.
            return Poll::Pending;
        }
        let item = Pin::new(&mut self.inner).poll_next(cx);
        if let Poll::Ready(Some(Ok(chunk))) = &item {
            self.undecoded
                .received
                .fetch_add(chunk.len(), Ordering::Relaxed);
        }
        item
    }
}

/// Bytes of a socket's output written to the socket, counted by the websocket transport
/// (`http::websocket`) so the session can tell how much its client has left unread:
/// actix-web-actors otherwise queues frames for a client that stops reading without any
/// bound.
#[derive(Clone, Default)]
pub struct Drained(Arc<AtomicUsize>);

impl Drained {
    /// Bytes written to the socket so far.
    pub fn get(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }

    /// The transport wrote `n` more bytes.
    pub fn add(&self, n: usize) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
}

/// What a session has queued for its client against what was written.
pub struct Backlog {
    queued: usize,
    drained: Drained,
    limit: usize,
}

impl Backlog {
    /// A backlog bounded by `limit` bytes.
    pub fn new(drained: Drained, limit: usize) -> Self {
        Backlog {
            queued: 0,
            drained,
            limit,
        }
    }

    /// Counts a frame about to be queued; `false` when the client is too far behind.
    pub fn push(&mut self, len: usize) -> bool {
        self.queued += len;
        // Frame headers make the written count slightly larger than the payloads counted.
        self.queued.saturating_sub(self.drained.get()) <= self.limit
    }
}

/// The payload length of a received frame, for [`Undecoded::handled`].
pub fn payload_len(msg: &actix_web_actors::ws::Message) -> usize {
    use actix_http::ws::Item;
    use actix_web_actors::ws::Message;
    match msg {
        Message::Text(t) => t.len(),
        Message::Binary(b) | Message::Ping(b) | Message::Pong(b) => b.len(),
        Message::Close(r) => r
            .as_ref()
            .map_or(0, |r| 2 + r.description.as_ref().map_or(0, String::len)),
        Message::Continuation(
            Item::FirstText(b) | Item::FirstBinary(b) | Item::Continue(b) | Item::Last(b),
        ) => b.len(),
        Message::Nop => 0,
    }
}

/// A token bucket limiting frames per second.
pub struct RateLimit {
    per_sec: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl RateLimit {
    /// `per_sec == 0` means no limit.
    pub fn new(per_sec: u32, burst: u32) -> Self {
        RateLimit {
            per_sec: per_sec as f64,
            burst: burst.max(1) as f64,
            tokens: burst.max(1) as f64,
            last: Instant::now(),
        }
    }

    /// Takes a token, or says how the frame is refused.
    pub fn check(&mut self) -> Result<(), AppError> {
        if self.per_sec <= 0.0 {
            return Ok(());
        }
        let now = Instant::now();
        let elapsed = now.duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.per_sec).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            let wait_ms = ((1.0 - self.tokens) / self.per_sec * 1000.0).ceil() as u64;
            Err(
                AppError::new(ErrorCode::RateLimited, "too many frames; slow down")
                    .retry_after(wait_ms),
            )
        }
    }
}

/// Refuses a frame over the configured size.
pub fn check_size(len: usize, max: usize) -> Result<(), AppError> {
    if len > max {
        Err(AppError::new(
            ErrorCode::TooLarge,
            format!("the frame is {len} bytes; the limit is {max}"),
        ))
    } else {
        Ok(())
    }
}

/// What both session actors provide to the shared transport handling below.
pub trait WsSession: actix::Actor<Context = actix_web_actors::ws::WebsocketContext<Self>> {
    /// Something arrived: the client is alive, and `payload_len` input bytes are handled.
    fn heard(&mut self, payload_len: usize);
    /// A text frame.
    fn on_text(&mut self, text: &str, ctx: &mut actix_web_actors::ws::WebsocketContext<Self>);
    /// Sends an error frame.
    fn send_error(
        &self,
        ctx: &mut actix_web_actors::ws::WebsocketContext<Self>,
        err: &AppError,
        client_id: Option<&str>,
    );
}

/// Closes a socket with a code and reason, and stops its session.
pub fn close_with<A>(
    ctx: &mut actix_web_actors::ws::WebsocketContext<A>,
    code: actix_web_actors::ws::CloseCode,
    why: &str,
) where
    A: actix::Actor<Context = actix_web_actors::ws::WebsocketContext<A>>,
{
    use actix::ActorContext;
    ctx.close(Some(actix_web_actors::ws::CloseReason {
        code,
        description: Some(why.into()),
    }));
    ctx.stop();
}

/// Handles one item of a session's input: text goes to the session; binary and fragmented
/// frames get an error; pings are answered; a close, an oversized frame (1009) or a
/// protocol error (1002) end the session.
pub fn handle_input<A: WsSession>(
    act: &mut A,
    item: Result<actix_web_actors::ws::Message, actix_web_actors::ws::ProtocolError>,
    ctx: &mut actix_web_actors::ws::WebsocketContext<A>,
) {
    use actix::ActorContext;
    use actix_web_actors::ws::{CloseCode, Message, ProtocolError};
    act.heard(item.as_ref().map_or(0, payload_len));
    match item {
        Ok(Message::Text(text)) => act.on_text(&text, ctx),
        Ok(Message::Binary(_)) => act.send_error(
            ctx,
            &AppError::new(
                ErrorCode::BadJson,
                "binary frames are not accepted; send JSON text",
            ),
            None,
        ),
        Ok(Message::Continuation(_)) => act.send_error(
            ctx,
            &AppError::bad_request("fragmented frames are not accepted; send each frame whole"),
            None,
        ),
        Ok(Message::Ping(p)) => ctx.pong(&p),
        Ok(Message::Pong(_)) | Ok(Message::Nop) => {}
        Ok(Message::Close(_)) => ctx.stop(),
        Err(ProtocolError::Overflow) => close_with(ctx, CloseCode::Size, "frame too large"),
        Err(_) => close_with(ctx, CloseCode::Protocol, "websocket protocol error"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bucket_allows_a_burst_then_refuses() {
        let mut r = RateLimit::new(1, 3);
        assert!(r.check().is_ok());
        assert!(r.check().is_ok());
        assert!(r.check().is_ok());
        let err = r.check().unwrap_err();
        assert_eq!(err.code, ErrorCode::RateLimited);
        assert!(err.retry_after_ms.is_some());
        let mut off = RateLimit::new(0, 1);
        for _ in 0..1000 {
            assert!(off.check().is_ok());
        }
    }
}
