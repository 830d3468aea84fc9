-- Reaching nodes across NAT: the relay region each node is connected to
-- (its home relay, as it last reported), and the standalone relays an
-- admin added beside the one embedded in the coordinator. A relay proves
-- itself with a secret whose SHA-256 is kept here; its certificate's
-- fingerprint arrives when it first connects.
ALTER TABLE nodes ADD COLUMN home_relay INTEGER;

CREATE TABLE relays (
    id INTEGER PRIMARY KEY,
    code TEXT NOT NULL UNIQUE,
    url TEXT NOT NULL,
    secret_hash TEXT NOT NULL UNIQUE,
    fingerprint TEXT,
    stun_port INTEGER,
    created_at INTEGER NOT NULL
);
