//! What a visitor wrote in an e-mail reply, without the history their mail program quoted
//! or their signature (EC2, XB10). Line by line and linear, so a hostile message costs time
//! in proportion to its size, never more.
//!
//! The rules, in the order they apply:
//! - an Outlook-style separator (a line of underscores, or of dashes followed by a `From:`
//!   block), `-----Original Message-----`, or a `From:`/`Sent:` header block ends the new
//!   text: everything below is the quoted message;
//! - an attribution line (`On … wrote:`, `El … escribió:`, possibly wrapped over three
//!   lines) and the `>`-quoted lines are dropped, and what the visitor wrote between
//!   quotes (inline replies) is kept;
//! - a trailing signature goes: from a `--` line near the end, or a short "Sent from my …"
//!   line.

/// Most bytes of a body examined; the rest of a longer body is quoted history or noise.
const MAX_BYTES: usize = 1024 * 1024;
/// A signature after `--` has at most this many lines.
const MAX_SIGNATURE_LINES: usize = 8;

/// The new text of a reply body (plain text).
pub fn new_text(body: &str) -> String {
    let body = cut(body, MAX_BYTES)
        .replace("\r\n", "\n")
        .replace('\r', "\n");
    let lines: Vec<&str> = body.split('\n').collect();
    let mut kept: Vec<&str> = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let t = line.trim();
        if ends_message(&lines, i) {
            break;
        }
        if let Some(n) = attribution_lines(&lines, i) {
            i += n;
            continue;
        }
        if t.starts_with('>') {
            i += 1;
            continue;
        }
        kept.push(line);
        i += 1;
    }
    drop_signature(&mut kept);
    let text = kept.join("\n");
    collapse_blank_runs(text.trim_matches(|c: char| c == '\n' || c == ' ' || c == '\t'))
}

/// The first `max` bytes of `s`, cut at a character boundary.
fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn is_header(line: &str, names: &[&str]) -> bool {
    let t = line.trim().trim_start_matches('*');
    names.iter().any(|n| {
        t.get(..n.len()).is_some_and(|p| p.eq_ignore_ascii_case(n))
            && t[n.len()..].trim_start_matches('*').starts_with(':')
    })
}

/// Whether line `i` starts the quoted original of a forward-style (Outlook) reply.
fn ends_message(lines: &[&str], i: usize) -> bool {
    let t = lines[i].trim();
    let lower = t.to_lowercase();
    if lower.contains("original message") && t.starts_with('-')
        || lower.starts_with("-----mensaje original")
        || lower.starts_with("-----message d'origine")
    {
        return true;
    }
    let only = |c: char| !t.is_empty() && t.chars().all(|x| x == c);
    if only('_') && t.len() >= 10 {
        return true;
    }
    let next_headers = || {
        lines
            .iter()
            .skip(i + 1)
            .filter(|l| !l.trim().is_empty())
            .take(2)
            .any(|l| is_header(l, &["from", "de", "von"]))
    };
    if only('-') && t.len() >= 10 && next_headers() {
        return true;
    }
    // A header block: `From:` followed closely by `Sent:`/`To:`/`Date:`/`Subject:`.
    if is_header(t, &["from", "de", "von"]) {
        return lines.iter().skip(i + 1).take(3).any(|l| {
            is_header(
                l,
                &[
                    "sent", "to", "date", "subject", "enviado", "para", "fecha", "asunto",
                ],
            )
        });
    }
    false
}

/// When line `i` starts an attribution (`On … wrote:`), how many lines it spans.
fn attribution_lines(lines: &[&str], i: usize) -> Option<usize> {
    let first = lines[i].trim();
    let opens = ["on ", "el ", "le ", "am "]
        .iter()
        .any(|p| first.to_lowercase().starts_with(p));
    if !opens {
        return None;
    }
    let mut joined = String::new();
    for (n, line) in lines.iter().skip(i).take(3).enumerate() {
        if n > 0 {
            joined.push(' ');
        }
        joined.push_str(line.trim());
        let lower = joined.to_lowercase();
        let ends = ["wrote:", "escribió:", "a écrit :", "a écrit:", "schrieb:"]
            .iter()
            .any(|w| lower.ends_with(w));
        if ends {
            return Some(n + 1);
        }
    }
    None
}

