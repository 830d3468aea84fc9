-- Hearth coordinator schema for PostgreSQL: the same tables as SQLite's
-- migrations 0001-0004 (see migrations/sqlite/), with PostgreSQL's types.
-- Times are Unix seconds (UTC). Lists are JSON arrays of strings, as text.

CREATE TABLE users (
    id          BIGSERIAL PRIMARY KEY,
    name        TEXT      NOT NULL UNIQUE,
    created_at  BIGINT    NOT NULL
);

CREATE TABLE preauth_keys (
    id            BIGSERIAL PRIMARY KEY,
    user_id       BIGINT    NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    -- Public part of the key, printed in lists and used to find the row.
    prefix        TEXT      NOT NULL UNIQUE,
    -- SHA-256 of the secret part; the secret itself is never stored.
    secret_hash   BYTEA     NOT NULL,
    reusable      BOOLEAN   NOT NULL,
    ephemeral     BOOLEAN   NOT NULL,
    pre_approved  BOOLEAN   NOT NULL,
    tags          TEXT      NOT NULL DEFAULT '[]',
    expires_at    BIGINT,
    use_count     BIGINT    NOT NULL DEFAULT 0,
    created_at    BIGINT    NOT NULL
);

-- Node ids are given by the coordinator that registers the node (one more
-- than the largest it knows; a clash with another coordinator's new node
-- is a unique violation it recovers from).
CREATE TABLE nodes (
    id                BIGINT    PRIMARY KEY,
    user_id           BIGINT    NOT NULL REFERENCES users(id),
    name              TEXT      NOT NULL UNIQUE,
    hostname          TEXT      NOT NULL,
    os                TEXT      NOT NULL,
    wireguard_key     TEXT      NOT NULL UNIQUE,
    state             TEXT      NOT NULL CHECK (state IN ('pending', 'approved', 'rejected', 'expired')),
    ipv4              TEXT      NOT NULL UNIQUE,
    ipv6              TEXT      NOT NULL UNIQUE,
    tags              TEXT      NOT NULL DEFAULT '[]',
    ephemeral         BOOLEAN   NOT NULL,
    preauth_key_id    BIGINT    REFERENCES preauth_keys(id) ON DELETE SET NULL,
    cert_fingerprint  TEXT      UNIQUE,
    static_device     BOOLEAN   NOT NULL DEFAULT FALSE,
    endpoints         TEXT      NOT NULL DEFAULT '[]',
    advertised_routes TEXT      NOT NULL DEFAULT '[]',
    approved_routes   TEXT      NOT NULL DEFAULT '[]',
    created_at        BIGINT    NOT NULL,
    last_seen         BIGINT,
    machine_key       TEXT      UNIQUE,
    disco_key         TEXT,
    client            TEXT      NOT NULL DEFAULT '',
    home_relay        BIGINT
);

CREATE INDEX nodes_user ON nodes(user_id);
CREATE INDEX nodes_preauth_key ON nodes(preauth_key_id);

CREATE TABLE policy (
    id          BIGINT    PRIMARY KEY CHECK (id = 1),
    body        TEXT      NOT NULL,
    updated_at  BIGINT    NOT NULL
);

CREATE TABLE released_addresses (
    ipv4         TEXT      PRIMARY KEY,
    released_at  BIGINT    NOT NULL
);

CREATE TABLE relays (
    id           BIGINT    PRIMARY KEY,
    code         TEXT      NOT NULL UNIQUE,
    url          TEXT      NOT NULL,
    secret_hash  TEXT      NOT NULL UNIQUE,
    fingerprint  TEXT,
    stun_port    BIGINT,
    created_at   BIGINT    NOT NULL
);
