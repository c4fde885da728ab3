//! Stewardship: steward edits of the catalog and what they mean. It owns checking an edit
//! (every field, with the allowed values when one is wrong), laying recorded revisions over
//! what the governance files say (an edit wins until the files change again; then the files
//! win and the conflict is reported), and the signals derived per table (documentation,
//! freshness, usage, ownership).
//!
//! It does no IO: revisions are read and written by `metadata`, and `pipeline` orders it all.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::catalog::{
    suggestion, Catalog, ColumnGovernance, Deprecation, GlossaryTerm, LastChange, Table, TableGovernance,
    Tier,
};
use crate::metadata::Revision;

/// Longest description, definition or comment accepted, in characters.
const MAX_TEXT: usize = 4000;
/// Longest owner, domain or freshness text accepted, in characters.
const MAX_SHORT: usize = 200;

/// One field of an edit that cannot be accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    /// Where in the request, e.g. `tier` or `columns.email.tags`.
    pub field: String,
    pub message: String,
    /// The values that would be accepted, when there is a short list.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub allowed: Vec<String>,
}

impl FieldError {
    fn new(field: impl Into<String>, message: impl Into<String>) -> FieldError {
        FieldError { field: field.into(), message: message.into(), allowed: Vec::new() }
    }

    fn allowed(mut self, allowed: impl IntoIterator<Item = String>) -> FieldError {
        self.allowed = allowed.into_iter().collect();
        self
    }
}

/// A steward's change to one table: only the fields present change. `null` clears an
/// optional field (tier, owner, domain, freshness, deprecated).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TablePatch {
    pub description: Option<String>,
    pub tier: Option<Option<Tier>>,
    pub owner: Option<Option<String>>,
    pub domain: Option<Option<String>>,
    pub freshness: Option<Option<String>>,
    pub deprecated: Option<Option<Deprecation>>,
    pub columns: BTreeMap<String, ColumnPatch>,
    /// Why: recorded with the revision.
    pub comment: String,
}

/// A change to one column: only the fields present change.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ColumnPatch {
    pub description: Option<String>,
    pub tags: Option<Vec<String>>,
    pub allowed_values: Option<Vec<String>>,
}

const TABLE_FIELDS: &[&str] =
    &["description", "tier", "owner", "domain", "freshness", "deprecated", "columns", "comment"];
const COLUMN_FIELDS: &[&str] = &["description", "tags", "allowed_values"];

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn text(value: &Value, field: &str, max: usize, errors: &mut Vec<FieldError>) -> Option<String> {
    match value.as_str() {
        Some(s) => match crate::text::check(field, s, max) {
            Ok(()) => Some(s.trim().to_string()),
            Err(message) => {
                errors.push(FieldError::new(field, message));
                None
            }
        },
        None => {
            errors.push(FieldError::new(field, "must be a string"));
            None
        }
    }
}

/// `null` -> Some(None); a string -> Some(Some(..)); anything else an error.
fn optional_text(value: &Value, field: &str, errors: &mut Vec<FieldError>) -> Option<Option<String>> {
    if value.is_null() {
        return Some(None);
    }
    text(value, field, MAX_SHORT, errors).map(|s| if s.is_empty() { None } else { Some(s) })
}

fn strings(value: &Value, field: &str, errors: &mut Vec<FieldError>) -> Option<Vec<String>> {
    let Some(items) = value.as_array() else {
        errors.push(FieldError::new(field, "must be an array of strings"));
        return None;
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        out.push(text(item, &format!("{field}[{i}]"), MAX_SHORT, errors)?);
    }
    Some(out)
}

fn object<'v>(value: &'v Value, field: &str, errors: &mut Vec<FieldError>) -> Option<&'v Map<String, Value>> {
    let object = value.as_object();
    if object.is_none() {
        errors.push(FieldError::new(field, "must be a JSON object"));
    }
    object
}

fn unknown_fields(object: &Map<String, Value>, prefix: &str, known: &[&str], errors: &mut Vec<FieldError>) {
    for key in object.keys().filter(|k| !known.contains(&k.as_str())) {
        errors.push(
            FieldError::new(
                format!("{prefix}{key}"),
                format!("is not a field{}", suggestion(key, known.iter().copied())),
            )
            .allowed(names(known)),
        );
    }
}

