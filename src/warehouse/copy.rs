//! Copying a SQLite warehouse into a PostgreSQL schema (`quarry demo --postgres`, and a
//! PostgreSQL copy of an evaluation database): tables with their declared keys, ISO date and
//! timestamp text as `date` and `timestamp`, rows through `COPY … FROM STDIN`, then `ANALYZE`
//! so that row estimates and common values are there for introspection.
//!
//! SQLite keeps whatever a row holds, whatever the declared type, and enforces no foreign key
//! unless asked: real files (Spider's among them) hold text in INTEGER columns, duplicate
//! primary keys, and keys that point nowhere. The copy follows the data: a column gets its
//! declared type only when every value fits it (else the widest type that holds them all,
//! down to text), and a key the rows break is left out. Each such change is a note of the
//! report, so nothing is adjusted silently.
//!
//! Names arrive in lower case, as PostgreSQL folds unquoted names (and as migration tools
//! load SQLite): `SELECT name FROM singer` reads a copied `Singer.Name`. SQLite's names are
//! case-insensitive, so no two collide.
//!
//! It writes, so it connects as a role that may create tables — never the role Quarry answers
//! with. Every statement is built from identifiers read from the SQLite file, quoted.

use std::collections::BTreeMap;
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
    /// Where the copy differs from the declared schema, and why (a column typed by its data,
    /// a key the rows break).
    pub notes: Vec<String>,
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

/// The type of `column` in PostgreSQL: its declared type (`postgres_type`) when every value of
/// `table` fits it, else the narrowest type that holds them all, with a note saying so.
fn fitted_type(
    source: &Connection,
    table: &str,
    column: &Column,
    notes: &mut Vec<String>,
) -> rusqlite::Result<&'static str> {
    let declared = postgres_type(column);
    let c = quote_ident(&column.name);
    let t = quote_ident(table);
    let count = |condition: &str| -> rusqlite::Result<i64> {
        source.query_row(
            &format!("SELECT COUNT(*) FROM {t} WHERE {c} IS NOT NULL AND ({condition})"),
            [],
            |r| r.get(0),
        )
    };
    let fitted = match declared {
        // A date is a date only when SQLite reads it back unchanged (no 2026-02-30).
        "date" if count(&format!("typeof({c}) <> 'text' OR date({c}) IS NOT {c}"))? == 0 => declared,
        "timestamp" if count(&format!("typeof({c}) <> 'text' OR datetime({c}) IS NULL"))? == 0 => declared,
        "bigint" if count(&format!("typeof({c}) <> 'integer'"))? == 0 => declared,
        "double precision" | "numeric" if count(&format!("typeof({c}) NOT IN ('integer', 'real')"))? == 0 => {
            declared
        }
        "text" => declared,
        _ if count(&format!("typeof({c}) NOT IN ('integer', 'real')"))? == 0 => "double precision",
        _ => "text",
    };
    if fitted != declared {
        notes.push(format!(
            "{table}.{}: declared {} but holds values that are not {declared}: copied as {fitted}",
            column.name, column.data_type
        ));
    }
    // Binary values have no place in these types: they arrive as NULL, and the note says so.
    let blobs = count(&format!("typeof({c}) = 'blob'"))?;
    if blobs > 0 {
        notes.push(format!("{table}.{}: {blobs} binary (BLOB) value(s) not copied: NULL there", column.name));
    }
    Ok(fitted)
}

fn column_key(table: &str, column: &str) -> (String, String) {
    (table.to_lowercase(), column.to_lowercase())
}

