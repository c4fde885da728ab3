//! The Spider evaluation: Spider dev questions asked of their own database through Quarry
//! (`cold`: schema and catalog only; `warm`: with the other questions of the database as query
//! history, leakage-guarded) or through the plain `baseline` prompt, scored by execution the way
//! the official evaluation compares results, and summarised.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Instant;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::{has_order_by, same_result};
use crate::bench::percentile;
pub use crate::catalog::spider::{read_questions, SpiderQuestion};
use crate::config::Config;
use crate::embed::Embedder;
use crate::history::{sql_key, structure};
use crate::llm::{GenerationParams, Llm};
use crate::pipeline::{AskError, AskOptions, Principal, Quarry};
use crate::policy::PolicySet;
use crate::prompt;

/// How questions are answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Quarry with the database's catalog and no history: the standard setting.
    Cold,
    /// Quarry with the database's other dev questions as history; never the question itself
    /// or one with identical gold SQL.
    Warm,
    /// What a user would otherwise do: the whole schema in one plain prompt, no retrieval,
    /// no examples, no repair. Same model and validator.
    Baseline,
}

impl FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Mode, String> {
        match s {
            "cold" => Ok(Mode::Cold),
            "warm" => Ok(Mode::Warm),
            "baseline" => Ok(Mode::Baseline),
            other => Err(format!("unknown mode '{other}': use cold, warm or baseline")),
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Cold => "cold",
            Mode::Warm => "warm",
            Mode::Baseline => "baseline",
        })
    }
}

/// Errors that stop an evaluation (a question that fails is a result, not an error).
#[derive(Debug, thiserror::Error)]
pub enum SpiderEvalError {
    #[error("{path}: {message}")]
    Data { path: PathBuf, message: String },
    #[error(transparent)]
    Questions(#[from] crate::catalog::CatalogError),
    #[error("cannot write {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("cannot open the workspace for database '{db}': {message}")]
    Open { db: String, message: String },
}

/// How one question went: a line of the per-question JSONL.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuestionResult {
    /// Position in the questions file.
    pub index: usize,
    pub db_id: String,
    pub question: String,
    pub gold: String,
    /// The SQL that ran (or was refused), when the model wrote one.
    pub predicted: Option<String>,
    pub correct: bool,
    /// `wrong_result`, `refused:<violation code>`, `execution`, `generation`, `gold_failed`.
    pub outcome: String,
    pub error: Option<String>,
    pub gold_tables: Vec<String>,
    /// Tables offered to the model (retrieval's choice; every table in the baseline).
    pub chosen_tables: Vec<String>,
    pub repairs: usize,
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
    pub total_ms: u64,
}

/// EX of one group of questions.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Score {
    pub questions: usize,
    pub correct: usize,
    pub ex: f64,
}

impl Score {
    fn add(&mut self, correct: bool) {
        self.questions += 1;
        self.correct += usize::from(correct);
        self.ex = 100.0 * self.correct as f64 / self.questions as f64;
    }
}

/// The totals of a run.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub mode: Mode,
    pub model: String,
    pub questions: usize,
    pub correct: usize,
    /// Execution accuracy in percent over the questions whose gold SQL ran.
    pub ex: f64,
    /// Questions skipped because their database file is missing.
    pub skipped_no_database: usize,
    /// Questions whose gold SQL did not run here (not scored).
    pub gold_failed: usize,
    pub by_database: BTreeMap<String, Score>,
    /// Mean share of the gold tables among the tables offered to the model.
    pub table_recall: f64,
    /// Share of questions whose final SQL passed validation and ran.
    pub valid: f64,
    /// Questions that needed at least one repair round, and how many of those were right.
    pub repaired: usize,
    pub repaired_correct: usize,
    /// How the wrong answers went wrong (`outcome` counts).
    pub errors: BTreeMap<String, usize>,
    pub latency_p50_ms: u64,
    pub latency_p95_ms: u64,
    pub mean_prompt_tokens: f64,
    pub mean_completion_tokens: f64,
}

