//! Reading a SQLite warehouse into a catalog: tables, columns, types, declared keys, row
//! counts, low-cardinality samples, the date format of date columns and the latest date of each
//! table, keys inferred where none is declared (`keys`), then the stewards' governance files laid
//! over it. Every statement here is built from quoted identifiers on a read-only connection.

use std::collections::BTreeMap;
use std::path::Path;

use rusqlite::{Connection, OpenFlags};

use super::keys;
use crate::catalog::governance;
use crate::catalog::{
    Catalog, CatalogError, Column, ForeignKey, LastChange, Source, Table, UNIX_SECONDS, YEAR_NUMBER,
};

/// Introspects `warehouse` and lays the governance files of `governance_dir` (every `*.toml`
/// in it, in name order) over it.
pub fn load_catalog(warehouse: &Path, governance_dir: &Path) -> Result<Catalog, CatalogError> {
    load_catalog_sources(warehouse, &[], governance_dir)
}

/// Introspects the main warehouse and every other source, then lays the governance files
/// over them. Table names must be unique across sources.
pub fn load_catalog_sources(
    warehouse: &Path,
    sources: &[Source],
    governance_dir: &Path,
) -> Result<Catalog, CatalogError> {
    let mut tables = introspect_tables(warehouse)?;
    for source in sources {
        for (key, mut table) in introspect_tables(&source.path)? {
            if let Some(existing) = tables.get(&key) {
                return Err(CatalogError::Invalid {
                    path: source.path.clone(),
                    line: None,
                    message: format!(
                        "table '{}' of source '{}' has the name of a table of source '{}'; table names must be unique across sources: rename one, or drop the source from [[workspace.sources]]",
                        table.name, source.name, existing.source
                    ),
                });
            }
            table.source = source.name.clone();
            tables.insert(key, table);
        }
    }
    let mut catalog = Catalog::from_tables(tables.into_values().collect());
    governance::apply_dir(&mut catalog, governance_dir)?;
    Ok(catalog)
}

/// The catalog of one SQLite file, without governance: tables, columns, types, keys (declared,
/// or inferred where none is: `keys`), row counts, low-cardinality samples and the latest date
/// of each table (where a date column tells).
pub fn introspect(warehouse: &Path) -> Result<Catalog, CatalogError> {
    Ok(Catalog::from_tables(introspect_tables(warehouse)?.into_values().collect()))
}

