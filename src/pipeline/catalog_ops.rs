//! Requests about the catalog rather than the data: browsing and search (`read_catalog`),
//! steward edits of tables and the glossary (`edit_catalog`). Each checks the principal's role
//! first; each edit is a revision plus an audit record, swaps in the new catalog and re-indexes
//! what changed. The audit log and the history's requests are in `audit_log` and `history_ops`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;
use serde_json::{json, Value};

use super::{AccessError, HistoryState, Principal, Quarry};
use crate::catalog::{suggestion, Catalog, GlossaryTerm, Table};
use crate::history::{visible_to, History};
use crate::metadata::{
    AuditKind, AuditRecord, MetadataError, NewRevision, Outcome, Revision, RevisionTarget,
};
use crate::policy::{Action, Policy};
use crate::retrieve::{retrieve, Example, RetrievalBudget, RetrieveError, TableCandidate};
use crate::stewardship::{self, Conflict, FieldError, TablePatch, TableSignals, Usage};

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

/// What an edit did.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct EditOutcome {
    /// The revision recorded; `None` when the edit changed nothing.
    pub revision: Option<i64>,
    /// False when the vector index could not be updated (it is rebuilt at the next start).
    pub reindexed: bool,
    pub warnings: Vec<String>,
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

    fn find_table(
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
    fn detail(
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

    /// Applies a steward's patch to one table (see `TablePatch` for the body).
    pub fn edit_table(
        &self,
        principal: &Principal,
        name: &str,
        body: &Value,
    ) -> Result<(EditOutcome, TableDetail), CatalogRequestError> {
        let started = Instant::now();
        let result = self.edit_table_inner(principal, name, body, started);
        let detail = json!({ "action": "table_edit", "table": name });
        self.audited(principal, AuditKind::Edit, detail, (None, None), started, result)
    }

    fn edit_table_inner(
        &self,
        principal: &Principal,
        name: &str,
        body: &Value,
        started: Instant,
    ) -> Result<(EditOutcome, TableDetail), CatalogRequestError> {
        let editor = self.authorize(principal, Action::EditCatalog)?;
        let patch = TablePatch::from_json(body).map_err(CatalogRequestError::Invalid)?;
        let _edit = self.edit_lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let current = self.catalog();
        let table = self.find_table(&current, &Policy::unrestricted(), name)?;
        let before = table.governance();
        let after = patch.apply(&current, &table).map_err(CatalogRequestError::Invalid)?;
        if after == before {
            let outcome =
                EditOutcome { revision: None, reindexed: false, warnings: vec!["nothing changed".into()] };
            return Ok((outcome, self.detail(&current, editor, table)?));
        }
        let mut next = (*current).clone();
        next.set_table_governance(&table.name, &after).map_err(|m| invalid("body", m, Vec::new()))?;
        // Tags and tiers that restrict reading are policy: lifting one needs `edit_policy`.
        if !editor.allows(Action::EditPolicy) {
            let lifted =
                next.table(&table.name).map(|t| self.config.policy.lifted(&table, t)).unwrap_or_default();
            if !lifted.is_empty() {
                return Err(CatalogRequestError::LiftsRestriction { lifted });
            }
        }
        crate::validate::check_roles(&self.config.policy, &next).map_err(|e| {
            invalid("columns", format!("the role policies in quarry.toml would break: {e}"), Vec::new())
        })?;
        let changed = changed_fields(&before, &after);
        let revision = NewRevision {
            principal: principal.name.clone(),
            role: principal.role.clone(),
            target_kind: RevisionTarget::Table,
            target: table.name.to_lowercase(),
            before: serde_json::to_value(&before).ok(),
            after: serde_json::to_value(&after).unwrap_or_default(),
            base_hash: stewardship::table_base_hash(&self.files_catalog, &table.name),
            comment: patch.comment.clone(),
        };
        let audit = self.edit_audit(
            principal,
            json!({ "action": "table_edit", "table": table.name, "changed": changed, "comment": patch.comment }),
            started,
        );
        let id = self.metadata.record_revision(&revision, &audit)?;
        let edited = next.table(&table.name).cloned().unwrap_or(table);
        let outcome = self.swap_in(next, "table", &edited.name, Some(&edited), id);
        Ok((outcome, self.detail(&self.catalog(), editor, edited)?))
    }

    /// Makes `next` the catalog in force, clears the target's conflict, and re-indexes the
    /// edited table (when one was edited).
    fn swap_in(
        &self,
        next: Catalog,
        kind: &str,
        target: &str,
        table: Option<&Table>,
        revision: i64,
    ) -> EditOutcome {
        let next = Arc::new(next);
        match self.catalog.write() {
            Ok(mut guard) => *guard = next.clone(),
            Err(poisoned) => *poisoned.into_inner() = next.clone(),
        }
        match self.conflicts.write() {
            Ok(mut guard) => {
                guard.retain(|c| !(c.target_kind == kind && c.target.eq_ignore_ascii_case(target)))
            }
            Err(poisoned) => poisoned
                .into_inner()
                .retain(|c| !(c.target_kind == kind && c.target.eq_ignore_ascii_case(target))),
        }
        let mut outcome = EditOutcome { revision: Some(revision), reindexed: true, warnings: Vec::new() };
        if let Some(table) = table {
            let fingerprint = self.config.workspace.join("vectors").join("fingerprint");
            if let Err(e) = crate::index::reindex_table(
                &next,
                table,
                &self.history().history,
                self.embedder.as_ref(),
                self.store.as_ref(),
                &fingerprint,
            ) {
                tracing::error!("re-indexing table {}: {e}", table.name);
                // A stale fingerprint makes the next start rebuild the whole index.
                let _ = std::fs::remove_file(&fingerprint);
                outcome.reindexed = false;
                outcome.warnings.push(format!(
                    "the edit is saved, but the search index could not be updated ({e}); it is rebuilt at the next start"
                ));
            }
        }
        outcome
    }

    pub(super) fn edit_audit(&self, principal: &Principal, detail: Value, started: Instant) -> AuditRecord {
        let duration_ms = started.elapsed().as_millis() as u64;
        AuditRecord { detail, ..Quarry::request_audit(principal, AuditKind::Edit, None, None, duration_ms) }
    }

    /// Passes `result` through; when it is an error, appends an audit record of the refusal
    /// (or failure) first, with `detail` and the error. Requests that succeed audit themselves
    /// (edits and verdicts in their own transaction); reads that succeed are not audited.
    pub(super) fn audited<T>(
        &self,
        principal: &Principal,
        kind: AuditKind,
        mut detail: Value,
        (question, sql): (Option<String>, Option<String>),
        started: Instant,
        result: Result<T, CatalogRequestError>,
    ) -> Result<T, CatalogRequestError> {
        let Err(error) = &result else { return result };
        if let Some(map) = detail.as_object_mut() {
            map.insert("error".into(), error.to_string().into());
        }
        let mut record = self.edit_audit(principal, detail, started);
        record.kind = kind;
        record.question = question;
        record.sql = sql;
        record.outcome = match error {
            CatalogRequestError::Forbidden(_)
            | CatalogRequestError::Invalid(_)
            | CatalogRequestError::NotFound(_)
            | CatalogRequestError::LiftsRestriction { .. } => Outcome::Refused,
            _ => Outcome::Failed,
        };
        if let Err(e) = self.metadata.audit(&record) {
            tracing::error!("auditing a refused request of {}: {e}", principal.name);
            return Err(CatalogRequestError::Metadata(e));
        }
        result
    }

    /// Records a request refused for want of a valid API key (kind `access`, principal
    /// `anonymous`). A failure to write it is logged: the request is refused either way.
    pub fn audit_unauthenticated(&self, request: &str, reason: &str) {
        self.audit_turned_away(&Principal::new("anonymous", ""), request, reason);
    }

    /// Audits a request turned away at the door before any work (no key, over its rate limit).
    pub fn audit_turned_away(&self, principal: &Principal, request: &str, reason: &str) {
        let started = Instant::now();
        let mut record = self.edit_audit(principal, json!({ "request": request, "error": reason }), started);
        record.kind = AuditKind::Access;
        record.outcome = Outcome::Refused;
        if let Err(e) = self.metadata.audit(&record) {
            tracing::error!("auditing a request turned away: {e}");
        }
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

    /// Defines or redefines a glossary term (body: `definition`, `tables`, `comment`).
    pub fn put_term(
        &self,
        principal: &Principal,
        term: &str,
        body: &Value,
    ) -> Result<(EditOutcome, GlossaryTerm), CatalogRequestError> {
        let started = Instant::now();
        let result = self.put_term_inner(principal, term, body, started);
        let detail = json!({ "action": "glossary_edit", "term": term });
        self.audited(principal, AuditKind::Edit, detail, (None, None), started, result)
    }

    fn put_term_inner(
        &self,
        principal: &Principal,
        term: &str,
        body: &Value,
        started: Instant,
    ) -> Result<(EditOutcome, GlossaryTerm), CatalogRequestError> {
        self.authorize(principal, Action::EditCatalog)?;
        let _edit = self.edit_lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let current = self.catalog();
        let (after, comment) =
            stewardship::term_from_json(term, body, &current).map_err(CatalogRequestError::Invalid)?;
        let before = current.term(&after.term).cloned();
        if before.as_ref() == Some(&after) {
            let outcome =
                EditOutcome { revision: None, reindexed: false, warnings: vec!["nothing changed".into()] };
            return Ok((outcome, after));
        }
        let mut next = (*current).clone();
        next.set_term(after.clone()).map_err(|m| invalid("tables", m, Vec::new()))?;
        let revision = NewRevision {
            principal: principal.name.clone(),
            role: principal.role.clone(),
            target_kind: RevisionTarget::Glossary,
            target: after.term.to_lowercase(),
            before: before.as_ref().and_then(|b| serde_json::to_value(b).ok()),
            after: serde_json::to_value(&after).unwrap_or_default(),
            base_hash: stewardship::term_base_hash(&self.files_catalog, &after.term),
            comment: comment.clone(),
        };
        let audit = self.edit_audit(
            principal,
            json!({ "action": "glossary_edit", "term": after.term, "comment": comment }),
            started,
        );
        let id = self.metadata.record_revision(&revision, &audit)?;
        Ok((self.swap_in(next, "glossary", &after.term, None, id), after))
    }

    /// Tables ranked for a question, as `ask` would rank them, with evidence.
    pub fn search_tables(
        &self,
        principal: &Principal,
        q: &str,
        limit: usize,
    ) -> Result<Vec<TableCandidate>, CatalogRequestError> {
        Ok(self.search(principal, q, limit, 0)?.0)
    }

    /// Past queries close to a question, among those the principal may run.
    pub fn search_queries(
        &self,
        principal: &Principal,
        q: &str,
        limit: usize,
    ) -> Result<Vec<Example>, CatalogRequestError> {
        Ok(self.search(principal, q, 1, limit)?.1)
    }

    fn search_inner(
        &self,
        principal: &Principal,
        q: &str,
        tables: usize,
        examples: usize,
    ) -> Result<(Vec<TableCandidate>, Vec<Example>), CatalogRequestError> {
        let policy = self.authorize(principal, Action::ReadCatalog)?;
        let q = q.trim();
        if q.is_empty() {
            return Err(invalid("q", "give a question or keywords".into(), Vec::new()));
        }
        crate::text::check("q", q, self.config.max_question_chars)
            .map_err(|m| invalid("q", m, Vec::new()))?;
        let catalog = self.catalog();
        let history = self.history();
        let visible = policy.visible_catalog(&catalog);
        let mut retrieved = retrieve(
            q,
            &visible,
            crate::retrieve::VectorSearch { embedder: self.embedder.as_ref(), store: self.store.as_ref() },
            RetrievalBudget { tables, joined: 0, examples: examples.max(1) * 3, reuse: false },
            &crate::retrieve::Scope::default(),
            &self.trust_signals(&catalog, &history),
            &|sql| visible_to(sql, &catalog, policy, principal),
        )?;
        retrieved.examples.truncate(examples);
        Ok((retrieved.tables, retrieved.examples))
    }

    fn search(
        &self,
        principal: &Principal,
        q: &str,
        tables: usize,
        examples: usize,
    ) -> Result<(Vec<TableCandidate>, Vec<Example>), CatalogRequestError> {
        let started = Instant::now();
        let result = self.search_inner(principal, q, tables, examples);
        self.audited(
            principal,
            AuditKind::Access,
            json!({ "action": "search" }),
            (None, None),
            started,
            result,
        )
    }
}

/// Names of the fields an edit changed, e.g. `["description", "columns.email.tags"]`.
fn changed_fields(
    before: &crate::catalog::TableGovernance,
    after: &crate::catalog::TableGovernance,
) -> Vec<String> {
    let mut changed = Vec::new();
    let b = serde_json::to_value(before).unwrap_or_default();
    let a = serde_json::to_value(after).unwrap_or_default();
    for key in ["description", "tier", "owner", "domain", "freshness", "deprecated"] {
        if b.get(key) != a.get(key) {
            changed.push(key.to_string());
        }
    }
    let columns: BTreeSet<&String> = before.columns.keys().chain(after.columns.keys()).collect();
    for column in columns {
        let (old, new) = (
            before.columns.get(column).cloned().unwrap_or_default(),
            after.columns.get(column).cloned().unwrap_or_default(),
        );
        if old.description != new.description {
            changed.push(format!("columns.{column}.description"));
        }
        if old.tags != new.tags {
            changed.push(format!("columns.{column}.tags"));
        }
        if old.allowed_values != new.allowed_values {
            changed.push(format!("columns.{column}.allowed_values"));
        }
    }
    changed
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
