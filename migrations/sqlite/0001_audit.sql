-- Append-only audit log: one row per ask, SQL run, refusal or edit.
CREATE TABLE audit_log (
  id          INTEGER PRIMARY KEY AUTOINCREMENT,
  at          TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
  principal   TEXT NOT NULL,
  kind        TEXT NOT NULL CHECK (kind IN ('ask', 'sql', 'edit')),
  question    TEXT,
  sql         TEXT,
  outcome     TEXT NOT NULL CHECK (outcome IN ('answered', 'refused', 'failed')),
  row_count   INTEGER,
  duration_ms INTEGER NOT NULL,
  detail      TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_at ON audit_log (at);
CREATE INDEX audit_log_principal ON audit_log (principal, at);

CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
