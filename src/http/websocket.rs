//! The websocket transport. Upgrade requests leave actix-http's HTTP/1 dispatcher here and
//! the socket is served by a session actor (actix-web-actors' `WebsocketContext`) through a
//! reader and a writer of our own that hold no buffer while the connection idles.
//!
//! Why: the HTTP/1 dispatcher keeps an 8 KiB read buffer and an 8 KiB write buffer for as
//! long as its connection lives. For a request that is nothing; for a websocket that idles
//! for hours they were the larger part of its memory (an idle visitor took 13.0 KB inside
//! the dispatcher and 7.8 KB here; docs/BENCHMARKS.md, "Connections"). Here a read fills a
//! buffer on the stack and keeps only the bytes it received, and the writer holds only
//! frames not yet written.
//!
//! The writer also keeps polling the session while its client does not read, so the
//! session's heartbeat and its backlog limit (which sheds such a client with 1008) go on
//! working; its queue is bounded all the same.

use crate::error::AppError;
use crate::runtime::operator::OperatorSession;
use crate::runtime::session::{codec_limit, undecoded_limit, BoundedPayload, Drained, Undecoded};
use crate::runtime::visitor::VisitorSession;
use crate::runtime::Runtime;
use actix_codec::{Encoder, Framed};
use actix_http::body::{BodySize, MessageBody};
use actix_http::{h1, ws, Method, Request, Response};
use actix_web::error::PayloadError;
use actix_web::web::{Bytes, BytesMut};
use actix_web::ResponseError;
use actix_web_actors::ws::WebsocketContext;
use futures_util::Stream;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

/// The stack buffer one read fills; a read keeps only what it received.
const READ_CHUNK: usize = 8 * 1024;
/// How long the last frames of a session that has ended (a close frame after a shed, say)
/// may wait for a client that does not read before the socket is dropped.
const LINGER: Duration = Duration::from_secs(5);

/// Which session serves a websocket address.
#[derive(Clone, Copy)]
enum Kind {
    Visitor,
    Operator,
}

/// Serves one upgrade request: the websocket addresses get their session, anything else
/// an error answer and the connection closed.
pub async fn serve(
    rt: Runtime,
    req: Request,
    framed: Framed<TcpStream, h1::Codec>,
) -> Result<(), Infallible> {
    // A socket error here is the client leaving during the handshake: nothing to report.
    let _ = upgrade(rt, req, framed).await;
    Ok(())
}

async fn upgrade(
    rt: Runtime,
    req: Request,
    framed: Framed<TcpStream, h1::Codec>,
) -> io::Result<()> {
    let parts = framed.into_parts();
    let (mut io, mut codec, leftover) = (parts.io, parts.codec, parts.read_buf);
    let kind = match req.path() {
        "/ws/visitor" => Kind::Visitor,
        "/ws/operator" => Kind::Operator,
        _ => {
            let err = AppError::not_found("no websocket at this address");
            return refuse(&mut io, &mut codec, &err).await;
        }
    };
    if req.method() != Method::GET {
        let err = AppError::bad_request("a websocket is opened with GET");
        return refuse(&mut io, &mut codec, &err).await;
    }
    let response = match ws::handshake(req.head()) {
        Ok(mut builder) => builder.finish().drop_body(),
        Err(e) => {
            let err = AppError::bad_request(format!("not a websocket handshake: {e}"));
            return refuse(&mut io, &mut codec, &err).await;
        }
    };
    let mut head = BytesMut::new();
    codec.encode(h1::Message::Item((response, BodySize::None)), &mut head)?;
    // The request's header values are slices of the dispatcher's 8 KiB read buffer: kept,
    // they would keep that buffer alive for the life of the socket.
    drop((req, codec));
    io.write_all(&head).await?;
    drop(head);

    let max = rt.core.config.max_frame_bytes;
    let backlog = rt.core.config.max_send_backlog_bytes;
    let (read, write) = io.into_split();
    let (undecoded, drained) = (Undecoded::default(), Drained::default());
    let input = BoundedPayload::new(
        SocketInput::new(leftover.freeze(), read),
        undecoded.clone(),
        undecoded_limit(max),
    );
    let frames = actix_http::ws::Codec::new().max_size(codec_limit(max));
    let output: SessionOutput = match kind {
        Kind::Visitor => Box::pin(WebsocketContext::with_codec(
            VisitorSession::new(rt, undecoded, drained.clone()),
            input,
            frames,
        )),
        Kind::Operator => Box::pin(WebsocketContext::with_codec(
            OperatorSession::new(rt, undecoded, drained.clone()),
            input,
            frames,
        )),
    };
    // The session sheds its client past `backlog` unread bytes; the writer stops pulling
    // only well beyond that, so the session always gets to do it.
    Writer::new(
        output,
        write,
        drained,
        backlog.saturating_mul(2) + 256 * 1024,
    )
    .await;
    Ok(())
}

