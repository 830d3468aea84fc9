-- When each node ordered a certificate for its MagicDNS name (`hearth-agent
-- cert`), whether the order succeeded or not: the weekly limit counts them
-- across restarts and across coordinators sharing a database.
CREATE TABLE device_certificates (
    node_id    INTEGER NOT NULL REFERENCES nodes(id) ON DELETE CASCADE,
    ordered_at INTEGER NOT NULL
);
CREATE INDEX device_certificates_node ON device_certificates (node_id, ordered_at);
