-- The readings a turn's answer offered when its candidates disagreed (a JSON array of
-- {reading, sql, votes}); the analyst may answer the turn with another of them, which then
-- becomes the turn's sql and tables.
ALTER TABLE thread_turns ADD COLUMN choices TEXT NOT NULL DEFAULT '[]';
