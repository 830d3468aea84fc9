-- When each node ordered a certificate for its MagicDNS name: see
-- migrations/sqlite/0009_device_certificates.sql.
CREATE TABLE device_certificates (
    node_id    BIGINT NOT NULL REFERENCES nodes(id) ON DELETE CASCADE,
    ordered_at BIGINT NOT NULL
);
CREATE INDEX device_certificates_node ON device_certificates (node_id, ordered_at);
