-- The operator console and routing: user groups carry the chat permission (OC1), teams
-- route conversations, channels name where a conversation came from (OC9), assignment with
-- its audit trail (OC8, XB12), the waiting queue (XB13), drafts kept per operator (XB3),
-- internal chats between operators (OC21), a minimal contact record for the CRM filters
-- (OC11), message metadata (quotes, event details) and the full-text index (OC7).

CREATE TABLE user_groups (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    can_chat BOOLEAN NOT NULL DEFAULT TRUE,
    created_at BIGINT NOT NULL
);
CREATE TABLE operator_groups (
    operator_id BIGINT NOT NULL REFERENCES operators(id) ON DELETE CASCADE,
    group_id BIGINT NOT NULL REFERENCES user_groups(id) ON DELETE CASCADE,
    PRIMARY KEY (operator_id, group_id)
);
CREATE INDEX operator_groups_group ON operator_groups(group_id);
-- Everyone who could chat before groups existed keeps the permission through this group.
INSERT INTO user_groups (name, can_chat, created_at) VALUES ('Chat operators', TRUE, 0);
INSERT INTO operator_groups (operator_id, group_id)
    SELECT id, (SELECT id FROM user_groups WHERE name = 'Chat operators') FROM operators WHERE can_chat;
ALTER TABLE operators DROP COLUMN can_chat;
-- Most open conversations distribution gives this operator at once (XB13).
ALTER TABLE operators ADD COLUMN capacity BIGINT NOT NULL DEFAULT 5;
-- Whether the operator takes new conversations while online (a console toggle).
ALTER TABLE operators ADD COLUMN available BOOLEAN NOT NULL DEFAULT TRUE;
-- Console preference: `section` (its own page) or `popup` (over the work area) (OC2).
ALTER TABLE operators ADD COLUMN display_mode TEXT NOT NULL DEFAULT 'section';

CREATE TABLE teams (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL
);
CREATE TABLE team_members (
    team_id BIGINT NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
    operator_id BIGINT NOT NULL REFERENCES operators(id) ON DELETE CASCADE,
    PRIMARY KEY (team_id, operator_id)
);
CREATE INDEX team_members_operator ON team_members(operator_id);

CREATE TABLE channels (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    title TEXT NOT NULL,
    kind TEXT NOT NULL DEFAULT 'web',
    team_id BIGINT REFERENCES teams(id) ON DELETE SET NULL,
    created_at BIGINT NOT NULL
);
INSERT INTO channels (name, title, kind, created_at) VALUES ('web', 'Website', 'web', 0);

CREATE TABLE contacts (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL,
    owner_id BIGINT REFERENCES operators(id) ON DELETE SET NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX contacts_owner ON contacts(owner_id);

-- `visitor` conversations have a visitor; `direct` and `team` ones are internal chats
-- between operators, whose participants are in conversation_members.
ALTER TABLE conversations ADD COLUMN kind TEXT NOT NULL DEFAULT 'visitor';
ALTER TABLE conversations ADD COLUMN assignee_id BIGINT REFERENCES operators(id);
ALTER TABLE conversations ADD COLUMN team_id BIGINT REFERENCES teams(id);
-- Set while the conversation waits for an operator; the queue is ordered by it.
ALTER TABLE conversations ADD COLUMN queued_at BIGINT;
ALTER TABLE conversations ADD COLUMN contact_id BIGINT REFERENCES contacts(id);
ALTER TABLE conversations ADD COLUMN visitor_delivered_seq BIGINT NOT NULL DEFAULT 0;
CREATE INDEX conversations_assignee ON conversations(assignee_id, status);
CREATE INDEX conversations_queue ON conversations(queued_at) WHERE queued_at IS NOT NULL;
CREATE INDEX conversations_contact ON conversations(contact_id);
CREATE INDEX conversations_kind_updated ON conversations(kind, updated_at);

-- The operators in an internal chat, each with their own read mark.
CREATE TABLE conversation_members (
    conversation_id BIGINT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    operator_id BIGINT NOT NULL REFERENCES operators(id) ON DELETE CASCADE,
    read_seq BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (conversation_id, operator_id)
);
CREATE INDEX conversation_members_operator ON conversation_members(operator_id);

-- Every assignment change: who had it, who has it, who decided, why (XB12).
CREATE TABLE assignments (
    id BIGSERIAL PRIMARY KEY,
    conversation_id BIGINT NOT NULL REFERENCES conversations(id),
    from_operator_id BIGINT REFERENCES operators(id),
    to_operator_id BIGINT REFERENCES operators(id),
    by_operator_id BIGINT REFERENCES operators(id),
    reason TEXT NOT NULL,
    at BIGINT NOT NULL
);
CREATE INDEX assignments_conversation ON assignments(conversation_id, id);

CREATE TABLE drafts (
    operator_id BIGINT NOT NULL REFERENCES operators(id) ON DELETE CASCADE,
    conversation_id BIGINT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    body TEXT NOT NULL,
    reply_to BIGINT,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (operator_id, conversation_id)
);

-- Routing settings an administrator changes in the console (OC3, OC4).
CREATE TABLE settings (
    key TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
);

-- Quotes, event details: a small JSON object, absent for plain text.
ALTER TABLE messages ADD COLUMN meta TEXT;

-- Full-text search over what people wrote (OC7): a GIN index over the words of text
-- messages and notes (the `simple` configuration: no stemming, so Spanish and English
-- alike), so a search never scans the messages.
-- New entries go to the index's pending list, which the server's indexer thread merges
-- into the index every 250 ms (`gin_clean_pending_list`); the list may grow to 32 MB, so a
-- committing transaction never has to merge it itself (that cost ~100 ms stalls at 5,000
-- messages a second with the default 4 MB).
CREATE INDEX messages_fts ON messages USING GIN (to_tsvector('simple', body))
    WITH (gin_pending_list_limit = 32768)
    WHERE kind IN ('text', 'note');
