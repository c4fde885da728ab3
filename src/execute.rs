//! The executor: runs a `ValidatedQuery` (and nothing else) on the warehouse, behind a second
//! wall in case the validator ever has a bug: a read-only connection with `query_only` set, an
//! authorizer that denies everything but reads of the tables the validator approved and
//! allow-listed functions (and reads the role's denied columns as NULL), a deadline, a cap on
//! the size of any one value, and a row cap.
//!
//! No function here, or anywhere else, executes a `&str` of SQL on the warehouse.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::hooks::{AuthAction, AuthContext, Authorization};
use rusqlite::limits::Limit;
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};
use serde::Serialize;
use serde_json::Value;

use crate::catalog::Source;
use crate::validate::{is_allowed_function, ValidatedQuery};

/// Rows returned by a query, typed as JSON values.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResultSet {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Value>>,
    /// True when the query had more rows than the cap and only the first ones are here.
    pub truncated: bool,
    pub elapsed_ms: u64,
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
    /// The query ran longer than allowed and was stopped.
    #[error("the query ran longer than {0:?} and was stopped; add filters or aggregate earlier")]
    Timeout(Duration),
    /// The database refused or failed the query.
    #[error("the warehouse rejected the query: {0}")]
    Database(String),
}

/// Runs validated queries on the SQLite warehouse and the other sources attached beside it.
#[derive(Debug, Clone)]
pub struct Executor {
    warehouse: PathBuf,
    sources: Vec<Source>,
    timeout: Duration,
    row_cap: usize,
}

impl Executor {
    pub fn new(warehouse: &Path, timeout: Duration, row_cap: usize) -> Self {
        Executor { warehouse: warehouse.to_path_buf(), sources: Vec::new(), timeout, row_cap: row_cap.max(1) }
    }

    /// Also reads these warehouses, attached read-only under their source names.
    pub fn with_sources(mut self, sources: &[Source]) -> Self {
        self.sources = sources.to_vec();
        self
    }

    pub fn row_cap(&self) -> usize {
        self.row_cap
    }

    fn connect(&self, deadline: Instant, query: &ValidatedQuery) -> Result<Connection, ExecuteError> {
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
        let walls = Walls {
            tables: query.tables().iter().map(|t| t.to_ascii_lowercase()).collect(),
            hidden: query
                .hidden_columns()
                .iter()
                .map(|(t, c)| (t.to_ascii_lowercase(), c.to_ascii_lowercase()))
                .collect(),
        };
        conn.authorizer(Some(move |ctx: AuthContext<'_>| walls.authorize(ctx))).map_err(open_err)?;
        conn.set_limit(Limit::SQLITE_LIMIT_LENGTH, MAX_VALUE_BYTES).map_err(open_err)?;
        conn.progress_handler(1_000, Some(move || Instant::now() > deadline)).map_err(open_err)?;
        Ok(conn)
    }

    /// Runs the query, returning at most `row_cap` rows.
    pub fn run(&self, query: &ValidatedQuery) -> Result<ResultSet, ExecuteError> {
        let started = Instant::now();
        let deadline = started + self.timeout;
        let conn = self.connect(deadline, query)?;
        let db_err = |e: rusqlite::Error| {
            if Instant::now() > deadline {
                ExecuteError::Timeout(self.timeout)
            } else {
                ExecuteError::Database(e.to_string())
            }
        };
        let mut stmt = conn.prepare(query.sql()).map_err(db_err)?;
        if !stmt.readonly() {
            return Err(ExecuteError::Database("statement is not read-only".into()));
        }
        let columns: Vec<String> = stmt.column_names().map(String::from).collect();
        let mut rows = Vec::new();
        let mut truncated = false;
        let mut cursor = stmt.query([]).map_err(db_err)?;
        while let Some(row) = cursor.next().map_err(db_err)? {
            if rows.len() == self.row_cap {
                truncated = true;
                break;
            }
            let mut values = Vec::with_capacity(columns.len());
            for i in 0..columns.len() {
                values.push(json_value(row.get_ref(i).map_err(db_err)?));
            }
            rows.push(values);
        }
        Ok(ResultSet { columns, rows, truncated, elapsed_ms: started.elapsed().as_millis() as u64 })
    }
}

/// Largest string or blob a query may build, in bytes (SQLite's default is 1 GB): a query
/// that doubles a string in a recursive CTE fails here instead of exhausting memory.
const MAX_VALUE_BYTES: i32 = 10_000_000;

/// The second wall, for one query: what SQLite may do while preparing it.
struct Walls {
    /// Lower-cased catalog tables the validator approved for this query.
    tables: Vec<String>,
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
                    // written, which may be a CTE's name. No data is read; allowed.
                    Authorization::Allow
                } else if !self.tables.contains(&table) {
                    Authorization::Deny
                } else if self.hidden.iter().any(|(t, c)| *t == table && c.eq_ignore_ascii_case(column_name))
                {
                    Authorization::Ignore
                } else {
                    Authorization::Allow
                }
            }
            AuthAction::Function { function_name } if is_allowed_function(function_name) => {
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
        let denied = |result: &Result<Vec<Vec<Value>>, ExecuteError>| matches!(result, Err(ExecuteError::Database(message)) if message.contains("prohibited"));
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
        // A CTE named like a table, and count(*), read no table value.
        assert!(run("WITH secret AS (SELECT 1 AS x) SELECT count(*) FROM secret", &[], &[]).is_ok());
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
}