/// What to evaluate.
#[derive(Debug, Clone)]
pub struct Options {
    /// Spider folder: `dev.json`, `tables.json`, `database/<db>/<db>.sqlite`.
    pub data: PathBuf,
    pub mode: Mode,
    /// A seeded sample of this many questions (default: all).
    pub limit: Option<usize>,
    pub seed: u64,
    /// Where per-database workspaces are made.
    pub workdir: PathBuf,
    /// Results already on record (from `--resume`): their questions are not asked again.
    pub done: Vec<QuestionResult>,
}

/// The questions of a run: those with a database, in a seeded sample, in file order; and
/// how many were skipped for a missing database.
pub fn select(
    questions: &[SpiderQuestion],
    data: &Path,
    limit: Option<usize>,
    seed: u64,
) -> (Vec<usize>, usize) {
    let has_db = |q: &SpiderQuestion| database_path(data, &q.db_id).is_file();
    let mut chosen: Vec<usize> = (0..questions.len()).filter(|&i| has_db(&questions[i])).collect();
    let skipped = questions.len() - chosen.len();
    if let Some(limit) = limit {
        chosen.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
        chosen.truncate(limit);
        chosen.sort_unstable();
    }
    (chosen, skipped)
}

fn database_path(data: &Path, db: &str) -> PathBuf {
    data.join("database").join(db).join(format!("{db}.sqlite"))
}

/// The query log of a warm workspace: every question of `db`, gold SQL as the query and the
/// question as its label. The question under test is kept out at ask time by its SQL key
/// (`AskOptions::exclude_sql_key`), which also keeps out every question with identical SQL.
pub fn warm_history(questions: &[SpiderQuestion], db: &str) -> String {
    let mut log = String::new();
    for (i, q) in questions.iter().enumerate().filter(|(_, q)| q.db_id == db) {
        let entry = serde_json::json!({
            "sql": q.query,
            "author": "spider-dev",
            "timestamp": format!("2026-01-01T00:{:02}:{:02}Z", (i / 60) % 60, i % 60),
            "question": q.question,
        });
        log.push_str(&entry.to_string());
        log.push('\n');
    }
    log
}

/// Opens a workspace over one Spider database (in `workdir/<db>`), with the model and
/// retrieval settings of `base`; `history` is the query log of a warm run.
pub fn open_database(
    base: &Config,
    data: &Path,
    db: &str,
    history: Option<String>,
    workdir: &Path,
    embedder: Arc<dyn Embedder>,
    llm: Arc<dyn Llm>,
) -> Result<Quarry, SpiderEvalError> {
    let dir = workdir.join(db);
    let io = |source| SpiderEvalError::Io { path: dir.clone(), source };
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("governance")).map_err(io)?;
    let mut config = Config::for_workspace(&dir);
    config.warehouse = database_path(data, db);
    config.governance = dir.join("governance");
    config.demo = false;
    if let Some(log) = history {
        std::fs::write(&config.history, log).map_err(io)?;
    }
    config.model.clone_from(&base.model);
    config.assets.clone_from(&base.assets);
    config.threads = base.threads;
    config.context_tokens = base.context_tokens;
    config.max_tokens = base.max_tokens;
    config.max_repairs = base.max_repairs;
    config.retrieval_tables = base.retrieval_tables;
    config.retrieval_examples = base.retrieval_examples;
    config.retrieval_columns = base.retrieval_columns;
    // Join hints count every past query, the excluded one too: off, so nothing leaks.
    config.retrieval_join_hints = 0;
    config.row_cap = 100_000;
    config.policy = PolicySet::default();
    Quarry::open(config, embedder, Some(llm))
        .map_err(|e| SpiderEvalError::Open { db: db.to_string(), message: e.to_string() })
}