fn tier_values() -> Vec<String> {
    names(&["1 (certified)", "2 (team)", "3 (staging/legacy)", "null (no tier)"])
}

fn comment(object: &Map<String, Value>, errors: &mut Vec<FieldError>) -> String {
    match object.get("comment") {
        None => {
            errors.push(FieldError::new("comment", "is required: say why, for the revision history"));
            String::new()
        }
        Some(value) => {
            let comment = text(value, "comment", MAX_TEXT, errors).unwrap_or_default();
            if comment.is_empty() && value.is_string() {
                errors.push(FieldError::new("comment", "is empty: say why, for the revision history"));
            }
            comment
        }
    }
}

impl TablePatch {
    /// Reads a patch from a JSON request body, collecting every problem.
    pub fn from_json(body: &Value) -> Result<TablePatch, Vec<FieldError>> {
        let mut errors = Vec::new();
        let Some(fields) = object(body, "body", &mut errors) else { return Err(errors) };
        unknown_fields(fields, "", TABLE_FIELDS, &mut errors);
        let mut patch = TablePatch { comment: comment(fields, &mut errors), ..TablePatch::default() };
        if let Some(v) = fields.get("description") {
            patch.description = text(v, "description", MAX_TEXT, &mut errors);
            if patch.description.as_deref() == Some("") {
                errors
                    .push(FieldError::new("description", "is empty: describe the table's grain and purpose"));
            }
        }
        if let Some(v) = fields.get("tier") {
            patch.tier = match v {
                Value::Null => Some(None),
                v => match v.as_i64().and_then(Tier::from_number) {
                    Some(tier) => Some(Some(tier)),
                    None => {
                        errors.push(
                            FieldError::new("tier", format!("{v} is not a tier")).allowed(tier_values()),
                        );
                        None
                    }
                },
            };
        }
        for (field, slot) in
            [("owner", &mut patch.owner), ("domain", &mut patch.domain), ("freshness", &mut patch.freshness)]
        {
            if let Some(v) = fields.get(field) {
                *slot = optional_text(v, field, &mut errors);
            }
        }
        if let Some(v) = fields.get("deprecated") {
            patch.deprecated = match v {
                Value::Null => Some(None),
                v => object_field_deprecation(v, &mut errors).map(Some),
            };
        }
        if let Some(v) = fields.get("columns") {
            if let Some(columns) = object(v, "columns", &mut errors) {
                for (name, v) in columns {
                    let prefix = format!("columns.{name}");
                    let Some(column_fields) = object(v, &prefix, &mut errors) else { continue };
                    unknown_fields(column_fields, &format!("{prefix}."), COLUMN_FIELDS, &mut errors);
                    let mut column = ColumnPatch::default();
                    if let Some(v) = column_fields.get("description") {
                        column.description = text(v, &format!("{prefix}.description"), MAX_TEXT, &mut errors);
                    }
                    if let Some(v) = column_fields.get("tags") {
                        column.tags = strings(v, &format!("{prefix}.tags"), &mut errors);
                    }
                    if let Some(v) = column_fields.get("allowed_values") {
                        column.allowed_values = strings(v, &format!("{prefix}.allowed_values"), &mut errors);
                    }
                    patch.columns.insert(name.clone(), column);
                }
            }
        }
        if errors.is_empty() {
            Ok(patch)
        } else {
            Err(errors)
        }
    }

