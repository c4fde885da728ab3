//! The metadata on PostgreSQL (`[metadata] url`): a pool of connections, the migrations of
//! `migrations/postgres/` applied by one process at a time, every statement `Metadata` runs
//! there, and connection errors that name their fix without showing the password.
//!
//! Timestamps are text in SQLite's format (`quarry_timestamp`, made by the first migration),
//! so both engines store and read back the same values.

use std::time::Duration;

use ::postgres::error::SqlState;
use ::postgres::{Client, GenericClient, NoTls};
use r2d2_postgres::{r2d2, PostgresConnectionManager};

use super::*;

/// Runs `work` (calls of the synchronous PostgreSQL client) where it may block. That client
/// drives each call on a small runtime of its own, which tokio refuses to start on a thread of
/// an async runtime (an HTTP handler authenticating a key, an audit written beside a 429): there
/// the call runs on a scoped thread of its own, and the caller waits for it as it would for
/// SQLite.
pub(super) fn off_async<T: Send>(work: impl FnOnce() -> T + Send) -> T {
    if !in_async_runtime() {
        return work();
    }
    std::thread::scope(|scope| match scope.spawn(work).join() {
        Ok(value) => value,
        Err(panic) => std::panic::resume_unwind(panic),
    })
}

#[cfg(feature = "runtime")]
fn in_async_runtime() -> bool {
    tokio::runtime::Handle::try_current().is_ok()
}

#[cfg(not(feature = "runtime"))]
fn in_async_runtime() -> bool {
    false
}

/// The metadata database on a PostgreSQL server.
pub(super) struct PostgresStore {
    url: PostgresUrl,
    pool: r2d2::Pool<PostgresConnectionManager<NoTls>>,
}

/// How long to wait for a connection, from the server or the pool.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections one process holds at most.
const CONNECTIONS: u32 = 8;

/// Advisory lock keys (`pg_advisory_xact_lock`), per database: migrations, and the allocation
/// of catalog revision ids up to their commit.
const MIGRATION_LOCK: i64 = 0x5155_4152_5259_0001;
const REVISION_LOCK: i64 = 0x5155_4152_5259_0002;

/// The last activity at which a thread is still kept, `$n` being a number of days.
fn kept_since(n: usize) -> String {
    format!("quarry_timestamp(now() - make_interval(days => ${n}))")
}

/// Days as PostgreSQL's `int`.
fn days(keep_days: u32) -> i32 {
    i32::try_from(keep_days).unwrap_or(i32::MAX)
}

/// The server's message (and hint), or the error with its cause: never the URL.
fn describe(e: &::postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return match db.hint() {
            Some(hint) => format!("{} (hint: {hint})", db.message()),
            None => db.message().to_string(),
        };
    }
    match std::error::Error::source(e) {
        Some(cause) => format!("{e}: {cause}"),
        None => e.to_string(),
    }
}

impl From<::postgres::Error> for MetadataError {
    fn from(e: ::postgres::Error) -> MetadataError {
        MetadataError::Postgres(describe(&e))
    }
}

/// A failed connection as the error that names its fix.
fn connect_error(url: &PostgresUrl, e: &::postgres::Error) -> MetadataError {
    let url = url.clone();
    let message = describe(e);
    match e.code() {
        Some(code)
            if *code == SqlState::INVALID_PASSWORD
                || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION =>
        {
            MetadataError::Login { url, message }
        }
        Some(code) if *code == SqlState::INVALID_CATALOG_NAME => MetadataError::NoDatabase { url, message },
        _ => MetadataError::Unreachable { url, message },
    }
}

/// Whether `e` is a unique violation of `constraint`.
fn violates(e: &::postgres::Error, constraint: &str) -> bool {
    e.as_db_error()
        .is_some_and(|db| *db.code() == SqlState::UNIQUE_VIOLATION && db.constraint() == Some(constraint))
}

