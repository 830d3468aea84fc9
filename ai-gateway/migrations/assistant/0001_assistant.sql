-- The household assistant's state (docs/assistant.md). Text columns marked
-- "sealed?" hold UTF-8, or nonce || ciphertext when `sealed` = 1 (the
-- at-rest key, bound to the row's owner).

-- What the assistant remembers: OpenClaw's MEMORY.md ('long') and daily
-- notes ('YYYY-MM-DD'), per owner (member:NAME or room:NAME).
CREATE TABLE memory (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    owner       TEXT    NOT NULL,
    layer       TEXT    NOT NULL,
    text        BLOB    NOT NULL,  -- sealed?
    vector      BLOB,              -- little-endian f32s; sealed?
    sealed      INTEGER NOT NULL,
    source      TEXT    NOT NULL,
    written_at  INTEGER NOT NULL   -- Unix ms
);
CREATE INDEX memory_by_owner ON memory(owner, id);

-- Reminders and scheduled questions. `asker` is who made it (JSON: member,
-- room, capabilities), whose authority a scheduled question runs with.
CREATE TABLE jobs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    member      TEXT    NOT NULL,
    asker       TEXT    NOT NULL,
    target      TEXT    NOT NULL,  -- member:NAME or room:NAME
    schedule    TEXT    NOT NULL,  -- JSON, OpenClaw's forms (at, every, cron)
    action      TEXT    NOT NULL,  -- remind | ask
    text        BLOB    NOT NULL,  -- sealed?
    sealed      INTEGER NOT NULL,
    next_at     INTEGER NOT NULL,  -- Unix ms
    created_at  INTEGER NOT NULL
);
CREATE INDEX jobs_by_time ON jobs(next_at);
CREATE INDEX jobs_by_member ON jobs(member);

-- Messages the assistant posts on its own, until messaging has them.
CREATE TABLE deliveries (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    target      TEXT    NOT NULL,
    text        BLOB    NOT NULL,  -- sealed?
    sealed      INTEGER NOT NULL,
    created_at  INTEGER NOT NULL
);

-- Shared lists, per owner.
CREATE TABLE list_items (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    owner       TEXT    NOT NULL,
    list        TEXT    NOT NULL,
    item        BLOB    NOT NULL,  -- sealed?
    sealed      INTEGER NOT NULL,
    added_by    TEXT    NOT NULL,
    added_at    INTEGER NOT NULL
);
CREATE INDEX list_items_by_owner ON list_items(owner, list, id);

-- Household documents: each indexed whole (its passages in one
-- transaction) or not at all.
CREATE TABLE documents (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    folder      TEXT    NOT NULL,
    path        TEXT    NOT NULL,
    size        INTEGER NOT NULL,
    modified    INTEGER NOT NULL,  -- Unix ms
    indexed_at  INTEGER NOT NULL,
    UNIQUE (folder, path)
);

CREATE TABLE passages (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    document    INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    citation    TEXT    NOT NULL,
    text        TEXT    NOT NULL,
    vector      BLOB
);
CREATE INDEX passages_by_document ON passages(document);

-- Documents that were not indexed, and why (until they change).
CREATE TABLE refused_documents (
    folder      TEXT    NOT NULL,
    path        TEXT    NOT NULL,
    size        INTEGER NOT NULL,
    modified    INTEGER NOT NULL,
    reason      TEXT    NOT NULL,
    PRIMARY KEY (folder, path)
);

-- How many messages of each session are already in a daily note.
CREATE TABLE trimmed (
    session     TEXT    PRIMARY KEY,
    through     INTEGER NOT NULL
);

CREATE TABLE meta (
    key         TEXT    PRIMARY KEY,
    value       BLOB    NOT NULL
);
