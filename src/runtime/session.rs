//! What visitor and operator sessions share: heartbeat constants, the flood limit, frame
//! size checks and the close codes. This and the two session modules are the only users of
//! `actix-web-actors` (deprecated upstream in favour of actix-ws), so a move touches only
//! the transport.

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

/// Bytes a socket may deliver without completing a frame before it is cut off. The
/// websocket codec buffers a whole frame before comparing its length with the limit, so
/// without this a client announcing a huge frame could make the server buffer all of it.
pub fn undecoded_limit(max_frame_bytes: usize) -> usize {
    codec_limit(max_frame_bytes).saturating_mul(2) + 64 * 1024
}

/// Counts the bytes received since the session last decoded a frame; shared between the
/// socket's input stream ([`BoundedPayload`]) and the session, which resets it per frame.
#[derive(Clone, Default)]
pub struct Undecoded(Arc<AtomicUsize>);

impl Undecoded {
    /// A frame was decoded: everything before it is accounted for.
    pub fn reset(&self) {
        self.0.store(0, Ordering::Relaxed);
    }

    /// Whether the input was cut off for exceeding `limit`.
    pub fn exceeded(&self, limit: usize) -> bool {
        self.0.load(Ordering::Relaxed) > limit
    }
}

/// The socket's input stream, failing once too many bytes arrive without a frame.
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
        match Pin::new(&mut self.inner).poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                let total =
                    self.undecoded.0.fetch_add(chunk.len(), Ordering::Relaxed) + chunk.len();
                if total > self.limit {
                    Poll::Ready(Some(Err(PayloadError::Overflow)))
                } else {
                    Poll::Ready(Some(Ok(chunk)))
                }
            }
            other => other,
        }
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
