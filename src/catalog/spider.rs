//! Spider data: the schemas (`tables.json` of the Spider text-to-SQL benchmark) as catalogs,
//! one per database — what the validator's Spider tests, the benchmark and the evaluation check
//! gold SQL against — and the `dev.json`-style questions.

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;

use super::{Catalog, CatalogError, Column, ForeignKey, Table};

/// One catalog per `db_id` of a `tables.json` file.
pub fn load_catalogs(tables_json: &Path) -> Result<HashMap<String, Catalog>, CatalogError> {
    let text = std::fs::read_to_string(tables_json)
        .map_err(|source| CatalogError::Io { path: tables_json.to_path_buf(), source })?;
    let format =
        |message: String| CatalogError::Invalid { path: tables_json.to_path_buf(), line: None, message };
    let databases: serde_json::Value = serde_json::from_str(&text).map_err(|e| format(e.to_string()))?;
    let databases =
        databases.as_array().ok_or_else(|| format("expected a JSON array of databases".into()))?;
    let mut catalogs = HashMap::new();
    for db in databases {
        let mut tables: Vec<Table> = db["table_names_original"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|n| n.as_str())
            .map(|name| Table::new(name, Vec::new()))
            .collect();
        let types = db["column_types"].as_array().cloned().unwrap_or_default();
        for (i, column) in db["column_names_original"].as_array().into_iter().flatten().enumerate() {
            let (Some(index), Some(name)) = (column[0].as_i64(), column[1].as_str()) else { continue };
            let Some(table) = usize::try_from(index).ok().and_then(|i| tables.get_mut(i)) else {
                continue;
            };
            let data_type = types.get(i).and_then(|t| t.as_str()).unwrap_or("text");
            table.columns.push(Column::new(name, data_type));
        }
        // Keys name columns by their index in column_names_original.
        let columns: Vec<(usize, String)> = db["column_names_original"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| {
                (
                    c[0].as_i64().and_then(|t| usize::try_from(t).ok()).unwrap_or(usize::MAX),
                    c[1].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect();
        let column =
            |index: &serde_json::Value| index.as_u64().and_then(|i| columns.get(i as usize)).cloned();
        for key in db["primary_keys"].as_array().into_iter().flatten() {
            // A composite key is a list of column indices.
            let parts = key.as_array().cloned().unwrap_or_else(|| vec![key.clone()]);
            for (table, name) in parts.iter().filter_map(column) {
                if let Some(table) = tables.get_mut(table) {
                    table.primary_key.push(name);
                }
            }
        }
        for pair in db["foreign_keys"].as_array().into_iter().flatten() {
            let (Some((from_table, from)), Some((to_table, to))) = (column(&pair[0]), column(&pair[1]))
            else {
                continue;
            };
            let Some(ref_table) = tables.get(to_table).map(|t| t.name.clone()) else { continue };
            if let Some(table) = tables.get_mut(from_table) {
                table.foreign_keys.push(ForeignKey {
                    column: from,
                    ref_table,
                    ref_column: to,
                    inferred: false,
                });
            }
        }
        let id = db["db_id"].as_str().unwrap_or_default().to_string();
        catalogs.insert(id, Catalog::from_tables(tables));
    }
    Ok(catalogs)
}

/// Creates an empty SQLite database with the tables, columns, keys and declared types of
/// `catalog` (Spider's train databases come as schemas only).
pub fn create_empty_database(catalog: &Catalog, path: &Path) -> Result<(), CatalogError> {
    let quote = |name: &str| format!("\"{}\"", name.replace('"', "\"\""));
    let mut ddl = String::new();
    // SQLite makes its own sqlite_* tables (sqlite_sequence) and refuses to create them.
    for table in catalog.tables().filter(|t| !t.name.to_lowercase().starts_with("sqlite_")) {
        let mut parts: Vec<String> =
            table.columns.iter().map(|c| format!("{} {}", quote(&c.name), c.data_type)).collect();
        if !table.primary_key.is_empty() {
            let key: Vec<String> = table.primary_key.iter().map(|c| quote(c)).collect();
            parts.push(format!("PRIMARY KEY ({})", key.join(", ")));
        }
        for fk in &table.foreign_keys {
            parts.push(format!(
                "FOREIGN KEY ({}) REFERENCES {} ({})",
                quote(&fk.column),
                quote(&fk.ref_table),
                quote(&fk.ref_column)
            ));
        }
        ddl.push_str(&format!("CREATE TABLE {} ({});\n", quote(&table.name), parts.join(", ")));
    }
    let err = |source| CatalogError::Warehouse { path: path.to_path_buf(), source };
    let connection = rusqlite::Connection::open(path).map_err(err)?;
    connection.execute_batch(&ddl).map_err(err)
}

/// One question of a `dev.json`-style file.
#[derive(Debug, Clone, Deserialize)]
pub struct SpiderQuestion {
    pub db_id: String,
    pub query: String,
    pub question: String,
    /// The gold SQL parsed the Spider way (what the official difficulty rules read); absent
    /// from files that do not carry it.
    #[serde(default)]
    pub sql: Option<serde_json::Value>,
    /// Every acceptable gold SQL (defog's `query_alternatives`; `query` among them): a
    /// prediction is right when its rows match any. Empty: `query` alone.
    #[serde(default)]
    pub query_alternatives: Vec<String>,
    /// The question's category, where the file has one (defog: `gen:date_functions`, …).
    #[serde(default)]
    pub category: Option<String>,
}

/// SQL with case and spacing folded and a trailing semicolon dropped (as `history::sql_key`).
fn folded(sql: &str) -> String {
    let words: Vec<String> = sql.split_whitespace().map(str::to_lowercase).collect();
    words.join(" ").trim_end_matches(';').trim_end().to_string()
}

impl SpiderQuestion {
    /// The acceptable gold queries: `query` first, then the other alternatives.
    pub fn golds(&self) -> Vec<&str> {
        let mut golds = vec![self.query.as_str()];
        for alternative in &self.query_alternatives {
            if !golds.iter().any(|g| folded(g) == folded(alternative)) {
                golds.push(alternative);
            }
        }
        golds
    }
}

/// Reads `dev.json`-style questions.
pub fn read_questions(path: &Path) -> Result<Vec<SpiderQuestion>, CatalogError> {
    let text = std::fs::read_to_string(path).map_err(|e| CatalogError::Invalid {
        path: path.to_path_buf(),
        line: None,
        message: format!(
            "cannot read the Spider questions ({e}); the folder needs dev.json, tables.json and database/"
        ),
    })?;
    serde_json::from_str(&text).map_err(|e| CatalogError::Invalid {
        path: path.to_path_buf(),
        line: Some(e.line()),
        message: format!("not Spider questions (db_id, query, question): {e}"),
    })
}
