//! App metadata: Quarry's own SQLite database (audit log, catalog revisions, API keys, the
//! ingested query history; feedback later), created and upgraded by the SQL files in
//! `migrations/`.
//!
//! It never touches the warehouse; the warehouse is read only through `execute`.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use std::collections::BTreeMap;

use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

use crate::history::verdict::{NewVerdict, StoredVerdict, VerdictKind};
use crate::history::{IntentSource, LoggedQuery, PastQuery};

mod threads;
pub use threads::{NewTurn, StoredThread, StoredTurn, ThreadSummary, TurnChoice, TurnPlace};

/// Migrations in order; each runs once, in its own transaction.
const MIGRATIONS: &[(&str, &str)] = &[
    ("0001_audit", include_str!("../migrations/0001_audit.sql")),
    ("0002_audit_role", include_str!("../migrations/0002_audit_role.sql")),
    ("0003_catalog_revisions_and_keys", include_str!("../migrations/0003_catalog_revisions_and_keys.sql")),
    ("0004_history", include_str!("../migrations/0004_history.sql")),
    ("0005_verdicts_and_access_audit", include_str!("../migrations/0005_verdicts_and_access_audit.sql")),
    ("0006_threads", include_str!("../migrations/0006_threads.sql")),
    ("0007_turn_choices", include_str!("../migrations/0007_turn_choices.sql")),
];

/// Errors from the metadata database.
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    /// The database could not be opened or migrated.
    #[error("cannot open the metadata database {path}: {source}")]
    Open { path: PathBuf, source: rusqlite::Error },
    /// The database was written by a newer Quarry.
    #[error("the metadata database {path} has migration '{migration}', unknown to this version of Quarry; upgrade Quarry")]
    NewerSchema { path: PathBuf, migration: String },
    /// An active API key already has that name.
    #[error("an active API key is already named '{0}'; revoke it first (`quarry keys revoke {0}`) or pick another name")]
    KeyNameTaken(String),
    /// A read or write failed.
    #[error("metadata database error: {0}")]
    Query(#[from] rusqlite::Error),
}

/// What kind of request an audit record is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditKind {
    Ask,
    Sql,
    /// A change: a catalog edit, an API key created or revoked, feedback, a review.
    Edit,
    /// A request refused before or beside asking and running SQL: no valid API key, or a role
    /// without the action (reading the catalog, the audit log, adding history).
    Access,
}

impl AuditKind {
    pub fn parse(text: &str) -> Option<AuditKind> {
        match text {
            "ask" => Some(AuditKind::Ask),
            "sql" => Some(AuditKind::Sql),
            "edit" => Some(AuditKind::Edit),
            "access" => Some(AuditKind::Access),
            _ => None,
        }
    }
}

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Answered,
    Refused,
    Failed,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Answered => "answered",
            Outcome::Refused => "refused",
            Outcome::Failed => "failed",
        }
    }
}

/// One audit record to append.
#[derive(Debug, Clone, Serialize)]
pub struct AuditRecord {
    pub principal: String,
    /// The role whose policy governed the request.
    pub role: String,
    pub kind: AuditKind,
    pub question: Option<String>,
    pub sql: Option<String>,
    pub outcome: Outcome,
    pub row_count: Option<usize>,
    pub duration_ms: u64,
    pub detail: serde_json::Value,
}

/// An audit record as stored.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct StoredAudit {
    pub id: i64,
    pub at: String,
    pub principal: String,
    pub role: String,
    pub kind: String,
    pub question: Option<String>,
    pub sql: Option<String>,
    pub outcome: String,
    pub row_count: Option<i64>,
    pub duration_ms: i64,
    pub detail: serde_json::Value,
}

/// Which audit records to read; every field narrows the search.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub principal: Option<String>,
    pub kind: Option<AuditKind>,
    /// Inclusive lower bound, an ISO date or timestamp (`2026-11-01`, `2026-11-01T08:00:00Z`).
    pub since: Option<String>,
    /// Exclusive upper bound, same format.
    pub until: Option<String>,
    /// Most records returned, newest first.
    pub limit: usize,
}

