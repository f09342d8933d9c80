//! The CRM domain: who a visitor is (ID1, XB11), leads and customers (CF4, OC16), merges
//! (ID3, OC19), privacy (XB6). `contacts` holds the records and the identity rules;
//! `identity` the identifier formats and signed identities; this file what the runtime and
//! the HTTP handlers call, including keeping open conversations' headers in step.

pub mod contacts;
pub mod identity;

use crate::error::AppError;
use crate::model::Named;
use crate::runtime::conversation::SetContact;
use crate::runtime::Runtime;
use contacts::{Claim, IdKind, Identified};
use serde::{Deserialize, Serialize};

/// What a widget form carries (CF2, ID7, CF7): each field optional here; the channel's
/// settings say which are required.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FormFields {
    /// The visitor's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// E-mail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Phone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
}

/// Longest name a form accepts, in characters.
const MAX_NAME: usize = 120;

impl FormFields {
    /// Trims, drops empty fields, checks lengths and normalises the identifiers (lower-case
    /// e-mail, E.164 phone); errors name the field.
    pub fn clean(self, default_country_code: Option<&str>) -> Result<FormFields, AppError> {
        let trim = |v: Option<String>| v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
        let name = trim(self.name);
        if name.as_ref().is_some_and(|n| n.chars().count() > MAX_NAME) {
            return Err(AppError::bad_request(format!(
                "the name is longer than {MAX_NAME} characters"
            )));
        }
        let email = trim(self.email)
            .map(|e| identity::normalise_email(&e))
            .transpose()?;
        let phone = trim(self.phone)
            .map(|p| identity::normalise_phone(&p, default_country_code))
            .transpose()?;
        Ok(FormFields { name, email, phone })
    }

    /// The identifiers the fields claim, typed by the visitor (never vouched for).
    pub fn claims(&self) -> Vec<Claim> {
        let mut v = Vec::new();
        if let Some(e) = &self.email {
            v.push(Claim {
                kind: IdKind::Email,
                value: e.clone(),
                verified: false,
                source: "form",
            });
        }
        if let Some(p) = &self.phone {
            v.push(Claim {
                kind: IdKind::Phone,
                value: p.clone(),
                verified: false,
                source: "form",
            });
        }
        v
    }
}

/// Identifies a visitor by the rules of `contacts::Store::identify`, then gives the open
/// conversations that changed contact their new header (OC19).
pub async fn identify(
    rt: &Runtime,
    visitor_id: i64,
    name: Option<String>,
    claims: Vec<Claim>,
) -> Result<Identified, AppError> {
    let now = rt.core.clock.now_ms();
    let done = rt
        .core
        .store
        .call(move |s| s.identify(visitor_id, name.as_deref(), &claims, now))
        .await?;
    refresh_headers(rt, &done.moved, done.contact_id, &done.name);
    Ok(done)
}

/// Tells live conversation actors their contact changed (a merge, a link).
pub fn refresh_headers(rt: &Runtime, conversations: &[i64], contact_id: i64, name: &str) {
    for id in conversations {
        if let Some(addr) = rt.live_conversation(*id) {
            addr.do_send(SetContact {
                contact: Some(Named {
                    id: contact_id,
                    name: name.to_string(),
                }),
            });
        }
    }
}