    /// The table's governance after this patch, checked against the catalog: columns exist,
    /// tags are in the vocabulary, the replacement of a deprecated table exists.
    pub fn apply(&self, catalog: &Catalog, table: &Table) -> Result<TableGovernance, Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut gov = table.governance();
        if let Some(description) = &self.description {
            if description.is_empty() {
                errors
                    .push(FieldError::new("description", "is empty: describe the table's grain and purpose"));
            }
            gov.description = description.clone();
        }
        if let Some(tier) = self.tier {
            gov.tier = tier;
        }
        if let Some(owner) = &self.owner {
            gov.owner = owner.clone();
        }
        if let Some(domain) = &self.domain {
            gov.domain = domain.clone();
        }
        if let Some(freshness) = &self.freshness {
            gov.freshness = freshness.clone();
        }
        if let Some(deprecated) = &self.deprecated {
            if let Some(dep) = deprecated {
                match catalog.table(&dep.replacement) {
                    None => errors.push(FieldError::new(
                        "deprecated.replacement",
                        format!(
                            "table '{}' is not in the warehouse{}",
                            dep.replacement,
                            suggestion(&dep.replacement, catalog.table_names())
                        ),
                    )),
                    Some(r) if r.name.eq_ignore_ascii_case(&table.name) => errors.push(FieldError::new(
                        "deprecated.replacement",
                        "a table cannot replace itself; name the table to use instead",
                    )),
                    Some(_) => {}
                }
            }
            gov.deprecated = deprecated.clone();
        }
        let vocabulary = catalog.tag_vocabulary();
        for (name, patch) in &self.columns {
            let Some(column) = table.column(name) else {
                errors.push(
                    FieldError::new(
                        format!("columns.{name}"),
                        format!(
                            "'{name}' is not a column of '{}'{}",
                            table.name,
                            suggestion(name, table.columns.iter().map(|c| c.name.as_str()))
                        ),
                    )
                    .allowed(table.columns.iter().map(|c| c.name.clone())),
                );
                continue;
            };
            let entry = gov.columns.entry(column.name.clone()).or_default();
            if let Some(description) = &patch.description {
                entry.description = description.clone();
            }
            if let Some(tags) = &patch.tags {
                for tag in tags.iter().filter(|t| !vocabulary.contains_key(*t)) {
                    errors.push(
                        FieldError::new(
                            format!("columns.{name}.tags"),
                            format!(
                                "'{tag}' is not a known tag{}; declare new tags under [tags] in a governance file",
                                suggestion(tag, vocabulary.keys().map(String::as_str))
                            ),
                        )
                        .allowed(vocabulary.keys().cloned()),
                    );
                }
                let mut tags = tags.clone();
                tags.sort();
                tags.dedup();
                entry.tags = tags;
            }
            if let Some(values) = &patch.allowed_values {
                entry.allowed_values = values.clone();
            }
            if entry == &ColumnGovernance::default() {
                gov.columns.remove(&column.name);
            }
        }
        if errors.is_empty() {
            Ok(gov)
        } else {
            Err(errors)
        }
    }
}

fn object_field_deprecation(value: &Value, errors: &mut Vec<FieldError>) -> Option<Deprecation> {
    let fields = object(value, "deprecated", errors)?;
    unknown_fields(fields, "deprecated.", &["replacement", "note"], errors);
    let replacement = match fields.get("replacement") {
        Some(v) => text(v, "deprecated.replacement", MAX_SHORT, errors)?,
        None => {
            errors.push(FieldError::new(
                "deprecated.replacement",
                "is required: name the table to use instead",
            ));
            return None;
        }
    };
    let note = match fields.get("note") {
        Some(v) => text(v, "deprecated.note", MAX_TEXT, errors)?,
        None => String::new(),
    };
    Some(Deprecation { replacement, note })
}

