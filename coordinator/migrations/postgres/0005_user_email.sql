-- The email address an admin records for a user: see
-- migrations/sqlite/0008_user_email.sql.
ALTER TABLE users ADD COLUMN email TEXT;
CREATE UNIQUE INDEX users_email ON users (lower(email)) WHERE email IS NOT NULL;
