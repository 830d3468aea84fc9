-- Tokens used, per day (UTC), per caller (a member, a device's tags, or the
-- operator) and per model. Never any text of a prompt or a reply.
CREATE TABLE usage (
    day                TEXT    NOT NULL,
    who                TEXT    NOT NULL,
    model              TEXT    NOT NULL,
    requests           INTEGER NOT NULL,
    prompt_tokens      INTEGER NOT NULL,
    completion_tokens  INTEGER NOT NULL,
    PRIMARY KEY (day, who, model)
);
