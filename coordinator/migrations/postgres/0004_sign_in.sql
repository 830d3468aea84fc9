-- Users who sign in through an identity provider: see
-- migrations/sqlite/0007_sign_in.sql.
CREATE TABLE provider_identities (
    user_id       BIGINT  PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    subject       TEXT    NOT NULL UNIQUE,
    groups        TEXT    NOT NULL DEFAULT '[]',
    signed_in_at  BIGINT  NOT NULL
);
