-- A Tailscale client's capability version: see
-- migrations/sqlite/0010_capability_version.sql.
ALTER TABLE nodes ADD COLUMN capability_version BIGINT NOT NULL DEFAULT 0;