impl PostgresStore {
    /// Connects to `url` and applies pending migrations; then keeps a pool of connections.
    pub(super) fn connect(url: &PostgresUrl) -> Result<PostgresStore, MetadataError> {
        let mut config = url.config();
        config.connect_timeout(CONNECT_TIMEOUT);
        config.application_name("quarry-metadata");
        // One connection first, for the server's own words when it fails (the pool retries
        // until its timeout and then says only "db error"); it applies the migrations.
        let mut client = config.connect(NoTls).map_err(|e| connect_error(url, &e))?;
        migrate(&mut client, url)?;
        drop(client);
        let pool = r2d2::Pool::builder()
            .max_size(CONNECTIONS)
            .min_idle(Some(0))
            .connection_timeout(CONNECT_TIMEOUT)
            .test_on_check_out(true)
            .build(PostgresConnectionManager::new(config, NoTls))
            .map_err(|e| MetadataError::Unreachable { url: url.clone(), message: e.to_string() })?;
        Ok(PostgresStore { url: url.clone(), pool })
    }

    fn client(&self) -> Result<r2d2::PooledConnection<PostgresConnectionManager<NoTls>>, MetadataError> {
        self.pool
            .get()
            .map_err(|e| MetadataError::Unreachable { url: self.url.clone(), message: e.to_string() })
    }

    pub(super) fn audit(&self, record: &AuditRecord) -> Result<i64, MetadataError> {
        insert_audit(&mut *self.client()?, record)
    }

    pub(super) fn search_audit(&self, filter: &AuditFilter) -> Result<Vec<StoredAudit>, MetadataError> {
        let rows = self.client()?.query(
            &format!(
                "SELECT {AUDIT_COLUMNS} FROM audit_log
                 WHERE ($1::text IS NULL OR principal = $1) AND ($2::text IS NULL OR kind = $2)
                   AND ($3::text IS NULL OR at >= $3) AND ($4::text IS NULL OR at < $4)
                 ORDER BY id DESC LIMIT $5"
            ),
            &[
                &filter.principal,
                &filter.kind.as_ref().map(enum_str),
                &filter.since,
                &filter.until,
                &(filter.limit as i64),
            ],
        )?;
        rows.iter().map(audit_row).collect()
    }

