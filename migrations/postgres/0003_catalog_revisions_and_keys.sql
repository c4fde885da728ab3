-- Steward edits of the catalog, as revisions (append-only): who, when, before, after, comment.
-- base_hash is the hash of what the governance files said about the target when it was edited:
-- the edit wins over the files until the files change again.
CREATE TABLE catalog_revisions (
  id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  at          TEXT COLLATE "C" NOT NULL DEFAULT quarry_timestamp(now()),
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
  FOR EACH STATEMENT EXECUTE FUNCTION quarry_append_only();
CREATE TRIGGER catalog_revisions_no_delete BEFORE DELETE ON catalog_revisions
  FOR EACH STATEMENT EXECUTE FUNCTION quarry_append_only();
CREATE TRIGGER catalog_revisions_no_truncate BEFORE TRUNCATE ON catalog_revisions
  FOR EACH STATEMENT EXECUTE FUNCTION quarry_append_only();

-- API keys: only a SHA-256 hash of each key is stored; the key itself is shown once.
CREATE TABLE api_keys (
  id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  name        TEXT NOT NULL,
  role        TEXT NOT NULL,
  attributes  TEXT NOT NULL DEFAULT '{}',
  key_prefix  TEXT NOT NULL,
  key_hash    TEXT NOT NULL UNIQUE,
  created_at  TEXT COLLATE "C" NOT NULL DEFAULT quarry_timestamp(now()),
  created_by  TEXT NOT NULL,
  revoked_at  TEXT COLLATE "C"
);
CREATE UNIQUE INDEX api_keys_active_name ON api_keys (name) WHERE revoked_at IS NULL;
