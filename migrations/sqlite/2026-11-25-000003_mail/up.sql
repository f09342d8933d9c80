-- E-mail: the durable outbox (written in the same transaction as the event that causes the
-- e-mail, sent with retries: CF5, CF8, EC2), durable timers (XB9), and extra widget tokens
-- for visitors who continue a conversation from an e-mail link on another device (CF8).

CREATE TABLE outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    -- `unread` (CF8, EC2) or `transcript` (CF5).
    kind TEXT NOT NULL,
    conversation_id BIGINT NOT NULL REFERENCES conversations(id),
    to_address TEXT NOT NULL,
    subject TEXT NOT NULL,
    text_body TEXT NOT NULL,
    html_body TEXT NOT NULL,
    -- The Message-ID it goes out with, so a reply's In-Reply-To finds the conversation.
    message_id TEXT NOT NULL UNIQUE,
    reply_to TEXT NOT NULL,
    -- `pending`, `sent` or `failed` (gave up after many attempts).
    status TEXT NOT NULL DEFAULT 'pending',
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    last_error TEXT,
    created_at BIGINT NOT NULL,
    sent_at BIGINT
);
CREATE INDEX outbox_due ON outbox(status, next_attempt_at);
CREATE INDEX outbox_conversation ON outbox(conversation_id);

-- Timers that must survive a restart: one pending per kind and conversation (later
-- requests fold into it), fired once.
CREATE TABLE timers (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    conversation_id BIGINT NOT NULL REFERENCES conversations(id),
    due_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    fired_at BIGINT
);
CREATE UNIQUE INDEX timers_pending ON timers(kind, conversation_id) WHERE fired_at IS NULL;
CREATE INDEX timers_due ON timers(due_at) WHERE fired_at IS NULL;

-- More tokens for one visitor (a continue link opened on another device).
CREATE TABLE visitor_tokens (
    token_hash TEXT PRIMARY KEY NOT NULL,
    visitor_id BIGINT NOT NULL REFERENCES visitors(id),
    created_at BIGINT NOT NULL
);
CREATE INDEX visitor_tokens_visitor ON visitor_tokens(visitor_id);