/// A steward's definition of a glossary term, from a JSON body `{definition, tables, comment}`.
pub fn term_from_json(
    term: &str,
    body: &Value,
    catalog: &Catalog,
) -> Result<(GlossaryTerm, String), Vec<FieldError>> {
    let mut errors = Vec::new();
    let term = term.trim();
    if term.is_empty() || term.chars().count() > MAX_SHORT {
        errors.push(FieldError::new("term", format!("must be 1 to {MAX_SHORT} characters")));
    }
    let Some(fields) = object(body, "body", &mut errors) else { return Err(errors) };
    unknown_fields(fields, "", &["definition", "tables", "comment"], &mut errors);
    let comment = comment(fields, &mut errors);
    let definition = match fields.get("definition") {
        Some(v) => text(v, "definition", MAX_TEXT, &mut errors).unwrap_or_default(),
        None => String::new(),
    };
    if definition.is_empty() {
        errors.push(FieldError::new(
            "definition",
            "is required: define the term precisely enough to write SQL from",
        ));
    }
    let tables = match fields.get("tables") {
        Some(v) => strings(v, "tables", &mut errors).unwrap_or_default(),
        None => Vec::new(),
    };
    let mut canonical = Vec::new();
    for (i, name) in tables.iter().enumerate() {
        match catalog.table(name) {
            Some(t) => canonical.push(t.name.clone()),
            None => errors.push(FieldError::new(
                format!("tables[{i}]"),
                format!("table '{name}' is not in the warehouse{}", suggestion(name, catalog.table_names())),
            )),
        }
    }
    if errors.is_empty() {
        Ok((GlossaryTerm { term: term.to_string(), definition, tables: canonical }, comment))
    } else {
        Err(errors)
    }
}

// --- revisions over files -------------------------------------------------------------------------

/// A steward edit the governance files have since contradicted: the files win.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Conflict {
    pub target_kind: String,
    pub target: String,
    pub revision: i64,
    pub edited_by: String,
    pub edited_at: String,
    pub message: String,
}

fn hash_json(value: &impl Serialize) -> String {
    let json = serde_json::to_string(value).unwrap_or_default();
    format!("{:x}", Sha256::digest(json.as_bytes()))
}

/// What the files say about a table, as a hash: recorded with each edit of it.
pub fn table_base_hash(files: &Catalog, table: &str) -> String {
    hash_json(&files.table(table).map(Table::governance))
}

/// What the files say about a glossary term, as a hash: recorded with each edit of it.
pub fn term_base_hash(files: &Catalog, term: &str) -> String {
    hash_json(&files.term(term))
}

/// The catalog stewards see: the files' catalog with each target's newest revision laid over
/// it, unless the files changed since that edit (then the files win, and a `Conflict` says
/// so) or the files now say exactly what the edit said (then there is nothing to lay over).
pub fn overlay(files: &Catalog, revisions: &[Revision]) -> (Catalog, Vec<Conflict>) {
    let mut catalog = files.clone();
    let mut conflicts = Vec::new();
    for revision in revisions {
        let conflict = |message: String| Conflict {
            target_kind: revision.target_kind.clone(),
            target: revision.target.clone(),
            revision: revision.id,
            edited_by: revision.principal.clone(),
            edited_at: revision.at.clone(),
            message,
        };
        let outcome: Result<(), String> = match revision.target_kind.as_str() {
            "table" => {
                let after: Option<TableGovernance> = serde_json::from_value(revision.after.clone()).ok();
                let current = files.table(&revision.target).map(Table::governance);
                match (after, current) {
                    (None, _) => Err("the revision cannot be read; edit the table again".to_string()),
                    (Some(_), None) => Err(format!("table '{}' is no longer in the warehouse", revision.target)),
                    (Some(after), Some(current)) if current == after => Ok(()),
                    (Some(after), Some(_)) if table_base_hash(files, &revision.target) == revision.base_hash => {
                        catalog.set_table_governance(&revision.target, &after)
                    }
                    (Some(_), Some(_)) => Err(format!(
                        "the governance files changed table '{}' after this edit; the files' version is in force. Edit the table again to re-apply, or export the catalog and merge",
                        revision.target
                    )),
                }
            }
            "glossary" => {
                let after: Option<GlossaryTerm> = serde_json::from_value(revision.after.clone()).ok();
                match after {
                    None => Err("the revision cannot be read; edit the term again".to_string()),
                    Some(after) if files.term(&after.term) == Some(&after) => Ok(()),
                    Some(after) if term_base_hash(files, &revision.target) == revision.base_hash => {
                        catalog.set_term(after)
                    }
                    Some(_) => Err(format!(
                        "the governance files changed glossary term '{}' after this edit; the files' version is in force. Edit the term again to re-apply, or export the catalog and merge",
                        revision.target
                    )),
                }
            }
            other => Err(format!("unknown revision kind '{other}'")),
        };
        if let Err(message) = outcome {
            conflicts.push(conflict(message));
        }
    }
    (catalog, conflicts)
}

