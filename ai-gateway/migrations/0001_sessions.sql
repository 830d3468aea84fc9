-- Chat sessions: one current session per (channel, peer); /new starts another.
CREATE TABLE sessions (
    channel     TEXT    NOT NULL,
    peer        TEXT    NOT NULL,
    session_id  TEXT    NOT NULL,
    started_at  INTEGER NOT NULL,
    PRIMARY KEY (channel, peer)
);

CREATE TABLE messages (
    id          INTEGER PRIMARY KEY,
    session_id  TEXT    NOT NULL,
    role        TEXT    NOT NULL CHECK (role IN ('user', 'assistant')),
    content     TEXT    NOT NULL,
    created_at  INTEGER NOT NULL
);

CREATE INDEX messages_by_session ON messages(session_id, id);
