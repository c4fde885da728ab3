//! App metadata: Quarry's own database (audit log, catalog revisions, API keys, the ingested
//! query history, verdicts, conversation threads), on SQLite (a file in the workspace) or on
//! PostgreSQL (`[metadata] url`), created and upgraded by the SQL files of `migrations/sqlite/`
//! or `migrations/postgres/`.
//!
//! This file owns the types, the errors and `Metadata`, which hands each call to its engine's
//! store (`sqlite.rs`, `postgres.rs`: every statement of that engine); a row is mapped to its
//! type by one function here, whichever engine read it. It never touches the warehouse.

use std::path::{Path, PathBuf};

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::config::MetadataLocation;
use crate::history::verdict::{NewVerdict, StoredVerdict, VerdictKind};
use crate::history::{IntentSource, LoggedQuery, PastQuery};
use crate::warehouse::PostgresUrl;

mod postgres;
mod sqlite;
mod threads;
use threads::{summary_row, thread_row, turn_row, THREAD_COLUMNS, TURN_COLUMNS};
pub use threads::{NewTurn, StoredThread, StoredTurn, ThreadSummary, TurnChoice, TurnPlace};

/// A schema migration: one name (what `schema_migrations` records) and its SQL for each engine.
struct Migration {
    name: &'static str,
    sqlite: &'static str,
    postgres: &'static str,
}

macro_rules! migration {
    ($name:literal) => {
        Migration {
            name: $name,
            sqlite: include_str!(concat!("../migrations/sqlite/", $name, ".sql")),
            postgres: include_str!(concat!("../migrations/postgres/", $name, ".sql")),
        }
    };
}

/// Migrations in order; each runs once, in its own transaction.
const MIGRATIONS: &[Migration] = &[
    migration!("0001_audit"),
    migration!("0002_audit_role"),
    migration!("0003_catalog_revisions_and_keys"),
    migration!("0004_history"),
    migration!("0005_verdicts_and_access_audit"),
    migration!("0006_threads"),
    migration!("0007_turn_choices"),
];

/// The first migration recorded in `applied` that this Quarry does not know, if any.
fn unknown_migration(applied: &[String]) -> Option<&String> {
    applied.iter().find(|a| !MIGRATIONS.iter().any(|m| m.name == a.as_str()))
}

/// Errors from the metadata database. A PostgreSQL database is named by its URL with the
/// password hidden (`PostgresUrl`'s display).
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    /// The SQLite database could not be opened or migrated.
    #[error("cannot open the metadata database {path}: {source}")]
    Open { path: PathBuf, source: rusqlite::Error },
    /// The database was written by a newer Quarry.
    #[error("the metadata database {database} has migration '{migration}', unknown to this version of Quarry; upgrade Quarry")]
    NewerSchema { database: String, migration: String },
    /// An active API key already has that name.
    #[error("an active API key is already named '{0}'; revoke it first (`quarry keys revoke {0}`) or pick another name")]
    KeyNameTaken(String),
    /// A read or write on SQLite failed.
    #[error("metadata database error: {0}")]
    Query(#[from] rusqlite::Error),
    /// No PostgreSQL server answered at the URL's host and port (or the pool could not get a
    /// connection).
    #[error(
        "cannot connect to the metadata database {url}: {message}. Check that PostgreSQL runs there \
         and accepts TCP connections, and the host and port in [metadata] url (or QUARRY_METADATA_URL)"
    )]
    Unreachable { url: PostgresUrl, message: String },
    /// The server refused the user name or password.
    #[error(
        "the metadata database {url} refused the login: {message}. Check the user name and password \
         in [metadata] url (or QUARRY_METADATA_URL)"
    )]
    Login { url: PostgresUrl, message: String },
    /// The server has no database of that name.
    #[error(
        "the metadata database {url} does not exist: {message}. Create it (CREATE DATABASE … OWNER \
         <the role of the URL>) or fix its name in [metadata] url (or QUARRY_METADATA_URL)"
    )]
    NoDatabase { url: PostgresUrl, message: String },
    /// A migration could not be applied on PostgreSQL.
    #[error(
        "cannot create or upgrade the metadata tables on {url} (migration {migration}): {message}. \
         The role must be able to create tables in its schema (README, \"Metadata on PostgreSQL\")"
    )]
    Migrate { url: PostgresUrl, migration: String, message: String },
    /// A read or write on PostgreSQL failed (the server's message).
    #[error("metadata database error: {0}")]
    Postgres(String),
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

/// A row read by either engine, by column position: one function maps a row to its type for
/// both (`key_row`, `revision_row`, …).
trait Row {
    fn cell<T: Cell>(&self, i: usize) -> Result<T, MetadataError>;
}

