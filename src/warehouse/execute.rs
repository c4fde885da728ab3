//! The executor: runs a `ValidatedQuery` (and nothing else) on the warehouse, behind a second
//! wall in case the validator ever has a bug: a read-only connection with `query_only` set, an
//! authorizer that denies everything but reads of the tables the validator approved and
//! allow-listed functions (and reads the role's denied columns as NULL), a deadline enforced
//! from outside the statement (a watchdog thread calls `sqlite3_interrupt`, also when the
//! caller cancels), limits on the size of any one value and on LIKE patterns (so that no single
//! function call runs away), and a result bounded in rows and in bytes, read row by row.
//!
//! No function here executes a `&str` of SQL on the warehouse; attaching the configured
//! sources is the one trusted statement, built from their quoted names.
//!
//! On a PostgreSQL warehouse the executor hands the query to `postgres`, whose walls are the
//! server's: a role that may only read (checked when Quarry starts), a `READ ONLY`
//! transaction, a server-side statement timeout and a cancel request at the deadline. A query
//! runs only on the engine it was validated for.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use rusqlite::hooks::{AuthAction, AuthContext, Authorization};
use rusqlite::limits::Limit;
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};
use serde::Serialize;
use serde_json::Value;

use super::postgres::PostgresWarehouse;
use crate::catalog::{Engine, Source};
use crate::validate::{is_allowed_function, ValidatedQuery};

/// Rows returned by a query, typed as JSON values.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ResultSet {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Value>>,
    /// True when the query had more rows than fit (see `truncation`) and only the first are here.
    pub truncated: bool,
    /// Why the rows were cut, when they were.
    pub truncation: Option<Truncation>,
    pub elapsed_ms: u64,
}

/// Which bound cut a result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Truncation {
    /// More rows than the row cap.
    RowCap,
    /// The rows so far reached the result's size limit in bytes.
    ByteLimit,
}

impl ResultSet {
    /// The rows with each cell in canonical form (numbers by value, so 3 == 3.0; text marked
    /// apart from numbers), sorted unless `ordered`: two results with equal canonical rows are
    /// the same answer.
    pub fn canonical_rows(&self, ordered: bool) -> Vec<Vec<String>> {
        let mut rows: Vec<Vec<String>> =
            self.rows.iter().map(|row| row.iter().map(canonical_cell).collect()).collect();
        if !ordered {
            rows.sort();
        }
        rows
    }
}

/// A cell in canonical form: numbers compare by value (3 == 3.0), text as is.
fn canonical_cell(value: &Value) -> String {
    match value {
        Value::Number(n) => match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", f as i64),
            Some(f) => format!("{f}"),
            None => n.to_string(),
        },
        Value::String(s) => format!("'{s}"),
        Value::Null => "NULL".to_string(),
        other => other.to_string(),
    }
}

/// Errors from running a query.
#[derive(Debug, thiserror::Error)]
pub enum ExecuteError {
    /// The warehouse file could not be opened.
    #[error("cannot open the warehouse {path}: {source}")]
    Open { path: PathBuf, source: rusqlite::Error },
    /// The warehouse server could not be reached, or the connection broke.
    #[error("cannot reach the warehouse {warehouse}: {message}; check that the server runs, then ask again")]
    Connect { warehouse: String, message: String },
    /// A query checked for one engine was handed to another engine's executor.
    #[error("the query was checked for {query} but the warehouse runs {warehouse}")]
    WrongEngine { query: &'static str, warehouse: &'static str },
    /// The query ran longer than allowed and was stopped.
    #[error("the query ran longer than {0:?} and was stopped; add filters or aggregate earlier")]
    Timeout(Duration),
    /// The caller went away (or cancelled) and the query was stopped.
    #[error("the query was cancelled before it finished")]
    Cancelled,
    /// The database refused or failed the query.
    #[error("the warehouse rejected the query: {0}")]
    Database(String),
}

