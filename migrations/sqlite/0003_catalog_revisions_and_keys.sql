-- Steward edits of the catalog, as revisions (append-only): who, when, before, after, comment.
-- base_hash is the hash of what the governance files said about the target when it was edited:
-- the edit wins over the files until the files change again.
CREATE TABLE catalog_revisions (
  id          INTEGER PRIMARY KEY AUTOINCREMENT,
  at          TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
  principal   TEXT NOT NULL,
  role        TEXT NOT NULL,
  target_kind TEXT NOT NULL CHECK (target_kind IN ('table', 'glossary')),
  target      TEXT NOT NULL,
  before      TEXT,
  after       TEXT NOT NULL,
  base_hash   TEXT NOT NULL,
  comment     TEXT NOT NULL
);
CREATE INDEX catalog_revisions_target ON catalog_revisions (target_kind, target, id);

CREATE TRIGGER catalog_revisions_no_update BEFORE UPDATE ON catalog_revisions
BEGIN SELECT RAISE(ABORT, 'catalog_revisions is append-only'); END;
CREATE TRIGGER catalog_revisions_no_delete BEFORE DELETE ON catalog_revisions
BEGIN SELECT RAISE(ABORT, 'catalog_revisions is append-only'); END;

-- API keys: only a SHA-256 hash of each key is stored; the key itself is shown once.
CREATE TABLE api_keys (
  id          INTEGER PRIMARY KEY AUTOINCREMENT,
  name        TEXT NOT NULL,
  role        TEXT NOT NULL,
  attributes  TEXT NOT NULL DEFAULT '{}',
  key_prefix  TEXT NOT NULL,
  key_hash    TEXT NOT NULL UNIQUE,
  created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
  created_by  TEXT NOT NULL,
  revoked_at  TEXT
);
CREATE UNIQUE INDEX api_keys_active_name ON api_keys (name) WHERE revoked_at IS NULL;