/// A value both drivers read: text, integers (`BIGINT` on PostgreSQL), booleans, and their
/// `Option`s.
trait Cell: rusqlite::types::FromSql + for<'a> ::postgres::types::FromSql<'a> {}
impl<T: rusqlite::types::FromSql + for<'a> ::postgres::types::FromSql<'a>> Cell for T {}

impl Row for rusqlite::Row<'_> {
    fn cell<T: Cell>(&self, i: usize) -> Result<T, MetadataError> {
        Ok(self.get(i)?)
    }
}

impl Row for ::postgres::Row {
    fn cell<T: Cell>(&self, i: usize) -> Result<T, MetadataError> {
        Ok(self.try_get(i)?)
    }
}

/// A JSON column's value; what does not parse reads as None.
fn json<T: serde::de::DeserializeOwned>(text: Option<String>) -> Option<T> {
    text.and_then(|t| serde_json::from_str(&t).ok())
}

const AUDIT_COLUMNS: &str =
    "id, at, principal, kind, question, sql, outcome, row_count, duration_ms, role, detail";

fn audit_row(r: &impl Row) -> Result<StoredAudit, MetadataError> {
    Ok(StoredAudit {
        id: r.cell(0)?,
        at: r.cell(1)?,
        principal: r.cell(2)?,
        kind: r.cell(3)?,
        question: r.cell(4)?,
        sql: r.cell(5)?,
        outcome: r.cell(6)?,
        row_count: r.cell(7)?,
        duration_ms: r.cell(8)?,
        role: r.cell(9)?,
        detail: json(r.cell(10)?).unwrap_or_default(),
    })
}

const KEY_COLUMNS: &str = "id, name, role, attributes, key_prefix, created_at, created_by, revoked_at";

fn key_row(r: &impl Row) -> Result<StoredKey, MetadataError> {
    Ok(StoredKey {
        id: r.cell(0)?,
        name: r.cell(1)?,
        role: r.cell(2)?,
        attributes: json(r.cell(3)?).unwrap_or_default(),
        prefix: r.cell(4)?,
        created_at: r.cell(5)?,
        created_by: r.cell(6)?,
        revoked_at: r.cell(7)?,
    })
}

const REVISION_COLUMNS: &str =
    "id, at, principal, role, target_kind, target, before, after, base_hash, comment";

fn revision_row(r: &impl Row) -> Result<Revision, MetadataError> {
    Ok(Revision {
        id: r.cell(0)?,
        at: r.cell(1)?,
        principal: r.cell(2)?,
        role: r.cell(3)?,
        target_kind: r.cell(4)?,
        target: r.cell(5)?,
        before: json(r.cell(6)?),
        after: json(r.cell(7)?).unwrap_or_default(),
        base_hash: r.cell(8)?,
        comment: r.cell(9)?,
    })
}

const VERDICT_COLUMNS: &str = "id, at, pair, question, sql, principal, role, verdict, comment";

fn verdict_row(r: &impl Row) -> Result<StoredVerdict, MetadataError> {
    let verdict: String = r.cell(7)?;
    Ok(StoredVerdict {
        id: r.cell(0)?,
        at: r.cell(1)?,
        pair: r.cell(2)?,
        question: r.cell(3)?,
        sql: r.cell(4)?,
        principal: r.cell(5)?,
        role: r.cell(6)?,
        verdict: serde_json::from_value(serde_json::Value::String(verdict)).unwrap_or(VerdictKind::Down),
        comment: r.cell(8)?,
    })
}

/// Every stored history entry, oldest first (the same statement on both engines: on
/// PostgreSQL `at` and `hash` sort in the "C" collation, byte order as in SQLite).
const HISTORY_QUERY: &str =
    "SELECT hash, sql, author, at, duration_ms, row_count, success, title, question, line, structure,
            intent, intent_source, (verified AND source NOT LIKE 'feedback:%')
     FROM history_queries ORDER BY at, hash";

fn history_row(r: &impl Row) -> Result<PastQuery, MetadataError> {
    let source: String = r.cell(12)?;
    let verified: bool = r.cell(13)?;
    Ok(PastQuery {
        hash: r.cell(0)?,
        logged: LoggedQuery {
            sql: r.cell(1)?,
            author: r.cell(2)?,
            timestamp: r.cell(3)?,
            duration_ms: r.cell::<Option<i64>>(4)?.map(|n| n as u64),
            rows: r.cell::<Option<i64>>(5)?.map(|n| n as u64),
            success: r.cell(6)?,
            title: r.cell(7)?,
            question: r.cell(8)?,
            verified: verified.then_some(true),
        },
        line: r.cell::<i64>(9)? as usize,
        tables: Vec::new(),
        structure: json(r.cell(10)?).unwrap_or_default(),
        intent: r.cell(11)?,
        intent_source: if source == "llm" { IntentSource::Llm } else { IntentSource::Structure },
        verified,
    })
}

