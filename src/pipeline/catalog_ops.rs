//! Reading the catalog (`read_catalog`): the tables a role may read, one table's detail with
//! its signals, revisions and conflict, the glossary, and conflicts. Steward edits are in
//! `stewardship_ops`, search in `search`, the audit helpers in `audit_log`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use serde::Serialize;
use serde_json::json;

use super::{AccessError, HistoryState, Principal, Quarry};
use crate::catalog::{suggestion, Catalog, GlossaryTerm, Table};
use crate::history::History;
use crate::metadata::{AuditKind, MetadataError, Revision, RevisionTarget};
use crate::policy::{Action, Policy};
use crate::retrieve::RetrieveError;
use crate::stewardship::{self, Conflict, FieldError, TableSignals, Usage};

/// Why a catalog request got no answer.
#[derive(Debug, thiserror::Error)]
pub enum CatalogRequestError {
    #[error(transparent)]
    Forbidden(#[from] AccessError),
    /// No such table or term (for this role).
    #[error("{0}")]
    NotFound(String),
    /// The request names a bad value; every problem is listed.
    #[error("the request is not valid: {}", .0.iter().map(|e| format!("{}: {}", e.field, e.message)).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<FieldError>),
    #[error(transparent)]
    Metadata(#[from] MetadataError),
    #[error(transparent)]
    Retrieve(#[from] RetrieveError),
    /// A catalog edit would lift a restriction and the editor's role lacks `edit_policy`.
    #[error("this edit would lift a restriction ({}); only a role with the edit_policy action (admin by default) may do that: ask an admin to make it, or leave these tags and the tier as they are", .lifted.join("; "))]
    LiftsRestriction { lifted: Vec<String> },
}

pub(super) fn invalid(field: &str, message: String, allowed: Vec<String>) -> CatalogRequestError {
    CatalogRequestError::Invalid(vec![FieldError { field: field.to_string(), message, allowed }])
}

/// Which tables to list; every field narrows the list.
#[derive(Debug, Clone, Default)]
pub struct TableFilter {
    /// Words that must all appear in the table's name, description, domain or columns.
    pub q: Option<String>,
    pub tier: Option<i64>,
    pub domain: Option<String>,
    /// Only tables with a column carrying this tag.
    pub tag: Option<String>,
    /// Only deprecated tables (true) or only the others (false).
    pub deprecated: Option<bool>,
    /// Only tables missing a description of the table or of some column (true), or only
    /// fully documented ones (false).
    pub undocumented: Option<bool>,
}

/// One line of the catalog listing.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct TableSummary {
    pub name: String,
    pub description: String,
    pub tier: Option<u8>,
    pub owner: Option<String>,
    pub domain: Option<String>,
    pub deprecated_for: Option<String>,
    /// None where the role may not see it (its reads of the table are row-filtered).
    pub row_count: Option<u64>,
    /// Tags on any of its columns.
    pub tags: Vec<String>,
    pub documentation: f32,
    pub usage_queries: usize,
}

/// Everything about one table: columns with tags and samples, signals, revisions, conflicts.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct TableDetail {
    pub table: Table,
    pub signals: TableSignals,
    /// Glossary terms computed from this table.
    pub glossary: Vec<String>,
    /// Steward edits of this table, newest first.
    pub revisions: Vec<Revision>,
    /// Set when the governance files overrode a steward edit of this table.
    pub conflict: Option<Conflict>,
}

/// Per table: how often past queries read it, and the joins, filters and metrics they used;
/// per author: their latest query.
pub(super) fn usage(history: &History) -> (BTreeMap<String, Usage>, BTreeMap<String, String>) {
    /// Entries kept per list.
    const TOP: usize = 8;
    #[derive(Default)]
    struct Tally {
        usage: Usage,
        authors: BTreeMap<String, usize>,
        joins: BTreeMap<String, usize>,
        filters: BTreeMap<String, usize>,
        metrics: BTreeMap<String, usize>,
    }
    let mut tallies: BTreeMap<String, Tally> = BTreeMap::new();
    let mut last_active: BTreeMap<String, String> = BTreeMap::new();
    let owner = |column: &str| column.split_once('.').map(|(t, _)| t.to_lowercase()).unwrap_or_default();
    for query in &history.queries {
        let at = &query.logged.timestamp;
        for table in &query.tables {
            let key = table.to_lowercase();
            let tally = tallies.entry(key.clone()).or_default();
            tally.usage.queries += 1;
            if tally.usage.last_used.as_ref().is_none_or(|last| at > last) {
                tally.usage.last_used = Some(at.clone());
            }
            *tally.authors.entry(query.logged.author.clone()).or_default() += 1;
            if !query.logged.succeeded() {
                continue;
            }
            let s = &query.structure;
            for edge in s.joins.iter().filter(|e| owner(&e.left) == key || owner(&e.right) == key) {
                *tally.joins.entry(format!("{} = {}", edge.left, edge.right)).or_default() += 1;
            }
            for filter in s.filters.iter().filter(|f| owner(&f.column) == key) {
                let kind = serde_json::to_value(filter.kind).ok().and_then(|v| v.as_str().map(String::from));
                *tally
                    .filters
                    .entry(format!("{}:{}", filter.column, kind.unwrap_or_default()))
                    .or_default() += 1;
            }
            let reads_table = |a: &String| {
                let a = a.to_lowercase();
                a.contains(&format!("({key}.")) || a.contains(&format!("(distinct {key}."))
            };
            for metric in s.aggregates.iter().filter(|a| reads_table(a)) {
                *tally.metrics.entry(metric.clone()).or_default() += 1;
            }
        }
        let last = last_active.entry(query.logged.author.clone()).or_default();
        if at > last {
            last.clone_from(at);
        }
    }
    let usage = tallies
        .into_iter()
        .map(|(table, t)| {
            let mut usage = t.usage;
            usage.authors = t.authors.len();
            usage.readers = stewardship::top(t.authors, TOP);
            usage.joins = stewardship::top(t.joins, TOP);
            usage.filters = stewardship::top(t.filters, TOP);
            usage.metrics = stewardship::top(t.metrics, TOP);
            (table, usage)
        })
        .collect();
    (usage, last_active)
}

fn matches(table: &Table, words: &[String]) -> bool {
    let mut haystack =
        format!("{} {} {}", table.name, table.description, table.domain.as_deref().unwrap_or_default());
    for column in &table.columns {
        haystack.push_str(&format!(" {} {} {}", column.name, column.description, column.tags.join(" ")));
    }
    let haystack = haystack.to_lowercase();
    words.iter().all(|w| haystack.contains(w.as_str()))
}

impl Quarry {
    /// The tables `policy` may read, for browsing (all their columns shown, with tags, so that
    /// a refusal can be understood).
    fn readable<'c>(catalog: &'c Catalog, policy: &Policy) -> impl Iterator<Item = &'c Table> + 'c {
        let policy = policy.clone();
        catalog.tables().filter(move |t| policy.table_denial(t).is_none())
    }

