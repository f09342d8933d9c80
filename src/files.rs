//! Files in conversations (XB1): what may be uploaded (types checked against the bytes,
//! not the name), and the rule that a message may only carry its sender's own upload.

use crate::error::{AppError, ErrorCode};
use crate::runtime::Runtime;
use crate::store::attachments::{AttachmentInfo, NewAttachment};

/// The types accepted, and whether a browser may show them inline (images) or must
/// download them. SVG and HTML are not accepted: they can carry scripts.
pub const ALLOWED: &[(&str, bool)] = &[
    ("image/png", true),
    ("image/jpeg", true),
    ("image/gif", true),
    ("image/webp", true),
    ("application/pdf", false),
    ("text/plain", false),
];

/// Longest file name kept, in characters.
const MAX_NAME: usize = 120;

/// The type the bytes are, for the types accepted; `None` for anything else.
pub fn sniff(data: &[u8], declared: &str) -> Option<&'static str> {
    let starts = |magic: &[u8]| data.starts_with(magic);
    if starts(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if starts(b"\xff\xd8\xff") {
        Some("image/jpeg")
    } else if starts(b"GIF87a") || starts(b"GIF89a") {
        Some("image/gif")
    } else if data.len() > 12 && starts(b"RIFF") && &data[8..12] == b"WEBP" {
        Some("image/webp")
    } else if starts(b"%PDF-") {
        Some("application/pdf")
    } else if declared.starts_with("text/plain")
        && std::str::from_utf8(data).is_ok()
        && !data.contains(&0)
    {
        Some("text/plain")
    } else {
        None
    }
}

/// Whether a stored type is shown inline.
pub fn inline(content_type: &str) -> bool {
    ALLOWED.iter().any(|(t, i)| *t == content_type && *i)
}

/// A file name safe to keep and to put in a header: no path, no control characters, no
/// quotes, at most [`MAX_NAME`] characters.
pub fn clean_name(raw: &str) -> String {
    let base = raw.rsplit(['/', '\\']).next().unwrap_or("");
    let cleaned: String = base
        .chars()
        .filter(|c| !c.is_control() && !matches!(c, '"' | '\\' | ';'))
        .take(MAX_NAME)
        .collect();
    let cleaned = cleaned.trim().to_string();
    if cleaned.is_empty() || cleaned == "." || cleaned == ".." {
        "file".into()
    } else {
        cleaned
    }
}

/// Stores an upload after checking its size and type.
pub async fn upload(
    rt: &Runtime,
    uploader_kind: &'static str,
    uploader_id: i64,
    filename: &str,
    declared_type: &str,
    data: Vec<u8>,
) -> Result<AttachmentInfo, AppError> {
    let max = rt.core.config.max_upload_bytes;
    if data.len() > max {
        return Err(AppError::new(
            ErrorCode::TooLarge,
            format!("the file is over {max} bytes"),
        ));
    }
    if data.is_empty() {
        return Err(AppError::bad_request("the file is empty"));
    }
    let content_type = sniff(&data, declared_type).ok_or_else(|| {
        AppError::bad_request(
            "this kind of file is not accepted: images (PNG, JPEG, GIF, WebP), PDF or plain text",
        )
    })?;
    let id = crate::auth::new_token();
    let name = clean_name(filename);
    let now = rt.core.clock.now_ms();
    let info = AttachmentInfo {
        id: id.clone(),
        conversation_id: None,
        uploader_kind: uploader_kind.into(),
        uploader_id,
        filename: name.clone(),
        content_type: content_type.into(),
        size: data.len() as i64,
    };
    rt.core
        .store
        .call(move |s| {
            s.add_attachment(&NewAttachment {
                id: &id,
                uploader_kind,
                uploader_id,
                filename: &name,
                content_type,
                data: &data,
                now,
            })
        })
        .await?;
    Ok(info)
}

/// The file a message refers to, if the sender may send it: their own upload, not sent in
/// another conversation.
pub async fn reference(
    rt: &Runtime,
    id: &str,
    uploader_kind: &str,
    uploader_id: i64,
    conversation_id: Option<i64>,
) -> Result<AttachmentInfo, AppError> {
    let key = id.to_string();
    let info = rt.core.store.call(move |s| s.attachment_info(&key)).await?;
    match info {
        Some(a)
            if a.uploader_kind == uploader_kind
                && a.uploader_id == uploader_id
                && (a.conversation_id.is_none() || a.conversation_id == conversation_id) =>
        {
            Ok(a)
        }
        _ => Err(AppError::bad_request(
            "no such file of yours; upload it first with POST /api/uploads",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_come_from_the_bytes() {
        assert_eq!(
            sniff(b"\x89PNG\r\n\x1a\nrest", "text/plain"),
            Some("image/png")
        );
        assert_eq!(sniff(b"\xff\xd8\xff\xe0", "image/png"), Some("image/jpeg"));
        assert_eq!(sniff(b"<svg onload=alert(1)>", "image/svg+xml"), None);
        assert_eq!(sniff(b"<html><script>", "text/plain"), Some("text/plain"));
        assert!(
            !inline("text/plain"),
            "text is downloaded, never rendered as HTML"
        );
        assert_eq!(sniff(b"MZ\x90\x00", "application/octet-stream"), None);
        assert_eq!(sniff(b"hola\x00", "text/plain"), None);
    }

    #[test]
    fn names_lose_paths_and_header_characters() {
        assert_eq!(clean_name("../../etc/passwd"), "passwd");
        assert_eq!(clean_name("C:\\Users\\a\\foto.png"), "foto.png");
        assert_eq!(clean_name("a\"b;c\r\n.png"), "abc.png");
        assert_eq!(clean_name(""), "file");
        assert_eq!(clean_name(".."), "file");
    }
}
