-- The query history, ingested once per entry (the hash of SQL, author and timestamp): each
-- with its structure (JSON), its intent text and where that came from.
CREATE TABLE history_queries (
  hash          TEXT PRIMARY KEY,
  sql           TEXT NOT NULL,
  author        TEXT NOT NULL,
  at            TEXT NOT NULL,
  duration_ms   INTEGER,
  row_count     INTEGER,
  success       INTEGER,
  title         TEXT,
  question      TEXT,
  source        TEXT NOT NULL,
  line          INTEGER NOT NULL,
  structure     TEXT NOT NULL,
  intent        TEXT NOT NULL,
  intent_source TEXT NOT NULL CHECK (intent_source IN ('llm', 'structure')),
  verified      INTEGER NOT NULL DEFAULT 0,
  ingested_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE INDEX history_queries_at ON history_queries (at);
