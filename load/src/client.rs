//! Websocket client helpers shared by the scenarios: connecting, the `hello`/`auth`
//! handshakes, reading server frames into a typed [`Frame`], and the send timestamp that
//! message bodies carry so the receiver can measure delivery latency.

use crate::net::{self, Endpoint};
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use serde::Deserialize;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

/// A client websocket.
pub type Ws = WebSocketStream<TcpStream>;

/// How long the harness waits for a handshake answer (`welcome`, `ready`).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// Read buffer for idle connections: tungstenite allocates it eagerly (128 KiB by default),
/// which would make the harness, not the server, the memory bottleneck.
pub const SMALL_READ_BUFFER: usize = 4 * 1024;
/// Read buffer for busy connections.
pub const BUSY_READ_BUFFER: usize = 64 * 1024;

/// How a socket is opened.
#[derive(Debug, Clone, Copy)]
pub struct Dial {
    /// Index into the loopback source address pool, if spreading.
    pub source: Option<usize>,
    /// Shrunk kernel receive buffer, for clients meant to push back.
    pub recv_buffer: Option<u32>,
    /// tungstenite read buffer.
    pub read_buffer: usize,
}

impl Dial {
    /// An ordinary connection from the given source slot.
    pub fn from_source(index: usize, read_buffer: usize) -> Dial {
        Dial {
            source: Some(index),
            recv_buffer: None,
            read_buffer,
        }
    }
}

/// Opens the websocket at `path` (`/ws/visitor` or `/ws/operator`).
pub async fn connect(ep: &Endpoint, path: &str, dial: Dial) -> Result<Ws, String> {
    let tcp = ep
        .tcp(dial.source, dial.recv_buffer)
        .await
        .map_err(|e| format!("tcp connect: {e}"))?;
    let config = WebSocketConfig::default()
        .read_buffer_size(dial.read_buffer)
        .write_buffer_size(0);
    let (ws, _) = tokio_tungstenite::client_async_with_config(ep.ws_url(path), tcp, Some(config))
        .await
        .map_err(|e| format!("websocket handshake: {e}"))?;
    Ok(ws)
}

/// A server frame, with the fields the harness looks at (serde ignores the rest).
#[derive(Debug, Default, Deserialize)]
pub struct Frame {
    /// `welcome`, `ready`, `message`, `ack`, `error`, `conversation`, ...
    #[serde(rename = "type")]
    pub ty: String,
    /// The sender's idempotency key (`message`, `ack`, `error`).
    pub client_id: Option<String>,
    /// The conversation (`message`, `ack`).
    pub conversation_id: Option<i64>,
    /// Sequence number (`message`, `ack`).
    pub seq: Option<i64>,
    /// `text` or `event` (`message`).
    pub kind: Option<String>,
    /// Message text (`message`).
    pub body: Option<String>,
    /// Who wrote it (`message`).
    pub author: Option<AuthorView>,
    /// Error code (`error`).
    pub code: Option<String>,
    /// Suggested wait before a retry (`error`).
    pub retry_after_ms: Option<u64>,
    /// Whether an ack was for an already stored message.
    pub duplicate: Option<bool>,
}

impl Frame {
    /// Whether this is a text message written by a visitor.
    pub fn is_visitor_text(&self) -> bool {
        self.kind.as_deref() == Some("text")
            && self.author.as_ref().is_some_and(|a| a.kind == "visitor")
    }

    /// Whether this is a text message written by an operator.
    pub fn is_operator_text(&self) -> bool {
        self.kind.as_deref() == Some("text")
            && self.author.as_ref().is_some_and(|a| a.kind == "operator")
    }
}

/// The author of a message.
#[derive(Debug, Default, Deserialize)]
pub struct AuthorView {
    /// `visitor`, `operator` or `system`.
    pub kind: String,
}

/// What reading a socket produced.
#[derive(Debug)]
pub enum Event {
    /// A JSON text frame.
    Frame(Frame),
    /// The server sent a close frame, with its code if any.
    Closed(Option<u16>),
    /// The connection ended without a close frame.
    Eof,
    /// A text frame that is not a JSON server frame; the socket is still usable.
    Garbled,
    /// A read error; the socket is finished.
    Error(String),
}

