//! Signed links and addresses in e-mails to visitors (XB10): the reply address names the
//! conversation with a signature, so a reply can be threaded back and a forged one refused;
//! the "continue the conversation" link names the conversation and the visitor, expires,
//! and is signed too.

use crate::auth::{hmac_hex, hmac_verify};

/// Hex digits of signature in a reply address (64 bits: a forgery needs 2^64 tries, and
/// every try is a refused e-mail).
const REPLY_SIG: usize = 16;
/// Hex digits of signature in a continue link.
const LINK_SIG: usize = 32;

/// The local part's token for a conversation: `c<id>-<signature>`.
pub fn reply_token(secret: &str, conversation_id: i64) -> String {
    let sig = hmac_hex(secret, &format!("reply:{conversation_id}"));
    format!("c{conversation_id}-{}", &sig[..REPLY_SIG])
}

/// The reply address of a conversation.
pub fn reply_address(secret: &str, conversation_id: i64, domain: &str) -> String {
    format!("reply+{}@{domain}", reply_token(secret, conversation_id))
}

/// The conversation a reply address names, if its signature holds.
pub fn conversation_of_address(secret: &str, address: &str) -> Option<i64> {
    let local = address.trim().split('@').next()?.to_ascii_lowercase();
    let token = local.strip_prefix("reply+")?;
    let (id, sig) = token.strip_prefix('c')?.split_once('-')?;
    let id: i64 = id.parse().ok()?;
    (sig.len() == REPLY_SIG && hmac_verify(secret, &format!("reply:{id}"), sig, REPLY_SIG))
        .then_some(id)
}

/// Why a continue link does not work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkError {
    /// Malformed or tampered with.
    Invalid,
    /// Past its expiry.
    Expired,
}

/// A continue code: `<conversation>.<visitor>.<expires ms>.<signature>`.
pub fn continue_code(
    secret: &str,
    conversation_id: i64,
    visitor_id: i64,
    expires_at: i64,
) -> String {
    let msg = format!("continue:{conversation_id}:{visitor_id}:{expires_at}");
    let sig = hmac_hex(secret, &msg);
    format!(
        "{conversation_id}.{visitor_id}.{expires_at}.{}",
        &sig[..LINK_SIG]
    )
}

/// The conversation and visitor a continue code names, if it is genuine and unexpired.
pub fn check_continue_code(secret: &str, code: &str, now: i64) -> Result<(i64, i64), LinkError> {
    let parts: Vec<&str> = code.trim().split('.').collect();
    let [c, v, e, sig] = parts.as_slice() else {
        return Err(LinkError::Invalid);
    };
    let (Ok(c), Ok(v), Ok(e)) = (c.parse::<i64>(), v.parse::<i64>(), e.parse::<i64>()) else {
        return Err(LinkError::Invalid);
    };
    let msg = format!("continue:{c}:{v}:{e}");
    if sig.len() != LINK_SIG || !hmac_verify(secret, &msg, sig, LINK_SIG) {
        return Err(LinkError::Invalid);
    }
    if now > e {
        return Err(LinkError::Expired);
    }
    Ok((c, v))
}

/// Where a continue link points: the site that embeds the widget when the channel names
/// one (the widget there reads the code from the address's fragment), else this server's
/// own `/continue` page.
pub fn continue_url(base: &str, site_url: &str, code: &str) -> String {
    if site_url.is_empty() {
        format!("{}/continue?code={code}", base.trim_end_matches('/'))
    } else {
        let site = site_url.split('#').next().unwrap_or(site_url);
        format!("{site}#charla-continue={code}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_addresses_round_trip_and_forgeries_fail() {
        let a = reply_address("k", 42, "reply.example.com");
        assert!(a.starts_with("reply+c42-"));
        assert_eq!(conversation_of_address("k", &a), Some(42));
        assert_eq!(
            conversation_of_address("k", &a.to_uppercase()),
            Some(42),
            "case folds"
        );
        assert_eq!(conversation_of_address("other", &a), None);
        let forged = a.replace("c42-", "c43-");
        assert_eq!(conversation_of_address("k", &forged), None);
        assert_eq!(conversation_of_address("k", "someone@example.com"), None);
        assert_eq!(conversation_of_address("k", "reply+c1-zz@x"), None);
    }

    #[test]
    fn continue_codes_expire_and_resist_tampering() {
        let code = continue_code("k", 7, 99, 1_000);
        assert_eq!(check_continue_code("k", &code, 999), Ok((7, 99)));
        assert_eq!(
            check_continue_code("k", &code, 1_001),
            Err(LinkError::Expired)
        );
        let tampered = code.replacen("7.", "8.", 1);
        assert_eq!(
            check_continue_code("k", &tampered, 0),
            Err(LinkError::Invalid)
        );
        let later = code.replace(".1000.", ".9999999.");
        assert_eq!(
            check_continue_code("k", &later, 0),
            Err(LinkError::Invalid),
            "expiry is signed"
        );
        assert_eq!(
            check_continue_code("k", "garbage", 0),
            Err(LinkError::Invalid)
        );
        assert_eq!(
            continue_url("https://chat.example.com/", "", "c"),
            "https://chat.example.com/continue?code=c"
        );
        assert_eq!(
            continue_url("x", "https://shop.example.com/help#top", "c"),
            "https://shop.example.com/help#charla-continue=c"
        );
    }
}
