-- Hearth coordinator schema, version 1.
-- Times are Unix seconds (UTC). Lists are JSON arrays of strings.

CREATE TABLE users (
    id          INTEGER PRIMARY KEY,
    name        TEXT    NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL
);

CREATE TABLE preauth_keys (
    id            INTEGER PRIMARY KEY,
    user_id       INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    -- Public part of the key, printed in lists and used to find the row.
    prefix        TEXT    NOT NULL UNIQUE,
    -- SHA-256 of the secret part; the secret itself is never stored.
    secret_hash   BLOB    NOT NULL,
    reusable      INTEGER NOT NULL CHECK (reusable IN (0, 1)),
    ephemeral     INTEGER NOT NULL CHECK (ephemeral IN (0, 1)),
    pre_approved  INTEGER NOT NULL CHECK (pre_approved IN (0, 1)),
    tags          TEXT    NOT NULL DEFAULT '[]',
    expires_at    INTEGER,
    use_count     INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL
);

CREATE TABLE nodes (
    id                INTEGER PRIMARY KEY,
    user_id           INTEGER NOT NULL REFERENCES users(id),
    name              TEXT    NOT NULL UNIQUE,
    hostname          TEXT    NOT NULL,
    os                TEXT    NOT NULL,
    wireguard_key     TEXT    NOT NULL UNIQUE,
    state             TEXT    NOT NULL CHECK (state IN ('pending', 'approved', 'rejected', 'expired')),
    ipv4              TEXT    NOT NULL UNIQUE,
    ipv6              TEXT    NOT NULL UNIQUE,
    tags              TEXT    NOT NULL DEFAULT '[]',
    ephemeral         INTEGER NOT NULL CHECK (ephemeral IN (0, 1)),
    preauth_key_id    INTEGER REFERENCES preauth_keys(id) ON DELETE SET NULL,
    -- SHA-256 of the client certificate issued at registration (NULL for static devices).
    cert_fingerprint  TEXT    UNIQUE,
    static_device     INTEGER NOT NULL DEFAULT 0 CHECK (static_device IN (0, 1)),
    endpoints         TEXT    NOT NULL DEFAULT '[]',
    advertised_routes TEXT    NOT NULL DEFAULT '[]',
    approved_routes   TEXT    NOT NULL DEFAULT '[]',
    created_at        INTEGER NOT NULL,
    last_seen         INTEGER
);

CREATE INDEX nodes_user ON nodes(user_id);

CREATE TABLE policy (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    body        TEXT    NOT NULL,
    updated_at  INTEGER NOT NULL
);
