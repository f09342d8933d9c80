//! One error type for HTTP answers and websocket error frames, with stable codes that
//! clients match on. `docs/PROTOCOL.md` lists every code; a test keeps the two in step.

use actix_web::{http::StatusCode, HttpResponse, ResponseError};
use serde::Serialize;
use std::fmt;

/// The stable error codes of the protocol. Never rename one: clients match on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The frame or body is not valid JSON.
    BadJson,
    /// The frame's `type` is not one the server knows.
    UnknownType,
    /// The frame is JSON of a known type but a field is missing or wrong.
    BadRequest,
    /// The frame or message is over the size limit.
    TooLarge,
    /// A visitor frame came before `hello`, or an operator frame before `auth`.
    HelloRequired,
    /// The channel's pre-chat form has required fields the visitor's contact lacks (ID7):
    /// the visitor fills it in before their first message.
    PrechatRequired,
    /// The token is missing, wrong or expired, or the login failed.
    Unauthorized,
    /// The caller is known but may not do this.
    Forbidden,
    /// No such conversation or resource.
    NotFound,
    /// The conversation is closed; an operator must reopen it first.
    ConversationClosed,
    /// The conversation is assigned to another operator: only its responsible operator
    /// writes in it (OC14, OC15).
    NotAssigned,
    /// Too many frames too fast; slow down.
    RateLimited,
    /// The server is saturated; retry the same frame (same client id) after `retry_after_ms`.
    Busy,
    /// The database cannot be reached; retry later with the same client id.
    StorageUnavailable,
    /// The request conflicts with existing data (a duplicate e-mail, say).
    Conflict,
    /// Something failed inside the server; the details are in its log.
    Internal,
}

impl ErrorCode {
    /// Every code, for documentation tests.
    pub const ALL: &'static [ErrorCode] = &[
        ErrorCode::BadJson,
        ErrorCode::UnknownType,
        ErrorCode::BadRequest,
        ErrorCode::TooLarge,
        ErrorCode::HelloRequired,
        ErrorCode::PrechatRequired,
        ErrorCode::Unauthorized,
        ErrorCode::Forbidden,
        ErrorCode::NotFound,
        ErrorCode::ConversationClosed,
        ErrorCode::NotAssigned,
        ErrorCode::RateLimited,
        ErrorCode::Busy,
        ErrorCode::StorageUnavailable,
        ErrorCode::Conflict,
        ErrorCode::Internal,
    ];

    /// The code as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadJson => "bad_json",
            ErrorCode::UnknownType => "unknown_type",
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::HelloRequired => "hello_required",
            ErrorCode::PrechatRequired => "prechat_required",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotFound => "not_found",
            ErrorCode::ConversationClosed => "conversation_closed",
            ErrorCode::NotAssigned => "not_assigned",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::Busy => "busy",
            ErrorCode::StorageUnavailable => "storage_unavailable",
            ErrorCode::Conflict => "conflict",
            ErrorCode::Internal => "internal",
        }
    }

    /// The HTTP status that carries this code.
    pub fn http_status(self) -> StatusCode {
        match self {
            ErrorCode::BadJson | ErrorCode::UnknownType | ErrorCode::BadRequest => {
                StatusCode::BAD_REQUEST
            }
            ErrorCode::HelloRequired | ErrorCode::PrechatRequired => StatusCode::BAD_REQUEST,
            ErrorCode::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorCode::Forbidden | ErrorCode::NotAssigned => StatusCode::FORBIDDEN,
            ErrorCode::NotFound => StatusCode::NOT_FOUND,
            ErrorCode::ConversationClosed | ErrorCode::Conflict => StatusCode::CONFLICT,
            ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::Busy | ErrorCode::StorageUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Whether sending the same request again later may succeed.
    pub fn retryable(self) -> bool {
        matches!(
            self,
            ErrorCode::Busy | ErrorCode::StorageUnavailable | ErrorCode::RateLimited
        )
    }
}

/// An error with its stable code, a sentence for humans and, when retrying makes sense,
/// how long to wait.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppError {
    /// Stable code.
    pub code: ErrorCode,
    /// Human-readable reason; never holds chat text or personal data.
    pub message: String,
    /// Suggested wait before a retry, for retryable codes.
    pub retry_after_ms: Option<u64>,
}

impl AppError {
    /// An error with a code and a reason.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        AppError {
            code,
            message: message.into(),
            retry_after_ms: None,
        }
    }

    /// The same error with a retry hint.
    pub fn retry_after(mut self, ms: u64) -> Self {
        self.retry_after_ms = Some(ms);
        self
    }

    /// Shorthand for a `forbidden` error.
    pub fn forbidden(message: impl Into<String>) -> Self {
        AppError::new(ErrorCode::Forbidden, message)
    }

    /// Shorthand for a `not_found` error.
    pub fn not_found(message: impl Into<String>) -> Self {
        AppError::new(ErrorCode::NotFound, message)
    }

    /// Shorthand for a `bad_request` error.
    pub fn bad_request(message: impl Into<String>) -> Self {
        AppError::new(ErrorCode::BadRequest, message)
    }

    /// Shorthand for an `unauthorized` error.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        AppError::new(ErrorCode::Unauthorized, message)
    }

    /// Shorthand for an `internal` error; the caller logs the cause.
    pub fn internal() -> Self {
        AppError::new(ErrorCode::Internal, "internal error; see the server log")
    }
}

impl fmt::Display for AppError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

impl std::error::Error for AppError {}

/// The JSON body of an HTTP error: `{"error": {"code": ..., "message": ...}}`.
#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
}

#[derive(Serialize)]
struct ErrorDetail<'a> {
    code: ErrorCode,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    retry_after_ms: Option<u64>,
}

impl ResponseError for AppError {
    fn status_code(&self) -> StatusCode {
        self.code.http_status()
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status_code()).json(ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: &self.message,
                retry_after_ms: self.retry_after_ms,
            },
        })
    }
}

impl From<crate::store::StoreError> for AppError {
    fn from(e: crate::store::StoreError) -> Self {
        use crate::store::StoreError;
        match e {
            StoreError::Unavailable(why) => {
                tracing::warn!(error = %why, "database unavailable");
                AppError::new(
                    ErrorCode::StorageUnavailable,
                    "the database cannot be reached",
                )
                .retry_after(1000)
            }
            StoreError::NotFound => AppError::not_found("no such record"),
            StoreError::Conflict(what) => AppError::new(ErrorCode::Conflict, what),
            StoreError::Query(why) => {
                tracing::error!(error = %why, "database error");
                AppError::internal()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_match_serde_names() {
        for code in ErrorCode::ALL {
            let json = serde_json::to_string(code).expect("serialise");
            assert_eq!(json, format!("\"{}\"", code.as_str()));
        }
    }
}
