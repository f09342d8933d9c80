//! E-mail against a real SMTP server process (aiosmtpd): the unread reply notification with
//! everything a visitor needs in it (CF6, CF8, CF10, CF11, EC2, XB10), folding and the
//! re-check at send time (XB9, EC4), an address given later (CF9), the transcript (CF5),
//! an SMTP server that is down (for minutes, for days, or with replies read meanwhile), a
//! database that fails around a send, a timer that cannot fire, replies by e-mail (EC2,
//! XB10), continue links, and header injection.

// A failed expectation in a test is the test failing; panicking is the point.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use charla::mail::outbox::Outgoing;
use common::{SmtpSink, TestDb, TestServer};
use mail_parser::MessageParser;
use serde_json::{json, Value};
use std::time::Duration;

const FROM: &str = "Tienda Ejemplo <admin@tienda.example>";
const INBOUND: &str = "inbound-secret-for-tests";

async fn mail_server(db: &TestDb, smtp: &str) -> TestServer {
    let smtp = smtp.to_string();
    TestServer::start_with(db, move |c| {
        c.smtp_url = smtp;
        c.mail_from = FROM.into();
        c.reply_domain = "reply.tienda.example".into();
        c.inbound_secret = INBOUND.into();
        c.unread_email_secs = 60;
    })
    .await
}

/// A parsed e-mail, the parts a test looks at.
struct Mail {
    to: String,
    from: String,
    reply_to: String,
    subject: String,
    message_id: String,
    text: String,
    html: String,
    raw: String,
}

fn parse(raw: &[u8]) -> Mail {
    let m = MessageParser::default().parse(raw).expect("an e-mail");
    let addr = |a: Option<&mail_parser::Address>| {
        a.and_then(|a| a.first())
            .and_then(|a| a.address())
            .unwrap_or("")
            .to_string()
    };
    Mail {
        to: addr(m.to()),
        from: addr(m.from()),
        reply_to: addr(m.reply_to()),
        subject: m.subject().unwrap_or("").to_string(),
        message_id: m.message_id().unwrap_or("").to_string(),
        text: m.body_text(0).map(|t| t.into_owned()).unwrap_or_default(),
        html: m.body_html(0).map(|t| t.into_owned()).unwrap_or_default(),
        raw: String::from_utf8_lossy(raw).into_owned(),
    }
}

/// The header lines of a raw e-mail as stored, folded lines joined: one entry per header.
fn header_lines(raw: &str) -> Vec<String> {
    let raw = raw.replace("\r\n", "\n");
    let head = raw.split("\n\n").next().unwrap_or("");
    let mut lines: Vec<String> = Vec::new();
    for line in head.lines() {
        match lines.last_mut() {
            Some(last) if line.starts_with([' ', '\t']) => {
                last.push(' ');
                last.push_str(line.trim());
            }
            _ => lines.push(line.to_string()),
        }
    }
    lines
}

fn continue_link(text: &str) -> String {
    let start = text.find("http").expect("a link");
    text[start..]
        .split_whitespace()
        .find(|w| w.contains("/continue?code="))
        .or_else(|| text[start..].split_whitespace().next())
        .expect("link")
        .to_string()
}

/// A visitor who asked something and gave their e-mail, then left; returns the
/// conversation, the visitor's token and the operator's token (who took it).
async fn asked_and_left(srv: &TestServer, name: &str, email: &str) -> (i64, String, String) {
    let (mut v, welcome) = srv.new_visitor().await;
    let token = welcome["visitor_token"].as_str().expect("t").to_string();
    let cid = v.say("q1", "¿Dónde está mi pedido 123?").await["conversation_id"]
        .as_i64()
        .expect("id");
    v.send(json!({"type": "form", "client_id": "f1", "form": "name", "fields": {"name": name, "email": email}}))
        .await;
    assert_eq!(v.next_of_any(&["ack", "error"]).await["type"], "ack");
    drop(v);
    let (op, _) = srv
        .named_operator(&format!("op{cid}@tienda.example"), "Ana", false)
        .await;
    srv.take(cid, &op).await;
    (cid, token, op)
}

async fn reply(srv: &TestServer, op: &str, cid: i64, id: &str, body: &str) -> Value {
    let (status, r) = srv
        .post(
            &format!("/api/conversations/{cid}/messages"),
            Some(op),
            json!({"client_id": id, "body": body}),
        )
        .await;
    assert_eq!(status, 200, "{r}");
    r
}

fn fire(srv: &TestServer) {
    srv.runtime()
        .timers
        .do_send(charla::runtime::timers::FireNow);
}

