//! Governance files: the TOML format stewards write in `schemas/` (documented in
//! `schemas/README.md`), read into the catalog with errors that name the file and line, and
//! written back out when a steward exports the catalog.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use toml::Spanned;

use super::{suggestion, Catalog, CatalogError, Deprecation, GlossaryTerm, Tier};

/// What stewards say about one table: everything the warehouse cannot tell about itself.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableGovernance {
    pub description: String,
    pub tier: Option<Tier>,
    pub owner: Option<String>,
    pub domain: Option<String>,
    pub freshness: Option<String>,
    pub deprecated: Option<Deprecation>,
    /// Documented columns by name (columns not named are undocumented).
    #[serde(default)]
    pub columns: BTreeMap<String, ColumnGovernance>,
}

/// What stewards say about one column.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnGovernance {
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub allowed_values: Vec<String>,
}

/// The tags every catalog knows, with their meaning. Files may declare more under `[tags]`.
pub fn builtin_tags() -> BTreeMap<String, String> {
    [
        ("pii", "Personal data of any kind."),
        ("pii:email", "An e-mail address."),
        ("pii:name", "A person's name."),
        ("pii:ip", "An IP address."),
        ("pii:phone", "A phone number."),
        ("pii:address", "A postal address."),
        ("pii:birthdate", "A date of birth."),
        ("sensitive", "Confidential beyond ordinary personal data."),
        ("financial", "Money amounts or account data under financial controls."),
    ]
    .into_iter()
    .map(|(tag, meaning)| (tag.to_string(), meaning.to_string()))
    .collect()
}

/// Whether `text` can be a tag: letters, digits and `_ - : .`.
pub fn is_tag(text: &str) -> bool {
    !text.is_empty() && text.chars().all(|c| c.is_ascii_alphanumeric() || "_-:.".contains(c))
}

/// Applies every `*.toml` file of `dir`, in name order. Tags declared in any file may be used
/// in every file.
pub fn apply_dir(catalog: &mut Catalog, dir: &Path) -> Result<(), CatalogError> {
    let mut files = Vec::new();
    for path in governance_files(dir)? {
        let text = std::fs::read_to_string(&path)
            .map_err(|source| CatalogError::Io { path: path.clone(), source })?;
        let file = parse(&path, &text)?;
        files.push((path, text, file));
    }
    for (path, text, file) in &files {
        declare_tags(catalog, path, text, file)?;
    }
    for (path, text, file) in files {
        apply(catalog, &path, &text, file)?;
    }
    Ok(())
}

/// Applies one governance file (its own `[tags]` declared first).
pub fn apply_text(catalog: &mut Catalog, path: &Path, text: &str) -> Result<(), CatalogError> {
    let file = parse(path, text)?;
    declare_tags(catalog, path, text, &file)?;
    apply(catalog, path, text, file)
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

/// The 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset).unwrap_or(text).matches('\n').count() + 1
}

fn parse(path: &Path, text: &str) -> Result<GovernanceFile, CatalogError> {
    toml::from_str(text).map_err(|e| CatalogError::Invalid {
        path: path.to_path_buf(),
        line: e.span().map(|span| line_of(text, span.start)),
        message: e.message().trim_end().to_string(),
    })
}

fn declare_tags(
    catalog: &mut Catalog,
    path: &Path,
    text: &str,
    file: &GovernanceFile,
) -> Result<(), CatalogError> {
    for (tag, meaning) in &file.tags {
        if !is_tag(tag) {
            return Err(CatalogError::Invalid {
                path: path.to_path_buf(),
                line: Some(line_of(text, meaning.span().start)),
                message: format!(
                    "'{tag}' is not a tag: use letters, digits and '_', '-', ':', '.', e.g. \"pii:phone\""
                ),
            });
        }
        catalog.tags.insert(tag.clone(), meaning.get_ref().clone());
    }
    Ok(())
}

