//! Steward edits (`edit_catalog`): a table's governance and the glossary. Each edit is checked
//! field by field (`stewardship`), may not lift a restriction without `edit_policy`, must keep
//! every role's policy valid, and is recorded as a revision with its audit record in one
//! transaction before the new catalog is swapped in and what changed is re-indexed.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;
use serde_json::{json, Value};

use super::catalog_ops::{invalid, CatalogRequestError, TableDetail};
use super::{Principal, Quarry};
use crate::catalog::{Catalog, GlossaryTerm, Table};
use crate::metadata::{AuditKind, NewRevision, RevisionTarget};
use crate::policy::{Action, Policy};
use crate::stewardship::{self, TablePatch};

/// What an edit did.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct EditOutcome {
    /// The revision recorded; `None` when the edit changed nothing.
    pub revision: Option<i64>,
    /// False when the vector index could not be updated (it is rebuilt at the next start).
    pub reindexed: bool,
    pub warnings: Vec<String>,
}

impl Quarry {
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
            if let Err(e) = self.reindex(&next, table) {
                tracing::error!("re-indexing table {}: {e}", table.name);
                outcome.reindexed = false;
                outcome.warnings.push(format!(
                    "the edit is saved, but the search index could not be updated ({e}); it is rebuilt at the next start"
                ));
            }
        }
        outcome
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