/// A flag the caller raises to stop a running query (the HTTP layer raises it when the client
/// goes away). Cloned handles share the flag.
#[derive(Debug, Clone, Default)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    pub fn new() -> Cancel {
        Cancel::default()
    }

    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// Bounds on what one query may cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExecutionLimits {
    pub timeout: Duration,
    /// Most rows returned.
    pub row_cap: usize,
    /// Most bytes of cell data returned (text and blobs by length, other values 8 bytes).
    pub max_result_bytes: usize,
    /// Largest string or blob a query may build or read (SQLite's `SQLITE_LIMIT_LENGTH`).
    pub max_value_bytes: usize,
}

impl ExecutionLimits {
    /// The default bounds with this deadline and row cap.
    pub fn new(timeout: Duration, row_cap: usize) -> ExecutionLimits {
        ExecutionLimits {
            timeout,
            row_cap: row_cap.max(1),
            max_result_bytes: DEFAULT_MAX_RESULT_BYTES,
            max_value_bytes: DEFAULT_MAX_VALUE_BYTES,
        }
    }
}

/// Default bound on a result's cell data: far more than a page or a chart shows, far less
/// than the server's memory.
pub const DEFAULT_MAX_RESULT_BYTES: usize = 8_000_000;

/// Default bound on one value, in bytes (SQLite's own is 1 GB). The quadratic string
/// functions (`instr`, `replace`, `LIKE`) run inside one step of the statement, where no
/// deadline can reach them: this bound keeps one call under about a second on one core.
pub const DEFAULT_MAX_VALUE_BYTES: usize = 250_000;

/// Longest LIKE or GLOB pattern, in bytes (SQLite's default is 50,000): a pattern's cost grows
/// with its length times the text's.
const MAX_LIKE_PATTERN_BYTES: i32 = 1_000;

/// How often the watchdog looks at the deadline and the cancel flag.
const WATCHDOG_TICK: Duration = Duration::from_millis(20);

/// Runs validated queries on the warehouse: a SQLite file (and the other sources attached
/// beside it) or a PostgreSQL schema.
#[derive(Debug, Clone)]
pub struct Executor {
    backend: Backend,
    limits: ExecutionLimits,
}

#[derive(Debug, Clone)]
enum Backend {
    Sqlite(SqliteWarehouse),
    Postgres(Arc<PostgresWarehouse>),
}

#[derive(Debug, Clone)]
struct SqliteWarehouse {
    warehouse: PathBuf,
    sources: Vec<Source>,
}

impl Executor {
    pub fn new(warehouse: &Path, timeout: Duration, row_cap: usize) -> Self {
        Executor::with_limits(warehouse, ExecutionLimits::new(timeout, row_cap))
    }

    /// An executor for the SQLite file `warehouse`.
    pub fn with_limits(warehouse: &Path, limits: ExecutionLimits) -> Self {
        let limits = ExecutionLimits { row_cap: limits.row_cap.max(1), ..limits };
        let sqlite = SqliteWarehouse { warehouse: warehouse.to_path_buf(), sources: Vec::new() };
        Executor { backend: Backend::Sqlite(sqlite), limits }
    }

    /// An executor for a PostgreSQL warehouse.
    pub fn postgres(warehouse: Arc<PostgresWarehouse>, limits: ExecutionLimits) -> Self {
        let limits = ExecutionLimits { row_cap: limits.row_cap.max(1), ..limits };
        Executor { backend: Backend::Postgres(warehouse), limits }
    }

    /// Also reads these SQLite warehouses, attached read-only under their source names.
    pub fn with_sources(mut self, sources: &[Source]) -> Self {
        if let Backend::Sqlite(sqlite) = &mut self.backend {
            sqlite.sources = sources.to_vec();
        }
        self
    }

    /// The engine the warehouse runs on.
    pub fn engine(&self) -> Engine {
        match self.backend {
            Backend::Sqlite(_) => Engine::Sqlite,
            Backend::Postgres(_) => Engine::Postgres,
        }
    }

    pub fn row_cap(&self) -> usize {
        self.limits.row_cap
    }