fn apply(catalog: &mut Catalog, path: &Path, text: &str, file: GovernanceFile) -> Result<(), CatalogError> {
    let error = |offset: usize, message: String| CatalogError::Invalid {
        path: path.to_path_buf(),
        line: Some(line_of(text, offset)),
        message,
    };
    for (name, section) in file.tables {
        let at = section.span().start;
        let section = section.into_inner();
        let known: Vec<String> = catalog.table_names().map(String::from).collect();
        let Some(table) = catalog.table(&name).cloned() else {
            return Err(error(
                at,
                format!(
                    "table '{name}' is not in the warehouse{}",
                    suggestion(&name, known.iter().map(String::as_str))
                ),
            ));
        };
        // What the warehouse says (PostgreSQL's comments) stays where the file says nothing.
        let mut governance = table.governance();
        if !section.description.is_empty() {
            governance.description = section.description;
        }
        governance.tier = match section.tier {
            None => None,
            Some(n) => Some(Tier::from_number(*n.get_ref()).ok_or_else(|| {
                error(n.span().start, format!("table '{name}': tier must be 1, 2 or 3, not {}", n.get_ref()))
            })?),
        };
        governance.owner = section.owner.or_else(|| file.owner.clone());
        governance.domain = section.domain.or_else(|| file.domain.clone());
        governance.freshness = section.freshness;
        governance.deprecated = section.deprecated;
        for (column, col) in section.columns {
            let at = col.span().start;
            let col = col.into_inner();
            if table.column(&column).is_none() {
                return Err(error(
                    at,
                    format!(
                        "column '{column}' is not in table '{}'{}",
                        table.name,
                        suggestion(&column, table.columns.iter().map(|c| c.name.as_str()))
                    ),
                ));
            }
            if let Some(tag) = col.tags.iter().find(|t| !catalog.tags.contains_key(*t)) {
                return Err(error(
                    at,
                    format!(
                        "tag '{tag}' on column '{}.{column}' is not a known tag{}; declare it under [tags] or use one of: {}",
                        table.name,
                        suggestion(tag, catalog.tags.keys().map(String::as_str)),
                        catalog.tags.keys().cloned().collect::<Vec<_>>().join(", ")
                    ),
                ));
            }
            let comment = table.column(&column).map(|c| c.description.clone()).unwrap_or_default();
            governance.columns.retain(|c, _| !c.eq_ignore_ascii_case(&column));
            governance.columns.insert(
                column,
                super::ColumnGovernance {
                    description: if col.description.is_empty() { comment } else { col.description },
                    tags: col.tags,
                    allowed_values: col.allowed_values,
                },
            );
        }
        catalog.set_table_governance(&name, &governance).map_err(|message| error(at, message))?;
    }
    for (term, section) in file.glossary {
        let at = section.span().start;
        let section = section.into_inner();
        catalog
            .set_term(GlossaryTerm { term, definition: section.definition, tables: section.tables })
            .map_err(|message| error(at, message))?;
    }
    Ok(())
}

/// The catalog's governance as files: one per domain (`<domain>.toml`, `other.toml` for
/// tables without one) and `glossary.toml` with the glossary and declared tags. Each table's
/// owner and domain are written on the table, so the files do not depend on file defaults.
pub fn export(catalog: &Catalog) -> Vec<(String, String)> {
    let mut files: BTreeMap<String, ExportFile> = BTreeMap::new();
    for table in catalog.tables() {
        let gov = table.governance();
        if gov == super::Table::new(table.name.clone(), Vec::new()).governance() {
            continue;
        }
        let file = gov.domain.clone().unwrap_or_else(|| "other".to_string());
        let section = ExportTable {
            description: gov.description,
            tier: gov.tier.map(Tier::number),
            owner: gov.owner,
            domain: gov.domain,
            freshness: gov.freshness,
            deprecated: gov.deprecated,
            columns: gov
                .columns
                .into_iter()
                .map(|(name, c)| {
                    (
                        name,
                        ExportColumn {
                            description: c.description,
                            tags: c.tags,
                            allowed_values: c.allowed_values,
                        },
                    )
                })
                .collect(),
        };
        files
            .entry(format!("{}.toml", file_stem(&file)))
            .or_default()
            .tables
            .insert(table.name.clone(), section);
    }
    let builtin = builtin_tags();
    let declared: BTreeMap<String, String> = catalog
        .tags
        .iter()
        .filter(|(tag, _)| !builtin.contains_key(*tag))
        .map(|(t, m)| (t.clone(), m.clone()))
        .collect();
    if !catalog.glossary().is_empty() || !declared.is_empty() {
        let file = files.entry("glossary.toml".to_string()).or_default();
        file.tags = declared;
        for term in catalog.glossary() {
            file.glossary.insert(
                term.term.clone(),
                ExportTerm { definition: term.definition.clone(), tables: term.tables.clone() },
            );
        }
    }
    files
        .into_iter()
        .map(|(name, file)| {
            let body = toml::to_string_pretty(&file).unwrap_or_default();
            (name, format!("# Exported by `quarry catalog export`. Format: schemas/README.md.\n\n{body}"))
        })
        .collect()
}