/// Reads until something other than a control frame arrives.
pub async fn next_event<S>(stream: &mut S) -> Event
where
    S: Stream<Item = Result<Message, WsError>> + Unpin,
{
    loop {
        match stream.next().await {
            Some(Ok(Message::Text(text))) => {
                return match serde_json::from_str::<Frame>(text.as_str()) {
                    Ok(f) => Event::Frame(f),
                    Err(_) => Event::Garbled,
                }
            }
            Some(Ok(Message::Close(frame))) => {
                return Event::Closed(frame.map(|f| u16::from(f.code)))
            }
            Some(Ok(_)) => continue,
            Some(Err(WsError::ConnectionClosed | WsError::AlreadyClosed)) | None => {
                return Event::Eof
            }
            Some(Err(e)) => return Event::Error(e.to_string()),
        }
    }
}

/// Sends one text frame.
pub async fn send<S>(sink: &mut S, text: String) -> Result<(), String>
where
    S: Sink<Message, Error = WsError> + Unpin,
{
    sink.send(Message::text(text))
        .await
        .map_err(|e| format!("send failed: {e}"))
}

/// Sends several text frames with one flush at the end.
pub async fn send_all<S>(sink: &mut S, frames: Vec<String>) -> Result<(), String>
where
    S: Sink<Message, Error = WsError> + Unpin,
{
    if frames.is_empty() {
        return Ok(());
    }
    for text in frames {
        sink.feed(Message::text(text))
            .await
            .map_err(|e| format!("send failed: {e}"))?;
    }
    sink.flush().await.map_err(|e| format!("send failed: {e}"))
}

/// Closes a socket politely, without waiting long for the server's answer.
pub async fn close(ws: &mut Ws) {
    let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(None)).await;
}

/// Why a socket ended, for the report.
pub fn why_ended(ev: Event) -> String {
    match ev {
        Event::Closed(Some(code)) => format!("closed by the server with {code}"),
        Event::Closed(None) => "closed by the server".to_string(),
        Event::Eof => "connection ended without a close frame".to_string(),
        Event::Error(e) => e,
        Event::Frame(_) | Event::Garbled => "unexpected frame".to_string(),
    }
}

/// Waits for a frame of type `want`, failing on an `error` frame, a close or the timeout.
async fn wait_for(ws: &mut Ws, want: &str) -> Result<Frame, String> {
    let fut = async {
        loop {
            match next_event(ws).await {
                Event::Frame(f) if f.ty == want => return Ok(f),
                Event::Frame(f) if f.ty == "error" => {
                    return Err(format!(
                        "error frame `{}` while waiting for {want}",
                        f.code.unwrap_or_default()
                    ))
                }
                Event::Frame(_) | Event::Garbled => continue,
                Event::Closed(code) => return Err(format!("closed ({code:?}) before {want}")),
                Event::Eof => return Err(format!("connection ended before {want}")),
                Event::Error(e) => return Err(e),
            }
        }
    };
    tokio::time::timeout(HANDSHAKE_TIMEOUT, fut)
        .await
        .map_err(|_| format!("no {want} within {} s", HANDSHAKE_TIMEOUT.as_secs()))?
}

/// The next frame, whatever its type.
pub async fn next_frame(ws: &mut Ws) -> Result<Frame, String> {
    loop {
        match next_event(ws).await {
            Event::Frame(f) => return Ok(f),
            Event::Garbled => continue,
            other => return Err(why_ended(other)),
        }
    }
}

