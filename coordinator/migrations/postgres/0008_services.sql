-- Tailscale Services: see migrations/sqlite/0011_services.sql.
CREATE TABLE services (
    name TEXT PRIMARY KEY,
    ipv4 TEXT NOT NULL UNIQUE,
    ipv6 TEXT NOT NULL UNIQUE,
    host BIGINT,
    created_at BIGINT NOT NULL
);

ALTER TABLE nodes ADD COLUMN service_ads TEXT NOT NULL DEFAULT '{}';
