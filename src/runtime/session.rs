//! What visitor and operator sessions share: heartbeat constants, the flood limit, frame
//! size checks and the close codes. This and the two session modules are the only users of
//! `actix-web-actors` (deprecated upstream in favour of actix-ws), so a move touches only
//! the transport.

use crate::error::{AppError, ErrorCode};
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