/// Asks one question and scores it.
fn evaluate(quarry: &Quarry, llm: &dyn Llm, mode: Mode, index: usize, q: &SpiderQuestion) -> QuestionResult {
    let principal = Principal { name: "eval".to_string(), ..Principal::local() };
    let catalog = quarry.catalog();
    let gold_tables: Vec<String> = structure::analyze(&q.query, &catalog)
        .map(|s| s.tables.iter().map(|t| t.to_lowercase()).collect::<BTreeSet<_>>().into_iter().collect())
        .unwrap_or_default();
    let mut result = QuestionResult {
        index,
        db_id: q.db_id.clone(),
        question: q.question.clone(),
        gold: q.query.clone(),
        predicted: None,
        correct: false,
        outcome: String::new(),
        error: None,
        gold_tables,
        chosen_tables: Vec::new(),
        repairs: 0,
        prompt_tokens: 0,
        completion_tokens: 0,
        total_ms: 0,
    };
    let gold = match quarry.run_sql(&q.query, &principal) {
        Ok(gold) => gold,
        Err(e) => {
            result.outcome = "gold_failed".into();
            result.error = Some(e.to_string());
            return result;
        }
    };
    let started = Instant::now();
    let answer = match mode {
        Mode::Baseline => {
            result.chosen_tables = catalog.tables().map(|t| t.name.to_lowercase()).collect();
            let params =
                GenerationParams { max_tokens: quarry.config().max_tokens, stop: vec![prompt::STOP.into()] };
            match llm.generate(&prompt::baseline(&q.question, &catalog), &params) {
                Err(e) => Err(AskError::from(e)),
                Ok(generation) => {
                    result.prompt_tokens = generation.prompt_tokens;
                    result.completion_tokens = generation.completion_tokens;
                    let draft = prompt::extract_sql(&generation.text);
                    quarry.run_sql(draft.text(), &principal).map(|a| (a.sql, a.result, 0))
                }
            }
        }
        Mode::Cold | Mode::Warm => {
            let options = AskOptions { exclude_sql_key: Some(sql_key(&q.query)) };
            let answer = quarry.ask_with(&q.question, &principal, &options);
            let elapsed = started.elapsed();
            match &answer {
                Ok(a) => {
                    result.chosen_tables = a.candidates.iter().map(|c| c.name.to_lowercase()).collect();
                    result.prompt_tokens = a.timings.prompt_tokens;
                    result.completion_tokens = a.timings.completion_tokens;
                }
                // What was offered, for a failed answer too (retrieval is deterministic).
                Err(_) => {
                    if let Ok(retrieved) = quarry.retrieval(&q.question, &principal, &options) {
                        result.chosen_tables =
                            retrieved.tables.iter().map(|c| c.name.to_lowercase()).collect();
                    }
                }
            }
            result.total_ms = elapsed.as_millis() as u64;
            answer.map(|a| (a.sql, a.result, a.repairs.len()))
        }
    };
    if mode == Mode::Baseline {
        result.total_ms = started.elapsed().as_millis() as u64;
    }
    match answer {
        Ok((sql, rows, repairs)) => {
            result.correct = same_result(&gold.result, &rows, has_order_by(&q.query));
            result.outcome = if result.correct { "correct".into() } else { "wrong_result".into() };
            result.predicted = Some(sql);
            result.repairs = repairs;
        }
        Err(e) => {
            result.outcome = match &e {
                AskError::Refused { refusal, .. } => format!(
                    "refused:{}",
                    refusal
                        .violations
                        .first()
                        .and_then(|v| serde_json::to_value(v.code).ok())
                        .and_then(|v| v.as_str().map(String::from))
                        .unwrap_or_default()
                ),
                AskError::Execution { .. } => "execution".into(),
                _ => "generation".into(),
            };
            if let AskError::Refused { sql, .. } | AskError::Execution { sql, .. } = &e {
                result.predicted = Some(sql.clone());
            }
            result.error = Some(e.to_string());
        }
    }
    result
}

