//! The e-mails a visitor receives, in HTML and plain text, in Spanish or English as the
//! channel prefers (CF10), with the conversation number in the subject (CF11): the unread
//! reply notification (CF8, EC2) and the transcript (CF5). Every text from people is
//! escaped in the HTML part; every header value is one line.

/// A language e-mails are written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    /// Spanish.
    Es,
    /// English.
    En,
}

impl Lang {
    /// The channel's `language` setting: `es`, `en`, or `auto` (English, the lingua franca,
    /// when nothing says otherwise).
    pub fn from_setting(s: &str) -> Lang {
        if s == "es" {
            Lang::Es
        } else {
            Lang::En
        }
    }
}

/// One message shown in an e-mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// Who wrote it, as shown.
    pub author: String,
    /// What they wrote.
    pub text: String,
}

/// An e-mail ready for the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// Subject (one line).
    pub subject: String,
    /// Plain-text part.
    pub text: String,
    /// HTML part.
    pub html: String,
}

/// A header value on one line, without control characters, at most 200 characters:
/// names and titles can never add headers.
pub fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .take(200)
        .collect()
}

/// HTML text escaping.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

struct Words {
    hello: &'static str,
    question: &'static str,
    reply_from: &'static str,
    continue_link: &'static str,
    reply_hint: &'static str,
    unread_subject: &'static str,
    transcript_subject: &'static str,
    transcript_intro: &'static str,
    you: &'static str,
}

fn words(lang: Lang) -> Words {
    match lang {
        Lang::Es => Words {
            hello: "Hola",
            question: "Tu consulta",
            reply_from: "Respuesta",
            continue_link: "Continuar la conversación",
            reply_hint: "También puedes responder a este correo: tu respuesta llegará a la misma conversación.",
            unread_subject: "Tienes una respuesta en la conversación",
            transcript_subject: "Copia de la conversación",
            transcript_intro: "Esta es la copia de la conversación que pediste.",
            you: "Tú",
        },
        Lang::En => Words {
            hello: "Hello",
            question: "Your question",
            reply_from: "Reply",
            continue_link: "Continue the conversation",
            reply_hint: "You can also reply to this e-mail: your answer will land in the same conversation.",
            unread_subject: "You have a reply in conversation",
            transcript_subject: "Copy of conversation",
            transcript_intro: "Here is the copy of the conversation you asked for.",
            you: "You",
        },
    }
}

fn quote_text(lines: &[Line]) -> String {
    lines
        .iter()
        .map(|l| {
            let body = l
                .text
                .lines()
                .map(|t| format!("> {t}"))
                .collect::<Vec<_>>()
                .join("\n");
            format!("{}:\n{body}", l.author)
        })
        .collect::<Vec<_>>()
        .join("\n\n")
}

fn quote_html(lines: &[Line]) -> String {
    lines
        .iter()
        .map(|l| {
            format!(
                "<p style=\"margin:0 0 4px;color:#555;font-size:13px\">{}</p>\
                 <blockquote style=\"margin:0 0 12px;padding:8px 12px;border-left:3px solid #3b6fd8;background:#f4f6fb;white-space:pre-wrap\">{}</blockquote>",
                escape(&l.author),
                escape(&l.text)
            )
        })
        .collect()
}

fn page(site: &str, body: &str) -> String {
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{}</title></head>\
         <body style=\"font-family:system-ui,sans-serif;color:#1d2330;max-width:36rem;margin:0 auto;padding:16px\">{body}</body></html>",
        escape(site)
    )
}

/// The unread reply e-mail (CF8, EC2): the visitor's question, the operators' replies,
/// and the way back.
pub fn unread(
    lang: Lang,
    site: &str,
    number: i64,
    name: Option<&str>,
    question: &[Line],
    replies: &[Line],
    continue_url: &str,
) -> Rendered {
    let w = words(lang);
    let site = one_line(site);
    let greeting = match name.map(one_line).filter(|n| !n.is_empty()) {
        Some(n) => format!("{} {n},", w.hello),
        None => format!("{},", w.hello),
    };
    let subject = one_line(&format!(
        "[#{number}] {} #{number} — {site}",
        w.unread_subject
    ));
    let mut text = format!("{greeting}\n\n");
    if !question.is_empty() {
        text.push_str(&format!("{}:\n\n{}\n\n", w.question, quote_text(question)));
    }
    text.push_str(&format!(
        "{}:\n\n{}\n\n{}: {continue_url}\n\n{}\n\n-- \n{site}\n",
        w.reply_from,
        quote_text(replies),
        w.continue_link,
        w.reply_hint
    ));
    let mut html = format!("<p>{}</p>", escape(&greeting));
    if !question.is_empty() {
        html.push_str(&format!(
            "<h3 style=\"font-size:15px\">{}</h3>{}",
            w.question,
            quote_html(question)
        ));
    }
    html.push_str(&format!(
        "<h3 style=\"font-size:15px\">{}</h3>{}\
         <p><a href=\"{}\" style=\"display:inline-block;padding:10px 16px;background:#3b6fd8;color:#fff;border-radius:6px;text-decoration:none\">{}</a></p>\
         <p style=\"color:#555;font-size:13px\">{}</p><p style=\"color:#888;font-size:12px\">{}</p>",
        w.reply_from,
        quote_html(replies),
        escape(continue_url),
        w.continue_link,
        w.reply_hint,
        escape(&site)
    ));
    Rendered {
        subject,
        text,
        html: page(&site, &html),
    }
}

/// The transcript e-mail (CF5).
pub fn transcript(
    lang: Lang,
    site: &str,
    number: i64,
    lines: &[Line],
    continue_url: &str,
) -> Rendered {
    let w = words(lang);
    let site = one_line(site);
    let subject = one_line(&format!(
        "[#{number}] {} #{number} — {site}",
        w.transcript_subject
    ));
    let text = format!(
        "{}\n\n{}\n\n{}: {continue_url}\n\n{}\n\n-- \n{site}\n",
        w.transcript_intro,
        quote_text(lines),
        w.continue_link,
        w.reply_hint
    );
    let html = format!(
        "<p>{}</p>{}<p><a href=\"{}\">{}</a></p><p style=\"color:#555;font-size:13px\">{}</p>",
        w.transcript_intro,
        quote_html(lines),
        escape(continue_url),
        w.continue_link,
        w.reply_hint
    );
    Rendered {
        subject,
        text,
        html: page(&site, &html),
    }
}

/// How the visitor is named in a transcript.
pub fn you(lang: Lang) -> &'static str {
    words(lang).you
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn people_text_is_escaped_and_headers_stay_one_line() {
        let q = [Line {
            author: "<b>Ana</b>".into(),
            text: "<script>alert(1)</script>".into(),
        }];
        let r = unread(
            Lang::En,
            "Shop\r\nBcc: evil@x.com",
            12,
            Some("Eve\nBcc: x@y"),
            &q,
            &q,
            "https://x/c?code=1&b=2",
        );
        assert!(!r.subject.contains('\n') && !r.subject.contains('\r'));
        assert!(r.subject.contains("#12"));
        assert!(!r.html.contains("<script>"));
        assert!(r.html.contains("&lt;script&gt;"));
        assert!(r.html.contains("code=1&amp;b=2"));
        assert!(
            r.text.contains("> <script>alert(1)</script>"),
            "plain text stays as written"
        );
        let es = unread(Lang::Es, "Tienda", 3, None, &[], &q, "u");
        assert!(es.subject.contains("conversación #3"), "{}", es.subject);
        assert!(es.text.starts_with("Hola,"));
    }
}
