//! Several instances, one metadata store: what the other `quarry serve` processes wrote since
//! this one last looked — steward edits, ingested history, verdicts — taken in here.
//!
//! Each instance keeps the catalog and history in force in memory and its own search index;
//! the metadata store (PostgreSQL when several machines share it) is the truth. `take_in_changes`
//! compares the store's high-water marks with those last seen (one cheap query when nothing
//! changed) and rebuilds only what moved: the catalog from the revisions, re-embedding the tables
//! whose description changed; the history and its verdicts, re-indexing the past queries that are
//! new or changed standing.

use super::*;
use crate::catalog::Table;

/// What `take_in_changes` took in.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TakenIn {
    /// Tables whose governance changed (re-embedded).
    pub tables: Vec<String>,
    /// Whether the glossary or other catalog-wide edits changed.
    pub catalog: bool,
    /// Whether the history or its verdicts changed.
    pub history: bool,
}

impl TakenIn {
    pub fn is_empty(&self) -> bool {
        !self.catalog && !self.history
    }
}

impl Quarry {
    /// Takes in what other instances sharing this metadata store wrote since this one last
    /// looked. `quarry serve` calls it every `[metadata] poll_ms`; an instance's own edits are
    /// in force at once and come back here as no change.
    pub fn take_in_changes(&self) -> Result<TakenIn, MetadataError> {
        let marks = self.metadata.marks()?;
        let seen = *self.seen.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut taken = TakenIn::default();
        if marks.revisions != seen.revisions {
            let _edit = self.edit_lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            taken.tables = self.reload_catalog()?;
            taken.catalog = true;
        }
        if marks.history != seen.history || marks.verdicts != seen.verdicts {
            let _ingest = self.ingest_lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            self.refresh_history(&self.catalog())?;
            taken.history = true;
        }
        *self.seen.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = marks;
        if !taken.is_empty() {
            tracing::info!(tables = ?taken.tables, history = taken.history, "took in changes from the metadata store");
        }
        Ok(taken)
    }

    /// Rebuilds the catalog in force from the files and every stored revision, and re-embeds the
    /// tables that changed. A catalog that would break the role policies is not put in force
    /// (the edit that made it was checked on its instance; files differ only if the instances'
    /// files do). Callers hold the edit lock.
    fn reload_catalog(&self) -> Result<Vec<String>, MetadataError> {
        let (next, conflicts) =
            crate::stewardship::overlay(&self.files_catalog, &self.metadata.latest_revisions()?);
        if let Err(e) = crate::validate::check_roles(&self.config.policy, &next) {
            tracing::error!("steward edits from the metadata store break this instance's role policies, kept the catalog in force: {e}");
            return Ok(Vec::new());
        }
        let current = self.catalog();
        let changed: Vec<Table> =
            next.tables().filter(|t| current.table(&t.name) != Some(*t)).cloned().collect();
        let next = Arc::new(next);
        match self.catalog.write() {
            Ok(mut guard) => *guard = next.clone(),
            Err(poisoned) => *poisoned.into_inner() = next.clone(),
        }
        match self.conflicts.write() {
            Ok(mut guard) => *guard = conflicts,
            Err(poisoned) => *poisoned.into_inner() = conflicts,
        }
        for table in &changed {
            if let Err(e) = self.reindex(&next, table) {
                tracing::error!("re-indexing table {}: {e}", table.name);
            }
        }
        Ok(changed.into_iter().map(|t| t.name).collect())
    }

    /// Re-embeds one table in the search index; on failure the index fingerprint is removed, so
    /// the next start rebuilds the whole index.
    pub(super) fn reindex(&self, catalog: &Catalog, table: &Table) -> Result<(), IndexError> {
        crate::index::reindex_table(
            catalog,
            table,
            &self.history().history,
            self.embedder.as_ref(),
            self.store.as_ref(),
        )
        .inspect_err(|_| {
            let _ = self.store.set_fingerprint(None);
        })
    }
}
