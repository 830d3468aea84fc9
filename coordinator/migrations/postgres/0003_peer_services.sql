-- A Tailscale client's peer API ports and SSH host keys: see
-- migrations/sqlite/0006_peer_services.sql.
ALTER TABLE nodes ADD COLUMN services TEXT NOT NULL DEFAULT '[]';
ALTER TABLE nodes ADD COLUMN ssh_host_keys TEXT NOT NULL DEFAULT '[]';