/// What a catalog revision changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RevisionTarget {
    Table,
    Glossary,
}

/// A steward edit to record.
#[derive(Debug, Clone)]
pub struct NewRevision {
    pub principal: String,
    pub role: String,
    pub target_kind: RevisionTarget,
    /// The table or term, lower-cased.
    pub target: String,
    pub before: Option<serde_json::Value>,
    pub after: serde_json::Value,
    pub base_hash: String,
    pub comment: String,
}

/// A recorded steward edit.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Revision {
    pub id: i64,
    pub at: String,
    pub principal: String,
    pub role: String,
    pub target_kind: String,
    pub target: String,
    pub before: Option<serde_json::Value>,
    pub after: serde_json::Value,
    #[serde(skip)]
    pub base_hash: String,
    pub comment: String,
}

/// An API key to store (its hash, never the key).
#[derive(Debug, Clone)]
pub struct NewKey {
    pub name: String,
    pub role: String,
    pub attributes: BTreeMap<String, String>,
    pub prefix: String,
    pub hash: String,
    pub created_by: String,
}

/// A stored API key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoredKey {
    pub id: i64,
    pub name: String,
    pub role: String,
    pub attributes: BTreeMap<String, String>,
    /// The first characters of the key, to tell keys apart.
    pub prefix: String,
    pub created_at: String,
    pub created_by: String,
    pub revoked_at: Option<String>,
}

const KEY_COLUMNS: &str = "id, name, role, attributes, key_prefix, created_at, created_by, revoked_at";

fn key_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredKey> {
    let attributes: String = r.get(3)?;
    Ok(StoredKey {
        id: r.get(0)?,
        name: r.get(1)?,
        role: r.get(2)?,
        attributes: serde_json::from_str(&attributes).unwrap_or_default(),
        prefix: r.get(4)?,
        created_at: r.get(5)?,
        created_by: r.get(6)?,
        revoked_at: r.get(7)?,
    })
}

const REVISION_COLUMNS: &str =
    "id, at, principal, role, target_kind, target, before, after, base_hash, comment";

fn revision_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Revision> {
    let json = |text: Option<String>| text.and_then(|t| serde_json::from_str(&t).ok());
    Ok(Revision {
        id: r.get(0)?,
        at: r.get(1)?,
        principal: r.get(2)?,
        role: r.get(3)?,
        target_kind: r.get(4)?,
        target: r.get(5)?,
        before: json(r.get(6)?),
        after: json(r.get(7)?).unwrap_or_default(),
        base_hash: r.get(8)?,
        comment: r.get(9)?,
    })
}

/// The metadata database.
pub struct Metadata {
    conn: Mutex<Connection>,
}