// --- signals ----------------------------------------------------------------------------------------

/// How often past queries read a table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Usage {
    pub queries: usize,
    pub authors: usize,
    /// Who reads it: the authors of past queries, most queries first.
    pub readers: Vec<Counted>,
    pub last_used: Option<String>,
    /// Join keys to other tables seen in successful past queries, most used first.
    pub joins: Vec<Counted>,
    /// Columns past queries filter this table on (`column:literal kind`), most used first.
    pub filters: Vec<Counted>,
    /// Aggregates past queries compute over it, most used first.
    pub metrics: Vec<Counted>,
}

/// Something past queries did, and in how many of them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Counted {
    pub what: String,
    pub queries: usize,
}

/// The `limit` most counted entries, ties by name.
pub fn top(counts: BTreeMap<String, usize>, limit: usize) -> Vec<Counted> {
    let mut list: Vec<Counted> =
        counts.into_iter().map(|(what, queries)| Counted { what, queries }).collect();
    list.sort_by(|a, b| b.queries.cmp(&a.queries).then_with(|| a.what.cmp(&b.what)));
    list.truncate(limit);
    list
}

/// Signals derived for one table, from the catalog, the history and the revisions.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct TableSignals {
    /// Share of columns with a description, 0 to 1.
    pub documentation: f32,
    pub described_columns: usize,
    pub columns: usize,
    /// The latest date in the table, where a date column tells.
    pub last_change: Option<LastChange>,
    /// Days between the latest date of any table in the warehouse and this table's.
    pub days_behind: Option<i64>,
    /// What the steward says to expect.
    pub freshness_expected: Option<String>,
    /// Days the table is behind what `freshness_expected` promises (absent when on time, or
    /// when no expectation with a cadence — hourly, daily, weekly, monthly — is stated).
    pub late_days: Option<i64>,
    pub usage: Usage,
    pub owner: Option<String>,
    /// `active` (an owner is named and the table was reviewed by a steward in the last 180
    /// days or its owner ran a past query in that time), `inactive` (owner named, no such
    /// activity) or `unowned`.
    pub ownership: &'static str,
    /// When a steward last edited the table.
    pub last_reviewed: Option<String>,
}

/// Days of activity that keep an ownership `active`.
const ACTIVE_DAYS: i64 = 180;

/// How many days a table may lag the warehouse's newest data under a stated freshness
/// ("daily by 06:00 UTC" allows 2: a day's cadence plus a day's grace), or None when the
/// expectation names no cadence.
pub fn allowed_lag_days(freshness: &str) -> Option<i64> {
    let freshness = freshness.to_lowercase();
    let cadence = [("hourly", 0), ("daily", 1), ("weekly", 7), ("monthly", 31)]
        .into_iter()
        .find(|(word, _)| freshness.contains(word))?;
    Some(cadence.1 + 1)
}

