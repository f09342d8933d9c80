DROP INDEX messages_client_id;
CREATE UNIQUE INDEX messages_client_id ON messages(conversation_id, author_kind, author_id, client_id)
    WHERE client_id IS NOT NULL;
