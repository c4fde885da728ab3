//! App metadata: Quarry's own SQLite database (audit log now; catalog edits, history and
//! feedback later), created and upgraded by the SQL files in `migrations/`.
//!
//! It never touches the warehouse; the warehouse is read only through `execute`.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::{params, Connection};
use serde::Serialize;

/// Migrations in order; each runs once, in its own transaction.
const MIGRATIONS: &[(&str, &str)] = &[
    ("0001_audit", include_str!("../migrations/0001_audit.sql")),
    ("0002_audit_role", include_str!("../migrations/0002_audit_role.sql")),
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
}

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Answered,
    Refused,
    Failed,
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
#[derive(Debug, Clone, Serialize)]
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
        let conn = self.conn();
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

    /// The most recent audit records, newest first.
    pub fn recent_audit(&self, limit: usize) -> Result<Vec<StoredAudit>, MetadataError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT id, at, principal, kind, question, sql, outcome, row_count, duration_ms, role
             FROM audit_log ORDER BY id DESC LIMIT ?1",
        )?;
        let rows = stmt.query_map([limit as i64], |r| {
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
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
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