/// Wakes the sender now instead of at its next poll.
/// Ten minutes pass and the sender runs again: `smtp` must still have received nothing.
async fn nothing_goes_out_later(srv: &TestServer, smtp: &SmtpSink, why: &str) {
    srv.clock.advance(600_000);
    wake_sender(srv);
    actix_rt::time::sleep(Duration::from_millis(1500)).await;
    assert!(smtp.messages().is_empty(), "{why}");
}

fn wake_sender(srv: &TestServer) {
    srv.runtime().core.mail_wake.notify_one();
}

/// A conversation's e-mails, newest first, straight from the store (the HTTP listing
/// needs an operator, and some scenarios move the operators' table away).
async fn outbox_of(srv: &TestServer, cid: i64) -> Vec<Outgoing> {
    srv.runtime()
        .core
        .store
        .call(move |s| s.conversation_emails(cid))
        .await
        .expect("the outbox reads")
}

/// Waits (at most 10 s) until the conversation's newest e-mail is as `done` wants.
async fn newest_email(
    srv: &TestServer,
    cid: i64,
    what: &str,
    done: impl Fn(&Outgoing) -> bool,
) -> Outgoing {
    for _ in 0..200 {
        if let Some(m) = outbox_of(srv, cid).await.into_iter().next() {
            if done(&m) {
                return m;
            }
        }
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    }
    let last = outbox_of(srv, cid).await;
    let state = last.first().map(|m| (&m.status, m.attempts, &m.last_error));
    panic!("waited for {what}; the e-mail is {state:?}");
}

/// Moves the clock past the longest backoff, wakes the sender, and waits for its next try
/// at the conversation's newest e-mail; returns the e-mail as that try left it.
async fn next_try(srv: &TestServer, cid: i64) -> Outgoing {
    let before = outbox_of(srv, cid).await[0].attempts;
    srv.clock.advance(301_000);
    wake_sender(srv);
    newest_email(srv, cid, "one more try", move |m| m.attempts > before).await
}

async fn es(srv: &TestServer) {
    let (admin, _) = srv
        .named_operator("boss@tienda.example", "Boss", true)
        .await;
    let (status, b) = srv
        .patch(
            "/api/channels/1",
            Some(&admin),
            json!({"title": "Tienda Ejemplo", "settings": {"language": "es"}}),
        )
        .await;
    assert_eq!(status, 200, "{b}");
}

async fn an_unread_reply_is_emailed_once_with_what_the_visitor_needs(db: TestDb) {
    let smtp = SmtpSink::start().await;
    let srv = mail_server(&db, &smtp.url()).await;
    es(&srv).await;
    let (cid, _, op) = asked_and_left(&srv, "Ana", "Ana@Example.com").await;
    // Two replies within the window: one e-mail (XB9).
    reply(&srv, &op, cid, "r1", "Salió ayer.").await;
    reply(&srv, &op, cid, "r2", "Llega el martes <b>sin falta</b>.").await;
    srv.clock.advance(30_000);
    fire(&srv);
    actix_rt::time::sleep(Duration::from_millis(1500)).await;
    assert!(smtp.messages().is_empty(), "not before the window ends");
    srv.clock.advance(31_000);
    fire(&srv);
    let mails = smtp.wait_for(1).await;
    let m = parse(&mails[0]);
    assert_eq!(m.to, "ana@example.com");
    assert_eq!(
        m.from, "admin@tienda.example",
        "the administrator's address (CF6)"
    );
    assert!(m.subject.contains(&format!("#{cid}")), "{}", m.subject);
    assert!(
        m.subject.contains("conversación"),
        "Spanish, as the channel prefers: {}",
        m.subject
    );
    assert!(
        m.reply_to.starts_with(&format!("reply+c{cid}-"))
            && m.reply_to.ends_with("@reply.tienda.example")
    );
    assert!(m.message_id.contains(&format!("charla.{cid}.")));
    for part in [&m.text, &m.html] {
        assert!(part.contains("pedido 123"), "the question");
        assert!(part.contains("Salió ayer."), "the first reply");
        assert!(part.contains("Llega el martes"), "the second reply, folded");
    }
    assert!(
        m.html.contains("&lt;b&gt;sin falta&lt;/b&gt;"),
        "operator text escaped in HTML"
    );
    assert!(m.text.contains("Hola Ana,"));
    // The continue link works: its page, then the widget resumes as the same visitor.
    let link = continue_link(&m.text);
    let path = link
        .split_once("://")
        .map(|(_, r)| &r[r.find('/').unwrap_or(0)..])
        .expect("path");
    let (status, page) = srv.get(path, None).await;
    assert_eq!(status, 200);
    let code = path.split("code=").nth(1).expect("code").to_string();
    assert!(page
        .as_str()
        .unwrap_or("")
        .contains(&format!("data-continue=\"{code}\"")));
    let mut again = srv.ws("/ws/visitor").await;
    again
        .send(json!({"type": "hello", "continue_code": code}))
        .await;
    let w = again.next_of("welcome").await;
    assert_eq!(w["conversation"]["id"], cid);
    assert!(w["visitor_token"].is_string(), "a token for this device");
    // Nothing more was sent, even after more ticks.
    fire(&srv);
    actix_rt::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(smtp.messages().len(), 1);
    // Read within the window: no e-mail (EC4).
    reply(&srv, &op, cid, "r3", "¿Algo más?").await;
    let seq = loop {
        let m = again.next_of("message").await;
        if m["body"] == "¿Algo más?" {
            break m["seq"].clone();
        }
    };
    again.send(json!({"type": "read", "seq": seq})).await;
    actix_rt::time::sleep(Duration::from_millis(300)).await;
    srv.clock.advance(61_000);
    fire(&srv);
    actix_rt::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(smtp.messages().len(), 1, "a read reply is not e-mailed");
    let (_, emails) = srv
        .get(&format!("/api/conversations/{cid}/emails"), Some(&op))
        .await;
    assert_eq!(emails[0]["status"], "sent");
    srv.stop().await;
}
both_backends!(
    unread,
    an_unread_reply_is_emailed_once_with_what_the_visitor_needs
);

