-- The idempotency index leads with the client id instead of the conversation (XB8).
-- Keyed by conversation first, every conversation in a batch had its own insertion point
-- in this index, and a random client id (the widget sent 96 random bits) a new one for
-- every message: with 64 conversations in a batch of 1,024 messages, about 1,000 of this
-- index's pages went to the log per commit. The widget, the console and the load harness
-- now send client ids that start with the time (`w-` + 9 base-36 digits of milliseconds +
-- 16 hex digits), so led by the client id the index grows at its end: about 17 pages per
-- such commit. A client that sends random ids still works, at the old cost. The rule it
-- enforces is unchanged: one message per client id, author and conversation.
DROP INDEX messages_client_id;
CREATE UNIQUE INDEX messages_client_id ON messages(client_id, author_kind, author_id, conversation_id)
    WHERE client_id IS NOT NULL;
