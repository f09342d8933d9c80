//! Identifiers as the CRM keeps them (ID1): e-mail addresses lower-case, phones in E.164,
//! and the signature a site puts on its logged-in user's id (ID8).

use crate::error::AppError;

/// Longest e-mail address (RFC 5321 path limit).
const MAX_EMAIL: usize = 254;
/// Longest site user id accepted in a signed identity.
pub const MAX_USER_ID: usize = 128;

/// An e-mail address trimmed and lower-cased, if it looks like one: one `@`, something on
/// both sides, a dot in the domain, no spaces or control characters.
pub fn normalise_email(raw: &str) -> Result<String, AppError> {
    let email = raw.trim().to_lowercase();
    let bad = || AppError::bad_request("the e-mail address is not valid");
    if email.len() > MAX_EMAIL || email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad());
    }
    let (local, domain) = email.split_once('@').ok_or_else(bad)?;
    if local.is_empty()
        || domain.contains('@')
        || !domain.contains('.')
        || domain.starts_with('.')
        || domain.ends_with('.')
        || domain.contains("..")
    {
        return Err(bad());
    }
    Ok(email)
}

/// A phone number in E.164 (`+` and 8 to 15 digits). Spaces, dashes, dots and brackets
/// are dropped; `00` means `+`; a number without a country code takes the channel's
/// `default_country_code` (digits, such as `34`), and is refused without one.
pub fn normalise_phone(raw: &str, default_country_code: Option<&str>) -> Result<String, AppError> {
    let bad = |why: &str| AppError::bad_request(format!("the phone number is not valid: {why}"));
    let trimmed = raw.trim();
    if trimmed.len() > 40 {
        return Err(bad("too long"));
    }
    let mut digits = String::new();
    let mut plus = false;
    for (i, c) in trimmed.chars().enumerate() {
        match c {
            '+' if i == 0 => plus = true,
            '0'..='9' => digits.push(c),
            ' ' | '-' | '.' | '(' | ')' | '/' => {}
            _ => {
                return Err(bad(
                    "only digits, spaces, dashes and a leading + are allowed",
                ))
            }
        }
    }
    let international = if plus {
        digits
    } else if let Some(rest) = digits.strip_prefix("00") {
        rest.to_string()
    } else {
        match default_country_code.filter(|c| !c.is_empty()) {
            // A national number: drop its trunk prefix 0 (not in Italy, where it stays).
            Some(cc) if cc == "39" => format!("{cc}{digits}"),
            Some(cc) => format!("{cc}{}", digits.trim_start_matches('0')),
            None => {
                return Err(bad(
                    "give it with its country code, such as +34 600 000 000",
                ))
            }
        }
    };
    if !(8..=15).contains(&international.len()) || international.starts_with('0') {
        return Err(bad("it must have 8 to 15 digits with the country code"));
    }
    Ok(format!("+{international}"))
}

/// The identifier a signed site user id is kept as: `<channel id>:<user id>`. Each channel
/// has its own secret, so each vouches only for its own users: user `42` of one site and
/// user `42` of another are two people, never merged (ID8, XB11).
pub fn channel_user_id(channel_id: i64, user_id: &str) -> String {
    format!("{channel_id}:{user_id}")
}

/// The signature a site sends with its logged-in user's id: HMAC-SHA256 of the id with
/// the channel's identity secret, in lower-case hex.
pub fn sign_user_id(secret: &str, user_id: &str) -> String {
    crate::auth::hmac_hex(secret, user_id)
}

/// Checks a signed identity in constant time; a malformed signature never matches.
pub fn verify_user_id(secret: &str, user_id: &str, signature: &str) -> bool {
    signature.len() == 64 && crate::auth::hmac_verify(secret, user_id, signature, 64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn e_mails_are_lower_case_and_checked() {
        assert_eq!(
            normalise_email("  Ana.Perez@Example.COM ").unwrap(),
            "ana.perez@example.com"
        );
        for bad in [
            "",
            "ana",
            "ana@",
            "@x.com",
            "ana@x",
            "a b@x.com",
            "a@x..com",
            "a@b@c.com",
        ] {
            assert!(normalise_email(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn phones_become_e164() {
        assert_eq!(
            normalise_phone("+34 600-12.34 56", None).unwrap(),
            "+34600123456"
        );
        assert_eq!(
            normalise_phone("0034 600 123 456", None).unwrap(),
            "+34600123456"
        );
        assert_eq!(
            normalise_phone("600 123 456", Some("34")).unwrap(),
            "+34600123456"
        );
        assert_eq!(
            normalise_phone("(020) 7946 0958", Some("44")).unwrap(),
            "+442079460958"
        );
        assert!(
            normalise_phone("600 123 456", None).is_err(),
            "no country code"
        );
        assert!(normalise_phone("+34 abc", None).is_err());
        assert!(normalise_phone("+1 23", None).is_err(), "too short");
        assert!(
            normalise_phone("+34 6001234567890123", None).is_err(),
            "too long"
        );
    }

    #[test]
    fn signatures_verify_and_forgeries_do_not() {
        let sig = sign_user_id("s3cret", "user-42");
        assert_eq!(sig.len(), 64);
        assert!(verify_user_id("s3cret", "user-42", &sig));
        assert!(!verify_user_id("s3cret", "user-43", &sig), "another user");
        assert!(!verify_user_id("other", "user-42", &sig), "another secret");
        assert!(!verify_user_id("s3cret", "user-42", "zz"), "malformed");
        assert!(
            !verify_user_id("", "user-42", &sign_user_id("", "user-42")),
            "no secret"
        );
        // A known vector: HMAC-SHA256(key="key", "The quick brown fox jumps over the lazy dog").
        assert_eq!(
            sign_user_id("key", "The quick brown fox jumps over the lazy dog"),
            "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
        );
    }
}