/// The tables of one SQLite file, keyed by lower-cased name.
fn introspect_tables(warehouse: &Path) -> Result<BTreeMap<String, Table>, CatalogError> {
    let err = |source| CatalogError::Warehouse { path: warehouse.to_path_buf(), source };
    if !warehouse.is_file() {
        return Err(err(rusqlite::Error::InvalidPath(warehouse.to_path_buf())));
    }
    let conn = Connection::open_with_flags(
        warehouse,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(err)?;
    let mut tables = BTreeMap::new();
    for name in table_names(&conn).map_err(err)? {
        let table = introspect_table(&conn, &name).map_err(err)?;
        tables.insert(name.to_lowercase(), table);
    }
    keys::infer(&conn, &mut tables);
    Ok(tables)
}

fn table_names(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare(
        "SELECT name FROM sqlite_master WHERE type IN ('table', 'view') \
         AND name NOT LIKE 'sqlite_%' ORDER BY name",
    )?;
    let names = stmt.query_map([], |r| r.get(0))?.collect();
    names
}

pub(super) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn introspect_table(conn: &Connection, name: &str) -> rusqlite::Result<Table> {
    let q = quote_ident(name);
    let mut columns = Vec::new();
    let mut pk: Vec<(i64, String)> = Vec::new();
    let mut stmt = conn.prepare(&format!("PRAGMA table_info({q})"))?;
    let rows =
        stmt.query_map([], |r| Ok((r.get::<_, String>(1)?, r.get::<_, String>(2)?, r.get::<_, i64>(5)?)))?;
    for row in rows {
        let (col, data_type, pk_index) = row?;
        if pk_index > 0 {
            pk.push((pk_index, col.clone()));
        }
        columns.push(Column::new(col, data_type));
    }
    pk.sort();
    let mut foreign_keys = Vec::new();
    let mut stmt = conn.prepare(&format!("PRAGMA foreign_key_list({q})"))?;
    let rows = stmt.query_map([], |r| {
        Ok((r.get::<_, String>(2)?, r.get::<_, String>(3)?, r.get::<_, Option<String>>(4)?))
    })?;
    for row in rows {
        let (ref_table, column, ref_column) = row?;
        foreign_keys.push(ForeignKey {
            column,
            ref_table,
            ref_column: ref_column.unwrap_or_default(),
            inferred: false,
        });
    }
    let row_count: i64 = conn.query_row(&format!("SELECT count(*) FROM {q}"), [], |r| r.get(0))?;
    for column in &mut columns {
        if has_text_affinity(&column.data_type) && row_count > 0 {
            column.sample_values = low_cardinality_values(conn, &q, &quote_ident(&column.name))?;
        }
    }
    if row_count > 0 {
        for column in columns.iter_mut().filter(|c| is_date_column(c)) {
            column.date_format = date_format(conn, &q, &quote_ident(&column.name))?;
        }
    }
    let last_change = if row_count > 0 { latest_date(conn, &q, &columns)? } else { None };
    let mut table = Table::new(name, columns);
    table.primary_key = pk.into_iter().map(|(_, c)| c).collect();
    table.foreign_keys = foreign_keys;
    table.row_count = Some(row_count as u64);
    table.last_change = last_change;
    Ok(table)
}

/// Whether SQLite gives a column of this declared type text affinity: the type names CHAR,
/// CLOB or TEXT (`VARCHAR(20)`, `NCHAR`, `CLOB` as much as `TEXT`), by SQLite's own rule.
fn has_text_affinity(data_type: &str) -> bool {
    let t = data_type.to_uppercase();
    !t.contains("INT") && (t.contains("CHAR") || t.contains("CLOB") || t.contains("TEXT"))
}

/// Whether a column holds dates or timestamps, judging by its type or name.
pub(super) fn is_date_column(column: &Column) -> bool {
    let t = column.data_type.to_uppercase();
    let n = column.name.to_lowercase();
    t.contains("DATE")
        || t.contains("TIME")
        || n.ends_with("_at")
        || n.ends_with("date")
        || n.ends_with("_day")
        || n == "day"
        || n.ends_with("_ts")
        || n.ends_with("_time")
        || n.ends_with("timestamp")
        || n == "year"
        || n.ends_with("_year")
}

/// The latest ISO date among the table's date columns (values that do not start with
/// `YYYY-MM-DD` are ignored; a date after today is not a sign of fresh data and is skipped).
fn latest_date(conn: &Connection, table: &str, columns: &[Column]) -> rusqlite::Result<Option<LastChange>> {
    let today = crate::calendar::today();
    let mut latest: Option<LastChange> = None;
    for column in columns.iter().filter(|c| is_date_column(c)) {
        let c = quote_ident(&column.name);
        let sql = format!(
            "SELECT max(substr({c}, 1, 10)) FROM {table} WHERE typeof({c}) = 'text' \
             AND {c} GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]*' AND substr({c}, 1, 10) <= ?1"
        );
        let value: Option<String> = conn.query_row(&sql, [&today], |r| r.get(0))?;
        if let Some(date) = value {
            if latest.as_ref().is_none_or(|l| date > l.date) {
                latest = Some(LastChange { date, column: column.name.clone() });
            }
        }
    }
    Ok(latest)
}

/// The layout of a date column's first value, when it is one of the ISO forms SQLite's date
/// functions read, a bare year, or Unix time (an integer count of seconds).
fn date_format(conn: &Connection, table: &str, column: &str) -> rusqlite::Result<Option<String>> {
    let sql = format!("SELECT {column} FROM {table} WHERE {column} IS NOT NULL LIMIT 1");
    let value: Option<rusqlite::types::Value> = conn.query_row(&sql, [], |r| r.get(0)).ok();
    let text = match value {
        Some(rusqlite::types::Value::Text(t)) => t,
        // 1973-03-03 to 2096-10-02 in seconds: a timestamp, not a year or an amount.
        Some(rusqlite::types::Value::Integer(i)) if (100_000_000..4_000_000_000).contains(&i) => {
            return Ok(Some(UNIX_SECONDS.to_string()));
        }
        Some(rusqlite::types::Value::Integer(i)) => i.to_string(),
        _ => return Ok(None),
    };
    Ok(classify_date(&text).map(str::to_string))
}

/// `YYYY-MM-DD`, `YYYY-MM-DD HH:MM:SS`, `YYYY-MM-DDTHH:MM:SS`, `YYYY-MM` or `YYYY` by shape.
pub(super) fn classify_date(value: &str) -> Option<&'static str> {
    let shape: String = value.chars().map(|c| if c.is_ascii_digit() { '9' } else { c }).collect();
    let fraction = shape.find('.').map(|i| &shape[..i]).unwrap_or(&shape);
    let zone = fraction.trim_end_matches('Z');
    match zone {
        "9999-99-99" => Some("YYYY-MM-DD"),
        "9999-99-99 99:99:99" => Some("YYYY-MM-DD HH:MM:SS"),
        "9999-99-99 99:99" => Some("YYYY-MM-DD HH:MM"),
        "9999-99-99T99:99:99" => Some("YYYY-MM-DDTHH:MM:SS"),
        "9999-99" => Some("YYYY-MM"),
        "9999" => Some(YEAR_NUMBER),
        _ => None,
    }
}

/// Up to 12 distinct values, when the column has no more than that (else none).
fn low_cardinality_values(conn: &Connection, table: &str, column: &str) -> rusqlite::Result<Vec<String>> {
    const MAX: usize = 12;
    let sql = format!(
        "SELECT DISTINCT {column} FROM (SELECT {column} FROM {table} LIMIT 20000) \
         WHERE {column} IS NOT NULL LIMIT {}",
        MAX + 1
    );
    let mut stmt = conn.prepare(&sql)?;
    let mut values: Vec<String> = stmt
        .query_map([], |r| r.get::<_, rusqlite::types::Value>(0))?
        .filter_map(|v| match v {
            Ok(rusqlite::types::Value::Text(s)) if s.len() <= 40 => Some(Ok(s)),
            Ok(_) => None,
            Err(e) => Some(Err(e)),
        })
        .collect::<rusqlite::Result<_>>()?;
    if values.len() > MAX {
        return Ok(Vec::new());
    }
    values.sort();
    Ok(values)
}
