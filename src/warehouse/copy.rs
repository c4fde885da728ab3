//! Copying a SQLite warehouse into a PostgreSQL schema (`quarry demo --postgres`, and a
//! PostgreSQL copy of an evaluation database): tables with their declared keys, ISO date and
//! timestamp text as `date` and `timestamp`, rows through `COPY … FROM STDIN`, then `ANALYZE`
//! so that row estimates and common values are there for introspection.
//!
//! It writes, so it connects as a role that may create tables — never the role Quarry answers
//! with. Every statement is built from identifiers read from the SQLite file, quoted.

use std::io::Write;
use std::path::Path;

use postgres::NoTls;
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};

use super::introspect::{introspect, quote_ident};
use super::postgres::{describe, PostgresUrl};
use crate::catalog::Column;

/// What was copied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyReport {
    pub tables: usize,
    pub rows: u64,
}

/// Why a copy failed.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error("cannot read the SQLite warehouse {path}: {message}")]
    Sqlite { path: String, message: String },
    #[error("cannot write to {url}: {message}")]
    Postgres { url: PostgresUrl, message: String },
}

/// The PostgreSQL type for a SQLite column: by declared type, and by the layout of its dates.
fn postgres_type(column: &Column) -> &'static str {
    let declared = column.data_type.to_ascii_uppercase();
    match column.date_format.as_deref() {
        Some("YYYY-MM-DD") => return "date",
        Some("YYYY-MM-DD HH:MM:SS" | "YYYY-MM-DDTHH:MM:SS" | "YYYY-MM-DD HH:MM") => return "timestamp",
        _ => {}
    }
    if declared.contains("INT") {
        "bigint"
    } else if declared.contains("REAL") || declared.contains("FLOA") || declared.contains("DOUB") {
        "double precision"
    } else if declared.contains("NUM") || declared.contains("DEC") {
        "numeric"
    } else {
        "text"
    }
}

/// A value in `COPY`'s text format: `\N` for NULL, backslash escapes for the separators.
fn copy_text(value: ValueRef<'_>) -> String {
    match value {
        ValueRef::Null | ValueRef::Blob(_) => "\\N".to_string(),
        ValueRef::Integer(i) => i.to_string(),
        ValueRef::Real(f) => f.to_string(),
        ValueRef::Text(t) => {
            let text = String::from_utf8_lossy(t);
            let mut out = String::with_capacity(text.len());
            for c in text.chars() {
                match c {
                    '\\' => out.push_str("\\\\"),
                    '\t' => out.push_str("\\t"),
                    '\n' => out.push_str("\\n"),
                    '\r' => out.push_str("\\r"),
                    c => out.push(c),
                }
            }
            out
        }
    }
}

/// Copies every table of the SQLite file `sqlite` into `schema` (created when missing; tables
/// of the same names are replaced), with primary and declared foreign keys.
pub fn copy_sqlite(sqlite: &Path, url: &PostgresUrl, schema: &str) -> Result<CopyReport, CopyError> {
    let sqlite_err = |message: String| CopyError::Sqlite { path: sqlite.display().to_string(), message };
    let pg_err = |e: postgres::Error| CopyError::Postgres { url: url.clone(), message: describe(&e) };
    let catalog = introspect(sqlite).map_err(|e| sqlite_err(e.to_string()))?;
    let source = Connection::open_with_flags(sqlite, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| sqlite_err(e.to_string()))?;
    let mut client = url.config().connect(NoTls).map_err(pg_err)?;
    let s = quote_ident(schema);
    let mut tx = client.transaction().map_err(pg_err)?;
    tx.batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {s}")).map_err(pg_err)?;
    let mut report = CopyReport { tables: 0, rows: 0 };
    for table in catalog.tables() {
        let t = format!("{s}.{}", quote_ident(&table.name));
        let mut columns: Vec<String> =
            table.columns.iter().map(|c| format!("{} {}", quote_ident(&c.name), postgres_type(c))).collect();
        if !table.primary_key.is_empty() {
            let key: Vec<String> = table.primary_key.iter().map(|c| quote_ident(c)).collect();
            columns.push(format!("PRIMARY KEY ({})", key.join(", ")));
        }
        tx.batch_execute(&format!(
            "DROP TABLE IF EXISTS {t} CASCADE; CREATE TABLE {t} ({})",
            columns.join(", ")
        ))
        .map_err(pg_err)?;
        let names: Vec<String> = table.columns.iter().map(|c| quote_ident(&c.name)).collect();
        let mut writer =
            tx.copy_in(&format!("COPY {t} ({}) FROM STDIN", names.join(", "))).map_err(pg_err)?;
        let mut statement = source
            .prepare(&format!("SELECT {} FROM {}", names.join(", "), quote_ident(&table.name)))
            .map_err(|e| sqlite_err(e.to_string()))?;
        let mut rows = statement.query([]).map_err(|e| sqlite_err(e.to_string()))?;
        while let Some(row) = rows.next().map_err(|e| sqlite_err(e.to_string()))? {
            let mut line = Vec::with_capacity(names.len());
            for i in 0..names.len() {
                line.push(copy_text(row.get_ref(i).map_err(|e| sqlite_err(e.to_string()))?));
            }
            writeln!(writer, "{}", line.join("\t"))
                .map_err(|e| CopyError::Postgres { url: url.clone(), message: e.to_string() })?;
            report.rows += 1;
        }
        writer.finish().map_err(pg_err)?;
        report.tables += 1;
    }
    for table in catalog.tables() {
        for key in table.foreign_keys.iter().filter(|k| !k.inferred && !k.ref_column.is_empty()) {
            tx.batch_execute(&format!(
                "ALTER TABLE {s}.{} ADD FOREIGN KEY ({}) REFERENCES {s}.{} ({})",
                quote_ident(&table.name),
                quote_ident(&key.column),
                quote_ident(&key.ref_table),
                quote_ident(&key.ref_column)
            ))
            .map_err(pg_err)?;
        }
    }
    tx.commit().map_err(pg_err)?;
    client.batch_execute(&format!("ANALYZE {}", analyze_list(&s, &catalog))).map_err(pg_err)?;
    Ok(report)
}

fn analyze_list(schema: &str, catalog: &crate::catalog::Catalog) -> String {
    let tables: Vec<String> =
        catalog.tables().map(|t| format!("{schema}.{}", quote_ident(&t.name))).collect();
    tables.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_escaped_for_copy() {
        assert_eq!(copy_text(ValueRef::Null), "\\N");
        assert_eq!(copy_text(ValueRef::Integer(-3)), "-3");
        assert_eq!(copy_text(ValueRef::Text(b"a\tb\\c\nd")), "a\\tb\\\\c\\nd");
    }

    #[test]
    fn dates_become_dates_and_numbers_numbers() {
        let mut day = Column::new("signup_date", "TEXT");
        day.date_format = Some("YYYY-MM-DD".into());
        let mut at = Column::new("started_at", "TEXT");
        at.date_format = Some("YYYY-MM-DD HH:MM:SS".into());
        assert_eq!(postgres_type(&day), "date");
        assert_eq!(postgres_type(&at), "timestamp");
        assert_eq!(postgres_type(&Column::new("n", "INTEGER")), "bigint");
        assert_eq!(postgres_type(&Column::new("x", "REAL")), "double precision");
        assert_eq!(postgres_type(&Column::new("name", "TEXT")), "text");
    }
}
