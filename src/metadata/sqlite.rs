//! The metadata on SQLite: one connection to the workspace's file behind a mutex, the
//! migrations of `migrations/sqlite/`, and every statement `Metadata` runs there.

use std::sync::{Mutex, MutexGuard};

use rusqlite::{params, Connection, OptionalExtension, Params, Statement};

use super::*;

/// The metadata database in a SQLite file.
pub(super) struct SqliteStore {
    conn: Mutex<Connection>,
}

/// The rows of a statement, each mapped by `map`.
fn rows<'s, T>(
    stmt: &'s mut Statement<'_>,
    params: impl Params,
    map: impl Fn(&rusqlite::Row<'s>) -> Result<T, MetadataError>,
) -> Result<Vec<T>, MetadataError> {
    let mut rows = stmt.query(params)?;
    let mut all = Vec::new();
    while let Some(row) = rows.next()? {
        all.push(map(row)?);
    }
    Ok(all)
}

/// SQLite's modifier for "`days` days ago".
fn days_ago(days: u32) -> String {
    format!("-{days} days")
}

/// The last activity at which a thread is still kept, as SQLite computes it.
const KEPT_SINCE: &str = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now', ?)";

impl SqliteStore {
    /// Opens the database at `path`, creating it and applying pending migrations.
    pub(super) fn open(path: &Path) -> Result<SqliteStore, MetadataError> {
        let err = |source| MetadataError::Open { path: path.to_path_buf(), source };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| err(rusqlite::Error::ToSqlConversionFailure(Box::new(e))))?;
        }
        let mut conn = Connection::open(path).map_err(err)?;
        conn.execute_batch("PRAGMA journal_mode=WAL; PRAGMA busy_timeout=5000;").map_err(err)?;
        migrate(&mut conn, path)?;
        Ok(SqliteStore { conn: Mutex::new(conn) })
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(super) fn audit(&self, record: &AuditRecord) -> Result<i64, MetadataError> {
        insert_audit(&self.conn(), record)
    }

    pub(super) fn search_audit(&self, filter: &AuditFilter) -> Result<Vec<StoredAudit>, MetadataError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {AUDIT_COLUMNS} FROM audit_log
             WHERE (?1 IS NULL OR principal = ?1) AND (?2 IS NULL OR kind = ?2)
               AND (?3 IS NULL OR at >= ?3) AND (?4 IS NULL OR at < ?4)
             ORDER BY id DESC LIMIT ?5"
        ))?;
        rows(
            &mut stmt,
            params![
                filter.principal,
                filter.kind.as_ref().map(enum_str),
                filter.since,
                filter.until,
                filter.limit as i64
            ],
            audit_row,
        )
    }

    pub(super) fn record_revision(
        &self,
        revision: &NewRevision,
        audit: &AuditRecord,
    ) -> Result<i64, MetadataError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.execute(
            "INSERT INTO catalog_revisions (principal, role, target_kind, target, before, after, base_hash, comment)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                revision.principal,
                revision.role,
                enum_str(&revision.target_kind),
                revision.target,
                revision.before.as_ref().map(|v| v.to_string()),
                revision.after.to_string(),
                revision.base_hash,
                revision.comment,
            ],
        )?;
        let id = tx.last_insert_rowid();
        insert_audit(&tx, &revision_audit(audit, id))?;
        tx.commit()?;
        Ok(id)
    }

    pub(super) fn revisions(
        &self,
        kind: RevisionTarget,
        target: &str,
    ) -> Result<Vec<Revision>, MetadataError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {REVISION_COLUMNS} FROM catalog_revisions WHERE target_kind = ?1 AND target = ?2 ORDER BY id DESC"
        ))?;
        rows(&mut stmt, params![enum_str(&kind), target], revision_row)
    }

    pub(super) fn latest_revisions(&self) -> Result<Vec<Revision>, MetadataError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {REVISION_COLUMNS} FROM catalog_revisions WHERE id IN
               (SELECT max(id) FROM catalog_revisions GROUP BY target_kind, target) ORDER BY id"
        ))?;
        rows(&mut stmt, [], revision_row)
    }

    pub(super) fn marks(&self) -> Result<StoreMarks, MetadataError> {
        Ok(self.conn().query_row(MARKS_QUERY, [], |r| {
            Ok(StoreMarks { revisions: r.get(0)?, history: r.get(1)?, verdicts: r.get(2)? })
        })?)
    }

    pub(super) fn create_key(&self, key: &NewKey, audit: &AuditRecord) -> Result<StoredKey, MetadataError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let taken: Option<i64> = tx
            .query_row("SELECT id FROM api_keys WHERE name = ?1 AND revoked_at IS NULL", [&key.name], |r| {
                r.get(0)
            })
            .optional()?;
        if taken.is_some() {
            return Err(MetadataError::KeyNameTaken(key.name.clone()));
        }
        let stored = {
            let mut stmt = tx.prepare(&format!(
                "INSERT INTO api_keys (name, role, attributes, key_prefix, key_hash, created_by)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) RETURNING {KEY_COLUMNS}"
            ))?;
            let params = params![
                key.name,
                key.role,
                serde_json::to_string(&key.attributes).unwrap_or_else(|_| "{}".into()),
                key.prefix,
                key.hash,
                key.created_by
            ];
            rows(&mut stmt, params, key_row)?.pop().ok_or(rusqlite::Error::QueryReturnedNoRows)?
        };
        insert_audit(&tx, audit)?;
        tx.commit()?;
        Ok(stored)
    }

    pub(super) fn keys(&self) -> Result<Vec<StoredKey>, MetadataError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!("SELECT {KEY_COLUMNS} FROM api_keys ORDER BY id"))?;
        rows(&mut stmt, [], key_row)
    }

    pub(super) fn revoke_key(&self, name: &str, audit: &AuditRecord) -> Result<bool, MetadataError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let changed = tx.execute(
            "UPDATE api_keys SET revoked_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
             WHERE name = ?1 AND revoked_at IS NULL",
            [name],
        )?;
        if changed > 0 {
            insert_audit(&tx, audit)?;
        }
        tx.commit()?;
        Ok(changed > 0)
    }

    pub(super) fn active_key(&self, hash: &str) -> Result<Option<StoredKey>, MetadataError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {KEY_COLUMNS} FROM api_keys WHERE key_hash = ?1 AND revoked_at IS NULL"
        ))?;
        Ok(rows(&mut stmt, [hash], key_row)?.pop())
    }

    pub(super) fn record_verdict(
        &self,
        verdict: &NewVerdict,
        audit: &AuditRecord,
    ) -> Result<i64, MetadataError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.execute(
            "INSERT INTO query_verdicts (pair, question, sql, principal, role, verdict, comment)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                verdict.pair,
                verdict.question,
                verdict.sql,
                verdict.principal,
                verdict.role,
                enum_str(&verdict.verdict),
                verdict.comment,
            ],
        )?;
        let id = tx.last_insert_rowid();
        insert_audit(&tx, audit)?;
        tx.commit()?;
        Ok(id)
    }

    pub(super) fn verdicts(&self) -> Result<Vec<StoredVerdict>, MetadataError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!("SELECT {VERDICT_COLUMNS} FROM query_verdicts ORDER BY id"))?;
        rows(&mut stmt, [], verdict_row)
    }

    pub(super) fn history_hashes(&self) -> Result<std::collections::HashSet<String>, MetadataError> {
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT hash FROM history_queries")?;
        Ok(rows::<String>(&mut stmt, [], |r| r.cell(0))?.into_iter().collect())
    }

    pub(super) fn insert_history(
        &self,
        queries: &[PastQuery],
        source: &str,
        audit: Option<&AuditRecord>,
    ) -> Result<usize, MetadataError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let mut inserted = 0;
        {
            let mut stmt = tx.prepare(
                "INSERT OR IGNORE INTO history_queries (hash, sql, author, at, duration_ms, row_count, success, title,
                   question, source, line, structure, intent, intent_source, verified)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
            )?;
            for q in queries {
                let l = &q.logged;
                inserted += stmt.execute(params![
                    q.hash,
                    l.sql,
                    l.author,
                    l.timestamp,
                    l.duration_ms.map(|n| n as i64),
                    l.rows.map(|n| n as i64),
                    l.success,
                    l.title,
                    l.question,
                    source,
                    q.line as i64,
                    serde_json::to_string(&q.structure).unwrap_or_default(),
                    q.intent,
                    enum_str(&q.intent_source),
                    q.verified,
                ])?;
            }
        }
        if let Some(audit) = audit.filter(|_| inserted > 0) {
            insert_audit(&tx, &batch_audit(audit, inserted))?;
        }
        tx.commit()?;
        Ok(inserted)
    }

    pub(super) fn history(&self) -> Result<Vec<PastQuery>, MetadataError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(HISTORY_QUERY)?;
        rows(&mut stmt, [], history_row)
    }

    pub(super) fn thread(
        &self,
        id: &str,
        principal: &str,
        keep_days: u32,
    ) -> Result<Option<StoredThread>, MetadataError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {THREAD_COLUMNS} FROM threads WHERE id = ?1 AND principal = ?2 AND updated_at >= {}",
            KEPT_SINCE.replace('?', "?3")
        ))?;
        let Some(mut thread) =
            rows(&mut stmt, params![id, principal, days_ago(keep_days)], thread_row)?.pop()
        else {
            return Ok(None);
        };
        let mut stmt = conn
            .prepare(&format!("SELECT {TURN_COLUMNS} FROM thread_turns WHERE thread = ?1 ORDER BY turn"))?;
        thread.turns = rows(&mut stmt, [id], turn_row)?;
        Ok(Some(thread))
    }

    pub(super) fn threads(
        &self,
        principal: &str,
        keep_days: u32,
        limit: usize,
    ) -> Result<Vec<ThreadSummary>, MetadataError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT t.id, t.updated_at, COUNT(u.turn),
                    (SELECT question FROM thread_turns f WHERE f.thread = t.id ORDER BY f.turn LIMIT 1)
             FROM threads t JOIN thread_turns u ON u.thread = t.id
             WHERE t.principal = ?1 AND t.updated_at >= {}
             GROUP BY t.id ORDER BY t.updated_at DESC, t.id LIMIT ?3",
            KEPT_SINCE.replace('?', "?2")
        ))?;
        rows(&mut stmt, params![principal, days_ago(keep_days), limit as i64], summary_row)
    }

    pub(super) fn add_turn(
        &self,
        place: &TurnPlace,
        principal: &str,
        turn: NewTurn<'_>,
    ) -> Result<(String, u32), MetadataError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let new_thread = |tx: &rusqlite::Transaction<'_>, branched_from: Option<&str>| {
            tx.query_row(
                "INSERT INTO threads (id, principal, branched_from) VALUES ('t' || lower(hex(randomblob(12))), ?1, ?2)
                 RETURNING id",
                params![principal, branched_from],
                |r| r.get::<_, String>(0),
            )
        };
        let id = match place {
            TurnPlace::NewThread => new_thread(&tx, None)?,
            TurnPlace::Continue(id) => id.clone(),
            TurnPlace::Branch { from, after } => {
                let id = new_thread(&tx, Some(from))?;
                tx.execute(
                    "INSERT INTO thread_turns (thread, turn, at, question, sql, tables, choices)
                     SELECT ?1, turn, at, question, sql, tables, choices FROM thread_turns WHERE thread = ?2 AND turn <= ?3",
                    params![id, from, after],
                )?;
                id
            }
        };
        let (tables, choices) = turn.json();
        let number: u32 = tx.query_row(
            "INSERT INTO thread_turns (thread, turn, question, sql, tables, choices)
             VALUES (?1, (SELECT COALESCE(MAX(turn), 0) + 1 FROM thread_turns WHERE thread = ?1), ?2, ?3, ?4, ?5)
             RETURNING turn",
            params![id, turn.question, turn.sql, tables, choices],
            |r| r.get(0),
        )?;
        tx.execute(
            "UPDATE threads SET updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE id = ?1",
            [&id],
        )?;
        tx.commit()?;
        Ok((id, number))
    }

    pub(super) fn answer_turn_with(
        &self,
        id: &str,
        turn: u32,
        sql: &str,
        tables: &[String],
    ) -> Result<(), MetadataError> {
        let tables = serde_json::to_string(tables).unwrap_or_else(|_| "[]".into());
        let conn = self.conn();
        conn.execute(
            "UPDATE thread_turns SET sql = ?3, tables = ?4 WHERE thread = ?1 AND turn = ?2",
            params![id, turn, sql, tables],
        )?;
        conn.execute(
            "UPDATE threads SET updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE id = ?1",
            [id],
        )?;
        Ok(())
    }

    pub(super) fn expire_threads(&self, keep_days: u32) -> Result<usize, MetadataError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let stale = format!("SELECT id FROM threads WHERE updated_at < {}", KEPT_SINCE.replace('?', "?1"));
        tx.execute(&format!("DELETE FROM thread_turns WHERE thread IN ({stale})"), [days_ago(keep_days)])?;
        let gone =
            tx.execute(&format!("DELETE FROM threads WHERE id IN ({stale})"), [days_ago(keep_days)])?;
        tx.commit()?;
        Ok(gone)
    }
}