/// Runs the evaluation: each result is handed to `record` as it comes (for the JSONL and the
/// progress bar); returns every result, those of `options.done` first.
pub fn run(
    options: &Options,
    base: &Config,
    embedder: Arc<dyn Embedder>,
    llm: Arc<dyn Llm>,
    record: &mut dyn FnMut(&QuestionResult, usize, usize) -> Result<(), SpiderEvalError>,
) -> Result<(Vec<QuestionResult>, usize), SpiderEvalError> {
    let questions = read_questions(&options.data.join("dev.json"))?;
    let (chosen, skipped) = select(&questions, &options.data, options.limit, options.seed);
    let done: BTreeSet<usize> = options.done.iter().map(|r| r.index).collect();
    let todo: Vec<usize> = chosen.iter().copied().filter(|i| !done.contains(i)).collect();
    let mut by_db: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for &i in &todo {
        by_db.entry(questions[i].db_id.as_str()).or_default().push(i);
    }
    let mut results = options.done.clone();
    let total = chosen.len();
    for (db, indices) in by_db {
        let history = (options.mode == Mode::Warm).then(|| warm_history(&questions, db));
        let quarry =
            open_database(base, &options.data, db, history, &options.workdir, embedder.clone(), llm.clone())?;
        for i in indices {
            let result = evaluate(&quarry, llm.as_ref(), options.mode, i, &questions[i]);
            results.push(result);
            if let Some(last) = results.last() {
                record(last, results.len(), total)?;
            }
        }
    }
    Ok((results, skipped))
}

/// Sums up results.
pub fn summarize(results: &[QuestionResult], mode: Mode, model: &str, skipped_no_database: usize) -> Summary {
    let scored: Vec<&QuestionResult> = results.iter().filter(|r| r.outcome != "gold_failed").collect();
    let n = scored.len().max(1) as f64;
    let mut by_database: BTreeMap<String, Score> = BTreeMap::new();
    let mut errors: BTreeMap<String, usize> = BTreeMap::new();
    let mut recall = 0.0;
    for r in &scored {
        by_database.entry(r.db_id.clone()).or_default().add(r.correct);
        if !r.correct {
            *errors.entry(r.outcome.clone()).or_default() += 1;
        }
        if !r.gold_tables.is_empty() {
            let found = r.gold_tables.iter().filter(|t| r.chosen_tables.contains(t)).count();
            recall += found as f64 / r.gold_tables.len() as f64;
        } else {
            recall += 1.0;
        }
    }
    let correct = scored.iter().filter(|r| r.correct).count();
    let mut latencies: Vec<u64> = scored.iter().map(|r| r.total_ms).collect();
    latencies.sort_unstable();
    let repaired: Vec<&&QuestionResult> = scored.iter().filter(|r| r.repairs > 0).collect();
    Summary {
        mode,
        model: model.to_string(),
        questions: scored.len(),
        correct,
        ex: 100.0 * correct as f64 / n,
        skipped_no_database,
        gold_failed: results.len() - scored.len(),
        by_database,
        table_recall: recall / n,
        valid: scored.iter().filter(|r| matches!(r.outcome.as_str(), "correct" | "wrong_result")).count()
            as f64
            / n,
        repaired: repaired.len(),
        repaired_correct: repaired.iter().filter(|r| r.correct).count(),
        errors,
        latency_p50_ms: percentile(&latencies, 50.0),
        latency_p95_ms: percentile(&latencies, 95.0),
        mean_prompt_tokens: scored.iter().map(|r| r.prompt_tokens).sum::<usize>() as f64 / n,
        mean_completion_tokens: scored.iter().map(|r| r.completion_tokens).sum::<usize>() as f64 / n,
    }
}

/// The summary as a Markdown report.
pub fn markdown(summary: &Summary) -> String {
    let mut out = format!(
        "# Spider dev, mode {} ({})\n\n| | |\n|---|---|\n| questions | {} |\n| EX | {:.1}% ({} correct) |\n\
         | table recall | {:.3} |\n| valid SQL | {:.1}% |\n| repaired | {} ({} then correct) |\n\
         | latency p50 / p95 | {} / {} ms |\n| tokens (prompt / completion) | {:.0} / {:.0} |\n\
         | skipped (no database) | {} |\n| gold SQL failed here | {} |\n\n## By database\n\n| database | questions | EX |\n|---|---|---|\n",
        summary.mode,
        summary.model,
        summary.questions,
        summary.ex,
        summary.correct,
        summary.table_recall,
        100.0 * summary.valid,
        summary.repaired,
        summary.repaired_correct,
        summary.latency_p50_ms,
        summary.latency_p95_ms,
        summary.mean_prompt_tokens,
        summary.mean_completion_tokens,
        summary.skipped_no_database,
        summary.gold_failed,
    );
    for (db, score) in &summary.by_database {
        out.push_str(&format!("| {db} | {} | {:.1}% |\n", score.questions, score.ex));
    }
    out.push_str("\n## Errors\n\n| outcome | questions |\n|---|---|\n");
    for (outcome, count) in &summary.errors {
        out.push_str(&format!("| {outcome} | {count} |\n"));
    }
    out
}

