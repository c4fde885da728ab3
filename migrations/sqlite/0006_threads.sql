-- Conversations: each answered ask is a turn of a thread, and a follow-up is answered with the
-- thread's earlier turns in the prompt. A thread belongs to the principal who started it and
-- expires ([threads] keep_days after its last turn); unlike the audit log (which keeps every
-- question anyway), threads are working state and are deleted when they expire.
CREATE TABLE threads (
  id          TEXT PRIMARY KEY,
  principal   TEXT NOT NULL,
  created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
  updated_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
  -- The thread it branched from, when it continued an earlier turn of another thread.
  branched_from TEXT
);
CREATE INDEX threads_principal ON threads (principal, updated_at);

CREATE TABLE thread_turns (
  thread      TEXT NOT NULL REFERENCES threads (id),
  turn        INTEGER NOT NULL,
  at          TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
  question    TEXT NOT NULL,
  sql         TEXT NOT NULL,
  -- The tables the answer read, a JSON array of names.
  tables      TEXT NOT NULL DEFAULT '[]',
  PRIMARY KEY (thread, turn)
);