fn insert_audit(conn: &Connection, record: &AuditRecord) -> Result<i64, MetadataError> {
    conn.execute(
        "INSERT INTO audit_log (principal, kind, question, sql, outcome, row_count, duration_ms, detail, role)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            record.principal,
            enum_str(&record.kind),
            record.question,
            record.sql,
            enum_str(&record.outcome),
            record.row_count.map(|n| n as i64),
            record.duration_ms as i64,
            record.detail.to_string(),
            record.role,
        ],
    )?;
    Ok(conn.last_insert_rowid())
}

fn migrate(conn: &mut Connection, path: &Path) -> Result<(), MetadataError> {
    let err = |source| MetadataError::Open { path: path.to_path_buf(), source };
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
           name TEXT PRIMARY KEY,
           applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')))",
    )
    .map_err(err)?;
    let applied: Vec<String> = {
        let mut stmt = conn.prepare("SELECT name FROM schema_migrations ORDER BY name").map_err(err)?;
        let names = stmt.query_map([], |r| r.get(0)).map_err(err)?.collect::<Result<_, _>>();
        names.map_err(err)?
    };
    if let Some(unknown) = unknown_migration(&applied) {
        return Err(MetadataError::NewerSchema {
            database: path.display().to_string(),
            migration: unknown.clone(),
        });
    }
    for migration in MIGRATIONS {
        if applied.iter().any(|a| a == migration.name) {
            continue;
        }
        let tx = conn.transaction().map_err(err)?;
        tx.execute_batch(migration.sqlite).map_err(err)?;
        tx.execute("INSERT INTO schema_migrations (name) VALUES (?1)", [migration.name]).map_err(err)?;
        tx.commit().map_err(err)?;
    }
    Ok(())
}