    pub(super) fn find_table(
        &self,
        catalog: &Catalog,
        policy: &Policy,
        name: &str,
    ) -> Result<Table, CatalogRequestError> {
        match catalog.table(name) {
            Some(t) if policy.table_denial(t).is_none() => Ok(t.clone()),
            _ => Err(CatalogRequestError::NotFound(format!(
                "no table '{name}' in the catalog{}",
                suggestion(name, Quarry::readable(catalog, policy).map(|t| t.name.as_str()))
            ))),
        }
    }

    /// The catalog listing, filtered.
    pub fn list_tables(
        &self,
        principal: &Principal,
        filter: &TableFilter,
    ) -> Result<Vec<TableSummary>, CatalogRequestError> {
        let started = Instant::now();
        let result = self.list_tables_inner(principal, filter);
        self.audited(
            principal,
            AuditKind::Access,
            json!({ "action": "list_tables" }),
            (None, None),
            started,
            result,
        )
    }

    fn list_tables_inner(
        &self,
        principal: &Principal,
        filter: &TableFilter,
    ) -> Result<Vec<TableSummary>, CatalogRequestError> {
        let policy = self.authorize(principal, Action::ReadCatalog)?;
        let catalog = self.catalog();
        if let Some(tier) = filter.tier {
            if !(1..=3).contains(&tier) {
                return Err(invalid(
                    "tier",
                    format!("{tier} is not a tier"),
                    vec!["1".into(), "2".into(), "3".into()],
                ));
            }
        }
        if let Some(tag) = &filter.tag {
            if !catalog.tag_vocabulary().contains_key(tag) {
                return Err(invalid(
                    "tag",
                    format!(
                        "'{tag}' is not a known tag{}",
                        suggestion(tag, catalog.tag_vocabulary().keys().map(String::as_str))
                    ),
                    catalog.tag_vocabulary().keys().cloned().collect(),
                ));
            }
        }
        let history = self.history();
        let words: Vec<String> =
            filter.q.as_deref().unwrap_or_default().split_whitespace().map(str::to_lowercase).collect();
        let summaries = catalog
            .tables()
            .filter_map(|t| policy.browsable(t))
            .filter(|t| filter.tier.is_none_or(|n| t.tier.map(|t| i64::from(t.number())) == Some(n)))
            .filter(|t| {
                filter
                    .domain
                    .as_ref()
                    .is_none_or(|d| t.domain.as_deref().is_some_and(|own| own.eq_ignore_ascii_case(d)))
            })
            .filter(|t| filter.tag.as_ref().is_none_or(|tag| t.columns.iter().any(|c| c.tags.contains(tag))))
            .filter(|t| filter.deprecated.is_none_or(|d| t.deprecated.is_some() == d))
            .filter(|t| {
                let undocumented = t.description.trim().is_empty() || t.documentation() < 1.0;
                filter.undocumented.is_none_or(|u| undocumented == u)
            })
            .filter(|t| matches(t, &words))
            .map(|t| TableSummary {
                name: t.name.clone(),
                description: t.description.clone(),
                tier: t.tier.map(|t| t.number()),
                owner: t.owner.clone(),
                domain: t.domain.clone(),
                deprecated_for: t.deprecated.as_ref().map(|d| d.replacement.clone()),
                row_count: t.row_count,
                tags: t
                    .columns
                    .iter()
                    .flat_map(|c| c.tags.iter().cloned())
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .collect(),
                documentation: t.documentation(),
                usage_queries: history
                    .table_usage
                    .get(&t.name.to_lowercase())
                    .map(|u| u.queries)
                    .unwrap_or(0),
            })
            .collect();
        Ok(summaries)
    }

