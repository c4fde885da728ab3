//! The catalog: every table and column of the warehouse, as introspected from the source, with
//! the governance metadata stewards wrote for it in `schemas/` (descriptions, tier, owner,
//! tags, deprecation, glossary).
//!
//! It owns loading and merging those two sources and nothing else: it does not decide what a
//! principal may read (that is `policy`), how tables rank (that is `retrieve`) or how steward
//! edits are recorded (that is `stewardship`). The governance file format is in `governance`.

pub mod governance;
pub mod spider;

pub use governance::{ColumnGovernance, TableGovernance};

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Governance tier of a table; written as its number (1, 2, 3) in files, JSON and the API.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(into = "u8", try_from = "i64")]
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

impl From<Tier> for u8 {
    fn from(tier: Tier) -> u8 {
        tier.number()
    }
}

impl TryFrom<i64> for Tier {
    type Error = String;

    fn try_from(n: i64) -> Result<Tier, String> {
        Tier::from_number(n).ok_or_else(|| format!("tier must be 1, 2 or 3, not {n}"))
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Deprecation {
    pub replacement: String,
    #[serde(default)]
    pub note: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Column {
    pub name: String,
    pub data_type: String,
    pub description: String,
    pub tags: Vec<String>,
    /// The values a steward says the column may hold (empty: not stated).
    pub allowed_values: Vec<String>,
    /// Distinct values, when the column has only a few (useful in prompts).
    pub sample_values: Vec<String>,
    /// How a date column writes its dates, e.g. `YYYY-MM-DD HH:MM:SS` (read from its data).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub date_format: Option<String>,
}

impl Column {
    /// An undocumented column.
    pub fn new(name: impl Into<String>, data_type: impl Into<String>) -> Column {
        Column {
            name: name.into(),
            data_type: data_type.into(),
            description: String::new(),
            tags: Vec::new(),
            allowed_values: Vec::new(),
            sample_values: Vec::new(),
            date_format: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ForeignKey {
    pub column: String,
    pub ref_table: String,
    pub ref_column: String,
    /// Not declared by the warehouse but inferred from the column's name and its values
    /// (`keys::infer`): every value found in the referenced key.
    pub inferred: bool,
}

/// A warehouse the catalog reads tables from, beside the main one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Source {
    /// How SQL may prefix its tables (`<name>.<table>`); never `main` or `temp`.
    pub name: String,
    pub path: PathBuf,
}

/// The name of the primary warehouse's source.
pub const MAIN_SOURCE: &str = "main";

impl Source {
    /// Letters, digits and '_', starting with a letter.
    pub fn is_name(name: &str) -> bool {
        name.starts_with(|c: char| c.is_ascii_alphabetic())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Table {
    pub name: String,
    /// The warehouse it lives in: `main`, or the name of a `[[workspace.sources]]` entry.
    pub source: String,
    pub description: String,
    pub tier: Option<Tier>,
    pub owner: Option<String>,
    pub domain: Option<String>,
    pub freshness: Option<String>,
    pub deprecated: Option<Deprecation>,
    pub columns: Vec<Column>,
    pub primary_key: Vec<String>,
    pub foreign_keys: Vec<ForeignKey>,
    /// Rows in the table; None where it is not shown (a role whose reads are row-filtered).
    pub row_count: Option<u64>,
    /// The latest date in the table (`YYYY-MM-DD`) and the column it was read from, when a
    /// date column can tell: the warehouse's own record of when data last arrived.
    pub last_change: Option<LastChange>,
}

/// The latest date found in a table's date column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct LastChange {
    pub date: String,
    pub column: String,
}

impl Table {
    /// An undocumented, empty table with the given columns.
    pub fn new(name: impl Into<String>, columns: Vec<Column>) -> Table {
        Table {
            name: name.into(),
            source: MAIN_SOURCE.to_string(),
            description: String::new(),
            tier: None,
            owner: None,
            domain: None,
            freshness: None,
            deprecated: None,
            columns,
            primary_key: Vec::new(),
            foreign_keys: Vec::new(),
            row_count: Some(0),
            last_change: None,
        }
    }

    /// What stewards say about this table (columns without any documentation left out).
    pub fn governance(&self) -> TableGovernance {
        TableGovernance {
            description: self.description.clone(),
            tier: self.tier,
            owner: self.owner.clone(),
            domain: self.domain.clone(),
            freshness: self.freshness.clone(),
            deprecated: self.deprecated.clone(),
            columns: self
                .columns
                .iter()
                .filter(|c| !c.description.is_empty() || !c.tags.is_empty() || !c.allowed_values.is_empty())
                .map(|c| {
                    let gov = ColumnGovernance {
                        description: c.description.clone(),
                        tags: c.tags.clone(),
                        allowed_values: c.allowed_values.clone(),
                    };
                    (c.name.clone(), gov)
                })
                .collect(),
        }
    }

    /// Replaces the governance of this table; columns the governance does not name are left
    /// undocumented. Column names are matched case-insensitively; unknown ones are ignored
    /// (callers check them first, see `Catalog::set_table_governance`).
    fn set_governance(&mut self, governance: &TableGovernance) {
        self.description = governance.description.clone();
        self.tier = governance.tier;
        self.owner = governance.owner.clone();
        self.domain = governance.domain.clone();
        self.freshness = governance.freshness.clone();
        self.deprecated = governance.deprecated.clone();
        for column in &mut self.columns {
            let gov = governance
                .columns
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case(&column.name))
                .map(|(_, gov)| gov.clone())
                .unwrap_or_default();
            column.description = gov.description;
            column.tags = gov.tags;
            column.allowed_values = gov.allowed_values;
        }
    }

    /// Share of columns with a description, 0.0 to 1.0.
    pub fn documentation(&self) -> f32 {
        if self.columns.is_empty() {
            return 0.0;
        }
        let described = self.columns.iter().filter(|c| !c.description.is_empty()).count();
        described as f32 / self.columns.len() as f32
    }

    /// The column of that name, compared case-insensitively as SQL does.
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name.eq_ignore_ascii_case(name))
    }
}

/// A business term and where it lives in the warehouse.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct GlossaryTerm {
    pub term: String,
    pub definition: String,
    #[serde(default)]
    pub tables: Vec<String>,
}

impl GlossaryTerm {
    /// The names a question may call the term by: the term itself, and the name its definition
    /// opens with, before a colon ("Average order value: AVG(…)" for AOV), when that is a
    /// short phrase of words rather than SQL.
    pub fn names(&self) -> Vec<&str> {
        let mut names = vec![self.term.as_str()];
        if let Some((opening, _)) = self.definition.split_once(':') {
            let opening = opening.trim();
            let words = opening.split_whitespace().count();
            let plain = opening.chars().all(|c| c.is_alphanumeric() || c == ' ' || c == '-' || c == '\'');
            if (1..=5).contains(&words) && plain && !opening.eq_ignore_ascii_case(&self.term) {
                names.push(opening);
            }
        }
        names
    }
}

/// The database engine a warehouse runs on. It decides the SQL dialect the validator parses
/// and prints, the functions it allows, the idioms the prompt teaches, and which executor may
/// run a query validated for it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    #[default]
    Sqlite,
    Postgres,
}

impl Engine {
    /// The engine's name as people write it.
    pub fn name(self) -> &'static str {
        match self {
            Engine::Sqlite => "SQLite",
            Engine::Postgres => "PostgreSQL",
        }
    }
}

