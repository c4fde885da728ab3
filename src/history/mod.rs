//! The query history: analysts' past SQL, read from a JSONL log (one query per line: `sql`,
//! `author`, `timestamp`, optional `title` / `question`), checked by the validator, and turned
//! into the text that describes what each query answers.
//!
//! Malformed lines are reported with their line numbers and skipped; they never abort a load.

pub mod structure;

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::catalog::Catalog;
use crate::policy::{Policy, Principal};
use crate::validate::{validate, DraftSql};

/// One line of the log as written by the warehouse's query logger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoggedQuery {
    pub sql: String,
    pub author: String,
    pub timestamp: String,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub question: Option<String>,
}

/// A past query that passed validation against the current catalog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PastQuery {
    pub logged: LoggedQuery,
    /// Catalog tables it reads.
    pub tables: Vec<String>,
    /// Its line in the log (1-based).
    pub line: usize,
}

impl PastQuery {
    /// What this query answers, in words, for embedding and for prompts.
    pub fn intent_text(&self) -> String {
        let what =
            self.logged.question.as_deref().or(self.logged.title.as_deref()).unwrap_or("Past analyst query");
        format!("{what}. Reads {}.", self.tables.join(", "))
    }

    /// A short label: the question, else the title, else the start of the SQL.
    pub fn label(&self) -> String {
        self.logged
            .question
            .clone()
            .or_else(|| self.logged.title.clone())
            .unwrap_or_else(|| self.logged.sql.chars().take(80).collect())
    }
}

/// A line that could not be used, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SkippedLine {
    pub line: usize,
    pub reason: String,
}

/// The usable queries of a log and the lines skipped.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct History {
    pub queries: Vec<PastQuery>,
    pub skipped: Vec<SkippedLine>,
}

/// Errors reading a log file.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// The file could not be read.
    #[error("cannot read the query log {path}: {source}")]
    Io { path: String, source: std::io::Error },
}

impl History {
    /// Reads a JSONL log file. A missing file is an error; an empty one is an empty history.
    pub fn load(path: &Path, catalog: &Catalog) -> Result<History, HistoryError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| HistoryError::Io { path: path.display().to_string(), source })?;
        Ok(History::parse(&text, catalog))
    }

    /// Parses JSONL text; every line is validated against `catalog`.
    pub fn parse(text: &str, catalog: &Catalog) -> History {
        let mut history = History::default();
        let policy = Policy::unrestricted();
        for (index, line) in text.lines().enumerate() {
            let line_no = index + 1;
            if line.trim().is_empty() {
                continue;
            }
            let logged: LoggedQuery = match serde_json::from_str(line) {
                Ok(q) => q,
                Err(e) => {
                    history
                        .skipped
                        .push(SkippedLine { line: line_no, reason: format!("not a valid log entry: {e}") });
                    continue;
                }
            };
            // The log is what analysts ran: it is checked for validity, not for one role's policy.
            let principal = Principal::new(logged.author.clone(), policy.role());
            match validate(&DraftSql::new(logged.sql.clone()), catalog, &policy, &principal) {
                Ok(valid) => {
                    history.queries.push(PastQuery { tables: valid.tables().to_vec(), logged, line: line_no })
                }
                Err(refusal) => {
                    history.skipped.push(SkippedLine { line: line_no, reason: refusal.to_string() })
                }
            }
        }
        history
    }
}
