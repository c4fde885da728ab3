//! The history's requests: a query log ingested (`ingest`), a pair added or the history
//! refreshed after a verdict — each stored, embedded and searchable at once — and the questions
//! it suggests to ask (`suggestions`).

use std::collections::BTreeSet;

use serde_json::json;

use super::catalog_ops::invalid;
use super::*;
use crate::catalog::Catalog;
use crate::history::verdict;
use crate::history::{visible_to, LogFormat, PastQuery};
use crate::ingest::{ingest, IngestOptions, IngestReport};
use crate::metadata::{AuditKind, AuditRecord, MetadataError};
use crate::policy::Action;

/// A question worth asking, from the history: one the caller's role may run.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Suggestion {
    pub question: String,
    /// A person confirmed its SQL answers it.
    pub verified: bool,
    /// How many times it was asked.
    pub asked: usize,
    pub tables: Vec<String>,
}

/// The question a past query answered, else the title its author gave it.
fn titled(past: &PastQuery) -> Option<&str> {
    let label = past.logged.question.as_deref().or(past.logged.title.as_deref());
    label.map(str::trim).filter(|q| !q.is_empty())
}

impl Quarry {
    /// Up to `limit` questions to ask (a past query's question, else its title): with `after`
    /// (the question just answered), the past questions closest to it in intent, other than
    /// itself; without, the verified ones first, then the most asked. Built from the past
    /// queries the caller's role may run alone — their count, verification and tables — so a
    /// query the role may not run adds nothing, not even to a count.
    pub fn suggestions(
        &self,
        principal: &Principal,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Suggestion>, CatalogRequestError> {
        let after = after.map(str::trim).filter(|q| !q.is_empty());
        // Search first when there is a question: it authorises and audits a refusal.
        let close = match after {
            Some(after) => Some(self.search_queries(principal, after, limit * 3)?),
            None => None,
        };
        let policy = self.authorize(principal, Action::ReadCatalog)?;
        let catalog = self.catalog();
        let history = self.history();
        let mut by_question: BTreeMap<String, Suggestion> = BTreeMap::new();
        for past in history.history.usable() {
            let Some(question) = titled(past) else { continue };
            if !visible_to(&past.logged.sql, &catalog, policy, principal) {
                continue;
            }
            let suggestion = by_question.entry(question.to_lowercase()).or_insert_with(|| Suggestion {
                question: question.to_string(),
                verified: false,
                asked: 0,
                tables: past.tables.clone(),
            });
            suggestion.asked += 1;
            suggestion.verified |= past.verified;
        }
        let ranked: Vec<Suggestion> = match (after, close) {
            (Some(after), Some(close)) => {
                // Past queries with neither a question nor a title are labelled by their SQL:
                // they are in no entry, and are left out.
                let mut seen = BTreeSet::from([after.to_lowercase()]);
                close
                    .iter()
                    .filter(|e| seen.insert(e.label.to_lowercase()))
                    .filter_map(|e| by_question.get(&e.label.trim().to_lowercase()).cloned())
                    .collect()
            }
            _ => {
                let mut all: Vec<Suggestion> = by_question.into_values().collect();
                all.sort_by(|a, b| b.verified.cmp(&a.verified).then(b.asked.cmp(&a.asked)));
                all
            }
        };
        Ok(ranked.into_iter().take(limit).collect())
    }

    /// Adds a query log to the history: new entries are validated, described, stored, embedded
    /// and searchable at once. With `llm_intents`, the loaded model writes the intent texts.
    pub fn ingest_history(
        &self,
        principal: &Principal,
        text: &str,
        format: LogFormat,
        llm_intents: bool,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<IngestReport, CatalogRequestError> {
        let started = Instant::now();
        let result = self.ingest_history_inner(principal, text, format, llm_intents, progress);
        self.audited(
            principal,
            AuditKind::Edit,
            json!({ "action": "history_ingest" }),
            (None, None),
            started,
            result,
        )
    }

    fn ingest_history_inner(
        &self,
        principal: &Principal,
        text: &str,
        format: LogFormat,
        llm_intents: bool,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<IngestReport, CatalogRequestError> {
        let started = Instant::now();
        self.authorize(principal, Action::IngestHistory)?;
        // Each stored batch carries its own audit record, so that no entry is ever stored
        // without one (a crash after a batch loses neither); the summary follows.
        let batch_audit = self.edit_audit(principal, json!({ "action": "history_ingest_batch" }), started);
        let source = format!("ingest:{}", principal.name);
        let report = self.add_to_history(text, format, llm_intents, source, Some(batch_audit), progress)?;
        let mut record = self.edit_audit(
            principal,
            json!({ "action": "history_ingest", "read": report.read, "new": report.new,
                    "duplicates": report.duplicates, "skipped": report.skipped.len() }),
            started,
        );
        record.row_count = Some(report.new);
        self.metadata.audit(&record)?;
        Ok(report)
    }

    /// Stores, embeds and indexes new log entries; the history in force is replaced at once.
    /// The caller authorises; `audit` is written with each stored batch, in its transaction.
    pub(super) fn add_to_history(
        &self,
        text: &str,
        format: LogFormat,
        llm_intents: bool,
        source: String,
        audit: Option<AuditRecord>,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<IngestReport, CatalogRequestError> {
        let llm = match (llm_intents, self.llm.as_deref()) {
            (false, _) => None,
            (true, Some(llm)) => Some(llm),
            (true, None) => {
                return Err(invalid(
                    "llm_intents",
                    "no language model is loaded in this process".into(),
                    Vec::new(),
                ))
            }
        };
        let _ingest = self.ingest_lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let catalog = self.catalog();
        let options = IngestOptions { llm, source, audit };
        let (report, _) = ingest(text, format, &catalog, &self.metadata, &options, progress)?;
        self.refresh_history(&catalog)?;
        Ok(report)
    }

    /// Reloads the stored history and the verdicts on it, makes it the history in force, and
    /// re-indexes the past queries that are new or whose standing changed. Callers hold the
    /// ingest lock.
    pub(super) fn refresh_history(&self, catalog: &Catalog) -> Result<(), MetadataError> {
        let before: BTreeMap<String, bool> =
            self.history().history.queries.iter().map(|q| (q.hash.clone(), q.verified)).collect();
        let mut history = crate::ingest::load(&self.metadata, catalog)?;
        let reviews = verdict::apply(&mut history, &self.metadata.verdicts()?, self.config.promote_votes);
        let touched: Vec<&PastQuery> =
            history.usable().filter(|q| before.get(&q.hash) != Some(&q.verified)).collect();
        if let Err(e) = crate::index::add_queries(
            catalog,
            &history,
            &touched,
            self.embedder.as_ref(),
            self.store.as_ref(),
        ) {
            tracing::error!("indexing past queries: {e}");
            let _ = self.store.set_fingerprint(None);
        }
        let state = Arc::new(super::HistoryState::new(history, reviews));
        match self.history.write() {
            Ok(mut guard) => *guard = state,
            Err(poisoned) => *poisoned.into_inner() = state,
        }
        Ok(())
    }
}
