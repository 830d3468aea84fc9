-- Node key expiry and rotation: see migrations/sqlite/0005_key_expiry.sql.
ALTER TABLE nodes ADD COLUMN key_expiry BIGINT;
ALTER TABLE nodes ADD COLUMN key_lifetime BIGINT;
ALTER TABLE preauth_keys ADD COLUMN node_key_lifetime BIGINT;
