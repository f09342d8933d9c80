//! Wire frames of protocol version 1: JSON objects tagged by `type`, documented one by one
//! in `docs/PROTOCOL.md`. Incoming frames are parsed into typed enums; outgoing ones are
//! serialised once into a shared [`ByteString`] and handed to every recipient.

use crate::error::{AppError, ErrorCode};
use crate::model::{ConversationView, MessageView};
use bytestring::ByteString;
use serde::{Deserialize, Serialize};

/// The protocol version this server speaks.
pub const PROTOCOL_VERSION: u32 = 1;

/// Longest accepted client message id.
pub const MAX_CLIENT_ID_LEN: usize = 64;

/// A client id as the bundled clients make them (the widget's `randomId` and the console's
/// `newClientId` in JavaScript; the load harness and the persistence bench call this): the
/// prefix, `at_ms` as 9 base-36 digits, then 16 random hex digits. Ids that start with the
/// time are added at the end of the client-id index (docs/PROTOCOL.md, "Idempotent
/// retries"); the server accepts any id of 1 to [`MAX_CLIENT_ID_LEN`] bytes.
pub fn time_first_client_id(prefix: &str, at_ms: u64) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut rest = at_ms;
    let mut time = ['0'; 9];
    for digit in time.iter_mut().rev() {
        *digit = char::from(DIGITS[(rest % 36) as usize]);
        rest /= 36;
    }
    let time: String = time.iter().collect();
    format!("{prefix}{time}{:016x}", rand::random::<u64>())
}

/// Frames a visitor's widget sends.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum VisitorFrame {
    /// First frame: who I am (token) and what I have already seen.
    Hello {
        /// Protocol version the client speaks.
        #[serde(default)]
        v: Option<u32>,
        /// The token the server issued earlier; absent for a new visitor.
        #[serde(default)]
        token: Option<String>,
        /// The conversation to resume; absent means the visitor's latest.
        #[serde(default)]
        conversation_id: Option<i64>,
        /// The last sequence number the client holds; the server replays what follows.
        #[serde(default)]
        last_seq: Option<i64>,
        /// The channel the widget belongs to.
        #[serde(default)]
        channel: Option<String>,
        /// A logged-in user of the site, vouched for by the site's signature (ID8).
        #[serde(default)]
        identity: Option<SignedIdentity>,
        /// The code of a "continue the conversation" link from an e-mail (CF8).
        #[serde(default)]
        continue_code: Option<String>,
    },
    /// A text message.
    Message {
        /// Idempotency key chosen by the client.
        client_id: String,
        /// The text.
        body: String,
        /// The sequence number of the message this one answers (OC10).
        #[serde(default)]
        reply_to: Option<i64>,
        /// A file uploaded with `POST /api/uploads` (XB1); the body may then be empty.
        #[serde(default)]
        attachment: Option<String>,
    },
    /// A form the widget showed: `name` (CF2), `prechat` (ID7) or `offline` (CF7).
    Form {
        /// Idempotency key of the `form` event.
        client_id: String,
        /// Which form.
        form: String,
        /// What the visitor filled in.
        fields: crate::crm::FormFields,
    },
    /// The visitor started or stopped typing.
    Typing {
        /// Typing now.
        on: bool,
    },
    /// The visitor has seen everything up to `seq`.
    Read {
        /// Sequence number.
        seq: i64,
    },
    /// Application-level keep-alive; answered with `pong`.
    Ping {},
}

/// Frames the operator console sends.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum OperatorFrame {
    /// First frame: the bearer token from login.
    Auth {
        /// Token.
        token: String,
        /// Where a reconnecting console left off (XB14).
        #[serde(default)]
        resume: Option<Resume>,
    },
    /// A reply in a conversation, or a note only operators see.
    Message {
        /// Conversation.
        conversation_id: i64,
        /// Idempotency key.
        client_id: String,
        /// The text.
        body: String,
        /// The sequence number of the message this one answers (OC10).
        #[serde(default)]
        reply_to: Option<i64>,
        /// `note` for an operators-only note in a visitor conversation; `text` otherwise.
        #[serde(default)]
        kind: Option<String>,
        /// A file uploaded with `POST /api/uploads` (XB1); the body may then be empty.
        #[serde(default)]
        attachment: Option<String>,
        /// Operators a note mentions, who get a notification (XB15).
        #[serde(default)]
        mentions: Option<Vec<i64>>,
    },
    /// Hands a conversation to another operator, or back to the queue (OC8).
    Assign {
        /// Conversation.
        conversation_id: i64,
        /// Idempotency key for the `assigned` event.
        client_id: String,
        /// The new responsible operator; `null` sends it back to the queue.
        operator_id: Option<i64>,
        /// Why, for the audit trail (XB12).
        #[serde(default)]
        reason: Option<String>,
    },
    /// Takes an unassigned conversation.
    Take {
        /// Conversation.
        conversation_id: i64,
        /// Idempotency key for the `assigned` event.
        client_id: String,
    },
    /// Saves what the operator is typing (XB3); an empty body deletes the draft.
    Draft {
        /// Conversation.
        conversation_id: i64,
        /// The text so far.
        body: String,
        /// The message being answered.
        #[serde(default)]
        reply_to: Option<i64>,
    },
    /// Whether the operator takes new conversations now.
    Availability {
        /// Takes new conversations.
        available: bool,
    },
    /// Typing indicator in a conversation.
    Typing {
        /// Conversation.
        conversation_id: i64,
        /// Typing now.
        on: bool,
    },
    /// Seen up to `seq` in a conversation.
    Read {
        /// Conversation.
        conversation_id: i64,
        /// Sequence number.
        seq: i64,
    },
    /// Close a conversation.
    Close {
        /// Conversation.
        conversation_id: i64,
        /// Idempotency key for the `closed` event; the `ack` names it.
        client_id: String,
    },
    /// Reopen a closed conversation.
    Reopen {
        /// Conversation.
        conversation_id: i64,
        /// Idempotency key for the `reopened` event; the `ack` names it.
        client_id: String,
    },
    /// Keep-alive; answered with `pong`.
    Ping {},
}

