//! The catalog: every table and column of the warehouse, as introspected from the source, with
//! the governance metadata stewards wrote for it in `schemas/` (descriptions, tier, owner,
//! tags, deprecation, glossary).
//!
//! It owns loading and merging those two sources and nothing else: it does not decide what a
//! principal may read (that is `policy`) or how tables rank (that is `retrieve`).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags};
use serde::{Deserialize, Serialize};

/// Governance tier of a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    /// Tier 1: certified, cross-team, the table to trust.
    Certified,
    /// Tier 2: owned by one team, maintained.
    Team,
    /// Tier 3: staging or legacy; use with care.
    Staging,
}

impl Tier {
    pub fn number(self) -> u8 {
        match self {
            Tier::Certified => 1,
            Tier::Team => 2,
            Tier::Staging => 3,
        }
    }

    pub fn from_number(n: i64) -> Option<Tier> {
        match n {
            1 => Some(Tier::Certified),
            2 => Some(Tier::Team),
            3 => Some(Tier::Staging),
            _ => None,
        }
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let label = match self {
            Tier::Certified => "tier 1 (certified)",
            Tier::Team => "tier 2 (team)",
            Tier::Staging => "tier 3 (staging/legacy)",
        };
        f.write_str(label)
    }
}

/// A deprecated table and what to use instead.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deprecation {
    pub replacement: String,
    #[serde(default)]
    pub note: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Column {
    pub name: String,
    pub data_type: String,
    pub description: String,
    pub tags: Vec<String>,
    /// Distinct values, when the column has only a few (useful in prompts).
    pub sample_values: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ForeignKey {
    pub column: String,
    pub ref_table: String,
    pub ref_column: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Table {
    pub name: String,
    pub description: String,
    pub tier: Option<Tier>,
    pub owner: Option<String>,
    pub domain: Option<String>,
    pub freshness: Option<String>,
    pub deprecated: Option<Deprecation>,
    pub columns: Vec<Column>,
    pub primary_key: Vec<String>,
    pub foreign_keys: Vec<ForeignKey>,
    pub row_count: u64,
}

impl Table {
    /// The column of that name, compared case-insensitively as SQL does.
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name.eq_ignore_ascii_case(name))
    }
}

/// A business term and where it lives in the warehouse.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GlossaryTerm {
    pub term: String,
    pub definition: String,
    #[serde(default)]
    pub tables: Vec<String>,
}

/// All tables of a warehouse with their governance metadata.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Catalog {
    tables: BTreeMap<String, Table>,
    glossary: Vec<GlossaryTerm>,
}

/// Errors while building the catalog.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// The warehouse could not be opened or introspected.
    #[error("cannot read the warehouse {path}: {source}")]
    Warehouse { path: PathBuf, source: rusqlite::Error },
    /// A governance file could not be read.
    #[error("cannot read governance file {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    /// A governance file is not valid TOML or does not follow the format.
    #[error("{path}: {message}")]
    Format { path: PathBuf, message: String },
    /// A governance file names a table or column the warehouse does not have.
    #[error("{path}: {message}")]
    Unknown { path: PathBuf, message: String },
}

impl Catalog {
    /// Introspects `warehouse` and merges the governance files of `governance_dir`
    /// (every `*.toml` in it, in name order).
    pub fn load(warehouse: &Path, governance_dir: &Path) -> Result<Catalog, CatalogError> {
        let mut catalog = Catalog::introspect(warehouse)?;
        let files = governance_files(governance_dir)?;
        for path in files {
            let text = std::fs::read_to_string(&path)
                .map_err(|source| CatalogError::Io { path: path.clone(), source })?;
            catalog.apply_governance(&path, &text)?;
        }
        Ok(catalog)
    }

    /// Tables, columns, types, keys, row counts and low-cardinality samples of a SQLite file.
    pub fn introspect(warehouse: &Path) -> Result<Catalog, CatalogError> {
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
        Ok(Catalog { tables, glossary: Vec::new() })
    }

    /// Builds a catalog from tables already in memory (used for Spider schemas and tests).
    pub fn from_tables(tables: Vec<Table>) -> Catalog {
        Catalog {
            tables: tables.into_iter().map(|t| (t.name.to_lowercase(), t)).collect(),
            glossary: Vec::new(),
        }
    }

    /// The table of that name, compared case-insensitively.
    pub fn table(&self, name: &str) -> Option<&Table> {
        self.tables.get(&name.to_lowercase())
    }

    pub fn tables(&self) -> impl Iterator<Item = &Table> {
        self.tables.values()
    }

