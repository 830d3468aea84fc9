-- Users who sign in through the household's identity provider (OpenID
-- Connect): the provider account a user is, as "issuer subject" (one
-- account is one user, and a user is at most one account), and the groups
-- the provider said the user is in at the last sign-in, a JSON list, which
-- fill the policy's groups of the same name.
CREATE TABLE provider_identities (
    user_id       INTEGER PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    subject       TEXT    NOT NULL UNIQUE,
    groups        TEXT    NOT NULL DEFAULT '[]',
    signed_in_at  INTEGER NOT NULL
);
