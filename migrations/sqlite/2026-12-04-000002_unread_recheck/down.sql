ALTER TABLE outbox DROP COLUMN covers_seq;
