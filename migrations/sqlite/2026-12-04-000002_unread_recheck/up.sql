-- The last operator reply an `unread` e-mail carries (CF8, XB9): when the e-mail is about to
-- go, a visitor whose read mark has reached it read the replies in the chat meanwhile (an
-- SMTP outage, say), and the e-mail is `cancelled` instead of sent. Empty for transcripts.
ALTER TABLE outbox ADD COLUMN covers_seq BIGINT;