/// The signals of `table`.
pub fn signals(
    table: &Table,
    catalog: &Catalog,
    usage: &BTreeMap<String, Usage>,
    owner_last_active: Option<&str>,
    last_reviewed: Option<String>,
    today: &str,
) -> TableSignals {
    let day = crate::calendar::day_number;
    let newest = catalog.tables().filter_map(|t| t.last_change.as_ref()).map(|c| c.date.as_str()).max();
    let days_behind = match (newest.and_then(day), table.last_change.as_ref().and_then(|c| day(&c.date))) {
        (Some(newest), Some(own)) => Some(newest - own),
        _ => None,
    };
    let recent = |date: Option<&str>| match (date.and_then(|d| day(d.get(..10).unwrap_or(d))), day(today)) {
        (Some(d), Some(t)) => t - d <= ACTIVE_DAYS,
        _ => false,
    };
    let ownership = match &table.owner {
        None => "unowned",
        Some(_) if recent(last_reviewed.as_deref()) || recent(owner_last_active) => "active",
        Some(_) => "inactive",
    };
    let late_days = match (days_behind, table.freshness.as_deref().and_then(allowed_lag_days)) {
        (Some(behind), Some(allowed)) if behind > allowed => Some(behind - allowed),
        _ => None,
    };
    TableSignals {
        documentation: table.documentation(),
        described_columns: table.columns.iter().filter(|c| !c.description.is_empty()).count(),
        columns: table.columns.len(),
        last_change: table.last_change.clone(),
        days_behind,
        freshness_expected: table.freshness.clone(),
        late_days,
        usage: usage.get(&table.name.to_lowercase()).cloned().unwrap_or_default(),
        owner: table.owner.clone(),
        ownership,
        last_reviewed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Column;
    use serde_json::json;

    fn shop() -> Catalog {
        let mut users =
            Table::new("users", vec![Column::new("user_id", "INTEGER"), Column::new("email", "TEXT")]);
        users.description = "One row per user.".into();
        Catalog::from_tables(vec![users, Table::new("orders", vec![Column::new("order_id", "INTEGER")])])
    }

    fn errors(body: Value) -> Vec<FieldError> {
        let catalog = shop();
        let table = catalog.table("users").cloned().unwrap_or_else(|| Table::new("x", vec![]));
        match TablePatch::from_json(&body).and_then(|p| p.apply(&catalog, &table)) {
            Ok(gov) => panic!("expected errors for {body}, got {gov:?}"),
            Err(errors) => errors,
        }
    }

    #[test]
    fn every_bad_field_is_named_with_what_is_allowed() {
        let e = errors(json!({ "tier": 4, "comment": "x" }));
        assert_eq!(e[0].field, "tier");
        assert!(e[0].allowed.iter().any(|a| a.starts_with("1 ")), "{e:?}");
        let e = errors(json!({ "columns": { "email": { "tags": ["pii", "pi"] } }, "comment": "x" }));
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!(e[0].field, "columns.email.tags");
        assert!(e[0].message.contains("did you mean 'pii'"), "{e:?}");
        assert!(e[0].allowed.contains(&"pii:email".to_string()));
        let e = errors(json!({ "columns": { "emial": { "description": "x" } }, "comment": "x" }));
        assert!(e[0].message.contains("did you mean 'email'"), "{e:?}");
        assert_eq!(e[0].allowed, ["user_id", "email"]);
        let e = errors(json!({ "descripton": "x", "comment": "x" }));
        assert!(e[0].message.contains("did you mean 'description'"), "{e:?}");
        let e = errors(json!({ "description": "x" }));
        assert_eq!(e[0].field, "comment");
        let e = errors(json!({ "deprecated": { "replacement": "order" }, "comment": "x" }));
        assert!(e[0].message.contains("did you mean 'orders'"), "{e:?}");
        let e = errors(json!({ "deprecated": { "replacement": "users" }, "comment": "x" }));
        assert!(e[0].message.contains("cannot replace itself"), "{e:?}");
        let e = errors(json!({ "owner": 7, "description": "", "comment": "x" }));
        assert_eq!(e.len(), 2, "{e:?}");
        let e = errors(json!([1, 2]));
        assert_eq!(e[0].field, "body");
    }

    #[test]
    fn a_patch_changes_only_what_it_names() {
        let catalog = shop();
        let users = catalog.table("users").cloned().unwrap_or_else(|| Table::new("x", vec![]));
        let patch = TablePatch::from_json(&json!({
            "tier": 1, "owner": "growth@x.example",
            "columns": { "EMAIL": { "tags": ["pii:email", "pii", "pii"] } },
            "comment": "tag personal data"
        }))
        .unwrap_or_else(|e| panic!("{e:?}"));
        let gov = patch.apply(&catalog, &users).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(gov.description, "One row per user.");
        assert_eq!(gov.tier, Some(Tier::Certified));
        assert_eq!(gov.columns["email"].tags, ["pii", "pii:email"]);
        let cleared = TablePatch::from_json(
            &json!({ "tier": null, "columns": { "email": { "tags": [] } }, "comment": "undo" }),
        )
        .unwrap_or_else(|e| panic!("{e:?}"));
        let mut edited = catalog.clone();
        edited.set_table_governance("users", &gov).unwrap_or_else(|e| panic!("{e}"));
        let users = edited.table("users").cloned().unwrap_or_else(|| Table::new("x", vec![]));
        let gov = cleared.apply(&edited, &users).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(gov.tier, None);
        assert!(gov.columns.is_empty(), "{gov:?}");
    }

    fn revision(id: i64, files: &Catalog, after: &TableGovernance) -> Revision {
        Revision {
            id,
            at: "2026-11-26T10:00:00Z".into(),
            principal: "sam".into(),
            role: "steward".into(),
            target_kind: "table".into(),
            target: "users".into(),
            before: None,
            after: serde_json::to_value(after).unwrap_or_default(),
            base_hash: table_base_hash(files, "users"),
            comment: "c".into(),
        }
    }

    #[test]
    fn an_edit_wins_until_the_files_change_then_the_conflict_is_reported() {
        let files = shop();
        let mut edited = files.table("users").map(Table::governance).unwrap_or_default();
        edited.description = "Edited by a steward.".into();
        let rev = revision(1, &files, &edited);

        let (catalog, conflicts) = overlay(&files, std::slice::from_ref(&rev));
        assert!(conflicts.is_empty(), "{conflicts:?}");
        assert_eq!(catalog.table("users").map(|t| t.description.as_str()), Some("Edited by a steward."));

        let mut changed_files = files.clone();
        let mut gov = files.table("users").map(Table::governance).unwrap_or_default();
        gov.description = "Changed in the files.".into();
        changed_files.set_table_governance("users", &gov).unwrap_or_else(|e| panic!("{e}"));
        let (catalog, conflicts) = overlay(&changed_files, std::slice::from_ref(&rev));
        assert_eq!(catalog.table("users").map(|t| t.description.as_str()), Some("Changed in the files."));
        assert_eq!(conflicts.len(), 1);
        assert!(conflicts[0].message.contains("files' version is in force"), "{conflicts:?}");
        assert_eq!((conflicts[0].revision, conflicts[0].edited_by.as_str()), (1, "sam"));

        // The files caught up with the edit (exported and committed): no conflict.
        let mut merged = files.clone();
        merged.set_table_governance("users", &edited).unwrap_or_else(|e| panic!("{e}"));
        let (_, conflicts) = overlay(&merged, &[rev]);
        assert!(conflicts.is_empty(), "{conflicts:?}");
    }

    #[test]
    fn a_table_is_late_only_past_its_promised_cadence() {
        use crate::catalog::LastChange;
        let dated = |name: &str, date: &str, freshness: Option<&str>| {
            let mut t = Table::new(name, vec![Column::new("day", "TEXT")]);
            t.last_change = Some(LastChange { date: date.into(), column: "day".into() });
            t.freshness = freshness.map(String::from);
            t
        };
        let catalog = Catalog::from_tables(vec![
            dated("events", "2026-11-20", Some("daily by 06:00 UTC")),
            dated("late_daily", "2026-11-10", Some("daily by 06:00 UTC")),
            dated("weekly", "2026-11-15", Some("weekly")),
            dated("unpromised", "2026-01-01", None),
        ]);
        let late = |name: &str| {
            let table = catalog.table(name).cloned().unwrap_or_else(|| Table::new("x", vec![]));
            let s = signals(&table, &catalog, &BTreeMap::new(), None, None, "2026-11-27");
            (s.days_behind, s.late_days)
        };
        assert_eq!(late("events"), (Some(0), None));
        assert_eq!(late("late_daily"), (Some(10), Some(8)));
        assert_eq!(late("weekly"), (Some(5), None));
        assert_eq!(late("unpromised"), (Some(323), None));
    }

    #[test]
    fn freshness_promises_give_the_allowed_lag() {
        assert_eq!(allowed_lag_days("daily by 06:00 UTC"), Some(2));
        assert_eq!(allowed_lag_days("Weekly, Mondays"), Some(8));
        assert_eq!(allowed_lag_days("hourly"), Some(1));
        assert_eq!(allowed_lag_days("static reference data; changed by pull request"), None);
        assert_eq!(allowed_lag_days("stale: nothing after 2026-07-31"), None);
    }
}