/// A logged-in user as the site vouches for them: its user id and the HMAC-SHA256 of that
/// id made with the channel's identity secret (ID8).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedIdentity {
    /// The site's id for the user.
    pub user_id: String,
    /// Lower-case hex HMAC-SHA256 of `user_id` with the channel's secret.
    pub signature: String,
    /// The user's name, as the site knows it (not signed: stored as typed).
    #[serde(default)]
    pub name: Option<String>,
    /// The user's e-mail, as the site knows it (not signed: stored as typed).
    #[serde(default)]
    pub email: Option<String>,
}

/// Where a console left off: the epoch and last event id of the `ready` and frames it
/// received.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resume {
    /// The server's epoch from the last `ready`.
    pub epoch: String,
    /// The last `eid` received.
    pub last_eid: u64,
}

/// Frames the server sends, to visitors and operators alike.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame<'a> {
    /// Answer to a visitor's `hello`.
    Welcome {
        /// Protocol version.
        v: u32,
        /// A newly issued visitor token; present only when the server created the identity.
        #[serde(skip_serializing_if = "Option::is_none")]
        visitor_token: Option<&'a str>,
        /// The conversation resumed, if any.
        conversation: Option<&'a ConversationView>,
    },
    /// Answer to an operator's `auth`.
    Ready {
        /// Protocol version.
        v: u32,
        /// Who is logged in.
        operator: &'a crate::store::operators::Operator,
        /// The event-id epoch of this server process.
        epoch: &'a str,
        /// The missed events follow (`true`), or the console must reload (`false`).
        resumed: bool,
    },
    /// A conversation was opened or changed status.
    Conversation {
        /// Its header.
        conversation: &'a ConversationView,
    },
    /// A message or event, committed.
    Message {
        /// The message.
        #[serde(flatten)]
        message: &'a MessageView,
    },
    /// A client's message is durable under this sequence number.
    Ack {
        /// The client's key.
        client_id: &'a str,
        /// Conversation.
        conversation_id: i64,
        /// Assigned sequence number.
        seq: i64,
        /// The key had been stored before; nothing new was written.
        duplicate: bool,
    },
    /// Someone is typing.
    Typing {
        /// Conversation.
        conversation_id: i64,
        /// `visitor` or `operator`.
        from: &'a str,
        /// The operator's name, when an operator types.
        #[serde(skip_serializing_if = "Option::is_none")]
        name: Option<&'a str>,
        /// Typing now.
        on: bool,
    },
    /// Someone has seen messages up to `seq`.
    Read {
        /// Conversation.
        conversation_id: i64,
        /// `visitor` or `operator`.
        by: &'a str,
        /// In an internal chat, which member.
        #[serde(skip_serializing_if = "Option::is_none")]
        operator_id: Option<i64>,
        /// Sequence number.
        seq: i64,
    },
    /// The visitor's widget has received messages up to `seq` (OC15).
    Delivered {
        /// Conversation.
        conversation_id: i64,
        /// Sequence number.
        seq: i64,
    },
    /// The visitor's place in the waiting queue, from 1; `null` once an operator has it
    /// (XB13).
    Queue {
        /// Conversation.
        conversation_id: i64,
        /// Place in the queue.
        position: Option<usize>,
    },
    /// The operator's draft changed on another device (XB3).
    Draft {
        /// Conversation.
        conversation_id: i64,
        /// The text; empty when the draft was sent or cleared.
        body: &'a str,
        /// The message being answered.
        reply_to: Option<i64>,
    },
    /// Answer to `ping`.
    Pong {},
    /// Something went wrong with a frame; the session stays open.
    Error {
        /// Stable code.
        code: ErrorCode,
        /// Human-readable reason.
        message: &'a str,
        /// The client id of the frame that failed, when it had one.
        #[serde(skip_serializing_if = "Option::is_none")]
        client_id: Option<&'a str>,
        /// Whether retrying the same frame later may work.
        retryable: bool,
        /// Suggested wait before a retry.
        #[serde(skip_serializing_if = "Option::is_none")]
        retry_after_ms: Option<u64>,
    },
}

