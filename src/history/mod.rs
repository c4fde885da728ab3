//! The query history: analysts' past SQL, read from query logs (JSONL or CSV: `sql`, `author`,
//! `timestamp`, optional `duration_ms`, `rows`, `success`, `title`, `question`, `verified`),
//! checked by the validator, read for structure (`structure`), described as intent (`intent`);
//! `crate::ingest` stores them so that each query is processed once. Pure of storage: it
//! imports neither the metadata database nor the pipeline.
//!
//! Malformed lines are reported with their line numbers and skipped; they never abort a load.

pub mod intent;
pub mod structure;
pub mod verdict;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::catalog::Catalog;
use crate::policy::{Policy, Principal};
use crate::validate::{validate, DraftSql};
use structure::{JoinEdge, QueryStructure};

/// One entry of a query log as written by the warehouse's query logger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoggedQuery {
    pub sql: String,
    pub author: String,
    /// ISO 8601, e.g. `2026-10-03T08:15:00Z`.
    pub timestamp: String,
    #[serde(default)]
    pub duration_ms: Option<u64>,
    #[serde(default)]
    pub rows: Option<u64>,
    /// False when the query failed; absent means it ran.
    #[serde(default)]
    pub success: Option<bool>,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub question: Option<String>,
    /// Confirmed correct by a person (a curated query, or analyst feedback).
    #[serde(default)]
    pub verified: Option<bool>,
}

impl LoggedQuery {
    /// The identity of a log entry: the same SQL by the same author at the same time is the
    /// same entry, however often it is ingested.
    pub fn content_hash(&self) -> String {
        let mut hasher = Sha256::new();
        for part in [&self.sql, &self.author, &self.timestamp] {
            hasher.update((part.len() as u64).to_le_bytes());
            hasher.update(part.as_bytes());
        }
        format!("{:x}", hasher.finalize())
    }

    /// Why a field of this entry cannot be taken as text (a NUL or control character, or an
    /// over-long value), if one cannot.
    pub fn text_problem(&self) -> Option<String> {
        let fields = [
            ("sql", Some(self.sql.as_str()), MAX_SQL_CHARS),
            ("author", Some(self.author.as_str()), MAX_FIELD_CHARS),
            ("timestamp", Some(self.timestamp.as_str()), MAX_FIELD_CHARS),
            ("title", self.title.as_deref(), MAX_FIELD_CHARS),
            ("question", self.question.as_deref(), MAX_FIELD_CHARS),
        ];
        fields.into_iter().find_map(|(name, value, max)| crate::text::check(name, value?, max).err())
    }

    pub fn succeeded(&self) -> bool {
        self.success != Some(false)
    }
}

/// Whether `principal` may be shown a past query — its SQL, its question, evidence that quotes
/// it — on any surface (search, the library, prompt examples, reuse, the fine-tuning export):
/// only one the principal could run, and that touches no column the role reads masked (its
/// literals could spell out the values the mask hides).
pub fn visible_to(sql: &str, catalog: &Catalog, policy: &Policy, principal: &Principal) -> bool {
    match validate(&DraftSql::new(sql), catalog, policy, principal) {
        Ok(query) => !query.warnings().iter().any(|w| w.code == crate::validate::ViolationCode::MaskedColumn),
        Err(_) => false,
    }
}

/// Longest SQL text of a log entry, in characters.
const MAX_SQL_CHARS: usize = 100_000;
/// Longest author, timestamp, title or question of a log entry, in characters.
const MAX_FIELD_CHARS: usize = 2_000;

/// The identity of a query's text for the evaluation's leakage guard: SHA-256 of the SQL
/// with case and whitespace folded and a trailing semicolon dropped, so `SELECT a FROM t;` and
/// `select a  from t` are the same query.
pub fn sql_key(sql: &str) -> String {
    let folded: Vec<String> = sql.split_whitespace().map(str::to_lowercase).collect();
    format!("{:x}", Sha256::digest(folded.join(" ").trim_end_matches(';').trim_end().as_bytes()))
}