    pub fn glossary(&self) -> &[GlossaryTerm] {
        &self.glossary
    }

    /// The catalog with each table replaced by what `keep` returns for it (dropped on `None`);
    /// glossary terms keep only the tables still there.
    pub fn restricted(&self, keep: impl Fn(&Table) -> Option<Table>) -> Catalog {
        let tables: BTreeMap<String, Table> =
            self.tables.iter().filter_map(|(key, table)| keep(table).map(|t| (key.clone(), t))).collect();
        let glossary = self
            .glossary
            .iter()
            .map(|term| GlossaryTerm {
                tables: term
                    .tables
                    .iter()
                    .filter(|t| tables.contains_key(&t.to_lowercase()))
                    .cloned()
                    .collect(),
                ..term.clone()
            })
            .collect();
        Catalog { tables, glossary }
    }

    /// Merges one governance file (TOML, format in `schemas/README.md`).
    pub fn apply_governance(&mut self, path: &Path, text: &str) -> Result<(), CatalogError> {
        let file: GovernanceFile = toml::from_str(text).map_err(|e| CatalogError::Format {
            path: path.to_path_buf(),
            message: e.to_string().trim_end().to_string(),
        })?;
        let unknown = |message: String| CatalogError::Unknown { path: path.to_path_buf(), message };
        for (name, gov) in file.tables {
            let known: Vec<String> = self.tables.values().map(|t| t.name.clone()).collect();
            let table = self.tables.get_mut(&name.to_lowercase()).ok_or_else(|| {
                unknown(format!(
                    "table '{name}' is not in the warehouse{}",
                    suggestion(&name, known.iter().map(String::as_str))
                ))
            })?;
            let tier = match gov.tier {
                None => None,
                Some(n) => Some(Tier::from_number(n).ok_or_else(|| CatalogError::Format {
                    path: path.to_path_buf(),
                    message: format!("table '{name}': tier must be 1, 2 or 3, not {n}"),
                })?),
            };
            table.description = gov.description;
            table.tier = tier;
            table.owner = gov.owner.or_else(|| file.owner.clone());
            table.domain = gov.domain.or_else(|| file.domain.clone());
            table.freshness = gov.freshness;
            table.deprecated = gov.deprecated;
            for (col_name, col_gov) in gov.columns {
                let names: Vec<String> = table.columns.iter().map(|c| c.name.clone()).collect();
                let table_name = table.name.clone();
                let column =
                    table.columns.iter_mut().find(|c| c.name.eq_ignore_ascii_case(&col_name)).ok_or_else(
                        || {
                            unknown(format!(
                                "column '{col_name}' is not in table '{table_name}'{}",
                                suggestion(&col_name, names.iter().map(String::as_str))
                            ))
                        },
                    )?;
                column.description = col_gov.description;
                column.tags = col_gov.tags;
            }
        }
        for (term, gov) in file.glossary {
            for t in &gov.tables {
                if self.table(t).is_none() {
                    return Err(unknown(format!("glossary term '{term}' names unknown table '{t}'")));
                }
            }
            self.glossary.retain(|g| g.term != term);
            self.glossary.push(GlossaryTerm { term, definition: gov.definition, tables: gov.tables });
        }
        for table in self.tables.values() {
            if let Some(dep) = &table.deprecated {
                if self.table(&dep.replacement).is_none() {
                    return Err(unknown(format!(
                        "table '{}' is deprecated in favour of '{}', which is not in the warehouse",
                        table.name, dep.replacement
                    )));
                }
            }
        }
        Ok(())
    }
}

/// `*.toml` files of a directory in name order; a clear error when it does not exist.
fn governance_files(dir: &Path) -> Result<Vec<PathBuf>, CatalogError> {
    let entries =
        std::fs::read_dir(dir).map_err(|source| CatalogError::Io { path: dir.to_path_buf(), source })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    Ok(files)
}

/// ", did you mean 'x'?" for the closest candidate, or "" when none is close.
pub fn suggestion<'a>(name: &str, candidates: impl Iterator<Item = &'a str>) -> String {
    closest(name, candidates).map(|c| format!(" (did you mean '{c}'?)")).unwrap_or_default()
}

/// The candidate with the smallest edit distance to `name`, if it is reasonably close.
pub fn closest<'a>(name: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let name = name.to_lowercase();
    candidates
        .map(|c| (edit_distance(&name, &c.to_lowercase()), c))
        .filter(|(d, c)| *d <= (c.len().max(name.len()) / 2).max(2))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

