//! What the console asks for, in one place for both its transports (HTTP and the operator
//! websocket): drafts (XB3), reassignment (OC8), availability, and the checks they share.

use crate::error::{AppError, ErrorCode};
use crate::model::{MessageKind, Named};
use crate::protocol::{ServerFrame, MAX_MENTIONS, MAX_REASON_CHARS};
use crate::runtime::conversation::{Reassign, Reply, Staff};
use crate::runtime::hub::Audience;
use crate::runtime::router::OperatorChanged;
use crate::runtime::{Core, Runtime};
use crate::store::drafts::Draft;
use crate::store::operators::{Operator, OperatorChange};

/// The operator as the conversation actors judge them.
pub fn staff(op: &Operator) -> Staff {
    Staff {
        id: op.id,
        name: op.name.clone(),
        admin: op.is_admin,
    }
}

/// Reads the `kind` of an operator's message: `text` (the default) or `note`.
pub fn message_kind(kind: Option<&str>) -> Result<MessageKind, AppError> {
    match kind {
        None | Some("text") => Ok(MessageKind::Text),
        Some("note") => Ok(MessageKind::Note),
        Some(_) => Err(AppError::bad_request("kind must be `text` or `note`")),
    }
}

/// Checks the operators a note mentions.
pub fn mentions(ids: Option<Vec<i64>>) -> Result<Vec<i64>, AppError> {
    let mut ids = ids.unwrap_or_default();
    if ids.len() > MAX_MENTIONS {
        return Err(AppError::bad_request(format!(
            "a note mentions at most {MAX_MENTIONS} operators"
        )));
    }
    ids.sort_unstable();
    ids.dedup();
    Ok(ids)
}

/// Refuses a conversation the operator may not see (an internal chat of others); the
/// answer is the same as for a conversation that does not exist.
pub async fn check_visible(
    rt: &Runtime,
    operator_id: i64,
    conversation_id: i64,
) -> Result<(), AppError> {
    let visible = rt
        .core
        .store
        .call(move |s| s.may_see(operator_id, conversation_id))
        .await?;
    if visible {
        Ok(())
    } else {
        Err(AppError::not_found("no such conversation"))
    }
}

/// Stores an operator's draft and shows it on their other consoles (never a colleague's).
pub async fn save_draft(
    rt: &Runtime,
    operator_id: i64,
    conversation_id: i64,
    body: String,
    reply_to: Option<i64>,
    from_session: Option<u64>,
) -> Result<Draft, AppError> {
    let max = rt.core.config.max_message_chars;
    if body.chars().count() > max {
        return Err(AppError::new(
            ErrorCode::TooLarge,
            format!("the draft is longer than {max} characters"),
        ));
    }
    check_visible(rt, operator_id, conversation_id).await?;
    let draft = Draft {
        operator_id,
        conversation_id,
        body,
        reply_to,
        updated_at: rt.core.clock.now_ms(),
    };
    let stored = draft.clone();
    rt.core.store.call(move |s| s.save_draft(&stored)).await?;
    if let Some(addr) = rt.live_conversation(conversation_id) {
        addr.do_send(crate::runtime::conversation::DraftSaved {
            operator_id,
            present: !draft.body.trim().is_empty(),
        });
    }
    publish_draft(&rt.core, &draft, from_session);
    Ok(draft)
}

/// Tells the operator's consoles that a draft changed (an empty body: sent or cleared).
pub fn publish_draft(core: &Core, draft: &Draft, from_session: Option<u64>) {
    let frame = ServerFrame::Draft {
        conversation_id: draft.conversation_id,
        body: if draft.body.trim().is_empty() {
            ""
        } else {
            &draft.body
        },
        reply_to: draft.reply_to,
    }
    .encode();
    core.hub.publish_operators(
        &frame,
        Audience::Only(vec![draft.operator_id].into()),
        from_session,
    );
}