/// A file name from a domain: letters, digits, '-' and '_' kept, anything else as '_'.
fn file_stem(domain: &str) -> String {
    domain.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect()
}

// --- the file format, as written -----------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GovernanceFile {
    /// Default domain for the tables of this file.
    domain: Option<String>,
    /// Default owner for the tables of this file.
    owner: Option<String>,
    /// Tags this file declares, with their meaning.
    #[serde(default)]
    tags: BTreeMap<String, Spanned<String>>,
    #[serde(default)]
    tables: BTreeMap<String, Spanned<TableSection>>,
    #[serde(default)]
    glossary: BTreeMap<String, Spanned<TermSection>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TableSection {
    description: String,
    tier: Option<Spanned<i64>>,
    owner: Option<String>,
    domain: Option<String>,
    freshness: Option<String>,
    deprecated: Option<Deprecation>,
    #[serde(default)]
    columns: BTreeMap<String, Spanned<ColumnSection>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ColumnSection {
    #[serde(default)]
    description: String,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    allowed_values: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TermSection {
    definition: String,
    #[serde(default)]
    tables: Vec<String>,
}

#[derive(Debug, Default, Serialize)]
struct ExportFile {
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    tags: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    tables: BTreeMap<String, ExportTable>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    glossary: BTreeMap<String, ExportTerm>,
}

#[derive(Debug, Serialize)]
struct ExportTable {
    description: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    tier: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    owner: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    domain: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    freshness: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    deprecated: Option<Deprecation>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    columns: BTreeMap<String, ExportColumn>,
}

#[derive(Debug, Serialize)]
struct ExportColumn {
    #[serde(skip_serializing_if = "String::is_empty")]
    description: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tags: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    allowed_values: Vec<String>,
}

#[derive(Debug, Serialize)]
struct ExportTerm {
    definition: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tables: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{Column, Table};

    fn shop() -> Catalog {
        Catalog::from_tables(vec![
            Table::new("users", vec![Column::new("user_id", "INTEGER"), Column::new("email", "TEXT")]),
            Table::new("orders", vec![Column::new("order_id", "INTEGER"), Column::new("user_id", "INTEGER")]),
            Table::new("orders_v0", vec![Column::new("id", "INTEGER")]),
        ])
    }

    const FILE: &str = r#"
domain = "commerce"
owner = "shop@x.example"

[tags]
"pii:loyalty" = "Loyalty card number."

[tables.users]
description = "One row per user."
tier = 1
[tables.users.columns]
email = { description = "E-mail.", tags = ["pii", "pii:email"] }
user_id = { description = "Key.", tags = ["pii:loyalty"], allowed_values = [] }

[tables.orders_v0]
description = "Old orders."
tier = 3
deprecated = { replacement = "orders", note = "Use orders." }

[glossary."buyer"]
definition = "A user with an order."
tables = ["users", "orders"]
"#;

    #[test]
    fn export_reads_back_to_the_same_catalog() {
        let mut catalog = shop();
        apply_text(&mut catalog, Path::new("shop.toml"), FILE).unwrap_or_else(|e| panic!("{e}"));
        let files = export(&catalog);
        let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["commerce.toml", "glossary.toml"]);
        let mut again = shop();
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        for (name, text) in &files {
            std::fs::write(dir.path().join(name), text).unwrap_or_else(|e| panic!("{e}"));
        }
        apply_dir(&mut again, dir.path()).unwrap_or_else(|e| panic!("{e}"));
        for table in catalog.tables() {
            assert_eq!(again.table(&table.name).map(Table::governance), Some(table.governance()));
        }
        assert_eq!(again.glossary(), catalog.glossary());
        assert_eq!(again.tag_vocabulary(), catalog.tag_vocabulary());
    }

    #[test]
    fn errors_name_the_line() {
        let text = "[tables.users]\ndescription = \"x\"\n\n[tables.user]\ndescription = \"y\"\n";
        let e = apply_text(&mut shop(), Path::new("f.toml"), text).err().map(|e| e.to_string());
        assert_eq!(
            e.as_deref(),
            Some("f.toml:4: table 'user' is not in the warehouse (did you mean 'users'?)")
        );
    }
}