fn table_names(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare(
        "SELECT name FROM sqlite_master WHERE type IN ('table', 'view') \
         AND name NOT LIKE 'sqlite_%' ORDER BY name",
    )?;
    let names = stmt.query_map([], |r| r.get(0))?.collect();
    names
}

fn quote_ident(name: &str) -> String {
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
        columns.push(Column {
            name: col,
            data_type,
            description: String::new(),
            tags: Vec::new(),
            sample_values: Vec::new(),
        });
    }
    pk.sort();
    let mut foreign_keys = Vec::new();
    let mut stmt = conn.prepare(&format!("PRAGMA foreign_key_list({q})"))?;
    let rows = stmt.query_map([], |r| {
        Ok((r.get::<_, String>(2)?, r.get::<_, String>(3)?, r.get::<_, Option<String>>(4)?))
    })?;
    for row in rows {
        let (ref_table, column, ref_column) = row?;
        foreign_keys.push(ForeignKey { column, ref_table, ref_column: ref_column.unwrap_or_default() });
    }
    let row_count: i64 = conn.query_row(&format!("SELECT count(*) FROM {q}"), [], |r| r.get(0))?;
    for column in &mut columns {
        if column.data_type.to_uppercase().contains("TEXT") && row_count > 0 {
            column.sample_values = low_cardinality_values(conn, &q, &quote_ident(&column.name))?;
        }
    }
    Ok(Table {
        name: name.to_string(),
        description: String::new(),
        tier: None,
        owner: None,
        domain: None,
        freshness: None,
        deprecated: None,
        columns,
        primary_key: pk.into_iter().map(|(_, c)| c).collect(),
        foreign_keys,
        row_count: row_count as u64,
    })
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

// --- governance file format --------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GovernanceFile {
    /// Default domain for the tables of this file.
    domain: Option<String>,
    /// Default owner for the tables of this file.
    owner: Option<String>,
    #[serde(default)]
    tables: BTreeMap<String, TableGovernance>,
    #[serde(default)]
    glossary: BTreeMap<String, TermGovernance>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TableGovernance {
    description: String,
    tier: Option<i64>,
    owner: Option<String>,
    domain: Option<String>,
    freshness: Option<String>,
    deprecated: Option<Deprecation>,
    #[serde(default)]
    columns: BTreeMap<String, ColumnGovernance>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ColumnGovernance {
    #[serde(default)]
    description: String,
    #[serde(default)]
    tags: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TermGovernance {
    definition: String,
    #[serde(default)]
    tables: Vec<String>,
}

/// Spider schemas (`tables.json` of the Spider text-to-SQL benchmark) as catalogs, one per
/// database: what the validator's Spider tests and benchmark check gold SQL against.
pub mod spider {
    use std::collections::HashMap;
    use std::path::Path;

    use super::{Catalog, CatalogError, Column, Table};

    /// One catalog per `db_id` of a `tables.json` file.
    pub fn load_catalogs(tables_json: &Path) -> Result<HashMap<String, Catalog>, CatalogError> {
        let text = std::fs::read_to_string(tables_json)
            .map_err(|source| CatalogError::Io { path: tables_json.to_path_buf(), source })?;
        let format = |message: String| CatalogError::Format { path: tables_json.to_path_buf(), message };
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
                .map(empty_table)
                .collect();
            let types = db["column_types"].as_array().cloned().unwrap_or_default();
            for (i, column) in db["column_names_original"].as_array().into_iter().flatten().enumerate() {
                let (Some(index), Some(name)) = (column[0].as_i64(), column[1].as_str()) else { continue };
                let Some(table) = usize::try_from(index).ok().and_then(|i| tables.get_mut(i)) else {
                    continue;
                };
                table.columns.push(Column {
                    name: name.to_string(),
                    data_type: types.get(i).and_then(|t| t.as_str()).unwrap_or("text").to_string(),
                    description: String::new(),
                    tags: Vec::new(),
                    sample_values: Vec::new(),
                });
            }
            let id = db["db_id"].as_str().unwrap_or_default().to_string();
            catalogs.insert(id, Catalog::from_tables(tables));
        }
        Ok(catalogs)
    }

    fn empty_table(name: &str) -> Table {
        Table {
            name: name.to_string(),
            description: String::new(),
            tier: None,
            owner: None,
            domain: None,
            freshness: None,
            deprecated: None,
            columns: Vec::new(),
            primary_key: Vec::new(),
            foreign_keys: Vec::new(),
            row_count: 0,
        }
    }
}
