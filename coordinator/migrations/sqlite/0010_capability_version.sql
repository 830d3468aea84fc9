-- A Tailscale client's capability version (its map request's `Version`),
-- which its peers are told (`Node.Cap`): a peer relay is used only between
-- clients new enough for it. Zero for agents and static devices.
ALTER TABLE nodes ADD COLUMN capability_version INTEGER NOT NULL DEFAULT 0;