/// Drops a trailing signature: from the last `--` line when few lines follow it, or a
/// short "Sent from my phone" line at the end.
fn drop_signature(kept: &mut Vec<&str>) {
    while kept.last().is_some_and(|l| l.trim().is_empty()) {
        kept.pop();
    }
    if let Some(pos) = kept
        .iter()
        .rposition(|l| l.trim_end() == "--" || *l == "-- ")
    {
        if kept.len() - pos <= MAX_SIGNATURE_LINES {
            kept.truncate(pos);
        }
    }
    while kept.last().is_some_and(|l| l.trim().is_empty()) {
        kept.pop();
    }
    if let Some(last) = kept.last() {
        let t = last.trim();
        let lower = t.to_lowercase();
        let rest = ["sent from ", "enviado desde ", "get outlook for "]
            .iter()
            .find_map(|p| lower.strip_prefix(p));
        if let Some(rest) = rest {
            let words = rest.split_whitespace().count();
            if words <= 6 && !rest.contains(',') {
                kept.pop();
            }
        }
    }
}

/// At most one blank line in a row.
fn collapse_blank_runs(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut blanks = 0;
    for line in text.split('\n') {
        if line.trim().is_empty() {
            blanks += 1;
            if blanks > 1 {
                continue;
            }
        } else {
            blanks = 0;
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out.trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::{Path, PathBuf};

    /// The shared fixtures, `shared/data/email-replies`, looked for from this crate's folder
    /// upwards: a worktree sits deeper below `shared` than the main checkout.
    fn fixtures() -> PathBuf {
        let here = Path::new(env!("CARGO_MANIFEST_DIR"));
        match here
            .ancestors()
            .map(|d| d.join("shared/data/email-replies"))
            .find(|d| d.is_dir())
        {
            Some(dir) => dir,
            None => panic!("no shared/data/email-replies above {}", here.display()),
        }
    }

    /// Every fixture's file name, sorted.
    fn fixture_names() -> Vec<String> {
        let dir = fixtures();
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) => panic!("cannot list {}: {e}", dir.display()),
        };
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter(|e| e.path().is_file())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    fn fixture(name: &str) -> String {
        let path = fixtures().join(name);
        match std::fs::read(&path) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(e) => panic!("the shared fixture {} is missing: {e}", path.display()),
        }
    }

    /// What a person would call the new text of each shared reply.
    fn expected(file: &str) -> Option<String> {
        let text = match file {
            "correct_sig.txt" => "this is an email with a correct -- signature.",
            "email_1_1.txt" => "Hi folks\n\nWhat is the best way to clear a Riak bucket of all key, values after\nrunning a test?\nI am currently using the Java HTTP API.\n\n-Abhishek Kona",
            // An inline reply: the greeting above the quoted question and the answer below
            // it stay; the attribution, the quote and the list footers go. The quotation
            // marks are the replier's own quote of a wiki page, not quoted mail.
            "email_1_2.txt" => concat!(
                "Hi,\n",
                "\n",
                "You can list the keys for the bucket and call delete for each. Or if you\n",
                "put the keys (and kept track of them in your test) you can delete them\n",
                "one at a time (without incurring the cost of calling list first.)\n",
                "\n",
                "Something like:\n",
                "\n",
                "        String bucket = \"my_bucket\";\n",
                "        BucketResponse bucketResponse = riakClient.listBucket(bucket);\n",
                "        RiakBucketInfo bucketInfo = bucketResponse.getBucketInfo();\n",
                "\n",
                "        for(String key : bucketInfo.getKeys()) {\n",
                "            riakClient.delete(bucket, key);\n",
                "        }\n",
                "\n",
                "would do it.\n",
                "\n",
                "See also\n",
                "\n",
                "http://wiki.basho.com/REST-API.html#Bucket-operations\n",
                "\n",
                "which says\n",
                "\n",
                "\"At the moment there is no straightforward way to delete an entire\n",
                "Bucket. There is, however, an open ticket for the feature. To delete all\n",
                "the keys in a bucket, you\u{2019}ll need to delete them all individually.\""
            ),
            "email_1_3.txt" => "Oh thanks.\n\nHaving the function would be great.\n\n-Abhishek Kona",
            "email_1_4.txt" => "Awesome! I haven't had another problem with it.",
            "email_1_6.txt" => "I get proper rendering as well.",
            "email_1_8.txt" => "I will reply under this one\n\nand under this.",
            "email_2_1.txt" => "Outlook with a reply",
            "email_2_2.txt" => "Outlook with a reply directly above line",
            "email_BlackBerry.txt" => "Here is another email",
            "email_bullets.txt" => "test 2 this should list second\n\nand have spaces\n\nand retain this formatting\n\n   - how about bullets\n   - and another",
            // The question and the signature around a 59 KB line of quote markers, which
            // goes. The 700 KB line after "asdf" starts with a letter: the sender typed it
            // (an "A" and a held-down key), so it stays; the inbound endpoint shortens a
            // message to CHARLA_MAX_MESSAGE_CHARS anyway.
            "email_long_quote.txt" => {
                return Some(format!(
                    "Hi folks\n\nWhat is the best way to clear a Riak bucket of all key, values after\nrunning a test?\nasdf\nA{}\nI am currently using the Java HTTP API.\n\n-Abhishek Kona",
                    ">".repeat(707_605)
                ))
            }
            "email_multi_word_sent_from_my_mobile_device.txt" => "Here is another email",
            "email_one_is_not_on.txt" => "Thank, this is really helpful.\n\nOne outstanding question I had:\n\nLocally (on development), when I run...",
            "email_sent_from_my_not_signature.txt" => "Here is another email\n\nSent from my desk, is much easier then my mobile phone.",
            // A GitHub notification answered from a phone: the attribution right below the
            // answer, then a 3 KB quote of sequence data with long runs of underscores
            // (a backtracking parser's nightmare; this one reads each line once).
            "pathological.txt" => "I think you're onto something. I will try to fix the problem as soon as I\nget back to a computer.",
            _ => return None,
        };
        Some(text.to_string())
    }

    /// `assert_eq!` that names the first difference instead of printing 700 KB.
    fn assert_same(file: &str, got: &str, want: &str) {
        if got == want {
            return;
        }
        let at = got
            .chars()
            .zip(want.chars())
            .take_while(|(a, b)| a == b)
            .count();
        let around = |s: &str| {
            s.chars()
                .skip(at.saturating_sub(30))
                .take(60)
                .collect::<String>()
        };
        panic!(
            "{file}: the new text differs at character {at} (got {} characters, want {}):\n got: {:?}\nwant: {:?}",
            got.chars().count(),
            want.chars().count(),
            around(got),
            around(want)
        );
    }

    #[test]
    fn every_shared_reply_has_an_expected_text() {
        let names = fixture_names();
        assert!(!names.is_empty(), "no fixture in {}", fixtures().display());
        let missing: Vec<&String> = names.iter().filter(|n| expected(n).is_none()).collect();
        assert!(
            missing.is_empty(),
            "fixtures without an expected new text: {missing:?}"
        );
    }

    #[test]
    fn what_a_person_would_call_new_in_each_shared_reply() {
        for file in fixture_names() {
            if let Some(want) = expected(&file) {
                assert_same(&file, &new_text(&fixture(&file)), &want);
            }
        }
    }

    #[test]
    fn an_endless_line_of_quote_markers_is_dropped() {
        // Far bigger than any fixture, adversarial: one enormous line of quote markers and
        // no newline at all. Line by line, it costs one pass.
        let hostile = format!("hola\n{}", ">".repeat(5_000_000));
        assert_eq!(new_text(&hostile), "hola");
    }

    #[test]
    fn spanish_attributions_and_mobile_signatures_go() {
        let body = "Perfecto, gracias.\n\nEnviado desde mi iPhone\n\nEl 3 mar 2026, a las 10:02, Tienda <reply+c1-ab@example.com> escribió:\n\n> Su pedido salió ayer.\n";
        assert_eq!(new_text(body), "Perfecto, gracias.");
        let outlook = "Sí, el martes.\r\n\r\nDe: Tienda <a@b.com>\r\nEnviado: lunes\r\nPara: yo\r\nAsunto: pedido\r\n\r\nTexto antiguo";
        assert_eq!(new_text(outlook), "Sí, el martes.");
    }
}
