-- Editing and deleting one's own messages, sending a message exactly once
-- whatever a client retries, and the language each member reads.
--
-- `edited_at`: Unix milliseconds of the last edit (or of the deletion).
ALTER TABLE messages ADD COLUMN edited_at INTEGER;

-- A client's id for a message is kept once per sender: a message sent
-- again (an offline queue retrying after a lost reply) is the same message.
-- Repeats already stored keep their text and lose only the id.
UPDATE messages SET client_id = NULL
 WHERE client_id IS NOT NULL
   AND id NOT IN (SELECT MIN(id) FROM messages WHERE client_id IS NOT NULL
                  GROUP BY sender, client_id);
CREATE UNIQUE INDEX messages_by_client_id ON messages(sender, client_id)
 WHERE client_id IS NOT NULL;

-- The language a member's app chose (a BCP 47 tag): the assistant answers in it.
ALTER TABLE users ADD COLUMN language TEXT;
