//! The product's plain data types, shared by the store, the runtime and the wire protocol.

use serde::{Deserialize, Serialize};

/// Whether a conversation is going on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConversationStatus {
    /// Visitors and operators can write.
    Open,
    /// Closed by an operator; a visitor message or an operator's reopen opens it again.
    Closed,
}

impl ConversationStatus {
    /// The value stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            ConversationStatus::Open => "open",
            ConversationStatus::Closed => "closed",
        }
    }

    /// Reads a stored value; anything unknown counts as closed, the safe side.
    pub fn parse(s: &str) -> Self {
        if s == "open" {
            ConversationStatus::Open
        } else {
            ConversationStatus::Closed
        }
    }
}

/// Who wrote a message or caused an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthorKind {
    /// The site visitor.
    Visitor,
    /// An operator (the id says which).
    Operator,
    /// The server itself (bots, automatic events).
    System,
}

impl AuthorKind {
    /// The value stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthorKind::Visitor => "visitor",
            AuthorKind::Operator => "operator",
            AuthorKind::System => "system",
        }
    }

    /// Reads a stored value.
    pub fn parse(s: &str) -> Self {
        match s {
            "visitor" => AuthorKind::Visitor,
            "operator" => AuthorKind::Operator,
            _ => AuthorKind::System,
        }
    }
}

/// A message is text someone wrote, or an event in the conversation's history (OC12, OC22).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageKind {
    /// Text written by a visitor or an operator.
    Text,
    /// An event: its body names it (`opened`, `closed`, `reopened`, `assigned`, ...).
    Event,
    /// An operators-only note inside a visitor conversation; never shown to the visitor
    /// (XB15: mentions colleagues from inside a conversation).
    Note,
}

impl MessageKind {
    /// The value stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageKind::Text => "text",
            MessageKind::Event => "event",
            MessageKind::Note => "note",
        }
    }

    /// Reads a stored value.
    pub fn parse(s: &str) -> Self {
        match s {
            "event" => MessageKind::Event,
            "note" => MessageKind::Note,
            _ => MessageKind::Text,
        }
    }

    /// Whether the visitor of the conversation may see it.
    pub fn visible_to_visitor(self) -> bool {
        self != MessageKind::Note
    }
}

/// Who talks in a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConversationKind {
    /// A visitor and the operators who answer them.
    Visitor,
    /// An internal chat between two operators (OC21).
    Direct,
    /// An internal chat of a team's members (XB15).
    Team,
}

impl ConversationKind {
    /// The value stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            ConversationKind::Visitor => "visitor",
            ConversationKind::Direct => "direct",
            ConversationKind::Team => "team",
        }
    }

    /// Reads a stored value.
    pub fn parse(s: &str) -> Self {
        match s {
            "direct" => ConversationKind::Direct,
            "team" => ConversationKind::Team,
            _ => ConversationKind::Visitor,
        }
    }

    /// Internal chats have members instead of a visitor and an assignee.
    pub fn is_internal(self) -> bool {
        self != ConversationKind::Visitor
    }
}

/// A person named in a header: an operator (assignee) or a contact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Named {
    /// Id.
    pub id: i64,
    /// Display name.
    pub name: String,
}

/// The author as clients see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Author {
    /// Visitor, operator or system.
    pub kind: AuthorKind,
    /// The operator's id; absent for visitors and the system.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub id: Option<i64>,
    /// The operator's display name.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub name: Option<String>,
}

impl Author {
    /// The visitor of a conversation.
    pub fn visitor() -> Self {
        Author {
            kind: AuthorKind::Visitor,
            id: None,
            name: None,
        }
    }

    /// The server itself.
    pub fn system() -> Self {
        Author {
            kind: AuthorKind::System,
            id: None,
            name: None,
        }
    }

    /// An operator.
    pub fn operator(id: i64, name: impl Into<String>) -> Self {
        Author {
            kind: AuthorKind::Operator,
            id: Some(id),
            name: Some(name.into()),
        }
    }
}

/// One entry of a conversation's history, as sent in `message` frames and history answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageView {
    /// The conversation it belongs to.
    pub conversation_id: i64,
    /// Its position in the conversation, from 1, assigned by the conversation actor.
    pub seq: i64,
    /// Text or event.
    pub kind: MessageKind,
    /// Who wrote it or caused it.
    pub author: Author,
    /// The text, or the event's name.
    pub body: String,
    /// The sender's idempotency key, when it gave one.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub client_id: Option<String>,
    /// When the server accepted it, in ms since the epoch.
    pub created_at: i64,
    /// Details: the quoted message of a reply (`reply_to`), an event's subject (`to`,
    /// `from`), mentions of a note (`mentions`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub meta: Option<serde_json::Value>,
}

/// A conversation's header, as in lists and `conversation` frames.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationView {
    /// Its id.
    pub id: i64,
    /// The human-readable number shown at the top of the widget and in e-mails (CF11).
    pub number: i64,
    /// With a visitor, or internal between operators.
    pub kind: ConversationKind,
    /// Open or closed.
    pub status: ConversationStatus,
    /// The channel it came through (`web` for the widget).
    pub channel: String,
    /// The sequence number of its last committed message.
    pub last_seq: i64,
    /// Up to which sequence number the visitor has read.
    pub visitor_read_seq: i64,
    /// Up to which sequence number an operator has read.
    pub operator_read_seq: i64,
    /// Up to which sequence number the visitor's widget has received (OC15 `delivered`).
    pub visitor_delivered_seq: i64,
    /// A widget of the visitor is connected now: an operator message committed meanwhile
    /// is delivered at once.
    pub visitor_online: bool,
    /// The responsible operator; `None` while unassigned (OC8).
    pub assignee: Option<Named>,
    /// The team the conversation is routed to.
    pub team_id: Option<i64>,
    /// The CRM contact the conversation is linked to (OC11).
    pub contact: Option<Named>,
    /// Waiting in the queue for an operator (XB13).
    pub queued: bool,
    /// Team chats: the team's name.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub title: Option<String>,
    /// Internal chats: the operators taking part.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub members: Vec<Named>,
    /// When it was opened, in ms since the epoch.
    pub created_at: i64,
    /// When it last changed, in ms since the epoch.
    pub updated_at: i64,
}