async fn an_address_given_later_gets_the_unread_replies_and_english_by_default(db: TestDb) {
    let smtp = SmtpSink::start().await;
    let srv = mail_server(&db, &smtp.url()).await;
    let (mut v, _) = srv.new_visitor().await;
    let cid = v.say("q", "Is the shop open on Sunday?").await["conversation_id"]
        .as_i64()
        .expect("id");
    let (op, _) = srv.named_operator("ana@tienda.example", "Ana", false).await;
    srv.take(cid, &op).await;
    reply(&srv, &op, cid, "r1", "Yes, from 10 to 14.").await;
    // No address yet: the window passes, nothing to send.
    srv.clock.advance(61_000);
    fire(&srv);
    actix_rt::time::sleep(Duration::from_millis(1200)).await;
    assert!(smtp.messages().is_empty());
    // The visitor leaves an address (offline form, CF7/CF9): the unread reply goes now.
    v.send(json!({"type": "form", "client_id": "f", "form": "offline", "fields": {"email": "bob@example.com"}}))
        .await;
    assert_eq!(v.next_of_any(&["ack", "error"]).await["type"], "ack");
    fire(&srv);
    let m = parse(&smtp.wait_for(1).await[0]);
    assert_eq!(m.to, "bob@example.com");
    assert!(m.subject.contains("You have a reply"), "{}", m.subject);
    assert!(m.text.contains("Yes, from 10 to 14."));
    srv.stop().await;
}
both_backends!(
    later_address,
    an_address_given_later_gets_the_unread_replies_and_english_by_default
);

