-- Devices of OpenClaw's clients (its CLI, TUI, Control UI, apps), paired by
-- the household's admin with `hearth-gateway devices approve`. A device is
-- its Ed25519 key; it acts as the member it is bound to. Its token is kept
-- only as a SHA-256 hash (empty until issued). A device paired from a
-- connection that held the gateway's token (`token_holder`) and bound to no
-- member is the admin's.
CREATE TABLE claw_devices (
    device_id    TEXT PRIMARY KEY,
    public_key   BLOB    NOT NULL,
    member       TEXT,
    scopes       TEXT    NOT NULL,
    client       TEXT    NOT NULL,
    platform     TEXT    NOT NULL,
    token_holder INTEGER NOT NULL,
    token_hash   BLOB    NOT NULL,
    approved_at  INTEGER NOT NULL
);

-- Devices waiting for approval: one request per device, the newest kept.
CREATE TABLE claw_requests (
    request_id   TEXT PRIMARY KEY,
    device_id    TEXT    NOT NULL UNIQUE,
    public_key   BLOB    NOT NULL,
    member       TEXT,
    scopes       TEXT    NOT NULL,
    client       TEXT    NOT NULL,
    platform     TEXT    NOT NULL,
    token_holder INTEGER NOT NULL,
    address      TEXT    NOT NULL,
    requested_at INTEGER NOT NULL
);
