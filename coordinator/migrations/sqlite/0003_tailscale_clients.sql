-- Nodes running the official Tailscale client: they are known by the
-- machine key of their ts2021 session instead of a client certificate.
-- `client` names the client software and version (empty for hearth-agent
-- nodes and static devices).
ALTER TABLE nodes ADD COLUMN machine_key TEXT;
ALTER TABLE nodes ADD COLUMN disco_key TEXT;
ALTER TABLE nodes ADD COLUMN client TEXT NOT NULL DEFAULT '';
CREATE UNIQUE INDEX nodes_machine_key ON nodes(machine_key);
