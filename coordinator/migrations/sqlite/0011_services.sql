-- Tailscale Services: a name (`svc:chat`) with addresses of its own, served
-- by whichever device hosts it now. `host` is the device the admin chose
-- (`hearth-coordinator services move`); without one, a device that
-- advertises the service and the policy's autoApprovers.services allow.
CREATE TABLE services (
    name TEXT PRIMARY KEY,
    ipv4 TEXT NOT NULL UNIQUE,
    ipv6 TEXT NOT NULL UNIQUE,
    host INTEGER,
    created_at INTEGER NOT NULL
);

-- What a Tailscale client says it serves (its answer to GET /vip-services,
-- and the hash of that list it last reported), as JSON.
ALTER TABLE nodes ADD COLUMN service_ads TEXT NOT NULL DEFAULT '{}';
