-- The two members of a direct conversation, as columns (NULL for a named
-- room): the store asks for a member's DMs by them, never by a pattern
-- over room ids.
ALTER TABLE rooms ADD COLUMN dm_first TEXT;
ALTER TABLE rooms ADD COLUMN dm_second TEXT;
UPDATE rooms
   SET dm_first = substr(id, 4, instr(id, ',') - 4),
       dm_second = substr(id, instr(id, ',') + 1)
 WHERE substr(id, 1, 3) = 'dm:' AND instr(id, ',') > 0;
CREATE INDEX rooms_dm_first ON rooms (dm_first);
CREATE INDEX rooms_dm_second ON rooms (dm_second);