    /// Steward edits the governance files have since contradicted, as `principal` may see
    /// them: a table's only when the role may read that table.
    pub fn conflicts_seen_by(&self, principal: &Principal) -> Result<Vec<Conflict>, CatalogRequestError> {
        let policy = self.authorize(principal, Action::ReadCatalog)?;
        let catalog = self.catalog();
        let readable = |name: &str| catalog.table(name).is_some_and(|t| policy.browsable(t).is_some());
        Ok(self.conflicts().into_iter().filter(|c| c.target_kind != "table" || readable(&c.target)).collect())
    }

    /// One table with its columns, signals, glossary terms, revisions and conflict.
    pub fn table_detail(
        &self,
        principal: &Principal,
        name: &str,
    ) -> Result<TableDetail, CatalogRequestError> {
        let started = Instant::now();
        let result = self.table_detail_inner(principal, name);
        self.audited(
            principal,
            AuditKind::Access,
            json!({ "action": "table_detail" }),
            (None, None),
            started,
            result,
        )
    }

    fn table_detail_inner(
        &self,
        principal: &Principal,
        name: &str,
    ) -> Result<TableDetail, CatalogRequestError> {
        let policy = self.authorize(principal, Action::ReadCatalog)?;
        let catalog = self.catalog();
        let table = self.find_table(&catalog, policy, name)?;
        self.detail(&catalog, policy, table)
    }

    /// The detail of `table` as `policy` may see it: values and totals as `Policy::browsable`
    /// shows them.
    pub(super) fn detail(
        &self,
        catalog: &Catalog,
        policy: &Policy,
        table: Table,
    ) -> Result<TableDetail, CatalogRequestError> {
        let mut table = policy.browsable(&table).unwrap_or(table);
        // A key to a table or column the role may not read would name it.
        let visible = policy.visible_catalog(catalog);
        table.foreign_keys.retain(|k| visible.leads_to(k));
        let revisions = self.metadata.revisions(RevisionTarget::Table, &table.name.to_lowercase())?;
        let signals = signals_now(&table, catalog, &self.history(), revisions.first().map(|r| r.at.clone()));
        let conflict = self
            .conflicts()
            .into_iter()
            .find(|c| c.target_kind == "table" && c.target.eq_ignore_ascii_case(&table.name));
        let glossary = catalog
            .glossary()
            .iter()
            .filter(|g| g.tables.iter().any(|t| t.eq_ignore_ascii_case(&table.name)))
            .map(|g| g.term.clone())
            .collect();
        Ok(TableDetail { table, signals, glossary, revisions, conflict })
    }

    /// The glossary.
    pub fn glossary(&self, principal: &Principal) -> Result<Vec<GlossaryTerm>, CatalogRequestError> {
        let started = Instant::now();
        let result = self
            .authorize(principal, Action::ReadCatalog)
            .map(|policy| policy.visible_catalog(&self.catalog()).glossary().to_vec())
            .map_err(CatalogRequestError::from);
        self.audited(
            principal,
            AuditKind::Access,
            json!({ "action": "glossary" }),
            (None, None),
            started,
            result,
        )
    }
}

/// The signals of `table` from the catalog and history in force, as of today.
pub(super) fn signals_now(
    table: &Table,
    catalog: &Catalog,
    history: &HistoryState,
    last_reviewed: Option<String>,
) -> stewardship::TableSignals {
    let owner_last_active = table.owner.as_ref().and_then(|o| history.last_active.get(o)).map(String::as_str);
    stewardship::signals(
        table,
        catalog,
        &history.table_usage,
        owner_last_active,
        last_reviewed,
        &crate::calendar::today(),
    )
}
