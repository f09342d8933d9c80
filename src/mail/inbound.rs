//! Replies by e-mail (EC2, XB10): a raw RFC 822 message, as inbound mail services deliver
//! it, reduced to what the conversation needs: which conversation (the signed reply address,
//! or In-Reply-To/References), who sent it, and the new text without the quoted history.

use super::reply;
use mail_parser::{HeaderValue, MessageParser};

/// Largest raw message accepted, in bytes.
pub const MAX_RAW: usize = 10 * 1024 * 1024;

/// What an inbound e-mail says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inbound {
    /// Every recipient address (To, Cc, Delivered-To, X-Original-To): one may be a reply
    /// address.
    pub recipients: Vec<String>,
    /// The sender's address, lower-case.
    pub from: Option<String>,
    /// Its Message-ID, for idempotency.
    pub message_id: Option<String>,
    /// The Message-IDs it answers (In-Reply-To, then References), with angle brackets.
    pub thread: Vec<String>,
    /// The new text (quotes and signature removed).
    pub text: String,
}

fn ids(v: &HeaderValue<'_>) -> Vec<String> {
    let bracket = |s: &str| {
        let s = s.trim();
        if s.starts_with('<') {
            s.to_string()
        } else {
            format!("<{s}>")
        }
    };
    match v {
        HeaderValue::Text(t) => vec![bracket(t)],
        HeaderValue::TextList(l) => l.iter().map(|t| bracket(t)).collect(),
        _ => Vec::new(),
    }
}

/// Parses a raw message; `None` when it is not one.
pub fn parse(raw: &[u8]) -> Option<Inbound> {
    let msg = MessageParser::default().parse(raw)?;
    let mut recipients = Vec::new();
    for list in [msg.to(), msg.cc()].into_iter().flatten() {
        recipients.extend(list.iter().filter_map(|a| a.address()).map(str::to_string));
    }
    for header in ["Delivered-To", "X-Original-To", "X-Envelope-To"] {
        for v in msg.header_values(header) {
            if let Some(t) = v.as_text() {
                recipients.push(t.trim().trim_matches(['<', '>']).to_string());
            }
        }
    }
    let from = msg
        .from()
        .and_then(|a| a.first())
        .and_then(|a| a.address())
        .map(|a| a.trim().to_lowercase());
    let mut thread = ids(msg.in_reply_to());
    thread.extend(ids(msg.references()));
    let body = msg.body_text(0).map(|b| b.into_owned()).unwrap_or_default();
    Some(Inbound {
        recipients,
        from,
        message_id: msg
            .message_id()
            .map(|m| format!("<{}>", m.trim_matches(['<', '>']))),
        thread,
        text: reply::new_text(&body),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reply_is_reduced_to_its_new_text_and_its_thread() {
        let raw = b"From: Ana <Ana@Example.com>\r\nTo: Tienda <reply+c7-0123456789abcdef@reply.example.com>\r\nSubject: Re: [#7]\r\nMessage-ID: <abc@mail.example.com>\r\nIn-Reply-To: <charla.7.x@reply.example.com>\r\nReferences: <charla.7.w@reply.example.com> <charla.7.x@reply.example.com>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nGracias, llega el martes.\r\n\r\nEl lun, 3 mar 2026, Tienda escribi\xc3\xb3:\r\n> Su pedido sali\xc3\xb3 ayer.\r\n";
        let m = parse(raw).expect("parsed");
        assert_eq!(m.from.as_deref(), Some("ana@example.com"));
        assert!(m.recipients.iter().any(|r| r.starts_with("reply+c7-")));
        assert_eq!(m.message_id.as_deref(), Some("<abc@mail.example.com>"));
        assert_eq!(m.thread[0], "<charla.7.x@reply.example.com>");
        assert_eq!(m.text, "Gracias, llega el martes.");
    }

    #[test]
    fn html_only_mail_still_yields_text() {
        let raw = b"From: a@b.com\r\nTo: reply+c1-00@x\r\nContent-Type: text/html\r\n\r\n<p>Hola <b>equipo</b></p><blockquote>viejo</blockquote>";
        let m = parse(raw).expect("parsed");
        assert!(m.text.contains("Hola"), "{}", m.text);
    }
}