/// Answers an upgrade that will not become a websocket with the error as JSON, then closes.
async fn refuse(io: &mut TcpStream, codec: &mut h1::Codec, err: &AppError) -> io::Result<()> {
    let response: Response<_> = err.error_response().into();
    let (head, body) = response.into_parts();
    let body = body.try_into_bytes().unwrap_or_default();
    let mut head = head.drop_body();
    head.head_mut()
        .set_connection_type(actix_http::ConnectionType::Close);
    let mut out = BytesMut::new();
    codec.encode(
        h1::Message::Item((head, BodySize::Sized(body.len() as u64))),
        &mut out,
    )?;
    codec.encode(h1::Message::Chunk(Some(body)), &mut out)?;
    codec.encode(h1::Message::Chunk(None), &mut out)?;
    io.write_all(&out).await?;
    io.shutdown().await
}

/// What a session writes: encoded websocket frames.
type SessionOutput = Pin<Box<dyn Stream<Item = Result<Bytes, actix_web::Error>>>>;

/// The socket's input as the session's websocket stream reads it. Bytes the client sent
/// right behind its upgrade request (left in the dispatcher's buffer) come first.
struct SocketInput {
    leftover: Option<Bytes>,
    read: OwnedReadHalf,
}

impl SocketInput {
    fn new(leftover: Bytes, read: OwnedReadHalf) -> Self {
        SocketInput {
            leftover: (!leftover.is_empty()).then_some(leftover),
            read,
        }
    }
}

impl Stream for SocketInput {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if let Some(first) = self.leftover.take() {
            return Poll::Ready(Some(Ok(first)));
        }
        let mut chunk = [MaybeUninit::<u8>::uninit(); READ_CHUNK];
        let mut buf = ReadBuf::uninit(&mut chunk);
        match Pin::new(&mut self.read).poll_read(cx, &mut buf) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(e)) => Poll::Ready(Some(Err(PayloadError::Io(e)))),
            Poll::Ready(Ok(())) if buf.filled().is_empty() => Poll::Ready(None),
            Poll::Ready(Ok(())) => Poll::Ready(Some(Ok(Bytes::copy_from_slice(buf.filled())))),
        }
    }
}

/// Writes a session's frames to its socket and drives the session while it does. It ends
/// when the session has ended and its last frames are written (or have waited [`LINGER`]
/// for a client that does not read), or when the socket fails.
struct Writer {
    /// The session; `None` once it has ended.
    output: Option<SessionOutput>,
    socket: OwnedWriteHalf,
    /// Frames taken from the session and not yet written whole.
    queue: VecDeque<Bytes>,
    queued: usize,
    /// Above this many queued bytes the session is not polled until the client reads.
    cap: usize,
    /// Bytes written, which the session compares with what it queued (its backlog).
    drained: Drained,
    linger: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Writer {
    fn new(output: SessionOutput, socket: OwnedWriteHalf, drained: Drained, cap: usize) -> Self {
        Writer {
            output: Some(output),
            socket,
            queue: VecDeque::new(),
            queued: 0,
            cap,
            drained,
            linger: None,
        }
    }

    /// Takes what the session has written, up to the cap; `true` when the cap stopped it
    /// (so no waker of the session's is registered).
    fn pull(&mut self, cx: &mut Context<'_>) -> bool {
        while let Some(output) = self.output.as_mut() {
            if self.queued >= self.cap {
                return true;
            }
            match output.as_mut().poll_next(cx) {
                Poll::Ready(Some(Ok(frames))) => {
                    if !frames.is_empty() {
                        self.queued += frames.len();
                        self.queue.push_back(frames);
                    }
                }
                Poll::Ready(Some(Err(_))) | Poll::Ready(None) => {
                    self.output = None;
                    self.linger = Some(Box::pin(tokio::time::sleep(LINGER)));
                }
                Poll::Pending => return false,
            }
        }
        false
    }

    /// Writes queued frames until the socket would block; `Err` when it failed.
    fn write(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        while let Some(front) = self.queue.front_mut() {
            match Pin::new(&mut self.socket).poll_write(cx, front) {
                Poll::Pending => return Ok(()),
                Poll::Ready(Ok(0)) => return Err(io::ErrorKind::WriteZero.into()),
                Poll::Ready(Ok(n)) => {
                    self.queued -= n;
                    self.drained.add(n);
                    if n == front.len() {
                        self.queue.pop_front();
                    } else {
                        let _ = front.split_to(n);
                    }
                }
                Poll::Ready(Err(e)) => return Err(e),
            }
        }
        Ok(())
    }
}

impl Future for Writer {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        loop {
            let capped = this.pull(cx);
            if this.write(cx).is_err() {
                // The client is gone; dropping the session stops it.
                return Poll::Ready(());
            }
            if this.output.is_none() {
                if this.queue.is_empty() {
                    // Dropping the write half sends FIN once the read half (inside the
                    // ended session) is gone too.
                    return Poll::Ready(());
                }
                return match this.linger.as_mut().map(|l| l.as_mut().poll(cx)) {
                    Some(Poll::Ready(())) => Poll::Ready(()),
                    _ => Poll::Pending,
                };
            }
            // Pull again only when the cap stopped the last pull and writing made room;
            // otherwise a waker (the session's or the socket's) is registered.
            if !(capped && this.queued < this.cap) {
                return Poll::Pending;
            }
        }
    }
}