async fn an_smtp_server_that_is_down_gets_the_mail_once_it_is_back(db: TestDb) {
    let port = SmtpSink::free_port();
    let srv = mail_server(&db, &format!("smtp://127.0.0.1:{port}")).await;
    let (cid, _, op) = asked_and_left(&srv, "Eva", "eva@example.com").await;
    reply(&srv, &op, cid, "r1", "Aquí estamos.").await;
    srv.clock.advance(61_000);
    fire(&srv);
    // It fails and waits, recorded.
    let mut failed = Value::Null;
    for _ in 0..100 {
        let (_, emails) = srv
            .get(&format!("/api/conversations/{cid}/emails"), Some(&op))
            .await;
        if emails[0]["attempts"].as_i64() >= Some(1) {
            failed = emails[0].clone();
            break;
        }
        actix_rt::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(failed["status"], "pending", "{failed}");
    assert!(failed["last_error"].is_string());
    // The SMTP server comes back: the e-mail goes, once.
    let smtp = SmtpSink::start_on(port).await;
    srv.clock.advance(10_000);
    let mails = smtp.wait_for(1).await;
    assert_eq!(parse(&mails[0]).to, "eva@example.com");
    srv.clock.advance(600_000);
    actix_rt::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(smtp.messages().len(), 1, "sent once");
    let (_, emails) = srv
        .get(&format!("/api/conversations/{cid}/emails"), Some(&op))
        .await;
    assert_eq!(emails[0]["status"], "sent");
    srv.stop().await;
}
both_backends!(
    smtp_down,
    an_smtp_server_that_is_down_gets_the_mail_once_it_is_back
);

async fn a_reply_by_email_lands_in_the_conversation_without_the_quote(db: TestDb) {
    let smtp = SmtpSink::start().await;
    let srv = mail_server(&db, &smtp.url()).await;
    let (cid, _, op) = asked_and_left(&srv, "Ana", "ana@example.com").await;
    reply(&srv, &op, cid, "r1", "¿Qué talla necesitas?").await;
    srv.clock.advance(61_000);
    fire(&srv);
    let m = parse(&smtp.wait_for(1).await[0]);
    let mut operator = srv.operator_ws(&op).await;
    let raw = format!(
        "From: Ana <ANA@example.com>\r\nTo: {}\r\nSubject: Re: {}\r\nMessage-ID: <r1@mail.example.com>\r\nIn-Reply-To: <{}>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nLa M, por favor.\r\n\r\nEnviado desde mi iPhone\r\n\r\nEl 3 mar 2026, Tienda escribió:\r\n> ¿Qué talla necesitas?\r\n",
        m.reply_to, m.subject, m.message_id
    );
    let post = |body: String, secret: &'static str| {
        let srv = &srv;
        async move {
            let mut res = awc::Client::new()
                .post(srv.url("/api/inbound/email"))
                .insert_header(("Authorization", format!("Bearer {secret}")))
                .insert_header(("Content-Type", "message/rfc822"))
                .send_body(body)
                .await
                .expect("post");
            let b = res.body().await.expect("body");
            (
                res.status().as_u16(),
                serde_json::from_slice::<Value>(&b).unwrap_or(Value::Null),
            )
        }
    };
    let (status, posted) = post(raw.clone(), INBOUND).await;
    assert_eq!(status, 200, "{posted}");
    let seen = loop {
        let f = operator.next_of("message").await;
        if f["author"]["kind"] == "visitor" && f["kind"] == "text" {
            break f;
        }
    };
    assert_eq!(
        seen["body"], "La M, por favor.",
        "the new text, without quote or signature"
    );
    // Delivered twice by the mail service: stored once.
    let (status, again) = post(raw.clone(), INBOUND).await;
    assert_eq!((status, again["duplicate"].as_bool()), (200, Some(true)));
    // The address answered our e-mail: it is verified now (XB11).
    let (_, c) = srv
        .get(&format!("/api/conversations/{cid}"), Some(&op))
        .await;
    let contact = c["conversation"]["contact"]["id"]
        .as_i64()
        .expect("contact");
    let (_, card) = srv
        .get(&format!("/api/contacts/{contact}"), Some(&op))
        .await;
    assert!(
        card["identifiers"]
            .as_array()
            .expect("ids")
            .iter()
            .any(|i| i["value"] == "ana@example.com" && i["verified"] == true),
        "{card}"
    );
    // Threading by In-Reply-To alone works too, into the conversation whose e-mail it
    // answers, not the one e-mailed last.
    let (other, _, other_op) = asked_and_left(&srv, "Luis", "luis@example.com").await;
    reply(&srv, &other_op, other, "o1", "¿Y tú?").await;
    srv.clock.advance(61_000);
    fire(&srv);
    smtp.wait_for(2).await;
    let by_thread = raw
        .replace(&m.reply_to, "someone@tienda.example")
        .replace("<r1@mail.example.com>", "<r2@mail.example.com>")
        .replace("La M, por favor.", "Y otra en L.");
    let (status, posted) = post(by_thread, INBOUND).await;
    assert_eq!(status, 200, "{posted}");
    assert_eq!(
        (&posted["conversation_id"], &posted["duplicate"]),
        (&json!(cid), &json!(false)),
        "{posted}"
    );
    let visitor_texts = |c: &Value| -> Vec<(i64, String)> {
        c["messages"]
            .as_array()
            .map(|ms| {
                ms.iter()
                    .filter(|x| x["kind"] == "text" && x["author"]["kind"] == "visitor")
                    .map(|x| {
                        let seq = x["seq"].as_i64().unwrap_or(0);
                        (seq, x["body"].as_str().unwrap_or("").to_string())
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let (_, here) = srv
        .get(&format!("/api/conversations/{cid}"), Some(&op))
        .await;
    assert_eq!(
        visitor_texts(&here).last(),
        Some(&(
            posted["seq"].as_i64().expect("seq"),
            "Y otra en L.".to_string()
        )),
        "{here}"
    );
    let (_, there) = srv
        .get(&format!("/api/conversations/{other}"), Some(&other_op))
        .await;
    assert!(
        visitor_texts(&there)
            .iter()
            .all(|(_, t)| t != "Y otra en L."),
        "{there}"
    );
    // Refused, and stored nowhere: a forged reply address, a wrong secret, no thread.
    let count = |v: &Value| v["messages"].as_array().map(Vec::len).unwrap_or(0);
    let (_, before) = srv
        .get(&format!("/api/conversations/{cid}"), Some(&op))
        .await;
    let forged = raw
        .replace(
            &m.reply_to,
            &format!("reply+c{cid}-0000000000000000@reply.tienda.example"),
        )
        .replace("<r1@mail.example.com>", "<r3@mail.example.com>");
    assert_eq!(post(forged, INBOUND).await.0, 403);
    let forged_other = raw
        .replace(&format!("reply+c{cid}-"), &format!("reply+c{}-", cid + 1))
        .replace("<r1@mail.example.com>", "<r4@mail.example.com>");
    assert_eq!(post(forged_other, INBOUND).await.0, 403);
    assert_eq!(post(raw.replace("<r1@", "<r5@"), "wrong").await.0, 401);
    let lost =
        "From: x@y.com\r\nTo: info@tienda.example\r\nMessage-ID: <z@y>\r\n\r\nHola\r\n".to_string();
    assert_eq!(post(lost, INBOUND).await.0, 404);
    let (_, after) = srv
        .get(&format!("/api/conversations/{cid}"), Some(&op))
        .await;
    assert_eq!(count(&before), count(&after));
    srv.stop().await;

    // Without a configured secret the endpoint is off.
    let srv = TestServer::start(&db).await;
    let mut res = awc::Client::new()
        .post(srv.url("/api/inbound/email"))
        .insert_header(("Authorization", "Bearer anything"))
        .send_body(raw)
        .await
        .expect("post");
    assert_eq!(res.status().as_u16(), 404);
    let _ = res.body().await;
    srv.stop().await;
}
both_backends!(
    inbound,
    a_reply_by_email_lands_in_the_conversation_without_the_quote
);

async fn the_transcript_is_offered_after_closing_and_emailed_on_request(db: TestDb) {
    let smtp = SmtpSink::start().await;
    let srv = mail_server(&db, &smtp.url()).await;
    let (mut v, _) = srv.new_visitor().await;
    let cid = v.say("q", "Quiero cambiar la dirección").await["conversation_id"]
        .as_i64()
        .expect("id");
    let (op, _) = srv.named_operator("ana@tienda.example", "Ana", false).await;
    srv.take(cid, &op).await;
    reply(&srv, &op, cid, "r1", "Hecho, cambiada.").await;
    srv.post(
        &format!("/api/conversations/{cid}/close"),
        Some(&op),
        json!({}),
    )
    .await;
    // Five seconds later (a stored timer), the offer card (CF5).
    srv.clock.advance(5_500);
    fire(&srv);
    let offer = loop {
        let m = v.next_of("message").await;
        if m["body"] == "offer" {
            break m;
        }
    };
    assert_eq!(offer["meta"]["form"], "transcript");
    // The contact had this address, then another (newer): the copy goes where the
    // visitor asked, not to the newest.
    for (id, email) in [("n1", "cliente@example.com"), ("n2", "otra@example.com")] {
        v.send(
            json!({"type": "form", "client_id": id, "form": "email", "fields": {"email": email}}),
        )
        .await;
        assert_eq!(v.next_of_any(&["ack", "error"]).await["type"], "ack");
    }
    v.send(json!({"type": "form", "client_id": "t", "form": "transcript", "fields": {"email": "cliente@example.com"}}))
        .await;
    assert_eq!(v.next_of_any(&["ack", "error"]).await["type"], "ack");
    fire(&srv);
    // (The unread reply goes out too, now that there is an address: CF9.)
    let mut transcript = None;
    for _ in 0..100 {
        transcript = smtp
            .messages()
            .iter()
            .map(|raw| parse(raw))
            .find(|m| m.subject.contains("Copy of conversation"));
        if transcript.is_some() {
            break;
        }
        fire(&srv);
        actix_rt::time::sleep(Duration::from_millis(100)).await;
    }
    let m = transcript.expect("the transcript e-mail");
    assert_eq!(m.to, "cliente@example.com");
    assert!(m.text.contains("Quiero cambiar la dirección") && m.text.contains("Hecho, cambiada."));
    // The e-mail card an operator asks for (EC3).
    let (status, _) = srv
        .post(
            &format!("/api/conversations/{cid}/ask-email"),
            Some(&op),
            json!({}),
        )
        .await;
    assert_eq!(status, 200);
    let card = loop {
        let m = v.next_of("message").await;
        if m["body"] == "offer" {
            break m;
        }
    };
    assert_eq!(card["meta"]["form"], "email");
    let (other, _) = srv
        .named_operator("luis@tienda.example", "Luis", false)
        .await;
    let (status, _) = srv
        .post(
            &format!("/api/conversations/{cid}/ask-email"),
            Some(&other),
            json!({}),
        )
        .await;
    assert_eq!(status, 403, "only the responsible operator asks");
    srv.stop().await;
}
both_backends!(
    transcript,
    the_transcript_is_offered_after_closing_and_emailed_on_request
);

async fn names_cannot_inject_headers_and_bad_links_get_a_clear_page(db: TestDb) {
    let smtp = SmtpSink::start().await;
    let srv = mail_server(&db, &smtp.url()).await;
    let (admin, _) = srv
        .named_operator("boss@tienda.example", "Boss", true)
        .await;
    let (status, channel) = srv
        .patch(
            "/api/channels/1",
            Some(&admin),
            json!({"title": "Shop\r\nBcc: evil@attacker.example"}),
        )
        .await;
    assert_eq!(status, 200, "{channel}");
    let (cid, _, op) = asked_and_left(
        &srv,
        "Eve\r\nBcc: evil@attacker.example\r\nX-Evil: 1",
        "eve@example.com",
    )
    .await;
    reply(&srv, &op, cid, "r1", "Hola").await;
    srv.clock.advance(61_000);
    fire(&srv);
    let m = parse(&smtp.wait_for(1).await[0]);
    let head = header_lines(&m.raw);
    let names: Vec<String> = head
        .iter()
        .map(|l| l.split(':').next().unwrap_or("").trim().to_lowercase())
        .collect();
    for added in ["bcc", "cc", "x-evil"] {
        assert!(!names.iter().any(|n| n == added), "{added}: {head:#?}");
    }
    // The title is one header line (folding aside), flattened, whole.
    assert_eq!(
        names.iter().filter(|n| *n == "subject").count(),
        1,
        "{head:#?}"
    );
    assert_eq!(
        m.subject,
        format!(
            "[#{cid}] You have a reply in conversation #{cid} — Shop Bcc: evil@attacker.example"
        )
    );
    // The name is not in a header at all; in the text it stays on the greeting's line.
    assert_eq!(
        m.text.lines().next(),
        Some("Hello Eve Bcc: evil@attacker.example X-Evil: 1,"),
        "{}",
        m.text
    );
    // What the SMTP server received: the visitor alone as recipient, in the envelope
    // (aiosmtpd's X-RcptTo) and in the headers.
    let envelope: Vec<&String> = head
        .iter()
        .filter(|l| l.to_lowercase().starts_with("x-rcptto:"))
        .collect();
    assert_eq!(envelope, ["X-RcptTo: eve@example.com"], "{head:#?}");
    assert_eq!(m.to, "eve@example.com");
    assert!(!m.raw.contains("attacker.example>"), "{}", m.raw);
    // Tampered and expired continue links: a page that says so.
    let link = continue_link(&m.text);
    let code = link.split("code=").nth(1).expect("code").to_string();
    let mut tampered = code.clone();
    tampered.replace_range(0..1, if code.starts_with('9') { "8" } else { "9" });
    let (status, page) = srv.get(&format!("/continue?code={tampered}"), None).await;
    assert_eq!(status, 400);
    assert!(page.as_str().unwrap_or("").contains("not valid"));
    srv.clock.advance(8 * 24 * 3_600_000);
    let (status, page) = srv.get(&format!("/continue?code={code}"), None).await;
    assert_eq!(status, 410);
    assert!(page.as_str().unwrap_or("").contains("expired"));
    let mut ws = srv.ws("/ws/visitor").await;
    ws.send(json!({"type": "hello", "continue_code": code}))
        .await;
    let err = ws.next_of("error").await;
    assert_eq!(err["code"], "unauthorized");
    srv.stop().await;
}
both_backends!(
    injection_and_links,
    names_cannot_inject_headers_and_bad_links_get_a_clear_page
);

async fn an_smtp_outage_is_waited_out_for_days_before_the_mail_fails(db: TestDb) {
    let port = SmtpSink::free_port();
    let srv = mail_server(&db, &format!("smtp://127.0.0.1:{port}")).await;
    let (cid, _, op) = asked_and_left(&srv, "Eva", "eva@example.com").await;
    reply(&srv, &op, cid, "r1", "Aquí estamos.").await;
    srv.clock.advance(61_000);
    fire(&srv);
    newest_email(&srv, cid, "a first try", |m| m.attempts >= 1).await;
    // Thirty tries over two and a half hours of outage (a rule of 25 tries gave up after
    // about 88 minutes): still waiting.
    let mut mail = next_try(&srv, cid).await;
    while mail.attempts < 30 {
        mail = next_try(&srv, cid).await;
    }
    assert_eq!(mail.status, "pending", "{mail:?}");
    assert!(
        mail.last_error
            .as_deref()
            .unwrap_or("")
            .contains("Connection"),
        "{mail:?}"
    );
    // Past the age limit, the next failure gives up, and it stays given up.
    srv.clock.advance(charla::mail::sender::MAX_AGE_MS);
    wake_sender(&srv);
    let mail = newest_email(&srv, cid, "the end of the retries", |m| {
        m.status != "pending"
    })
    .await;
    assert_eq!(mail.status, "failed", "{mail:?}");
    let smtp = SmtpSink::start_on(port).await;
    nothing_goes_out_later(&srv, &smtp, "a failed e-mail is not sent later").await;
    srv.stop().await;
}
both_backends!(
    long_outage,
    an_smtp_outage_is_waited_out_for_days_before_the_mail_fails
);

async fn a_database_error_reading_the_sender_is_not_a_permanent_failure(db: TestDb) {
    let port = SmtpSink::free_port();
    let url = format!("smtp://127.0.0.1:{port}");
    // No CHARLA_MAIL_FROM: every try reads the first administrator's address (CF6).
    let srv = TestServer::start_with(&db, move |c| {
        c.smtp_url = url;
        c.reply_domain = "reply.tienda.example".into();
        c.unread_email_secs = 60;
    })
    .await;
    srv.named_operator("boss@tienda.example", "Boss", true)
        .await;
    let (cid, _, op) = asked_and_left(&srv, "Eva", "eva@example.com").await;
    reply(&srv, &op, cid, "r1", "Aquí estamos.").await;
    srv.clock.advance(61_000);
    fire(&srv);
    newest_email(&srv, cid, "a first try", |m| m.attempts >= 1).await;
    // The operators' table is gone for a while: reading the sender fails, and waits.
    db.execute("ALTER TABLE operators RENAME TO operators_away");
    for _ in 0..4 {
        let mail = next_try(&srv, cid).await;
        assert_eq!(mail.status, "pending", "{mail:?}");
        assert!(
            mail.last_error.as_deref().unwrap_or("").contains("sender"),
            "{mail:?}"
        );
    }
    db.execute("ALTER TABLE operators_away RENAME TO operators");
    let smtp = SmtpSink::start_on(port).await;
    srv.clock.advance(301_000);
    wake_sender(&srv);
    let m = parse(&smtp.wait_for(1).await[0]);
    assert_eq!(m.from, "boss@tienda.example");
    assert_eq!(m.to, "eva@example.com");
    srv.stop().await;
}
both_backends!(
    sender_lookup_fails,
    a_database_error_reading_the_sender_is_not_a_permanent_failure
);

/// From now on the database refuses to mark e-mails sent, as a database in trouble would.
fn refuse_sent_marks(db: &TestDb) {
    if db.backend == "sqlite" {
        db.execute(
            "CREATE TRIGGER refuse_sent BEFORE UPDATE ON outbox WHEN NEW.status = 'sent' \
             BEGIN SELECT RAISE(ABORT, 'refused for the test'); END;",
        );
    } else {
        db.execute(
            "CREATE FUNCTION refuse_sent() RETURNS trigger LANGUAGE plpgsql AS $$ \
             BEGIN IF NEW.status = 'sent' THEN RAISE EXCEPTION 'refused for the test'; END IF; \
             RETURN NEW; END $$; \
             CREATE TRIGGER refuse_sent BEFORE UPDATE ON outbox \
             FOR EACH ROW EXECUTE FUNCTION refuse_sent();",
        );
    }
}

/// The database marks e-mails sent again.
fn accept_sent_marks(db: &TestDb) {
    if db.backend == "sqlite" {
        db.execute("DROP TRIGGER refuse_sent;");
    } else {
        db.execute("DROP TRIGGER refuse_sent ON outbox; DROP FUNCTION refuse_sent();");
    }
}

async fn an_email_accepted_while_its_sent_mark_fails_goes_again_with_the_same_message_id(
    db: TestDb,
) {
    let smtp = SmtpSink::start().await;
    let srv = mail_server(&db, &smtp.url()).await;
    let (cid, _, op) = asked_and_left(&srv, "Eva", "eva@example.com").await;
    // The database hiccups just as the SMTP server accepts: the mark is retried, so the
    // e-mail goes once.
    refuse_sent_marks(&db);
    reply(&srv, &op, cid, "r1", "Aquí estamos.").await;
    srv.clock.advance(61_000);
    fire(&srv);
    smtp.wait_for(1).await;
    accept_sent_marks(&db);
    newest_email(&srv, cid, "the sent mark", |m| m.status == "sent").await;
    actix_rt::time::sleep(Duration::from_millis(2000)).await;
    wake_sender(&srv);
    actix_rt::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(smtp.messages().len(), 1, "sent once");
    // The mark fails for longer than its retries: the e-mail goes again (at least once),
    // with the Message-ID of its outbox row, so the copy can be recognised.
    refuse_sent_marks(&db);
    reply(&srv, &op, cid, "r2", "¿Sigues ahí?").await;
    srv.clock.advance(61_000);
    fire(&srv);
    smtp.wait_for(3).await;
    accept_sent_marks(&db);
    let row = newest_email(&srv, cid, "the sent mark", |m| m.status == "sent").await;
    actix_rt::time::sleep(Duration::from_millis(1500)).await;
    let copies: Vec<Mail> = smtp
        .messages()
        .iter()
        .map(|raw| parse(raw))
        .filter(|m| m.text.contains("¿Sigues ahí?"))
        .collect();
    assert_eq!(copies.len(), 2, "sent again, then marked sent");
    for copy in &copies {
        assert_eq!(format!("<{}>", copy.message_id), row.message_id);
    }
    srv.stop().await;
}
both_backends!(
    sent_mark_fails,
    an_email_accepted_while_its_sent_mark_fails_goes_again_with_the_same_message_id
);

async fn replies_read_in_the_chat_during_an_smtp_outage_are_not_emailed(db: TestDb) {
    let port = SmtpSink::free_port();
    let srv = mail_server(&db, &format!("smtp://127.0.0.1:{port}")).await;
    let (cid, token, op) = asked_and_left(&srv, "Eva", "eva@example.com").await;
    let seq = reply(&srv, &op, cid, "r1", "Aquí estamos.").await["seq"]
        .as_i64()
        .expect("seq");
    srv.clock.advance(61_000);
    fire(&srv);
    let queued = newest_email(&srv, cid, "a first try", |m| m.attempts >= 1).await;
    assert_eq!(
        queued.covers_seq,
        Some(seq),
        "the e-mail knows what it carries"
    );
    // The visitor comes back and reads the reply in the chat while the SMTP server is down.
    let mut v = srv.ws("/ws/visitor").await;
    v.send(json!({"type": "hello", "v": 1, "token": token, "conversation_id": cid}))
        .await;
    v.next_of("welcome").await;
    v.send(json!({"type": "read", "seq": seq})).await;
    let store = srv.runtime().core.store.clone();
    for _ in 0..200 {
        let row = store
            .call(move |s| s.conversation(cid))
            .await
            .expect("reads");
        if row.is_some_and(|r| r.row.visitor_read_seq >= seq) {
            break;
        }
        actix_rt::time::sleep(Duration::from_millis(25)).await;
    }
    // The SMTP server is back: the next try re-checks, and nothing is sent (EC4, XB9).
    let smtp = SmtpSink::start_on(port).await;
    srv.clock.advance(301_000);
    wake_sender(&srv);
    let mail = newest_email(&srv, cid, "the re-check", |m| m.status != "pending").await;
    assert_eq!(mail.status, "cancelled", "{mail:?}");
    nothing_goes_out_later(&srv, &smtp, "a reply read in the chat is not e-mailed").await;
    srv.stop().await;
}
both_backends!(
    read_during_outage,
    replies_read_in_the_chat_during_an_smtp_outage_are_not_emailed
);

async fn a_timer_that_cannot_fire_does_not_hold_up_the_others(db: TestDb) {
    let smtp = SmtpSink::start().await;
    let srv = mail_server(&db, &smtp.url()).await;
    // A timer for a conversation that is not there (written behind the foreign key's
    // back), due before every other: firing it fails at every tick.
    let insert = "INSERT INTO timers (kind, conversation_id, due_at, created_at) \
                  VALUES ('unread', 999999, 0, 0);";
    if db.backend == "sqlite" {
        db.execute(&format!("PRAGMA foreign_keys = OFF; {insert}"));
    } else {
        db.execute(&format!("SET session_replication_role = replica; {insert}"));
    }
    let (cid, _, op) = asked_and_left(&srv, "Eva", "eva@example.com").await;
    reply(&srv, &op, cid, "r1", "Aquí estamos.").await;
    srv.clock.advance(61_000);
    fire(&srv);
    let m = parse(&smtp.wait_for(1).await[0]);
    assert_eq!(m.to, "eva@example.com", "the good timer fired all the same");
    srv.stop().await;
}
both_backends!(
    bad_timer,
    a_timer_that_cannot_fire_does_not_hold_up_the_others
);
