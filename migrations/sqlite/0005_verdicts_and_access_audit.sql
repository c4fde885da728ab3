-- Verdicts on past queries, append-only: an analyst's 👍 ('up') or 👎 ('down'), a reviewer's
-- 'verify' or 'revoke'. A pair (question, SQL) is verified when its verdicts, read in order,
-- say so (`history::verdict`); nothing else makes it so.
CREATE TABLE query_verdicts (
  id          INTEGER PRIMARY KEY AUTOINCREMENT,
  at          TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
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
BEGIN SELECT RAISE(ABORT, 'query_verdicts is append-only'); END;
CREATE TRIGGER query_verdicts_no_delete BEFORE DELETE ON query_verdicts
BEGIN SELECT RAISE(ABORT, 'query_verdicts is append-only'); END;

-- The audit log gains the kind 'access': requests refused before or beside the pipeline's
-- asks and SQL runs (no valid API key, a role without the action). SQLite cannot widen a CHECK
-- in place, so the table is rebuilt with every record kept, then its rules are recreated.
CREATE TABLE audit_log_next (
  id          INTEGER PRIMARY KEY AUTOINCREMENT,
  at          TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
  principal   TEXT NOT NULL,
  kind        TEXT NOT NULL CHECK (kind IN ('ask', 'sql', 'edit', 'access')),
  question    TEXT,
  sql         TEXT,
  outcome     TEXT NOT NULL CHECK (outcome IN ('answered', 'refused', 'failed')),
  row_count   INTEGER,
  duration_ms INTEGER NOT NULL,
  detail      TEXT NOT NULL DEFAULT '{}',
  role        TEXT NOT NULL DEFAULT ''
);
INSERT INTO audit_log_next (id, at, principal, kind, question, sql, outcome, row_count, duration_ms, detail, role)
  SELECT id, at, principal, kind, question, sql, outcome, row_count, duration_ms, detail, role FROM audit_log;
DROP TABLE audit_log;
ALTER TABLE audit_log_next RENAME TO audit_log;
CREATE INDEX audit_log_at ON audit_log (at);
CREATE INDEX audit_log_principal ON audit_log (principal, at);
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