/// Where a query's intent text came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IntentSource {
    /// Written by the local LLM from the SQL and its domain context.
    Llm,
    /// Built deterministically from the query's structure and domain context (no LLM).
    Structure,
}

/// A past query that passed validation against the current catalog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PastQuery {
    pub logged: LoggedQuery,
    /// `LoggedQuery::content_hash`.
    pub hash: String,
    /// Catalog tables it reads.
    pub tables: Vec<String>,
    pub structure: QueryStructure,
    /// What the query answers, in words: embedded for search.
    pub intent: String,
    pub intent_source: IntentSource,
    /// Confirmed correct by a person (feedback).
    pub verified: bool,
    /// Its line in the log it came from (1-based; 0 when unknown).
    pub line: usize,
}

impl PastQuery {
    /// What this query answers, in words, for embedding and for prompts.
    pub fn intent_text(&self) -> &str {
        &self.intent
    }

    /// `verdict::pair_key` of its question (empty when it has none) and SQL.
    pub fn pair_key(&self) -> String {
        verdict::pair_key(self.logged.question.as_deref().unwrap_or_default(), &self.logged.sql)
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct SkippedLine {
    pub line: usize,
    pub reason: String,
}

/// How often a normalised query ran, and how it went.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct QueryUsage {
    pub runs: usize,
    pub success_rate: f32,
    pub last_run: String,
    pub authors: usize,
}

/// The usable queries of a log and the lines skipped.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
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

/// The format of a query log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line.
    Jsonl,
    /// A header row naming the fields, then one query per record (quoted fields may span lines).
    Csv,
}

impl LogFormat {
    /// The format a file name suggests: `.csv` is CSV, anything else JSONL.
    pub fn of_path(path: &Path) -> LogFormat {
        if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("csv")) {
            LogFormat::Csv
        } else {
            LogFormat::Jsonl
        }
    }
}

/// The entries of a log with their line numbers, and the lines that are not entries.
pub fn parse_log(text: &str, format: LogFormat) -> (Vec<(usize, LoggedQuery)>, Vec<SkippedLine>) {
    let mut entries = Vec::new();
    let mut skipped = Vec::new();
    let mut check = |line: usize, entry: LoggedQuery| {
        if entry.sql.trim().is_empty() {
            skipped.push(SkippedLine { line, reason: "the sql field is empty".into() });
        } else if let Some(reason) = entry.text_problem() {
            skipped.push(SkippedLine { line, reason });
        } else if crate::calendar::day_number(entry.timestamp.get(..10).unwrap_or(&entry.timestamp)).is_none()
        {
            skipped.push(SkippedLine {
                line,
                reason: format!(
                    "timestamp '{}' is not ISO 8601 (e.g. 2026-10-03T08:15:00Z)",
                    entry.timestamp
                ),
            });
        } else {
            entries.push((line, entry));
        }
    };
    match format {
        LogFormat::Jsonl => {
            let mut bad = Vec::new();
            for (index, line) in text.lines().enumerate() {
                if line.trim().is_empty() {
                    continue;
                }
                match serde_json::from_str::<LoggedQuery>(line) {
                    Ok(entry) => check(index + 1, entry),
                    Err(e) => bad
                        .push(SkippedLine { line: index + 1, reason: format!("not a valid log entry: {e}") }),
                }
            }
            skipped.extend(bad);
        }
        LogFormat::Csv => {
            let mut bad = Vec::new();
            let mut reader = csv::ReaderBuilder::new().from_reader(text.as_bytes());
            match reader.headers().cloned() {
                Err(e) => bad.push(SkippedLine { line: 1, reason: format!("no CSV header row: {e}") }),
                Ok(headers) => {
                    for record in reader.records() {
                        let record = match record {
                            Ok(record) => record,
                            Err(e) => {
                                let line = e.position().map(|p| p.line() as usize).unwrap_or(0);
                                bad.push(SkippedLine {
                                    line,
                                    reason: format!("not a valid CSV record: {e}"),
                                });
                                continue;
                            }
                        };
                        let line = record.position().map(|p| p.line() as usize).unwrap_or(0);
                        match record.deserialize::<LoggedQuery>(Some(&headers)) {
                            Ok(entry) => check(line, entry),
                            Err(e) => {
                                bad.push(SkippedLine { line, reason: format!("not a valid log record: {e}") })
                            }
                        }
                    }
                }
            }
            skipped.extend(bad);
        }
    }
    skipped.sort_by_key(|s| s.line);
    (entries, skipped)
}