    /// Runs the query, returning at most `row_cap` rows.
    pub fn run(&self, query: &ValidatedQuery) -> Result<ResultSet, ExecuteError> {
        self.run_cancellable(query, &Cancel::new())
    }

    /// Runs the query until it ends, its deadline passes or `cancel` is raised, whichever comes
    /// first; at most `row_cap` rows and `max_result_bytes` of cell data.
    pub fn run_cancellable(
        &self,
        query: &ValidatedQuery,
        cancel: &Cancel,
    ) -> Result<ResultSet, ExecuteError> {
        if query.engine() != self.engine() {
            return Err(ExecuteError::WrongEngine {
                query: query.engine().name(),
                warehouse: self.engine().name(),
            });
        }
        match &self.backend {
            Backend::Sqlite(sqlite) => sqlite.run(query, &self.limits, cancel),
            Backend::Postgres(postgres) => postgres.run(query, &self.limits, cancel),
        }
    }
}

impl SqliteWarehouse {
    fn connect(&self, query: &ValidatedQuery, limits: &ExecutionLimits) -> Result<Connection, ExecuteError> {
        let open_err = |source| ExecuteError::Open { path: self.warehouse.clone(), source };
        for path in std::iter::once(&self.warehouse).chain(self.sources.iter().map(|s| &s.path)) {
            if !path.is_file() {
                return Err(ExecuteError::Open {
                    path: path.clone(),
                    source: rusqlite::Error::InvalidPath(path.clone()),
                });
            }
        }
        let mut conn = Connection::open_with_flags(
            &self.warehouse,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(open_err)?;
        conn.pragma_update(None, "query_only", true).map_err(open_err)?;
        for source in &self.sources {
            // Attached databases take the main connection's read-only flag. The source name
            // was checked to be a plain identifier when the configuration was loaded.
            let path = source.path.to_string_lossy();
            conn.execute(&format!("ATTACH DATABASE ?1 AS \"{}\"", source.name), [path.as_ref()]).map_err(
                |source_error| ExecuteError::Open { path: source.path.clone(), source: source_error },
            )?;
        }
        let lower = |names: &[String]| names.iter().map(|t| t.to_ascii_lowercase()).collect();
        let walls = Walls {
            tables: lower(query.tables()),
            ctes: lower(query.cte_names()),
            hidden: query
                .hidden_columns()
                .iter()
                .map(|(t, c)| (t.to_ascii_lowercase(), c.to_ascii_lowercase()))
                .collect(),
        };
        conn.authorizer(Some(move |ctx: AuthContext<'_>| walls.authorize(ctx))).map_err(open_err)?;
        let max_value = i32::try_from(limits.max_value_bytes).unwrap_or(i32::MAX).max(1);
        conn.set_limit(Limit::SQLITE_LIMIT_LENGTH, max_value).map_err(open_err)?;
        conn.set_limit(Limit::SQLITE_LIMIT_LIKE_PATTERN_LENGTH, MAX_LIKE_PATTERN_BYTES).map_err(open_err)?;
        Ok(conn)
    }

    fn run(
        &self,
        query: &ValidatedQuery,
        limits: &ExecutionLimits,
        cancel: &Cancel,
    ) -> Result<ResultSet, ExecuteError> {
        let started = Instant::now();
        let deadline = started + limits.timeout;
        let mut conn = self.connect(query, limits)?;
        // The progress handler stops the statement between steps; the watchdog interrupts it
        // from outside, where the progress handler is not called.
        let stop = stop_when(cancel, deadline);
        conn.progress_handler(1_000, Some(stop.clone()))
            .map_err(|source| ExecuteError::Open { path: self.warehouse.clone(), source })?;
        let interrupt = conn.get_interrupt_handle();
        let watchdog = Watchdog::start(stop, move || interrupt.interrupt());
        let result = read(&conn, query, limits, started);
        watchdog.stop();
        result.map_err(|e| match e {
            ExecuteError::Database(_) if cancel.is_cancelled() => ExecuteError::Cancelled,
            ExecuteError::Database(_) if Instant::now() > deadline => ExecuteError::Timeout(limits.timeout),
            other => other,
        })
    }
}

/// Steps through the statement, converting each row as it comes.
fn read(
    conn: &Connection,
    query: &ValidatedQuery,
    limits: &ExecutionLimits,
    started: Instant,
) -> Result<ResultSet, ExecuteError> {
    let db_err = |e: rusqlite::Error| ExecuteError::Database(e.to_string());
    let mut stmt = conn.prepare(query.sql()).map_err(db_err)?;
    if !stmt.readonly() {
        return Err(ExecuteError::Database("statement is not read-only".into()));
    }
    let columns: Vec<String> = stmt.column_names().map(String::from).collect();
    let mut rows = Rows::new(limits);
    let mut cursor = stmt.query([]).map_err(db_err)?;
    while let Some(row) = cursor.next().map_err(db_err)? {
        if rows.full() {
            break;
        }
        let mut values = Vec::with_capacity(columns.len());
        for i in 0..columns.len() {
            values.push(json_value(row.get_ref(i).map_err(db_err)?));
        }
        if !rows.push(values) {
            break;
        }
    }
    Ok(rows.finish(columns, started))
}

/// The rows of a result as they are read, cut at the row cap or the byte limit.
pub(super) struct Rows {
    rows: Vec<Vec<Value>>,
    truncation: Option<Truncation>,
    bytes: usize,
    row_cap: usize,
    max_bytes: usize,
}

impl Rows {
    pub(super) fn new(limits: &ExecutionLimits) -> Rows {
        Rows {
            rows: Vec::new(),
            truncation: None,
            bytes: 0,
            row_cap: limits.row_cap,
            max_bytes: limits.max_result_bytes,
        }
    }

    /// Whether the row cap is reached: a further row is cut (and the result says so).
    pub(super) fn full(&mut self) -> bool {
        if self.rows.len() == self.row_cap {
            self.truncation = Some(Truncation::RowCap);
        }
        self.truncation.is_some()
    }

    /// Adds a row, or cuts the result there when its cells would pass the byte limit (text
    /// by length, other values 8 bytes); false once cut.
    pub(super) fn push(&mut self, values: Vec<Value>) -> bool {
        let size: usize = values.iter().map(|v| if let Value::String(s) = v { s.len() } else { 8 }).sum();
        if self.bytes + size > self.max_bytes {
            self.truncation = Some(Truncation::ByteLimit);
            return false;
        }
        self.bytes += size;
        self.rows.push(values);
        true
    }

    pub(super) fn finish(self, columns: Vec<String>, started: Instant) -> ResultSet {
        ResultSet {
            columns,
            rows: self.rows,
            truncated: self.truncation.is_some(),
            truncation: self.truncation,
            elapsed_ms: started.elapsed().as_millis() as u64,
        }
    }
}

/// When a query must stop: the caller cancelled, or its deadline passed.
pub(super) fn stop_when(cancel: &Cancel, deadline: Instant) -> impl Fn() -> bool + Clone + Send + 'static {
    let cancel = cancel.clone();
    move || cancel.is_cancelled() || Instant::now() > deadline
}

/// A thread that calls `on_stop` once `stop` says so (checked every 20 ms), unless the query
/// ends first: how a running statement is interrupted from outside at its deadline or when
/// the caller cancels.
pub(super) struct Watchdog {
    finished: mpsc::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl Watchdog {
    pub(super) fn start(
        stop: impl Fn() -> bool + Send + 'static,
        on_stop: impl FnOnce() + Send + 'static,
    ) -> Watchdog {
        let (finished, watch) = mpsc::channel::<()>();
        let thread = std::thread::spawn(move || loop {
            match watch.recv_timeout(WATCHDOG_TICK) {
                Err(mpsc::RecvTimeoutError::Timeout) if stop() => {
                    on_stop();
                    return;
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                _ => return,
            }
        });
        Watchdog { finished, thread }
    }

    /// The query ended: the thread ends too.
    pub(super) fn stop(self) {
        drop(self.finished);
        let _ = self.thread.join();
    }
}

/// The second wall, for one query: what SQLite may do while preparing it.
struct Walls {
    /// Lower-cased catalog tables the validator approved for this query.
    tables: Vec<String>,
    /// Lower-cased names of the query's CTEs.
    ctes: Vec<String>,
    /// Lower-cased (table, column) pairs the role may not read.
    hidden: Vec<(String, String)>,
}

impl Walls {
    /// Reads of approved tables (denied columns read as NULL) and allow-listed functions only.
    fn authorize(&self, ctx: AuthContext<'_>) -> Authorization {
        match ctx.action {
            AuthAction::Select | AuthAction::Recursive => Authorization::Allow,
            AuthAction::Read { table_name, column_name } => {
                let table = table_name.to_ascii_lowercase();
                if table.starts_with("sqlite_") {
                    Authorization::Deny
                } else if column_name.is_empty() {
                    // A FROM item from which no value is read (`count(*)`): SQLite names it as
                    // written, a table or one of the query's CTEs. Its row count is still data.
                    if self.tables.contains(&table) || self.ctes.contains(&table) {
                        Authorization::Allow
                    } else {
                        Authorization::Deny
                    }
                } else if !self.tables.contains(&table) {
                    Authorization::Deny
                } else if self.hidden.iter().any(|(t, c)| *t == table && c.eq_ignore_ascii_case(column_name))
                {
                    Authorization::Ignore
                } else {
                    Authorization::Allow
                }
            }
            AuthAction::Function { function_name } if is_allowed_function(Engine::Sqlite, function_name) => {
                Authorization::Allow
            }
            _ => Authorization::Deny,
        }
    }
}

fn json_value(value: ValueRef<'_>) -> Value {
    match value {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::from(i),
        ValueRef::Real(f) => serde_json::Number::from_f64(f).map(Value::Number).unwrap_or(Value::Null),
        ValueRef::Text(t) => Value::String(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => Value::String(format!("<{} bytes>", b.len())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::unchecked_for_tests;

    /// The walls hold even for SQL the validator never saw.
    #[test]
    fn the_second_wall_holds_without_the_validator() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("w.sqlite");
        let conn = Connection::open(&path).unwrap_or_else(|e| panic!("{e}"));
        conn.execute_batch(
            "CREATE TABLE users (id INTEGER, email TEXT); INSERT INTO users VALUES (1, 'a@example.com');
             CREATE TABLE secret (x TEXT); INSERT INTO secret VALUES ('s');",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        drop(conn);
        let executor = Executor::new(&path, Duration::from_secs(5), 10);
        let run = |sql: &str, tables: &[&str], hidden: &[(&str, &str)]| {
            executor.run(&unchecked_for_tests(sql, tables, hidden)).map(|r| r.rows)
        };
        let denied = |result: &Result<Vec<Vec<Value>>, ExecuteError>| matches!(result, Err(ExecuteError::Database(message)) if message.contains("prohibited") || message.contains("not authorized"));
        // Only the tables the validator approved.
        let read = run("SELECT x FROM secret", &["users"], &[]);
        assert!(denied(&read), "{read:?}");
        let read = run("SELECT id FROM users WHERE id IN (SELECT x FROM secret)", &["users"], &[]);
        assert!(denied(&read), "{read:?}");
        assert_eq!(run("SELECT x FROM secret", &["secret"], &[]).ok(), Some(vec![vec![Value::from("s")]]));
        // Denied columns read as NULL, wherever they are read.
        let hidden = [("users", "email")];
        assert_eq!(
            run("SELECT id, email FROM users WHERE email IS NULL", &["users"], &hidden).ok(),
            Some(vec![vec![Value::from(1), Value::Null]])
        );
        assert_eq!(
            run("WITH c AS (SELECT * FROM users) SELECT * FROM c", &["users"], &hidden).ok(),
            Some(vec![vec![Value::from(1), Value::Null]])
        );
        // A CTE named like a table is the CTE; the row count of a table not approved is data.
        assert!(run("WITH secret AS (SELECT 1 AS x) SELECT count(*) FROM secret", &[], &[]).is_ok());
        for sql in ["SELECT count(*) FROM secret", "SELECT (SELECT count(*) FROM secret) FROM users"] {
            let read = run(sql, &["users"], &[]);
            assert!(denied(&read), "{sql}: {read:?}");
        }
        assert_eq!(run("SELECT count(*) FROM users", &["users"], &[]).ok(), Some(vec![vec![Value::from(1)]]));
        // No system tables, writes, attachments, settings or unknown functions.
        for sql in [
            "SELECT name FROM sqlite_master",
            "SELECT count(*) FROM sqlite_master",
            "DELETE FROM users",
            "ATTACH DATABASE ':memory:' AS other",
            "PRAGMA query_only = 0",
            "SELECT load_extension('x')",
        ] {
            assert!(run(sql, &["users", "sqlite_master"], &[]).is_err(), "{sql}");
        }
        // A value larger than the limit is an error, not memory.
        let big = run("SELECT length(printf('%.*c', 20000000, 'x'))", &[], &[]);
        assert!(matches!(big, Err(ExecuteError::Database(_))), "{big:?}");
    }

    fn warehouse(rows: usize) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("w.sqlite");
        let conn = Connection::open(&path).unwrap_or_else(|e| panic!("{e}"));
        conn.execute_batch("CREATE TABLE t (id INTEGER, body TEXT)").unwrap_or_else(|e| panic!("{e}"));
        for id in 0..rows {
            conn.execute("INSERT INTO t VALUES (?1, ?2)", rusqlite::params![id as i64, "x".repeat(1000)])
                .unwrap_or_else(|e| panic!("{e}"));
        }
        (dir, path)
    }

    /// A result stops at its size in bytes as well as at the row cap, and says which cut it.
    #[test]
    fn results_are_bounded_in_bytes_and_say_so() {
        let (_dir, path) = warehouse(50);
        let limits =
            ExecutionLimits { max_result_bytes: 10_500, ..ExecutionLimits::new(Duration::from_secs(5), 40) };
        let executor = Executor::with_limits(&path, limits);
        let result = executor.run(&unchecked_for_tests("SELECT id, body FROM t", &["t"], &[]));
        let result = result.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((result.rows.len(), result.truncation), (10, Some(Truncation::ByteLimit)));
        assert!(result.truncated);
        let result = executor.run(&unchecked_for_tests("SELECT id FROM t", &["t"], &[]));
        let result = result.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((result.rows.len(), result.truncation), (40, Some(Truncation::RowCap)));
        let result = executor.run(&unchecked_for_tests("SELECT id FROM t LIMIT 5", &["t"], &[]));
        assert_eq!(result.map(|r| (r.rows.len(), r.truncation)).ok(), Some((5, None)));
    }

    /// The deadline and a cancel raised from another thread both stop a running statement.
    #[test]
    fn a_running_query_stops_at_its_deadline_or_when_cancelled() {
        let (_dir, path) = warehouse(1);
        let endless =
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT count(*) FROM n";
        let query = unchecked_for_tests(endless, &[], &[]);
        let impatient = Executor::new(&path, Duration::from_millis(200), 10);
        assert!(matches!(impatient.run(&query), Err(ExecuteError::Timeout(_))));
        let patient = Executor::new(&path, Duration::from_secs(600), 10);
        let cancel = Cancel::new();
        let raiser = {
            let cancel = cancel.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(200));
                cancel.cancel();
            })
        };
        let outcome = patient.run_cancellable(&query, &cancel);
        let _ = raiser.join();
        assert!(matches!(outcome, Err(ExecuteError::Cancelled)), "{outcome:?}");
        // Long LIKE patterns, whose cost grows with their length, are refused.
        let like = format!("SELECT 'a' LIKE '%{}b'", "a".repeat(2_000));
        assert!(matches!(patient.run(&unchecked_for_tests(&like, &[], &[])), Err(ExecuteError::Database(_))));
    }
}
