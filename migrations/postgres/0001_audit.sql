-- Append-only audit log: one row per ask, SQL run, refusal or edit.
--
-- PostgreSQL twin of migrations/sqlite/0001_audit.sql. Timestamps are text in the format SQLite
-- writes (2026-11-01T08:00:00.000Z, UTC), so both engines read back the same values; text
-- compared and sorted in the "C" collation is byte order, as in SQLite.
CREATE FUNCTION quarry_timestamp(t timestamptz) RETURNS text LANGUAGE sql STABLE
  AS $$ SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') $$;

-- Refuses any change but INSERT to an append-only table (the triggers' SQLite twin is RAISE(ABORT)).
CREATE FUNCTION quarry_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION '% is append-only', TG_TABLE_NAME USING ERRCODE = 'restrict_violation';
END
$$;

CREATE TABLE audit_log (
  id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  at          TEXT COLLATE "C" NOT NULL DEFAULT quarry_timestamp(now()),
  principal   TEXT NOT NULL,
  kind        TEXT NOT NULL CONSTRAINT audit_log_kind_check CHECK (kind IN ('ask', 'sql', 'edit')),
  question    TEXT,
  sql         TEXT,
  outcome     TEXT NOT NULL CHECK (outcome IN ('answered', 'refused', 'failed')),
  row_count   BIGINT,
  duration_ms BIGINT NOT NULL,
  detail      TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_at ON audit_log (at);
CREATE INDEX audit_log_principal ON audit_log (principal, at);

CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
  FOR EACH STATEMENT EXECUTE FUNCTION quarry_append_only();
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
  FOR EACH STATEMENT EXECUTE FUNCTION quarry_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
  FOR EACH STATEMENT EXECUTE FUNCTION quarry_append_only();
