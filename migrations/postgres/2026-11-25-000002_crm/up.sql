-- The widget and the CRM: channel settings for the widget (greeting, forms, language,
-- signed identity), contacts with identifiers and their trust (ID1, XB11), merge
-- suggestions and the audit of merges (ID3), files sent in conversations (XB1), and the
-- record of erasures (XB6).

-- Widget settings as one JSON object (see `ChannelSettings`), and the secret a site signs
-- its logged-in users' ids with (ID8): made from the CSPRNG by the server at start when
-- empty, never by SQL's random().
ALTER TABLE channels ADD COLUMN settings TEXT NOT NULL DEFAULT '{}';
ALTER TABLE channels ADD COLUMN identity_secret TEXT NOT NULL DEFAULT '';

ALTER TABLE contacts ADD COLUMN first_name TEXT;
ALTER TABLE contacts ADD COLUMN last_name TEXT;
ALTER TABLE contacts ADD COLUMN address TEXT;
ALTER TABLE contacts ADD COLUMN vip BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE contacts ADD COLUMN bad BOOLEAN NOT NULL DEFAULT FALSE;
-- Set when the contact was merged into another; it then only redirects.
ALTER TABLE contacts ADD COLUMN merged_into BIGINT REFERENCES contacts(id);
ALTER TABLE contacts ADD COLUMN erased_at BIGINT;

-- E-mail addresses (lower-case), phones (E.164) and site user ids, each verified (vouched
-- for: a signed widget identity, channel metadata, a verified e-mail reply) or typed.
CREATE TABLE contact_identifiers (
    id BIGSERIAL PRIMARY KEY,
    contact_id BIGINT NOT NULL REFERENCES contacts(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    value TEXT NOT NULL,
    verified BOOLEAN NOT NULL DEFAULT FALSE,
    source TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX contact_identifiers_unique ON contact_identifiers(contact_id, kind, value);
CREATE INDEX contact_identifiers_value ON contact_identifiers(kind, value);
-- A verified identifier belongs to one contact only.
CREATE UNIQUE INDEX contact_identifiers_verified ON contact_identifiers(kind, value) WHERE verified;

CREATE TABLE merge_suggestions (
    id BIGSERIAL PRIMARY KEY,
    contact_id BIGINT NOT NULL REFERENCES contacts(id) ON DELETE CASCADE,
    candidate_id BIGINT NOT NULL REFERENCES contacts(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    value TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    created_at BIGINT NOT NULL,
    decided_by BIGINT REFERENCES operators(id),
    decided_at BIGINT
);
CREATE INDEX merge_suggestions_status ON merge_suggestions(status, id);

CREATE TABLE contact_merges (
    id BIGSERIAL PRIMARY KEY,
    from_contact_id BIGINT NOT NULL REFERENCES contacts(id),
    into_contact_id BIGINT NOT NULL REFERENCES contacts(id),
    by_operator_id BIGINT REFERENCES operators(id),
    reason TEXT NOT NULL,
    conversations_moved BIGINT NOT NULL,
    at BIGINT NOT NULL
);
CREATE INDEX contact_merges_into ON contact_merges(into_contact_id);

ALTER TABLE visitors ADD COLUMN contact_id BIGINT REFERENCES contacts(id);
CREATE INDEX visitors_contact ON visitors(contact_id);

-- Files sent in conversations (XB1). The id is a random capability: whoever has the
-- conversation has the link.
CREATE TABLE attachments (
    id TEXT PRIMARY KEY NOT NULL,
    conversation_id BIGINT REFERENCES conversations(id),
    uploader_kind TEXT NOT NULL,
    uploader_id BIGINT NOT NULL,
    filename TEXT NOT NULL,
    content_type TEXT NOT NULL,
    size BIGINT NOT NULL,
    data BYTEA NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX attachments_conversation ON attachments(conversation_id);

CREATE TABLE erasures (
    id BIGSERIAL PRIMARY KEY,
    contact_id BIGINT NOT NULL REFERENCES contacts(id),
    by_operator_id BIGINT REFERENCES operators(id),
    at BIGINT NOT NULL
);
