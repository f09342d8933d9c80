DROP TABLE visitor_tokens;
DROP TABLE timers;
DROP TABLE outbox;
