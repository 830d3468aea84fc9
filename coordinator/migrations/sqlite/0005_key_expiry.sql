-- Node keys expire (Tailscale's 180 days by default) and agents rotate
-- them before: when the current keys stop being accepted, and the lifetime
-- a fresh key gets (NULL: never expires). Keys can set the lifetime of the
-- nodes registered with them (NULL: the coordinator's default; 0: never).
ALTER TABLE nodes ADD COLUMN key_expiry INTEGER;
ALTER TABLE nodes ADD COLUMN key_lifetime INTEGER;
ALTER TABLE preauth_keys ADD COLUMN node_key_lifetime INTEGER;
