-- The passages of documents members share with the assistant are theirs
-- alone: with an at-rest key, their text and embedding are sealed like
-- memory (bound to their document), `sealed` = 1.
ALTER TABLE passages ADD COLUMN sealed INTEGER NOT NULL DEFAULT 0;
