//! The CRM domain: who a visitor is (ID1, XB11), leads and customers (CF4, OC16), merges
//! (ID3, OC19), privacy (XB6). `contacts` holds the records and the identity rules;
//! `identity` the identifier formats and signed identities; this file what the runtime and
//! the HTTP handlers call, including keeping open conversations' headers in step.

pub mod contacts;
pub mod identity;

use crate::error::AppError;
use crate::model::Named;
use crate::protocol::ServerFrame;
use crate::runtime::conversation::SetContact;
use crate::runtime::hub::Audience;
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
/// conversations that changed contact their new header (OC19) and tells operators about
/// new merge suggestions.
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
    refresh_headers(rt, &done.moved, done.contact_id, &done.name).await;
    announce_suggestions(rt, &done.suggestions);
    Ok(done)
}

/// Tells operators that merge suggestions were raised (the console updates its count).
pub fn announce_suggestions(rt: &Runtime, ids: &[i64]) {
    if ids.is_empty() {
        return;
    }
    let frame = bytestring::ByteString::from(
        serde_json::json!({ "type": "suggestions", "new": ids }).to_string(),
    );
    rt.core.hub.publish_operators(&frame, Audience::All, None);
}

/// Gives conversations whose contact changed (a merge, a link, an edit) their new header:
/// live actors through the actor; the others straight from the database, so no console
/// keeps a stale name.
pub async fn refresh_headers(rt: &Runtime, conversations: &[i64], contact_id: i64, name: &str) {
    let mut asleep = Vec::new();
    for id in conversations {
        match rt.live_conversation(*id) {
            Some(addr) => addr.do_send(SetContact {
                contact: Some(Named {
                    id: contact_id,
                    name: name.to_string(),
                }),
            }),
            None => asleep.push(*id),
        }
    }
    announce_from_store(rt, asleep).await;
}

/// Publishes the stored headers of conversations to the operators.
pub async fn announce_from_store(rt: &Runtime, conversations: Vec<i64>) {
    for id in conversations {
        let record = rt.core.store.call(move |s| s.conversation(id)).await;
        if let Ok(Some(record)) = record {
            let mut view = record.view();
            view.visitor_online = rt.core.visitors_online.contains(&id);
            let frame = ServerFrame::Conversation {
                conversation: &view,
            }
            .encode();
            rt.core.hub.publish_operators(&frame, Audience::All, None);
        }
    }
}
