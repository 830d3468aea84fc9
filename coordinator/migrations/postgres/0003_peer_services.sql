-- A Tailscale client's peer API ports: see migrations/sqlite/0006_peer_services.sql.
ALTER TABLE nodes ADD COLUMN services TEXT NOT NULL DEFAULT '[]';
