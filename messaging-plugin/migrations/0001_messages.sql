-- Household messaging: rooms, messages, read markers, delivery cursors.
CREATE TABLE rooms (
    id          TEXT    PRIMARY KEY,
    created_by  TEXT    NOT NULL,
    created_at  INTEGER NOT NULL
);

-- `body` is UTF-8 text, or nonce || ciphertext when `sealed` (at-rest encryption).
CREATE TABLE messages (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    room        TEXT    NOT NULL REFERENCES rooms(id),
    sender      TEXT    NOT NULL,
    body        BLOB    NOT NULL,
    sealed      INTEGER NOT NULL DEFAULT 0,
    status      TEXT    NOT NULL,
    client_id   TEXT,
    created_at  INTEGER NOT NULL
);
CREATE INDEX messages_by_room ON messages(room, id);

CREATE TABLE read_markers (
    room        TEXT    NOT NULL,
    user        TEXT    NOT NULL,
    last_read   INTEGER NOT NULL,
    PRIMARY KEY (room, user)
);

-- The last message delivered to each device (node), for offline delivery.
CREATE TABLE cursors (
    node        TEXT    PRIMARY KEY,
    delivered   INTEGER NOT NULL
);

CREATE TABLE users (
    name        TEXT    PRIMARY KEY,
    last_seen   INTEGER NOT NULL
);

CREATE TABLE meta (
    key         TEXT    PRIMARY KEY,
    value       BLOB    NOT NULL
);
