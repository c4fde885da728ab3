-- Verdicts on past queries, append-only: an analyst's 👍 ('up') or 👎 ('down'), a reviewer's
-- 'verify' or 'revoke'. A pair (question, SQL) is verified when its verdicts, read in order,
-- say so (`history::verdict`); nothing else makes it so.
CREATE TABLE query_verdicts (
  id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  at          TEXT COLLATE "C" NOT NULL DEFAULT quarry_timestamp(now()),
  pair        TEXT NOT NULL,
  question    TEXT NOT NULL,
  sql         TEXT NOT NULL,
  principal   TEXT NOT NULL,
  role        TEXT NOT NULL,
  verdict     TEXT NOT NULL CHECK (verdict IN ('up', 'down', 'verify', 'revoke')),
  comment     TEXT
);
CREATE INDEX query_verdicts_pair ON query_verdicts (pair, id);

CREATE TRIGGER query_verdicts_no_update BEFORE UPDATE ON query_verdicts
  FOR EACH STATEMENT EXECUTE FUNCTION quarry_append_only();
CREATE TRIGGER query_verdicts_no_delete BEFORE DELETE ON query_verdicts
  FOR EACH STATEMENT EXECUTE FUNCTION quarry_append_only();
CREATE TRIGGER query_verdicts_no_truncate BEFORE TRUNCATE ON query_verdicts
  FOR EACH STATEMENT EXECUTE FUNCTION quarry_append_only();

-- The audit log gains the kind 'access': requests refused before or beside the pipeline's
-- asks and SQL runs (no valid API key, a role without the action). PostgreSQL widens the CHECK
-- in place (SQLite rebuilds the table); no row is touched.
ALTER TABLE audit_log DROP CONSTRAINT audit_log_kind_check;
ALTER TABLE audit_log ADD CONSTRAINT audit_log_kind_check CHECK (kind IN ('ask', 'sql', 'edit', 'access'));
