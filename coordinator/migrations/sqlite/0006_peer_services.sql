-- What a Tailscale client offers its peers, as it reported them: its peer
-- API's ports (which Taildrop sends files to), a JSON list of "proto:port";
-- and its Tailscale SSH server's host keys (its peers' known_hosts), a JSON
-- list of OpenSSH public key lines.
ALTER TABLE nodes ADD COLUMN services TEXT NOT NULL DEFAULT '[]';
ALTER TABLE nodes ADD COLUMN ssh_host_keys TEXT NOT NULL DEFAULT '[]';