impl Metadata {
    /// Opens the database at `path`, creating it and applying pending migrations.
    pub fn open(path: &Path) -> Result<Metadata, MetadataError> {
        let err = |source| MetadataError::Open { path: path.to_path_buf(), source };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| err(rusqlite::Error::ToSqlConversionFailure(Box::new(e))))?;
        }
        let mut conn = Connection::open(path).map_err(err)?;
        conn.execute_batch("PRAGMA journal_mode=WAL; PRAGMA busy_timeout=5000;").map_err(err)?;
        migrate(&mut conn, path)?;
        Ok(Metadata { conn: Mutex::new(conn) })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Appends one record to the audit log.
    pub fn audit(&self, record: &AuditRecord) -> Result<i64, MetadataError> {
        insert_audit(&self.conn(), record)
    }

    /// The most recent audit records, newest first.
    pub fn recent_audit(&self, limit: usize) -> Result<Vec<StoredAudit>, MetadataError> {
        self.search_audit(&AuditFilter { limit, ..AuditFilter::default() })
    }

    /// Audit records matching `filter`, newest first.
    pub fn search_audit(&self, filter: &AuditFilter) -> Result<Vec<StoredAudit>, MetadataError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT id, at, principal, kind, question, sql, outcome, row_count, duration_ms, role, detail
             FROM audit_log
             WHERE (?1 IS NULL OR principal = ?1) AND (?2 IS NULL OR kind = ?2)
               AND (?3 IS NULL OR at >= ?3) AND (?4 IS NULL OR at < ?4)
             ORDER BY id DESC LIMIT ?5",
        )?;
        let rows = stmt.query_map(
            params![
                filter.principal,
                filter.kind.as_ref().map(enum_str),
                filter.since,
                filter.until,
                filter.limit as i64
            ],
            audit_row,
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Records a steward edit and its audit record, both or neither.
    pub fn record_revision(&self, revision: &NewRevision, audit: &AuditRecord) -> Result<i64, MetadataError> {
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
        let mut audit = audit.clone();
        if let serde_json::Value::Object(detail) = &mut audit.detail {
            detail.insert("revision".into(), id.into());
        }
        insert_audit(&tx, &audit)?;
        tx.commit()?;
        Ok(id)
    }

    /// Revisions of one target, newest first.
    pub fn revisions(&self, kind: RevisionTarget, target: &str) -> Result<Vec<Revision>, MetadataError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {REVISION_COLUMNS} FROM catalog_revisions WHERE target_kind = ?1 AND target = ?2 ORDER BY id DESC"
        ))?;
        let rows = stmt.query_map(params![enum_str(&kind), target.to_lowercase()], revision_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The newest revision of every target, oldest target first.
    pub fn latest_revisions(&self) -> Result<Vec<Revision>, MetadataError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {REVISION_COLUMNS} FROM catalog_revisions WHERE id IN
               (SELECT max(id) FROM catalog_revisions GROUP BY target_kind, target) ORDER BY id"
        ))?;
        let rows = stmt.query_map([], revision_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Stores a new API key (its hash) and audits it.
    pub fn create_key(&self, key: &NewKey, audit: &AuditRecord) -> Result<StoredKey, MetadataError> {
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
        tx.execute(
            "INSERT INTO api_keys (name, role, attributes, key_prefix, key_hash, created_by)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                key.name,
                key.role,
                serde_json::to_string(&key.attributes).unwrap_or_else(|_| "{}".into()),
                key.prefix,
                key.hash,
                key.created_by
            ],
        )?;
        let id = tx.last_insert_rowid();
        insert_audit(&tx, audit)?;
        let stored =
            tx.query_row(&format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE id = ?1"), [id], key_row)?;
        tx.commit()?;
        Ok(stored)
    }

    /// Every API key, active and revoked, oldest first.
    pub fn keys(&self) -> Result<Vec<StoredKey>, MetadataError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!("SELECT {KEY_COLUMNS} FROM api_keys ORDER BY id"))?;
        let rows = stmt.query_map([], key_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Revokes the active key of that name and audits it; false when there is none.
    pub fn revoke_key(&self, name: &str, audit: &AuditRecord) -> Result<bool, MetadataError> {
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

    /// The active key with this hash.
    pub fn active_key(&self, hash: &str) -> Result<Option<StoredKey>, MetadataError> {
        let conn = self.conn();
        let key = conn
            .query_row(
                &format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE key_hash = ?1 AND revoked_at IS NULL"),
                [hash],
                key_row,
            )
            .optional()?;
        Ok(key)
    }
}

impl Metadata {
    /// Records a verdict and its audit record in one transaction.
    pub fn record_verdict(&self, verdict: &NewVerdict, audit: &AuditRecord) -> Result<i64, MetadataError> {
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

    /// Every verdict, oldest first.
    pub fn verdicts(&self) -> Result<Vec<StoredVerdict>, MetadataError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT id, at, pair, question, sql, principal, role, verdict, comment FROM query_verdicts ORDER BY id",
        )?;
        let rows = stmt.query_map([], |r| {
            let verdict: String = r.get(7)?;
            Ok(StoredVerdict {
                id: r.get(0)?,
                at: r.get(1)?,
                pair: r.get(2)?,
                question: r.get(3)?,
                sql: r.get(4)?,
                principal: r.get(5)?,
                role: r.get(6)?,
                verdict: serde_json::from_value(serde_json::Value::String(verdict))
                    .unwrap_or(VerdictKind::Down),
                comment: r.get(8)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Hashes of every ingested history entry.
    pub fn history_hashes(&self) -> Result<std::collections::HashSet<String>, MetadataError> {
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT hash FROM history_queries")?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Stores ingested queries in one transaction (an entry already there is left as it is),
    /// with `audit` (completed with the count stored) in the same transaction: entries are never
    /// stored without the record of who added them.
    pub fn insert_history(
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
            let mut record = audit.clone();
            record.row_count = Some(inserted);
            if let Some(detail) = record.detail.as_object_mut() {
                detail.insert("batch_stored".into(), inserted.into());
            }
            insert_audit(&tx, &record)?;
        }
        tx.commit()?;
        Ok(inserted)
    }

    /// Every stored history entry, oldest first. `tables` is left empty: the caller validates
    /// each against the current catalog.
    pub fn history(&self) -> Result<Vec<PastQuery>, MetadataError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT hash, sql, author, at, duration_ms, row_count, success, title, question, line, structure,
                    intent, intent_source, (verified AND source NOT LIKE 'feedback:%')
             FROM history_queries ORDER BY at, hash",
        )?;
        let rows = stmt.query_map([], |r| {
            let structure: String = r.get(10)?;
            let source: String = r.get(12)?;
            Ok(PastQuery {
                hash: r.get(0)?,
                logged: LoggedQuery {
                    sql: r.get(1)?,
                    author: r.get(2)?,
                    timestamp: r.get(3)?,
                    duration_ms: r.get::<_, Option<i64>>(4)?.map(|n| n as u64),
                    rows: r.get::<_, Option<i64>>(5)?.map(|n| n as u64),
                    success: r.get(6)?,
                    title: r.get(7)?,
                    question: r.get(8)?,
                    verified: r.get::<_, bool>(13)?.then_some(true),
                },
                line: r.get::<_, i64>(9)? as usize,
                tables: Vec::new(),
                structure: serde_json::from_str(&structure).unwrap_or_default(),
                intent: r.get(11)?,
                intent_source: if source == "llm" { IntentSource::Llm } else { IntentSource::Structure },
                verified: r.get(13)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

fn audit_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredAudit> {
    let detail: String = r.get(10)?;
    Ok(StoredAudit {
        id: r.get(0)?,
        at: r.get(1)?,
        principal: r.get(2)?,
        kind: r.get(3)?,
        question: r.get(4)?,
        sql: r.get(5)?,
        outcome: r.get(6)?,
        row_count: r.get(7)?,
        duration_ms: r.get(8)?,
        role: r.get(9)?,
        detail: serde_json::from_str(&detail).unwrap_or_default(),
    })
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

fn enum_str<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
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
    if let Some(unknown) = applied.iter().find(|a| !MIGRATIONS.iter().any(|(name, _)| name == a)) {
        return Err(MetadataError::NewerSchema { path: path.to_path_buf(), migration: unknown.clone() });
    }
    for (name, sql) in MIGRATIONS {
        if applied.iter().any(|a| a == name) {
            continue;
        }
        let tx = conn.transaction().map_err(err)?;
        tx.execute_batch(sql).map_err(err)?;
        tx.execute("INSERT INTO schema_migrations (name) VALUES (?1)", [name]).map_err(err)?;
        tx.commit().map_err(err)?;
    }
    Ok(())
}