/// Sends `hello` as a new visitor and waits for `welcome`.
pub async fn hello(ws: &mut Ws) -> Result<(), String> {
    send(ws, r#"{"type":"hello","v":1}"#.to_string()).await?;
    wait_for(ws, "welcome").await.map(|_| ())
}

/// Sends a visitor's message and waits for its ack; returns the conversation id.
pub async fn first_message(ws: &mut Ws, client_id: &str, body: &str) -> Result<i64, String> {
    send(ws, visitor_message(client_id, body)).await?;
    loop {
        let ack = wait_for(ws, "ack").await?;
        if ack.client_id.as_deref() == Some(client_id) {
            return ack
                .conversation_id
                .ok_or_else(|| "an ack without conversation_id".to_string());
        }
    }
}

/// Opens an operator socket and authenticates it with a login token.
pub async fn operator(ep: &Endpoint, token: &str, dial: Dial) -> Result<Ws, String> {
    let mut ws = connect(ep, "/ws/operator", dial).await?;
    let auth = serde_json::json!({"type": "auth", "token": token}).to_string();
    send(&mut ws, auth).await?;
    wait_for(&mut ws, "ready").await?;
    Ok(ws)
}

/// Logs in over HTTP and returns the bearer token.
pub async fn login(ep: &Endpoint, email: &str, password: &str) -> Result<String, String> {
    let body = serde_json::json!({"email": email, "password": password}).to_string();
    let res = net::http(ep, "POST", "/api/login", Some(&body)).await?;
    if res.status != 200 {
        return Err(format!(
            "login as {email} failed: HTTP {} {}",
            res.status, res.body
        ));
    }
    let v: serde_json::Value =
        serde_json::from_str(&res.body).map_err(|e| format!("login answer is not JSON: {e}"))?;
    v["token"]
        .as_str()
        .map(String::from)
        .ok_or_else(|| "the login answer has no token".to_string())
}

/// A fresh `client_id` as the widget (`w-`) and the console (`o-`) make them: the prefix,
/// the time as 9 base-36 digits of milliseconds, then 16 random hex digits. The server's
/// client-id index is ordered by client id, so ids that start with the time are added at its
/// end; the harness sends what real clients send, so its figures are theirs.
pub fn client_id(prefix: &str) -> String {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    charla::protocol::time_first_client_id(prefix, u64::try_from(now_ms).unwrap_or(u64::MAX))
}

/// A visitor `message` frame.
pub fn visitor_message(client_id: &str, body: &str) -> String {
    serde_json::json!({"type": "message", "client_id": client_id, "body": body}).to_string()
}

/// An operator `message` frame.
pub fn operator_message(conversation_id: i64, client_id: &str, body: &str) -> String {
    serde_json::json!({
        "type": "message",
        "conversation_id": conversation_id,
        "client_id": client_id,
        "body": body,
    })
    .to_string()
}

/// Microseconds since the Unix epoch (wall clock, so sender and receiver agree).
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// A message body carrying its send time: `<label> t=<µs since epoch>`.
pub fn stamped_body(label: &str) -> String {
    format!("{label} t={}", now_us())
}

/// The send time a body carries, if any.
pub fn body_sent_us(body: &str) -> Option<u64> {
    let at = body.find(" t=")?;
    let digits: &str = &body[at + 3..];
    let end = digits
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(digits.len());
    digits[..end].parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ids_start_with_the_time_as_the_widget_makes_them() {
        let first = client_id("w-");
        std::thread::sleep(std::time::Duration::from_millis(2));
        let later = client_id("w-");
        assert_eq!(first.len(), 2 + 9 + 16, "{first}");
        assert!(first.starts_with("w-") && first[2..].bytes().all(|b| b.is_ascii_alphanumeric()));
        assert!(first < later, "{first} should sort before {later}");
        assert_ne!(first[11..], later[11..], "the random part repeats");
    }

    #[test]
    fn bodies_carry_their_send_time() {
        let b = stamped_body("v=3 n=7");
        let t = body_sent_us(&b).unwrap();
        assert!(t > 1_600_000_000_000_000);
        assert_eq!(body_sent_us("x t=12 pad"), Some(12));
        assert_eq!(body_sent_us("no stamp"), None);
    }

    #[test]
    fn frames_parse_with_unknown_fields() {
        let f: Frame = serde_json::from_str(
            r#"{"type":"message","conversation_id":7,"seq":3,"kind":"text","author":{"kind":"operator","id":3,"name":"Ana"},"body":"b","client_id":"o-1","created_at":1}"#,
        )
        .unwrap();
        assert!(f.is_operator_text() && !f.is_visitor_text());
        assert_eq!((f.conversation_id, f.seq), (Some(7), Some(3)));
    }
}
