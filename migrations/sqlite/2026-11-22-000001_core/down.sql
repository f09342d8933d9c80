DROP TABLE messages;
DROP TABLE conversations;
DROP TABLE visitors;
DROP TABLE operator_tokens;
DROP TABLE operators;
