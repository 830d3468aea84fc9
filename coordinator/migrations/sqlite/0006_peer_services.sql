-- What a Tailscale client offers its peers (its peer API's ports, which
-- Taildrop sends files to), as it reported them: a JSON list of
-- {"proto", "port"}.
ALTER TABLE nodes ADD COLUMN services TEXT NOT NULL DEFAULT '[]';