/// The newest catalog revision's id (0: none), on both engines.
const MARKS_QUERY: &str = "SELECT (SELECT COALESCE(MAX(id), 0) FROM catalog_revisions),
        (SELECT COUNT(*) FROM history_queries), (SELECT COUNT(*) FROM query_verdicts)";

/// What the metadata store holds, in three numbers that only grow (`Metadata::marks`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreMarks {
    /// The newest catalog revision's id (0: none).
    pub revisions: i64,
    /// Past queries stored.
    pub history: i64,
    /// Verdicts on past queries stored.
    pub verdicts: i64,
}

/// A steward edit's audit record, naming the revision it recorded.
fn revision_audit(audit: &AuditRecord, revision: i64) -> AuditRecord {
    let mut audit = audit.clone();
    if let serde_json::Value::Object(detail) = &mut audit.detail {
        detail.insert("revision".into(), revision.into());
    }
    audit
}

/// An ingest batch's audit record, completed with the count stored.
fn batch_audit(audit: &AuditRecord, inserted: usize) -> AuditRecord {
    let mut record = audit.clone();
    record.row_count = Some(inserted);
    if let Some(detail) = record.detail.as_object_mut() {
        detail.insert("batch_stored".into(), inserted.into());
    }
    record
}

fn enum_str<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

/// The metadata database, on either engine.
pub struct Metadata {
    store: Store,
}

enum Store {
    Sqlite(sqlite::SqliteStore),
    Postgres(postgres::PostgresStore),
}

/// Calls the method of that name on the store of whichever engine holds the metadata.
macro_rules! on_store {
    ($self:ident.$method:ident($($arg:expr),*)) => {
        match &$self.store {
            Store::Sqlite(store) => store.$method($($arg),*),
            Store::Postgres(store) => postgres::off_async(|| store.$method($($arg),*)),
        }
    };
}
use on_store;

impl Metadata {
    /// Opens the SQLite database at `path`, creating it and applying pending migrations.
    pub fn open(path: &Path) -> Result<Metadata, MetadataError> {
        Ok(Metadata { store: Store::Sqlite(sqlite::SqliteStore::open(path)?) })
    }

    /// Opens the metadata database where the configuration puts it (`Config::metadata_location`),
    /// applying pending migrations: on PostgreSQL, one process at a time.
    pub fn open_location(location: &MetadataLocation) -> Result<Metadata, MetadataError> {
        match location {
            MetadataLocation::Sqlite(path) => Metadata::open(path),
            MetadataLocation::Postgres(url) => {
                let store = postgres::off_async(|| postgres::PostgresStore::connect(url))?;
                Ok(Metadata { store: Store::Postgres(store) })
            }
        }
    }

    /// Appends one record to the audit log.
    pub fn audit(&self, record: &AuditRecord) -> Result<i64, MetadataError> {
        on_store!(self.audit(record))
    }

    /// The most recent audit records, newest first.
    pub fn recent_audit(&self, limit: usize) -> Result<Vec<StoredAudit>, MetadataError> {
        self.search_audit(&AuditFilter { limit, ..AuditFilter::default() })
    }

    /// Audit records matching `filter`, newest first.
    pub fn search_audit(&self, filter: &AuditFilter) -> Result<Vec<StoredAudit>, MetadataError> {
        on_store!(self.search_audit(filter))
    }

    /// Records a steward edit and its audit record, both or neither.
    pub fn record_revision(&self, revision: &NewRevision, audit: &AuditRecord) -> Result<i64, MetadataError> {
        on_store!(self.record_revision(revision, audit))
    }

    /// Revisions of one target, newest first.
    pub fn revisions(&self, kind: RevisionTarget, target: &str) -> Result<Vec<Revision>, MetadataError> {
        on_store!(self.revisions(kind, &target.to_lowercase()))
    }

    /// The newest revision of every target, oldest target first.
    pub fn latest_revisions(&self) -> Result<Vec<Revision>, MetadataError> {
        on_store!(self.latest_revisions())
    }

    /// The store's high-water marks: the newest catalog revision's id, and how many past
    /// queries and verdicts it holds (all three only grow). A `quarry serve` sharing the
    /// metadata with others polls them to take in their steward edits, ingests and verdicts. On
    /// PostgreSQL revisions are committed in the order of their ids (`record_revision` holds a
    /// lock from the id's allocation to the commit), so a revision never appears below a mark
    /// already read; counts see every committed row.
    pub fn marks(&self) -> Result<StoreMarks, MetadataError> {
        on_store!(self.marks())
    }

    /// Stores a new API key (its hash) and audits it.
    pub fn create_key(&self, key: &NewKey, audit: &AuditRecord) -> Result<StoredKey, MetadataError> {
        on_store!(self.create_key(key, audit))
    }