/// Reads results on record in a JSONL file (for `--resume`); a missing file is no results.
pub fn read_results(path: &Path) -> Result<Vec<QuestionResult>, SpiderEvalError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(SpiderEvalError::Io { path: path.to_path_buf(), source }),
    };
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(n, line)| {
            serde_json::from_str(line).map_err(|e| SpiderEvalError::Data {
                path: path.to_path_buf(),
                message: format!(
                    "line {}: not an evaluation result ({e}); delete the file or drop --resume",
                    n + 1
                ),
            })
        })
        .collect()
}

/// Appends one result to a JSONL file.
pub fn append_result(path: &Path, result: &QuestionResult) -> Result<(), SpiderEvalError> {
    let io = |source| SpiderEvalError::Io { path: path.to_path_buf(), source };
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(path).map_err(io)?;
    let line = serde_json::to_string(result).unwrap_or_default();
    writeln!(file, "{line}").map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(db: &str, sql: &str, question: &str) -> SpiderQuestion {
        SpiderQuestion { db_id: db.into(), query: sql.into(), question: question.into() }
    }

    #[test]
    fn warm_history_holds_the_database_questions_keyed_for_the_guard() {
        let questions = vec![
            q("a", "SELECT count(*) FROM singer", "How many singers?"),
            q("b", "SELECT 1", "other database"),
            q("a", "select count(*)  from singer;", "Count the singers."),
        ];
        let log = warm_history(&questions, "a");
        assert_eq!(log.lines().count(), 2);
        assert!(!log.contains("other database"));
        // Identical gold SQL, however spelled, has one key: excluding one excludes both.
        assert_eq!(sql_key(&questions[0].query), sql_key(&questions[2].query));
        assert_ne!(sql_key(&questions[0].query), sql_key("SELECT count(*) FROM concert"));
    }

    #[test]
    fn the_summary_counts_what_it_says() {
        let result = |db: &str, correct: bool, outcome: &str, repairs: usize, ms: u64| QuestionResult {
            index: 0,
            db_id: db.into(),
            question: String::new(),
            gold: String::new(),
            predicted: None,
            correct,
            outcome: outcome.into(),
            error: None,
            gold_tables: vec!["t".into(), "u".into()],
            chosen_tables: vec!["t".into()],
            repairs,
            prompt_tokens: 100,
            completion_tokens: 10,
            total_ms: ms,
        };
        let results = vec![
            result("a", true, "correct", 0, 10),
            result("a", false, "wrong_result", 1, 20),
            result("b", true, "correct", 1, 30),
            result("b", false, "refused:unknown_column", 0, 40),
            result("b", false, "gold_failed", 0, 0),
        ];
        let s = summarize(&results, Mode::Cold, "m", 3);
        assert_eq!((s.questions, s.correct, s.gold_failed, s.skipped_no_database), (4, 2, 1, 3));
        assert!((s.ex - 50.0).abs() < 1e-9);
        assert!((s.table_recall - 0.5).abs() < 1e-9);
        assert!((s.valid - 0.75).abs() < 1e-9);
        assert_eq!((s.repaired, s.repaired_correct), (2, 1));
        assert_eq!(s.by_database["b"].questions, 2);
        assert_eq!(s.errors.get("refused:unknown_column"), Some(&1));
        assert_eq!((s.latency_p50_ms, s.latency_p95_ms), (30, 40));
        assert!(markdown(&s).contains("| b | 2 | 50.0% |"));
    }
}