/// Deletes the operator's draft once their reply is durable, on every console; a draft
/// saved after the reply was sent (the next message being typed) stays.
pub async fn clear_draft(
    core: std::sync::Arc<Core>,
    operator_id: i64,
    conversation_id: i64,
    sent_at: i64,
) {
    let cleared = core
        .store
        .call(move |s| s.delete_draft_before(operator_id, conversation_id, sent_at))
        .await;
    if cleared == Ok(true) {
        let draft = Draft {
            operator_id,
            conversation_id,
            body: String::new(),
            reply_to: None,
            updated_at: core.clock.now_ms(),
        };
        publish_draft(&core, &draft, None);
    }
}

/// Builds a reassignment: the target must exist and have the chat permission. `to: None`
/// sends the conversation back to the queue.
pub async fn reassignment(
    rt: &Runtime,
    by: &Operator,
    to: Option<i64>,
    reason: Option<String>,
    client_id: Option<String>,
    reply: Reply,
    from_session: Option<u64>,
) -> Result<Reassign, AppError> {
    let reason = reason.unwrap_or_default().trim().to_string();
    if reason.chars().count() > MAX_REASON_CHARS {
        return Err(AppError::bad_request(format!(
            "the reason is longer than {MAX_REASON_CHARS} characters"
        )));
    }
    let to = match to {
        None => None,
        Some(id) => {
            let target = rt
                .core
                .store
                .call(move |s| s.operator(id))
                .await?
                .ok_or_else(|| AppError::not_found("no such operator"))?;
            if !target.may_chat() {
                return Err(AppError::bad_request(
                    "that operator has no chat permission",
                ));
            }
            Some(Named {
                id: target.id,
                name: target.name,
            })
        }
    };
    let reason = if !reason.is_empty() {
        reason
    } else if to.as_ref().is_some_and(|t| t.id == by.id) {
        "took the conversation".into()
    } else {
        "reassigned".into()
    };
    Ok(Reassign {
        by: staff(by),
        to,
        reason,
        client_id,
        reply,
        from_session,
    })
}

/// Applies a change to an operator and tells the router, which may hand them waiting
/// conversations at once.
pub async fn change_operator(
    rt: &Runtime,
    id: i64,
    change: OperatorChange,
) -> Result<Operator, AppError> {
    if let Some(c) = change.capacity {
        // Up to 10,000: an operator account may be a bot, or a load test's.
        if !(0..=10_000).contains(&c) {
            return Err(AppError::bad_request("capacity must be 0 to 10000"));
        }
    }
    if let Some(m) = &change.display_mode {
        if m != "section" && m != "popup" {
            return Err(AppError::bad_request(
                "display_mode must be `section` or `popup`",
            ));
        }
    }
    if let Some(name) = &change.name {
        if name.trim().is_empty() || name.chars().count() > 100 {
            return Err(AppError::bad_request(
                "the name must be 1 to 100 characters",
            ));
        }
    }
    let teams_changed = change.teams.is_some();
    let op = rt
        .core
        .store
        .call(move |s| s.update_operator(id, &change))
        .await
        .map_err(|e| match e {
            crate::store::StoreError::NotFound => AppError::not_found("no such operator"),
            crate::store::StoreError::Conflict(what) => AppError::bad_request(what),
            other => other.into(),
        })?;
    if teams_changed {
        sync_team_chats(rt).await?;
    }
    rt.core.hub.account_changed(&op);
    rt.router.do_send(OperatorChanged {
        operator: op.clone(),
    });
    Ok(op)
}

/// Brings every team chat's members in line with its team, live actors included.
pub async fn sync_team_chats(rt: &Runtime) -> Result<(), AppError> {
    let teams = rt.core.store.call(|s| s.list_teams()).await?;
    for team in teams {
        let team_id = team.id;
        let chat = rt
            .core
            .store
            .call(move |s| s.sync_team_chat(team_id))
            .await?;
        if let Some(chat) = chat {
            if let Some(addr) = rt.live_conversation(chat) {
                let record = rt.core.store.call(move |s| s.conversation(chat)).await?;
                if let Some(record) = record {
                    addr.do_send(crate::runtime::conversation::SetMembers {
                        members: record.members,
                    });
                }
            }
        }
    }
    Ok(())
}