    pub(super) fn record_revision(
        &self,
        revision: &NewRevision,
        audit: &AuditRecord,
    ) -> Result<i64, MetadataError> {
        let mut client = self.client()?;
        let mut tx = client.transaction()?;
        // Held from the id's allocation to the commit: revisions commit in the order of their
        // ids, which `marks` relies on.
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&REVISION_LOCK])?;
        let id: i64 = tx
            .query_one(
                "INSERT INTO catalog_revisions (principal, role, target_kind, target, before, after, base_hash, comment)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
                &[
                    &revision.principal,
                    &revision.role,
                    &enum_str(&revision.target_kind),
                    &revision.target,
                    &revision.before.as_ref().map(|v| v.to_string()),
                    &revision.after.to_string(),
                    &revision.base_hash,
                    &revision.comment,
                ],
            )?
            .try_get(0)?;
        insert_audit(&mut tx, &revision_audit(audit, id))?;
        tx.commit()?;
        Ok(id)
    }

    pub(super) fn revisions(
        &self,
        kind: RevisionTarget,
        target: &str,
    ) -> Result<Vec<Revision>, MetadataError> {
        let rows = self.client()?.query(
            &format!(
                "SELECT {REVISION_COLUMNS} FROM catalog_revisions WHERE target_kind = $1 AND target = $2 ORDER BY id DESC"
            ),
            &[&enum_str(&kind), &target],
        )?;
        rows.iter().map(revision_row).collect()
    }

    pub(super) fn latest_revisions(&self) -> Result<Vec<Revision>, MetadataError> {
        let rows = self.client()?.query(
            &format!(
                "SELECT {REVISION_COLUMNS} FROM catalog_revisions WHERE id IN
                   (SELECT max(id) FROM catalog_revisions GROUP BY target_kind, target) ORDER BY id"
            ),
            &[],
        )?;
        rows.iter().map(revision_row).collect()
    }

    pub(super) fn marks(&self) -> Result<StoreMarks, MetadataError> {
        let row = self.client()?.query_one(MARKS_QUERY, &[])?;
        Ok(StoreMarks { revisions: row.try_get(0)?, history: row.try_get(1)?, verdicts: row.try_get(2)? })
    }

    pub(super) fn create_key(&self, key: &NewKey, audit: &AuditRecord) -> Result<StoredKey, MetadataError> {
        let mut client = self.client()?;
        let mut tx = client.transaction()?;
        let taken =
            tx.query_opt("SELECT id FROM api_keys WHERE name = $1 AND revoked_at IS NULL", &[&key.name])?;
        if taken.is_some() {
            return Err(MetadataError::KeyNameTaken(key.name.clone()));
        }
        let row = tx
            .query_one(
                &format!(
                    "INSERT INTO api_keys (name, role, attributes, key_prefix, key_hash, created_by)
                     VALUES ($1, $2, $3, $4, $5, $6) RETURNING {KEY_COLUMNS}"
                ),
                &[
                    &key.name,
                    &key.role,
                    &serde_json::to_string(&key.attributes).unwrap_or_else(|_| "{}".into()),
                    &key.prefix,
                    &key.hash,
                    &key.created_by,
                ],
            )
            // Another process may have created one of that name since the check.
            .map_err(|e| {
                if violates(&e, "api_keys_active_name") {
                    MetadataError::KeyNameTaken(key.name.clone())
                } else {
                    e.into()
                }
            })?;
        let stored = key_row(&row)?;
        insert_audit(&mut tx, audit)?;
        tx.commit()?;
        Ok(stored)
    }

    pub(super) fn keys(&self) -> Result<Vec<StoredKey>, MetadataError> {
        let rows = self.client()?.query(&format!("SELECT {KEY_COLUMNS} FROM api_keys ORDER BY id"), &[])?;
        rows.iter().map(key_row).collect()
    }

    pub(super) fn revoke_key(&self, name: &str, audit: &AuditRecord) -> Result<bool, MetadataError> {
        let mut client = self.client()?;
        let mut tx = client.transaction()?;
        let changed = tx.execute(
            "UPDATE api_keys SET revoked_at = quarry_timestamp(now()) WHERE name = $1 AND revoked_at IS NULL",
            &[&name],
        )?;
        if changed > 0 {
            insert_audit(&mut tx, audit)?;
        }
        tx.commit()?;
        Ok(changed > 0)
    }

    pub(super) fn active_key(&self, hash: &str) -> Result<Option<StoredKey>, MetadataError> {
        let row = self.client()?.query_opt(
            &format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL"),
            &[&hash],
        )?;
        row.as_ref().map(key_row).transpose()
    }

    pub(super) fn record_verdict(
        &self,
        verdict: &NewVerdict,
        audit: &AuditRecord,
    ) -> Result<i64, MetadataError> {
        let mut client = self.client()?;
        let mut tx = client.transaction()?;
        let id: i64 = tx
            .query_one(
                "INSERT INTO query_verdicts (pair, question, sql, principal, role, verdict, comment)
                 VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
                &[
                    &verdict.pair,
                    &verdict.question,
                    &verdict.sql,
                    &verdict.principal,
                    &verdict.role,
                    &enum_str(&verdict.verdict),
                    &verdict.comment,
                ],
            )?
            .try_get(0)?;
        insert_audit(&mut tx, audit)?;
        tx.commit()?;
        Ok(id)
    }

    pub(super) fn verdicts(&self) -> Result<Vec<StoredVerdict>, MetadataError> {
        let rows = self
            .client()?
            .query(&format!("SELECT {VERDICT_COLUMNS} FROM query_verdicts ORDER BY id"), &[])?;
        rows.iter().map(verdict_row).collect()
    }

    pub(super) fn history_hashes(&self) -> Result<std::collections::HashSet<String>, MetadataError> {
        let rows = self.client()?.query("SELECT hash FROM history_queries", &[])?;
        rows.iter().map(|r| r.cell::<String>(0)).collect()
    }

    pub(super) fn insert_history(
        &self,
        queries: &[PastQuery],
        source: &str,
        audit: Option<&AuditRecord>,
    ) -> Result<usize, MetadataError> {
        let mut client = self.client()?;
        let mut tx = client.transaction()?;
        let stmt = tx.prepare(
            "INSERT INTO history_queries (hash, sql, author, at, duration_ms, row_count, success, title,
               question, source, line, structure, intent, intent_source, verified)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
             ON CONFLICT (hash) DO NOTHING",
        )?;
        let mut inserted = 0;
        for q in queries {
            let l = &q.logged;
            inserted += tx.execute(
                &stmt,
                &[
                    &q.hash,
                    &l.sql,
                    &l.author,
                    &l.timestamp,
                    &l.duration_ms.map(|n| n as i64),
                    &l.rows.map(|n| n as i64),
                    &l.success,
                    &l.title,
                    &l.question,
                    &source,
                    &(q.line as i64),
                    &serde_json::to_string(&q.structure).unwrap_or_default(),
                    &q.intent,
                    &enum_str(&q.intent_source),
                    &q.verified,
                ],
            )? as usize;
        }
        if let Some(audit) = audit.filter(|_| inserted > 0) {
            insert_audit(&mut tx, &batch_audit(audit, inserted))?;
        }
        tx.commit()?;
        Ok(inserted)
    }

    pub(super) fn history(&self) -> Result<Vec<PastQuery>, MetadataError> {
        let rows = self.client()?.query(HISTORY_QUERY, &[])?;
        rows.iter().map(history_row).collect()
    }

    pub(super) fn thread(
        &self,
        id: &str,
        principal: &str,
        keep_days: u32,
    ) -> Result<Option<StoredThread>, MetadataError> {
        let mut client = self.client()?;
        let row = client.query_opt(
            &format!(
                "SELECT {THREAD_COLUMNS} FROM threads WHERE id = $1 AND principal = $2 AND updated_at >= {}",
                kept_since(3)
            ),
            &[&id, &principal, &days(keep_days)],
        )?;
        let Some(row) = row else { return Ok(None) };
        let mut thread = thread_row(&row)?;
        let turns = client.query(
            &format!("SELECT {TURN_COLUMNS} FROM thread_turns WHERE thread = $1 ORDER BY turn"),
            &[&id],
        )?;
        thread.turns = turns.iter().map(turn_row).collect::<Result<_, _>>()?;
        Ok(Some(thread))
    }

    pub(super) fn threads(
        &self,
        principal: &str,
        keep_days: u32,
        limit: usize,
    ) -> Result<Vec<ThreadSummary>, MetadataError> {
        let rows = self.client()?.query(
            &format!(
                "SELECT t.id, t.updated_at, COUNT(u.turn),
                        (SELECT question FROM thread_turns f WHERE f.thread = t.id ORDER BY f.turn LIMIT 1)
                 FROM threads t JOIN thread_turns u ON u.thread = t.id
                 WHERE t.principal = $1 AND t.updated_at >= {}
                 GROUP BY t.id ORDER BY t.updated_at DESC, t.id LIMIT $3",
                kept_since(2)
            ),
            &[&principal, &days(keep_days), &(limit as i64)],
        )?;
        rows.iter().map(summary_row).collect()
    }

    pub(super) fn add_turn(
        &self,
        place: &TurnPlace,
        principal: &str,
        turn: NewTurn<'_>,
    ) -> Result<(String, u32), MetadataError> {
        let mut client = self.client()?;
        let mut tx = client.transaction()?;
        let new_thread = |tx: &mut ::postgres::Transaction<'_>, branched_from: Option<&str>| {
            // 't' and 24 hex digits, as on SQLite.
            let id: String = std::iter::once("t".to_string())
                .chain(rand::random::<[u8; 12]>().iter().map(|b| format!("{b:02x}")))
                .collect();
            tx.execute(
                "INSERT INTO threads (id, principal, branched_from) VALUES ($1, $2, $3)",
                &[&id, &principal, &branched_from],
            )
            .map(|_| id)
        };
        let id = match place {
            TurnPlace::NewThread => new_thread(&mut tx, None)?,
            TurnPlace::Continue(id) => id.clone(),
            TurnPlace::Branch { from, after } => {
                let id = new_thread(&mut tx, Some(from))?;
                tx.execute(
                    "INSERT INTO thread_turns (thread, turn, at, question, sql, tables, choices)
                     SELECT $1, turn, at, question, sql, tables, choices FROM thread_turns WHERE thread = $2 AND turn <= $3",
                    &[&id, from, &i64::from(*after)],
                )?;
                id
            }
        };
        // First, so that the thread's row is locked: turns added at once get distinct numbers.
        tx.execute("UPDATE threads SET updated_at = quarry_timestamp(now()) WHERE id = $1", &[&id])?;
        let (tables, choices) = turn.json();
        let number: i64 = tx
            .query_one(
                "INSERT INTO thread_turns (thread, turn, question, sql, tables, choices)
                 VALUES ($1, (SELECT COALESCE(MAX(turn), 0) + 1 FROM thread_turns WHERE thread = $1), $2, $3, $4, $5)
                 RETURNING turn",
                &[&id, &turn.question, &turn.sql, &tables, &choices],
            )?
            .try_get(0)?;
        tx.commit()?;
        Ok((id, number as u32))
    }

    pub(super) fn answer_turn_with(
        &self,
        id: &str,
        turn: u32,
        sql: &str,
        tables: &[String],
    ) -> Result<(), MetadataError> {
        let tables = serde_json::to_string(tables).unwrap_or_else(|_| "[]".into());
        let mut client = self.client()?;
        let mut tx = client.transaction()?;
        tx.execute(
            "UPDATE thread_turns SET sql = $3, tables = $4 WHERE thread = $1 AND turn = $2",
            &[&id, &i64::from(turn), &sql, &tables],
        )?;
        tx.execute("UPDATE threads SET updated_at = quarry_timestamp(now()) WHERE id = $1", &[&id])?;
        tx.commit()?;
        Ok(())
    }

    pub(super) fn expire_threads(&self, keep_days: u32) -> Result<usize, MetadataError> {
        let mut client = self.client()?;
        let mut tx = client.transaction()?;
        let stale = format!("SELECT id FROM threads WHERE updated_at < {}", kept_since(1));
        tx.execute(&format!("DELETE FROM thread_turns WHERE thread IN ({stale})"), &[&days(keep_days)])?;
        let gone = tx.execute(&format!("DELETE FROM threads WHERE id IN ({stale})"), &[&days(keep_days)])?;
        tx.commit()?;
        Ok(gone as usize)
    }
}

