-- The query history, ingested once per entry (the hash of SQL, author and timestamp): each
-- with its structure (JSON), its intent text and where that came from.
CREATE TABLE history_queries (
  hash          TEXT COLLATE "C" PRIMARY KEY,
  sql           TEXT NOT NULL,
  author        TEXT NOT NULL,
  at            TEXT COLLATE "C" NOT NULL,
  duration_ms   BIGINT,
  row_count     BIGINT,
  success       BOOLEAN,
  title         TEXT,
  question      TEXT,
  source        TEXT NOT NULL,
  line          BIGINT NOT NULL,
  structure     TEXT NOT NULL,
  intent        TEXT NOT NULL,
  intent_source TEXT NOT NULL CHECK (intent_source IN ('llm', 'structure')),
  verified      BOOLEAN NOT NULL DEFAULT false,
  ingested_at   TEXT COLLATE "C" NOT NULL DEFAULT quarry_timestamp(now())
);
CREATE INDEX history_queries_at ON history_queries (at);