/// All tables of a warehouse with their governance metadata.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Catalog {
    engine: Engine,
    /// How SQL names the main source's tables when it qualifies them: `main` in SQLite, the
    /// schema on PostgreSQL.
    main_schema: Option<String>,
    tables: BTreeMap<String, Table>,
    glossary: Vec<GlossaryTerm>,
    /// Tag -> meaning: the tags columns may carry.
    tags: BTreeMap<String, String>,
}

/// Errors while building the catalog. Messages start with the file and, where known, the line.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// The warehouse could not be opened or introspected.
    #[error("cannot read the warehouse {path}: {source}")]
    Warehouse { path: PathBuf, source: rusqlite::Error },
    /// A warehouse server could not be reached or read (the message names the fix).
    #[error("{message}")]
    Server { message: String },
    /// A governance file could not be read.
    #[error("cannot read governance file {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    /// A governance file is not valid TOML, does not follow the format, or names a table,
    /// column, tag or term the catalog does not have.
    #[error("{}: {message}", location(path, *line))]
    Invalid { path: PathBuf, line: Option<usize>, message: String },
}

fn location(path: &Path, line: Option<usize>) -> String {
    match line {
        Some(line) => format!("{}:{line}", path.display()),
        None => path.display().to_string(),
    }
}

impl Catalog {
    /// The sources tables come from: `main` first, then the others by name.
    pub fn sources(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.tables.values().map(|t| t.source.as_str()).collect();
        names.push(MAIN_SOURCE);
        names.sort_by_key(|n| (*n != MAIN_SOURCE, *n));
        names.dedup();
        names
    }

    /// Builds a catalog from tables already in memory (used for Spider schemas and tests).
    pub fn from_tables(tables: Vec<Table>) -> Catalog {
        Catalog {
            engine: Engine::Sqlite,
            main_schema: None,
            tables: tables.into_iter().map(|t| (t.name.to_lowercase(), t)).collect(),
            glossary: Vec::new(),
            tags: governance::builtin_tags(),
        }
    }

    /// The same catalog, describing a warehouse on `engine`.
    pub fn on_engine(mut self, engine: Engine) -> Catalog {
        self.engine = engine;
        self
    }

    /// The engine of the warehouse the catalog describes.
    pub fn engine(&self) -> Engine {
        self.engine
    }

    /// The same catalog, whose main source is the PostgreSQL schema `schema`.
    pub fn in_schema(mut self, schema: &str) -> Catalog {
        self.main_schema = Some(schema.to_string());
        self
    }