/// Gives both columns of each declared foreign key one type: SQLite compares `1` and `'1'` as
/// equal in a join, PostgreSQL refuses `bigint = text`, so a key whose sides are typed apart
/// (declared so, or by their data) joins as it did in SQLite: as numbers when the text side
/// holds only whole numbers, else both as text.
fn join_alike(
    catalog: &crate::catalog::Catalog,
    types: &mut BTreeMap<(String, String), &'static str>,
    whole_numbers: &dyn Fn(&str, &str) -> bool,
    notes: &mut Vec<String>,
) {
    let numeric = |t: &str| matches!(t, "bigint" | "double precision" | "numeric");
    // A chain of keys (a -> b -> c) settles within as many rounds as it has links.
    for _ in 0..catalog.tables().count().max(1) {
        let mut changed = false;
        for table in catalog.tables() {
            for key in table.foreign_keys.iter().filter(|k| !k.inferred && !k.ref_column.is_empty()) {
                let from = column_key(&table.name, &key.column);
                let to = column_key(&key.ref_table, &key.ref_column);
                let (Some(&a), Some(&b)) = (types.get(&from), types.get(&to)) else { continue };
                if a == b {
                    continue;
                }
                let both = match (a, b) {
                    _ if numeric(a) && numeric(b) => "double precision",
                    ("text", n) if numeric(n) && whole_numbers(&table.name, &key.column) => n,
                    (n, "text") if numeric(n) && whole_numbers(&key.ref_table, &key.ref_column) => n,
                    _ => "text",
                };
                types.insert(from, both);
                types.insert(to, both);
                notes.push(format!(
                    "{}.{} ({a}) and {}.{} ({b}), joined by a foreign key: both copied as {both}",
                    table.name, key.column, key.ref_table, key.ref_column
                ));
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
}

/// True when every value of `table.column` in `source` is a whole number (or NULL), whatever
/// its storage class: text `'42'` is.
fn holds_whole_numbers(source: &Connection, table: &str, column: &str) -> bool {
    let c = quote_ident(column);
    source
        .query_row(
            &format!(
                "SELECT COUNT(*) FROM {} WHERE {c} IS NOT NULL AND CAST(CAST({c} AS INTEGER) AS TEXT) <> CAST({c} AS TEXT)",
                quote_ident(table)
            ),
            [],
            |r| r.get::<_, i64>(0),
        )
        .is_ok_and(|n| n == 0)
}

/// Runs `statement` (adding a key) in a savepoint of `tx`: a key the rows break is left out,
/// with a note naming it and PostgreSQL's reason.
fn add_key(
    tx: &mut postgres::Transaction<'_>,
    statement: &str,
    what: String,
    notes: &mut Vec<String>,
) -> Result<(), postgres::Error> {
    let mut savepoint = tx.savepoint("quarry_key")?;
    match savepoint.batch_execute(statement) {
        Ok(()) => savepoint.commit(),
        Err(e) => {
            notes.push(format!("{what} left out: {}", describe(&e)));
            savepoint.rollback()
        }
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
                    // PostgreSQL text cannot hold NUL.
                    '\0' => {}
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
    let mut report = CopyReport { tables: 0, rows: 0, notes: Vec::new() };
    let mut types = BTreeMap::new();
    for table in catalog.tables() {
        for column in &table.columns {
            let fitted = fitted_type(&source, &table.name, column, &mut report.notes)
                .map_err(|e| sqlite_err(e.to_string()))?;
            types.insert(column_key(&table.name, &column.name), fitted);
        }
    }
    join_alike(&catalog, &mut types, &|t, c| holds_whole_numbers(&source, t, c), &mut report.notes);
    for table in catalog.tables() {
        let t = format!("{s}.{}", pg_name(&table.name));
        let columns: Vec<String> = table
            .columns
            .iter()
            .map(|c| {
                let fitted = types.get(&column_key(&table.name, &c.name)).copied().unwrap_or("text");
                format!("{} {fitted}", pg_name(&c.name))
            })
            .collect();
        tx.batch_execute(&format!(
            "DROP TABLE IF EXISTS {t} CASCADE; CREATE TABLE {t} ({})",
            columns.join(", ")
        ))
        .map_err(pg_err)?;
        let names: Vec<String> = table.columns.iter().map(|c| pg_name(&c.name)).collect();
        let mut writer =
            tx.copy_in(&format!("COPY {t} ({}) FROM STDIN", names.join(", "))).map_err(pg_err)?;
        let read: Vec<String> = table.columns.iter().map(|c| quote_ident(&c.name)).collect();
        let mut statement = source
            .prepare(&format!("SELECT {} FROM {}", read.join(", "), quote_ident(&table.name)))
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
    // Keys after the rows: a key the rows break is left out (and noted), not the copy.
    for table in catalog.tables().filter(|t| !t.primary_key.is_empty()) {
        let key: Vec<String> = table.primary_key.iter().map(|c| pg_name(c)).collect();
        let statement =
            format!("ALTER TABLE {s}.{} ADD PRIMARY KEY ({})", pg_name(&table.name), key.join(", "));
        let what = format!("primary key of {} ({})", table.name, table.primary_key.join(", "));
        add_key(&mut tx, &statement, what, &mut report.notes).map_err(pg_err)?;
    }
    for table in catalog.tables() {
        for key in table.foreign_keys.iter().filter(|k| !k.inferred && !k.ref_column.is_empty()) {
            let statement = format!(
                "ALTER TABLE {s}.{} ADD FOREIGN KEY ({}) REFERENCES {s}.{} ({})",
                pg_name(&table.name),
                pg_name(&key.column),
                pg_name(&key.ref_table),
                pg_name(&key.ref_column)
            );
            let what =
                format!("foreign key {}.{} -> {}.{}", table.name, key.column, key.ref_table, key.ref_column);
            add_key(&mut tx, &statement, what, &mut report.notes).map_err(pg_err)?;
        }
    }
    tx.commit().map_err(pg_err)?;
    client.batch_execute(&format!("ANALYZE {}", analyze_list(&s, &catalog))).map_err(pg_err)?;
    Ok(report)
}

/// Lets the role `reader` read every table of `schema`, connected as `owner` (who owns them).
pub fn grant_read(owner: &PostgresUrl, schema: &str, reader: &str) -> Result<(), CopyError> {
    let pg_err = |e: postgres::Error| CopyError::Postgres { url: owner.clone(), message: describe(&e) };
    let (s, role) = (quote_ident(schema), quote_ident(reader));
    let mut client = owner.config().connect(NoTls).map_err(pg_err)?;
    client
        .batch_execute(&format!(
            "GRANT USAGE ON SCHEMA {s} TO {role}; GRANT SELECT ON ALL TABLES IN SCHEMA {s} TO {role}"
        ))
        .map_err(pg_err)
}

/// A SQLite name as the copy names it in PostgreSQL: in lower case, quoted.
fn pg_name(sqlite_name: &str) -> String {
    quote_ident(&sqlite_name.to_lowercase())
}

fn analyze_list(schema: &str, catalog: &crate::catalog::Catalog) -> String {
    let tables: Vec<String> = catalog.tables().map(|t| format!("{schema}.{}", pg_name(&t.name))).collect();
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