impl ServerFrame<'_> {
    /// Serialises the frame once, to share among recipients.
    pub fn encode(&self) -> ByteString {
        match serde_json::to_string(self) {
            Ok(s) => ByteString::from(s),
            // Serialising these plain structs cannot fail; answer with a valid frame anyway.
            Err(_) => ByteString::from_static(
                r#"{"type":"error","code":"internal","message":"encoding failed","retryable":false}"#,
            ),
        }
    }
}

/// An error frame for `err`, naming the client id of the frame that caused it.
pub fn error_frame(err: &AppError, client_id: Option<&str>) -> ByteString {
    ServerFrame::Error {
        code: err.code,
        message: &err.message,
        client_id,
        retryable: err.code.retryable(),
        retry_after_ms: err.retry_after_ms,
    }
    .encode()
}

/// Parses a text frame into `T`, telling apart malformed JSON, an unknown `type` and a
/// known type with bad fields.
pub fn parse_frame<T: serde::de::DeserializeOwned>(
    text: &str,
    known: &[&str],
) -> Result<T, AppError> {
    match serde_json::from_str::<T>(text) {
        Ok(frame) => Ok(frame),
        Err(err) => {
            let value: serde_json::Value = serde_json::from_str(text)
                .map_err(|e| AppError::new(ErrorCode::BadJson, format!("malformed JSON: {e}")))?;
            let Some(kind) = value.get("type").and_then(|t| t.as_str()) else {
                return Err(AppError::bad_request(
                    "a frame must be a JSON object with a string `type`",
                ));
            };
            if !known.contains(&kind) {
                return Err(AppError::new(
                    ErrorCode::UnknownType,
                    format!(
                        "unknown frame type `{}`",
                        kind.chars().take(40).collect::<String>()
                    ),
                ));
            }
            Err(AppError::bad_request(format!(
                "invalid `{kind}` frame: {err}"
            )))
        }
    }
}

/// Frame types a visitor may send.
pub const VISITOR_TYPES: &[&str] = &["hello", "message", "form", "typing", "read", "ping"];
/// Frame types an operator may send.
pub const OPERATOR_TYPES: &[&str] = &[
    "auth",
    "message",
    "typing",
    "read",
    "close",
    "reopen",
    "assign",
    "take",
    "draft",
    "availability",
    "ping",
];

/// Most operators one note may mention.
pub const MAX_MENTIONS: usize = 20;
/// Longest reason of an assignment, in characters.
pub const MAX_REASON_CHARS: usize = 500;

/// Checks a client id against the limits.
pub fn validate_client_id(client_id: &str) -> Result<(), AppError> {
    if client_id.is_empty() || client_id.len() > MAX_CLIENT_ID_LEN {
        return Err(AppError::bad_request(format!(
            "client_id must be 1 to {MAX_CLIENT_ID_LEN} bytes"
        )));
    }
    Ok(())
}

/// Checks a client id and a message body against the limits.
pub fn validate_message(client_id: &str, body: &str, max_chars: usize) -> Result<(), AppError> {
    validate_message_with(client_id, body, max_chars, false)
}

/// [`validate_message`] for a message that may carry a file instead of text.
pub fn validate_message_with(
    client_id: &str,
    body: &str,
    max_chars: usize,
    has_attachment: bool,
) -> Result<(), AppError> {
    validate_client_id(client_id)?;
    if body.trim().is_empty() && !has_attachment {
        return Err(AppError::bad_request("the message is empty"));
    }
    if body.chars().count() > max_chars {
        return Err(AppError::new(
            ErrorCode::TooLarge,
            format!("the message is longer than {max_chars} characters"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_first_client_ids_carry_the_time_in_nine_base36_digits() {
        let id = time_first_client_id("w-", 36 * 36 + 35);
        assert!(id.starts_with("w-00000010z"), "{id}");
        assert_eq!(id.len(), 2 + 9 + 16);
        assert!(id[11..].bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
        // 2026's milliseconds take 8 digits, so ids sort by time as strings.
        assert!(
            time_first_client_id("w-", 1_795_305_600_000)
                < time_first_client_id("w-", 1_795_305_600_001)
        );
    }

    #[test]
    fn parse_tells_errors_apart() {
        let e = parse_frame::<VisitorFrame>("{nope", VISITOR_TYPES).unwrap_err();
        assert_eq!(e.code, ErrorCode::BadJson);
        let e = parse_frame::<VisitorFrame>(r#"{"type":"dance"}"#, VISITOR_TYPES).unwrap_err();
        assert_eq!(e.code, ErrorCode::UnknownType);
        let e = parse_frame::<VisitorFrame>(r#"{"type":"message"}"#, VISITOR_TYPES).unwrap_err();
        assert_eq!(e.code, ErrorCode::BadRequest);
        let e = parse_frame::<VisitorFrame>("[1,2]", VISITOR_TYPES).unwrap_err();
        assert_eq!(e.code, ErrorCode::BadRequest);
        assert!(matches!(
            parse_frame::<VisitorFrame>(r#"{"type":"typing","on":true}"#, VISITOR_TYPES),
            Ok(VisitorFrame::Typing { on: true })
        ));
    }
}