    /// The qualifier of the main source's tables in SQL: `main`, or the PostgreSQL schema.
    pub fn main_qualifier(&self) -> &str {
        self.main_schema.as_deref().unwrap_or(MAIN_SOURCE)
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

    /// The glossary term of that name, compared case-insensitively.
    pub fn term(&self, term: &str) -> Option<&GlossaryTerm> {
        self.glossary.iter().find(|g| g.term.eq_ignore_ascii_case(term))
    }

    /// The column tags stewards may use, with their meaning: the built-in ones and those
    /// declared in `[tags]` of a governance file.
    pub fn tag_vocabulary(&self) -> &BTreeMap<String, String> {
        &self.tags
    }

    /// Names of all tables, for did-you-mean suggestions.
    pub fn table_names(&self) -> impl Iterator<Item = &str> {
        self.tables.values().map(|t| t.name.as_str())
    }

    /// Replaces what stewards say about one table. Fails, naming the problem, when the
    /// governance names a column the table does not have, a tag outside the vocabulary, or a
    /// replacement table that does not exist.
    pub fn set_table_governance(&mut self, name: &str, governance: &TableGovernance) -> Result<(), String> {
        self.check_table_governance(name, governance)?;
        let table = self.tables.get_mut(&name.to_lowercase()).ok_or_else(|| format!("no table '{name}'"))?;
        table.set_governance(governance);
        Ok(())
    }

    fn check_table_governance(&self, name: &str, governance: &TableGovernance) -> Result<(), String> {
        let table = self.table(name).ok_or_else(|| {
            format!("table '{name}' is not in the warehouse{}", suggestion(name, self.table_names()))
        })?;
        for (column, gov) in &governance.columns {
            if table.column(column).is_none() {
                return Err(format!(
                    "column '{column}' is not in table '{}'{}",
                    table.name,
                    suggestion(column, table.columns.iter().map(|c| c.name.as_str()))
                ));
            }
            if let Some(tag) = gov.tags.iter().find(|t| !self.tags.contains_key(*t)) {
                return Err(format!(
                    "tag '{tag}' on column '{column}' is not in the tag vocabulary{}; known tags: {}",
                    suggestion(tag, self.tags.keys().map(String::as_str)),
                    self.tags.keys().cloned().collect::<Vec<_>>().join(", ")
                ));
            }
        }
        if let Some(dep) = &governance.deprecated {
            if self.table(&dep.replacement).is_none() {
                return Err(format!(
                    "table '{}' is deprecated in favour of '{}', which is not in the warehouse{}",
                    table.name,
                    dep.replacement,
                    suggestion(&dep.replacement, self.table_names())
                ));
            }
            if dep.replacement.eq_ignore_ascii_case(&table.name) {
                return Err(format!("table '{}' cannot be its own replacement", table.name));
            }
        }
        Ok(())
    }

    /// Adds or replaces a glossary term; every table it names must exist.
    pub fn set_term(&mut self, term: GlossaryTerm) -> Result<(), String> {
        if let Some(unknown) = term.tables.iter().find(|t| self.table(t).is_none()) {
            return Err(format!(
                "glossary term '{}' names unknown table '{unknown}'{}",
                term.term,
                suggestion(unknown, self.table_names())
            ));
        }
        self.glossary.retain(|g| !g.term.eq_ignore_ascii_case(&term.term));
        self.glossary.push(term);
        self.glossary.sort_by_key(|g| g.term.to_lowercase());
        Ok(())
    }

    /// The catalog with each table replaced by what `keep` returns for it (dropped on `None`);
    /// glossary terms keep only the tables still there, keys only the tables and columns still there.
    pub fn restricted(&self, keep: impl Fn(&Table) -> Option<Table>) -> Catalog {
        let tables: BTreeMap<String, Table> =
            self.tables.iter().filter_map(|(key, table)| keep(table).map(|t| (key.clone(), t))).collect();
        // A term about tables none of which is kept goes too: its definition names what is hidden.
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
            .zip(&self.glossary)
            .filter(|(kept, term)| term.tables.is_empty() || !kept.tables.is_empty())
            .map(|(kept, _)| kept)
            .collect();
        let mut catalog = Catalog {
            engine: self.engine,
            main_schema: self.main_schema.clone(),
            tables,
            glossary,
            tags: self.tags.clone(),
        };
        // A key to a table or column left out would name it: keys lead only within.
        let kept: Vec<Vec<bool>> = catalog
            .tables
            .values()
            .map(|t| t.foreign_keys.iter().map(|k| catalog.leads_to(k)).collect())
            .collect();
        for (table, kept) in catalog.tables.values_mut().zip(kept) {
            let mut kept = kept.into_iter();
            table.foreign_keys.retain(|_| kept.next().unwrap_or(false));
        }
        catalog
    }

    /// Whether a key leads to a table (and column, when it names one) of this catalog.
    pub fn leads_to(&self, key: &ForeignKey) -> bool {
        self.table(&key.ref_table)
            .is_some_and(|t| key.ref_column.is_empty() || t.column(&key.ref_column).is_some())
    }
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

/// The date format of a column holding Unix time in seconds.
pub const UNIX_SECONDS: &str = "unix seconds";

/// The date format of a column holding year numbers (2021): no date at all to SQLite's date
/// functions.
pub const YEAR_NUMBER: &str = "YYYY";
