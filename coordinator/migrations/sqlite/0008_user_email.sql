-- The email address an admin records for a user: a person signing in
-- through the identity provider claims this user only with that address,
-- verified by the provider (never by a name the provider lets people
-- choose). Unique, letter case aside.
ALTER TABLE users ADD COLUMN email TEXT;
CREATE UNIQUE INDEX users_email ON users (lower(email)) WHERE email IS NOT NULL;