    /// Every API key, active and revoked, oldest first.
    pub fn keys(&self) -> Result<Vec<StoredKey>, MetadataError> {
        on_store!(self.keys())
    }

    /// Revokes the active key of that name and audits it; false when there is none.
    pub fn revoke_key(&self, name: &str, audit: &AuditRecord) -> Result<bool, MetadataError> {
        on_store!(self.revoke_key(name, audit))
    }

    /// The active key with this hash.
    pub fn active_key(&self, hash: &str) -> Result<Option<StoredKey>, MetadataError> {
        on_store!(self.active_key(hash))
    }

    /// Records a verdict and its audit record in one transaction.
    pub fn record_verdict(&self, verdict: &NewVerdict, audit: &AuditRecord) -> Result<i64, MetadataError> {
        on_store!(self.record_verdict(verdict, audit))
    }

    /// Every verdict, oldest first.
    pub fn verdicts(&self) -> Result<Vec<StoredVerdict>, MetadataError> {
        on_store!(self.verdicts())
    }

    /// Hashes of every ingested history entry.
    pub fn history_hashes(&self) -> Result<std::collections::HashSet<String>, MetadataError> {
        on_store!(self.history_hashes())
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
        on_store!(self.insert_history(queries, source, audit))
    }

    /// Every stored history entry, oldest first. `tables` is left empty: the caller validates
    /// each against the current catalog.
    pub fn history(&self) -> Result<Vec<PastQuery>, MetadataError> {
        on_store!(self.history())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_migration_is_written_for_both_engines_under_its_recorded_name() {
        // Existing databases record these names in `schema_migrations`: never rename one.
        let names: Vec<&str> = MIGRATIONS.iter().map(|m| m.name).collect();
        assert_eq!(
            names,
            [
                "0001_audit",
                "0002_audit_role",
                "0003_catalog_revisions_and_keys",
                "0004_history",
                "0005_verdicts_and_access_audit",
                "0006_threads",
                "0007_turn_choices"
            ]
        );
        for engine in ["sqlite", "postgres"] {
            let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations").join(engine);
            let mut files: Vec<String> = std::fs::read_dir(&dir)
                .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
                .filter_map(|entry| {
                    entry.ok()?.file_name().to_str()?.strip_suffix(".sql").map(str::to_string)
                })
                .collect();
            files.sort();
            assert_eq!(files, names, "{engine}: every file is a listed migration");
        }
    }

    #[test]
    fn the_append_only_tables_have_their_triggers_on_both_engines() {
        let sqlite: String = MIGRATIONS.iter().map(|m| m.sqlite).collect();
        let postgres: String = MIGRATIONS.iter().map(|m| m.postgres).collect();
        for table in ["audit_log", "catalog_revisions", "query_verdicts"] {
            for (engine, sql, refused) in [
                ("sqlite", &sqlite, &["update", "delete"][..]),
                ("postgres", &postgres, &["update", "delete", "truncate"][..]),
            ] {
                for change in refused {
                    let trigger = format!(
                        "CREATE TRIGGER {table}_no_{change} BEFORE {} ON {table}",
                        change.to_uppercase()
                    );
                    assert!(sql.contains(&trigger), "{engine}: {trigger}");
                }
            }
        }
    }

    #[test]
    fn a_migration_this_quarry_does_not_know_is_found() {
        let known = vec!["0001_audit".to_string(), "0002_audit_role".to_string()];
        assert_eq!(unknown_migration(&known), None);
        let newer = vec!["0001_audit".to_string(), "0099_later".to_string()];
        assert_eq!(unknown_migration(&newer).map(String::as_str), Some("0099_later"));
    }

    #[test]
    fn postgres_errors_name_the_fix_and_hide_the_password() {
        let url = PostgresUrl::parse("postgres://quarry:hunter2@meta.internal:5433/quarry").expect("url");
        let message = |m: &str| m.to_string();
        for (error, fix) in [
            (
                MetadataError::Unreachable { url: url.clone(), message: message("connection refused") },
                "Check that PostgreSQL runs there",
            ),
            (
                MetadataError::Login { url: url.clone(), message: message("password authentication failed") },
                "Check the user name and password in [metadata] url",
            ),
            (
                MetadataError::NoDatabase { url: url.clone(), message: message("database does not exist") },
                "CREATE DATABASE",
            ),
            (
                MetadataError::Migrate {
                    url: url.clone(),
                    migration: "0001_audit".into(),
                    message: message("permission denied for schema public"),
                },
                "create tables in its schema",
            ),
        ] {
            let text = error.to_string();
            assert!(text.contains(fix), "{text}");
            assert!(text.contains("postgres://quarry:***@meta.internal:5433/quarry"), "{text}");
            assert!(!text.contains("hunter2") && !format!("{error:?}").contains("hunter2"), "{text}");
        }
    }
}