/// Validates one log entry against the catalog (the log is what analysts ran: checked for
/// validity, not for one role's policy) and reads its structure; the intent is described
/// from the structure. `Err` says why the entry cannot be used.
pub fn prepare(line: usize, logged: LoggedQuery, catalog: &Catalog) -> Result<PastQuery, String> {
    let policy = Policy::unrestricted();
    let principal = Principal::new(logged.author.clone(), policy.role());
    let valid = validate(&DraftSql::new(logged.sql.clone()), catalog, &policy, &principal)
        .map_err(|r| r.to_string())?;
    let structure = structure::analyze(&logged.sql, catalog).unwrap_or_default();
    let intent = intent::describe(&logged, &structure, catalog);
    Ok(PastQuery {
        hash: logged.content_hash(),
        tables: valid.tables().to_vec(),
        structure,
        intent,
        intent_source: IntentSource::Structure,
        verified: logged.verified == Some(true),
        logged,
        line,
    })
}

impl History {
    /// Reads a JSONL log file. A missing file is an error; an empty one is an empty history.
    pub fn load(path: &Path, catalog: &Catalog) -> Result<History, HistoryError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| HistoryError::Io { path: path.display().to_string(), source })?;
        Ok(History::parse(&text, catalog))
    }

    /// Parses JSONL text; every entry is validated against `catalog`.
    pub fn parse(text: &str, catalog: &Catalog) -> History {
        let (entries, mut skipped) = parse_log(text, LogFormat::Jsonl);
        let mut queries = Vec::new();
        for (line, logged) in entries {
            match prepare(line, logged, catalog) {
                Ok(query) => queries.push(query),
                Err(reason) => skipped.push(SkippedLine { line, reason }),
            }
        }
        skipped.sort_by_key(|s| s.line);
        History { queries, skipped }
    }

    /// Queries that ran successfully: what search and prompts may use.
    pub fn usable(&self) -> impl Iterator<Item = &PastQuery> {
        self.queries.iter().filter(|q| q.logged.succeeded())
    }

    /// Per normalised query: how often it ran, its success rate, last run, authors.
    pub fn usage(&self) -> BTreeMap<String, QueryUsage> {
        let mut runs: BTreeMap<String, (usize, usize, String, BTreeSet<&str>)> = BTreeMap::new();
        for q in &self.queries {
            let entry = runs.entry(q.structure.normalized_hash.clone()).or_default();
            entry.0 += 1;
            entry.1 += usize::from(q.logged.succeeded());
            if q.logged.timestamp > entry.2 {
                entry.2.clone_from(&q.logged.timestamp);
            }
            entry.3.insert(&q.logged.author);
        }
        runs.into_iter()
            .map(|(hash, (runs, ok, last_run, authors))| {
                (
                    hash,
                    QueryUsage {
                        runs,
                        success_rate: ok as f32 / runs as f32,
                        last_run,
                        authors: authors.len(),
                    },
                )
            })
            .collect()
    }

    /// Join edges seen in successful past queries, with how many queries used each.
    pub fn join_counts(&self) -> BTreeMap<JoinEdge, usize> {
        let mut counts = BTreeMap::new();
        for q in self.usable() {
            for edge in &q.structure.joins {
                *counts.entry(edge.clone()).or_insert(0) += 1;
            }
        }
        counts
    }
}
