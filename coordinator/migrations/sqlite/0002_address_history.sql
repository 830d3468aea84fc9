-- Freed mesh addresses and when they were freed: a freed address is not
-- handed to another node until its quarantine has passed (see ipam.rs), and
-- the highest address ever handed out survives deletions and restarts.
CREATE TABLE released_addresses (
    ipv4         TEXT    PRIMARY KEY,
    released_at  INTEGER NOT NULL
);

-- Pending nodes are counted per pre-auth key at every registration.
CREATE INDEX nodes_preauth_key ON nodes(preauth_key_id);
