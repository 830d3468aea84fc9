-- Files shared into rooms. A message that shares one keeps what the file
-- is (name, type, size: JSON, sealed like the body when bodies are); the
-- bytes are kept apart, sealed the same way, and go when the message is
-- deleted.
ALTER TABLE messages ADD COLUMN attachment BLOB;

CREATE TABLE attachment_contents (
    message     INTEGER PRIMARY KEY REFERENCES messages(id),
    content     BLOB    NOT NULL
);