fn insert_audit(client: &mut impl GenericClient, record: &AuditRecord) -> Result<i64, MetadataError> {
    let row = client.query_one(
        "INSERT INTO audit_log (principal, kind, question, sql, outcome, row_count, duration_ms, detail, role)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
        &[
            &record.principal,
            &enum_str(&record.kind),
            &record.question,
            &record.sql,
            &enum_str(&record.outcome),
            &record.row_count.map(|n| n as i64),
            &(record.duration_ms as i64),
            &record.detail.to_string(),
            &record.role,
        ],
    )?;
    Ok(row.try_get(0)?)
}

/// Applies the pending migrations, each in its own transaction under an advisory lock: two
/// processes starting at once on a fresh database apply each migration once, the second
/// finding it recorded when it gets the lock.
fn migrate(client: &mut Client, url: &PostgresUrl) -> Result<(), MetadataError> {
    let failed = |migration: &str| {
        let migration = migration.to_string();
        move |e: ::postgres::Error| MetadataError::Migrate {
            url: url.clone(),
            migration: migration.clone(),
            message: describe(&e),
        }
    };
    let applied: Vec<String> = {
        let err = failed("schema_migrations");
        let mut tx = client.transaction().map_err(&err)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK]).map_err(&err)?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
               name TEXT PRIMARY KEY,
               applied_at TEXT NOT NULL DEFAULT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'))",
        )
        .map_err(&err)?;
        let names = tx.query("SELECT name FROM schema_migrations ORDER BY name", &[]).map_err(&err)?;
        tx.commit().map_err(&err)?;
        names.iter().map(|r| r.try_get(0)).collect::<Result<_, _>>().map_err(&err)?
    };
    if let Some(unknown) = unknown_migration(&applied) {
        return Err(MetadataError::NewerSchema { database: url.to_string(), migration: unknown.clone() });
    }
    for migration in MIGRATIONS {
        if applied.iter().any(|a| a == migration.name) {
            continue;
        }
        let err = failed(migration.name);
        let mut tx = client.transaction().map_err(&err)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK]).map_err(&err)?;
        let done = tx
            .query_opt("SELECT 1 FROM schema_migrations WHERE name = $1", &[&migration.name])
            .map_err(&err)?
            .is_some();
        if !done {
            tx.batch_execute(migration.postgres).map_err(&err)?;
            tx.execute("INSERT INTO schema_migrations (name) VALUES ($1)", &[&migration.name])
                .map_err(&err)?;
        }
        tx.commit().map_err(&err)?;
    }
    Ok(())
}
