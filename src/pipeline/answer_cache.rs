//! Answers to questions asked before, kept while nothing they were made from has changed.
//!
//! The same question, asked by the same role with the same attributes and options on the same
//! day, over the same catalog and history, gets the same SQL from the model (greedy decoding,
//! fixed sampling seeds). So the SQL the model wrote is kept and, on a repeat, validated under
//! the caller's policy and run again; when its rows are the rows of the kept answer, that
//! answer is served without generating. Anything else (a steward edit, an ingest, another day,
//! rows that changed) is a miss, and the question is answered from scratch.
//!
//! It owns no policy: the pipeline validates the kept SQL like any other.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use super::{Answer, AskOptions, HistoryState};
use crate::catalog::Catalog;
use crate::policy::Principal;

/// Answers kept at most (the oldest goes first).
const CAPACITY: usize = 64;

/// What makes two asks the same: everything but the catalog and history, which are compared
/// by identity (each edit or ingest replaces them whole); a follow-up also by the conversation
/// it follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Key(String);

impl Key {
    pub(super) fn new(question: &str, principal: &Principal, options: &AskOptions, today: &str) -> Key {
        let folded: Vec<String> = question.split_whitespace().map(str::to_lowercase).collect();
        let attributes: Vec<String> = principal.attributes.iter().map(|(k, v)| format!("{k}={v}")).collect();
        Key(format!(
            "{}\u{1f}{}\u{1f}{}\u{1f}{:?}\u{1f}{:?}\u{1f}{:?}\u{1f}{:?}\u{1f}{}",
            principal.role,
            attributes.join(","),
            today,
            options.tables,
            options.samples,
            options.exclude_sql_keys,
            options.follows,
            folded.join(" "),
        ))
    }
}

/// One kept answer: what it was made from, the model's SQL, and the answer served.
#[derive(Clone)]
pub(super) struct Kept {
    key: Key,
    catalog: Arc<Catalog>,
    history: Arc<HistoryState>,
    /// The SQL as the model wrote it (validated again on each use).
    pub draft: String,
    pub answer: Answer,
}

#[derive(Default)]
pub(super) struct AnswerCache {
    entries: Mutex<VecDeque<Kept>>,
}

impl AnswerCache {
    /// The kept answer for `key`, if it was made from this very catalog and history.
    pub(super) fn get(&self, key: &Key, catalog: &Arc<Catalog>, history: &Arc<HistoryState>) -> Option<Kept> {
        let entries = self.entries.lock().ok()?;
        entries
            .iter()
            .find(|e| &e.key == key && Arc::ptr_eq(&e.catalog, catalog) && Arc::ptr_eq(&e.history, history))
            .cloned()
    }

    /// Keeps an answer (replacing one kept under the same key).
    pub(super) fn put(
        &self,
        key: Key,
        catalog: Arc<Catalog>,
        history: Arc<HistoryState>,
        draft: String,
        answer: Answer,
    ) {
        let Ok(mut entries) = self.entries.lock() else { return };
        entries.retain(|e| e.key != key);
        // Answers made from a catalog or history no longer in force can never be served.
        entries.retain(|e| Arc::ptr_eq(&e.catalog, &catalog) && Arc::ptr_eq(&e.history, &history));
        if entries.len() >= CAPACITY {
            entries.pop_front();
        }
        entries.push_back(Kept { key, catalog, history, draft, answer });
    }
}
