//! The websocket transport (src/http/websocket.rs), spoken to over raw TCP: upgrades leave
//! the HTTP dispatcher with whatever the client sent behind them, and requests that are not
//! a websocket get a clear answer.

// A failed expectation in a test is the test failing; panicking is the point.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{TestDb, TestServer};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

const UPGRADE: &str = "GET /ws/visitor HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n\
    Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
    Sec-WebSocket-Version: 13\r\n\r\n";

/// A masked client text frame (payloads under 126 bytes).
fn text_frame(payload: &str) -> Vec<u8> {
    let bytes = payload.as_bytes();
    assert!(bytes.len() < 126);
    let mask = [0x12, 0x34, 0x56, 0x78];
    let mut frame = vec![0x81, 0x80 | bytes.len() as u8];
    frame.extend_from_slice(&mask);
    frame.extend(bytes.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    frame
}

/// Reads until `buf` holds the end of an HTTP head; returns the head and what followed.
fn read_head(sock: &mut TcpStream) -> (String, Vec<u8>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = buf.split_off(end + 4);
            return (String::from_utf8_lossy(&buf).into_owned(), rest);
        }
        let n = sock.read(&mut chunk).expect("read");
        assert!(n > 0, "closed before the head ended: {buf:?}");
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Reads one unmasked server text frame's payload as JSON.
fn read_frame(sock: &mut TcpStream, mut buf: Vec<u8>) -> (Value, Vec<u8>) {
    let mut chunk = [0u8; 4096];
    loop {
        if buf.len() >= 2 {
            let (len, start) = match buf[1] & 0x7f {
                126 if buf.len() >= 4 => (u16::from_be_bytes([buf[2], buf[3]]) as usize, 4),
                126 | 127 => (usize::MAX, 0),
                n => (n as usize, 2),
            };
            assert_ne!(buf[1] & 0x7f, 127, "no frame this large is expected");
            if len != usize::MAX && buf.len() >= start + len {
                assert_eq!(buf[0], 0x81, "a final text frame");
                let rest = buf.split_off(start + len);
                let v = serde_json::from_slice(&buf[start..]).expect("JSON frame");
                return (v, rest);
            }
        }
        let n = sock.read(&mut chunk).expect("read");
        assert!(n > 0, "closed mid-frame");
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn connect(srv: &TestServer) -> TcpStream {
    let sock = TcpStream::connect(srv.addr).expect("connect");
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    sock
}

async fn a_frame_sent_right_behind_the_upgrade_is_not_lost(db: TestDb) {
    let srv = TestServer::start(&db).await;
    let addr = srv.addr;
    let welcome = actix_rt::task::spawn_blocking(move || {
        let mut sock = TcpStream::connect(addr).expect("connect");
        sock.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        // The request and the first frame in one write: the frame lands in the HTTP
        // layer's buffer and must be handed to the session.
        let mut out = UPGRADE.as_bytes().to_vec();
        out.extend(text_frame(r#"{"type":"hello"}"#));
        sock.write_all(&out).expect("write");
        let (head, rest) = read_head(&mut sock);
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        read_frame(&mut sock, rest).0
    })
    .await
    .expect("client thread");
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    assert!(welcome["visitor_token"].is_string(), "{welcome}");
    srv.stop().await;
}
both_backends!(pipelined, a_frame_sent_right_behind_the_upgrade_is_not_lost);

async fn what_is_not_a_websocket_gets_a_clear_answer(db: TestDb) {
    let srv = TestServer::start(&db).await;
    // An upgrade to an address that has no websocket.
    let mut sock = connect(&srv);
    let req = UPGRADE.replace("/ws/visitor", "/ws/nothing");
    let (head, body) = actix_rt::task::spawn_blocking(move || {
        sock.write_all(req.as_bytes()).expect("write");
        let (head, mut rest) = read_head(&mut sock);
        let _ = sock.read_to_end(&mut rest);
        (head, rest)
    })
    .await
    .expect("client thread");
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");
    let body: Value = serde_json::from_slice(&body).expect("JSON error");
    assert_eq!(body["error"]["code"], "not_found");

    // An upgrade that is not a websocket handshake (no key).
    let mut sock = connect(&srv);
    let req = UPGRADE.replace("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", "");
    let head = actix_rt::task::spawn_blocking(move || {
        sock.write_all(req.as_bytes()).expect("write");
        read_head(&mut sock).0
    })
    .await
    .expect("client thread");
    assert!(head.starts_with("HTTP/1.1 400"), "{head}");

    // A plain GET of the websocket address.
    let (status, body) = srv.get("/ws/visitor", None).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "bad_request");

    // The server is still serving websockets.
    let (_ws, welcome) = srv.new_visitor().await;
    assert_eq!(welcome["type"], "welcome");
    srv.stop().await;
}
both_backends!(not_a_websocket, what_is_not_a_websocket_gets_a_clear_answer);
