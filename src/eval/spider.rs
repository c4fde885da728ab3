//! The Spider evaluation: Spider dev questions asked of their own database through Quarry
//! (`cold`: schema and catalog only; `warm`: with the other questions of the database as query
//! history, leakage-guarded; `enterprise`: the database first found by retrieval across the
//! merged catalog of all 166 Spider databases) or through the plain `baseline` prompt, scored by
//! execution the way the official evaluation compares results, by the official difficulty
//! classes, and summarised. With `Options::postgres`, each database is answered on a PostgreSQL
//! copy of it (schema `<db>`, read by a role that may only read) and its golds, SQLite SQL,
//! run on the SQLite original.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

mod report;

use super::{has_order_by, same_result, GoldSource};
use crate::bench::MergedIndex;
pub use crate::catalog::spider::{read_questions, SpiderQuestion};
use crate::config::{Config, WarehouseLocation};
use crate::embed::Embedder;
use crate::history::{sql_key, structure};
use crate::llm::{ChatPrompt, Generation, GenerationParams, Llm, LlmError};
use crate::pipeline::{AskError, AskOptions, Principal, Quarry};
use crate::policy::PolicySet;
use crate::prompt;
use crate::retrieve::{retrieve, RetrievalBudget, Scope, TrustSignals};
use crate::warehouse::{copy_sqlite, grant_read, PostgresUrl};
pub use report::{append_result, difficulty, markdown, read_results, summarize, QuestionResult, Summary};

/// How questions are answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Quarry with the database's catalog and no history: the standard setting.
    Cold,
    /// Quarry with the database's other dev questions as history; never the question itself
    /// or one with identical gold SQL.
    Warm,
    /// Retrieval across the merged catalog of every Spider database (~900 tables) picks the
    /// database; the question is then answered there as in `cold`. A wrong pick is a wrong
    /// answer.
    Enterprise,
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
            "enterprise" => Ok(Mode::Enterprise),
            "baseline" => Ok(Mode::Baseline),
            other => Err(format!("unknown mode '{other}': use cold, warm, enterprise or baseline")),
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Cold => "cold",
            Mode::Warm => "warm",
            Mode::Enterprise => "enterprise",
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
    #[error(
        "cannot copy database '{db}' to PostgreSQL: {message}. --postgres must name a role that may \
         create schemas in that database and grant on them; --postgres-reader a login in it"
    )]
    Copy { db: String, message: String },
    #[error("cannot load the model: {0}")]
    Llm(#[from] crate::llm::LlmError),
    #[error("cannot index the merged catalog: {0}")]
    Merged(#[from] crate::bench::BenchError),
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
    /// Candidates per question (`--samples`); 1: one greedy answer.
    pub samples: usize,
    /// Questions asked at once (`--jobs`); each worker has its own workspaces.
    pub jobs: usize,
    /// Only the questions of this category (`--category`, e.g. `gen:ratio`).
    pub category: Option<String>,
    /// Answer on PostgreSQL copies of the databases (`--postgres`), not on the SQLite files.
    pub postgres: Option<OnPostgres>,
}

/// PostgreSQL copies to answer on: each database of a run is copied (once per run) into the
/// schema of its name as `owner`, a role that may create schemas, which grants `reader` the
/// right to read it; Quarry answers as `reader`, which must not be able to write.
#[derive(Debug, Clone)]
pub struct OnPostgres {
    pub owner: PostgresUrl,
    pub reader: PostgresUrl,
}

impl OnPostgres {
    /// Copies `db` (its SQLite file `sqlite`) into schema `db` and lets the reader read it;
    /// returns the copy's notes (columns typed by their data, keys the rows break).
    fn copy(&self, sqlite: &Path, db: &str) -> Result<Vec<String>, SpiderEvalError> {
        let error = |message: String| SpiderEvalError::Copy { db: db.to_string(), message };
        let report = copy_sqlite(sqlite, &self.owner, db).map_err(|e| error(e.to_string()))?;
        let reader = self.reader.user().ok_or_else(|| error(format!("{} names no user", self.reader)))?;
        grant_read(&self.owner, db, &reader).map_err(|e| error(e.to_string()))?;
        Ok(report.notes)
    }
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

pub fn database_path(data: &Path, db: &str) -> PathBuf {
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

/// Opens a workspace over one Spider database (`warehouse`: its SQLite file, or a PostgreSQL
/// copy; the workspace in `workdir/<db>`), with the model and retrieval settings of `base`;
/// `history` is the query log of a warm run.
pub fn open_database(
    base: &Config,
    warehouse: WarehouseLocation,
    db: &str,
    history: Option<String>,
    workdir: &Path,
    embedder: Arc<dyn Embedder>,
    llm: Option<Arc<dyn Llm>>,
) -> Result<Quarry, SpiderEvalError> {
    let dir = workdir.join(db);
    let io = |source| SpiderEvalError::Io { path: dir.clone(), source };
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("governance")).map_err(io)?;
    let mut config = Config::for_workspace(&dir);
    config.warehouse = warehouse;
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
    config.retrieval_joined_tables = base.retrieval_joined_tables;
    config.retrieval_examples = base.retrieval_examples;
    config.retrieval_columns = base.retrieval_columns;
    config.answer = base.answer;
    // Join hints count every past query, the excluded one too: off, so nothing leaks.
    config.retrieval_join_hints = 0;
    config.row_cap = 100_000;
    config.policy = PolicySet::default();
    Quarry::open(config, embedder, llm)
        .map_err(|e| SpiderEvalError::Open { db: db.to_string(), message: e.to_string() })
}

/// A model wrapper that counts each worker's generations and tokens, failed answers included.
struct Metered {
    inner: Arc<dyn Llm>,
    calls: AtomicUsize,
    prompt_tokens: AtomicUsize,
    completion_tokens: AtomicUsize,
}

impl Metered {
    fn new(inner: Arc<dyn Llm>) -> Metered {
        Metered {
            inner,
            calls: AtomicUsize::new(0),
            prompt_tokens: AtomicUsize::new(0),
            completion_tokens: AtomicUsize::new(0),
        }
    }

    /// Calls and tokens since the last take.
    fn take(&self) -> (usize, usize, usize) {
        (
            self.calls.swap(0, Ordering::Relaxed),
            self.prompt_tokens.swap(0, Ordering::Relaxed),
            self.completion_tokens.swap(0, Ordering::Relaxed),
        )
    }
}

impl Llm for Metered {
    fn model_id(&self) -> &str {
        self.inner.model_id()
    }

    fn generate(&self, prompt: &ChatPrompt, params: &GenerationParams) -> Result<Generation, LlmError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let generation = self.inner.generate(prompt, params)?;
        self.prompt_tokens.fetch_add(generation.prompt_tokens, Ordering::Relaxed);
        self.completion_tokens.fetch_add(generation.completion_tokens, Ordering::Relaxed);
        Ok(generation)
    }

    fn generate_batch(
        &self,
        prompt: &ChatPrompt,
        params: &[GenerationParams],
    ) -> Result<Vec<Generation>, LlmError> {
        self.calls.fetch_add(params.len(), Ordering::Relaxed);
        let generations = self.inner.generate_batch(prompt, params)?;
        for generation in &generations {
            self.prompt_tokens.fetch_add(generation.prompt_tokens, Ordering::Relaxed);
            self.completion_tokens.fetch_add(generation.completion_tokens, Ordering::Relaxed);
        }
        Ok(generations)
    }
}

/// What every worker shares.
struct Shared<'a> {
    options: &'a Options,
    base: &'a Config,
    questions: &'a [SpiderQuestion],
    embedder: Arc<dyn Embedder>,
    /// The merged catalog's index (enterprise mode).
    merged: Option<MergedIndex>,
    /// The databases copied to PostgreSQL so far (with `Options::postgres`); the lock is held
    /// while one is copied, so each is copied once.
    copied: Mutex<BTreeSet<String>>,
}

impl Shared<'_> {
    /// Where `db` is answered: its SQLite file, or its PostgreSQL copy (made on first use).
    fn warehouse(&self, db: &str) -> Result<WarehouseLocation, SpiderEvalError> {
        let sqlite = database_path(&self.options.data, db);
        let Some(postgres) = &self.options.postgres else { return Ok(WarehouseLocation::Sqlite(sqlite)) };
        let mut copied = self.copied.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if !copied.contains(db) {
            for note in postgres.copy(&sqlite, db)? {
                tracing::info!("{db} on PostgreSQL: {note}");
            }
            copied.insert(db.to_string());
        }
        Ok(WarehouseLocation::Postgres { url: postgres.reader.clone(), schema: db.to_string() })
    }
}

/// One worker: its model meter and the one workspace it has open, with where its golds run
/// (each holds vector-index thread pools; a worker moves through the questions database by
/// database).
struct Worker<'a> {
    shared: &'a Shared<'a>,
    llm: Arc<Metered>,
    workdir: PathBuf,
    open: Option<(String, Quarry, GoldSource)>,
}

impl Worker<'_> {
    /// The workspace of `db`, opened (and the previous one closed) when it is not the open one.
    fn workspace(&mut self, db: &str) -> Result<(&Quarry, &GoldSource), SpiderEvalError> {
        if !matches!(&self.open, Some((open, ..)) if open == db) {
            self.open = None;
            let shared = self.shared;
            let history = (shared.options.mode == Mode::Warm).then(|| warm_history(shared.questions, db));
            let warehouse = shared.warehouse(db)?;
            let on_postgres = matches!(warehouse, WarehouseLocation::Postgres { .. });
            let quarry = open_database(
                shared.base,
                warehouse,
                db,
                history,
                &self.workdir,
                shared.embedder.clone(),
                Some(self.llm.clone()),
            )?;
            // Golds are SQLite SQL: on a PostgreSQL copy they run on the original.
            let golds = if on_postgres {
                GoldSource::sqlite_copy(quarry.config(), &database_path(&shared.options.data, db))
                    .map_err(|e| SpiderEvalError::Open { db: db.to_string(), message: e.to_string() })?
            } else {
                GoldSource::Workspace
            };
            self.open = Some((db.to_string(), quarry, golds));
        }
        match &self.open {
            Some((_, quarry, golds)) => Ok((quarry, golds)),
            None => Err(SpiderEvalError::Open { db: db.to_string(), message: "it was closed".into() }),
        }
    }

    /// Asks one question and scores it.
    fn evaluate(&mut self, index: usize) -> Result<QuestionResult, SpiderEvalError> {
        let shared = self.shared;
        let q = &shared.questions[index];
        let mode = shared.options.mode;
        let mut result = QuestionResult {
            index,
            db_id: q.db_id.clone(),
            difficulty: q.sql.as_ref().map(difficulty).unwrap_or_default().to_string(),
            category: q.category.clone(),
            question: q.question.clone(),
            gold: q.query.clone(),
            predicted: None,
            correct: false,
            outcome: String::new(),
            error: None,
            gold_tables: Vec::new(),
            chosen_tables: Vec::new(),
            repairs: 0,
            attempts: 0,
            prompt_tokens: 0,
            completion_tokens: 0,
            total_ms: 0,
            routed_db: None,
            readings: 0,
            reading_right: false,
            confidence: None,
        };
        let principal = Principal { name: "eval".to_string(), ..Principal::local() };
        let started = Instant::now();
        // Enterprise: the database whose table retrieval ranks first across the merged catalog.
        let mut db = q.db_id.clone();
        if let Some(merged) = &shared.merged {
            let ranked = retrieve(
                &q.question,
                &merged.catalog,
                crate::retrieve::VectorSearch {
                    embedder: shared.embedder.as_ref(),
                    store: merged.store.as_ref(),
                },
                RetrievalBudget { tables: 1, joined: 0, examples: 0, reuse: false },
                &Scope::default(),
                &TrustSignals::default(),
                // Benchmark schemas: no governed past queries to hide.
                &|_| true,
            );
            let routed = ranked
                .ok()
                .and_then(|r| r.tables.first().and_then(|t| merged.database_of(&t.name)).map(str::to_string));
            result.routed_db = routed.clone();
            db = routed.unwrap_or_default();
        }
        let llm = self.llm.clone();
        let (quarry, gold_source) = self.workspace(&q.db_id)?;
        let catalog = quarry.catalog();
        result.gold_tables = structure::analyze(&q.query, &catalog)
            .map(|s| s.tables.iter().map(|t| t.to_lowercase()).collect::<BTreeSet<_>>().into_iter().collect())
            .unwrap_or_default();
        // Every acceptable gold that runs here; the question is scored when one does.
        let mut golds = Vec::new();
        let mut gold_error = None;
        for sql in q.golds() {
            match gold_source.rows(quarry, sql, &principal) {
                Ok(rows) => golds.push((rows, has_order_by(sql))),
                Err(e) => gold_error = gold_error.or(Some(e)),
            }
        }
        if golds.is_empty() {
            result.outcome = "gold_failed".into();
            result.error = gold_error;
            return Ok(result);
        }
        if db != q.db_id {
            // Answering on another database cannot be right (a coincidentally equal count
            // would be luck, not an answer): scored wrong without asking.
            result.outcome = "wrong_database".into();
            result.total_ms = started.elapsed().as_millis() as u64;
            return Ok(result);
        }
        llm.take();
        let answer = match mode {
            Mode::Baseline => {
                result.chosen_tables = catalog.tables().map(|t| t.name.to_lowercase()).collect();
                let params = GenerationParams::greedy(quarry.config().max_tokens, prompt::STOP);
                match llm.generate(&prompt::baseline(&q.question, &catalog), &params) {
                    Err(e) => Err(AskError::from(e)),
                    Ok(generation) => {
                        let draft = prompt::extract_sql(&generation.text);
                        quarry.run_sql(draft.text(), &principal).map(|a| (a.sql, a.result, 0))
                    }
                }
            }
            Mode::Cold | Mode::Warm | Mode::Enterprise => {
                let options = AskOptions {
                    exclude_sql_keys: q.golds().into_iter().map(sql_key).collect(),
                    samples: Some(shared.options.samples),
                    ..AskOptions::default()
                };
                let answer = quarry.ask_with(&q.question, &principal, &options);
                match &answer {
                    Ok(a) => {
                        result.chosen_tables = a.candidates.iter().map(|c| c.name.to_lowercase()).collect();
                        result.readings = a.choices.len();
                        result.confidence = Some(a.confidence.level);
                        result.reading_right = a.choices.iter().any(|c| {
                            quarry.run_sql(&c.sql, &principal).is_ok_and(|ran| {
                                golds.iter().any(|(gold, ordered)| same_result(gold, &ran.result, *ordered))
                            })
                        });
                    }
                    // What was offered, for a failed answer too (retrieval is deterministic).
                    Err(_) => {
                        if let Ok(retrieved) = quarry.retrieval(&q.question, &principal, &options) {
                            result.chosen_tables =
                                retrieved.tables.iter().map(|c| c.name.to_lowercase()).collect();
                        }
                    }
                }
                answer.map(|a| (a.sql, a.result, a.repairs.len()))
            }
        };
        result.total_ms = started.elapsed().as_millis() as u64;
        (result.attempts, result.prompt_tokens, result.completion_tokens) = llm.take();
        match answer {
            Ok((sql, rows, repairs)) => {
                result.correct = golds.iter().any(|(gold, ordered)| same_result(gold, &rows, *ordered));
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
                    AskError::Unanswerable { .. } => "unanswerable".into(),
                    _ => "generation".into(),
                };
                if let AskError::Refused { sql, .. }
                | AskError::Execution { sql, .. }
                | AskError::Unanswerable { sql, .. } = &e
                {
                    result.predicted = Some(sql.clone());
                }
                result.error = Some(e.to_string());
            }
        }
        Ok(result)
    }
}

/// Runs the evaluation with `options.jobs` workers, each with a model from `load_llm` (one
/// shared server client, or a model of its own): each result is handed to `record` as it
/// comes (for the JSONL and the progress bar); returns every result, those of `options.done`
/// first, and how many questions were skipped for a missing database.
pub fn run(
    options: &Options,
    base: &Config,
    embedder: Arc<dyn Embedder>,
    load_llm: &(dyn Fn() -> Result<Arc<dyn Llm>, LlmError> + Sync),
    record: &mut dyn FnMut(&QuestionResult, usize, usize) -> Result<(), SpiderEvalError>,
) -> Result<(Vec<QuestionResult>, usize), SpiderEvalError> {
    let questions = read_questions(&options.data.join("dev.json"))?;
    let (mut chosen, skipped) = select(&questions, &options.data, options.limit, options.seed);
    if let Some(category) = &options.category {
        chosen.retain(|i| questions[*i].category.as_deref() == Some(category.as_str()));
    }
    let done: BTreeSet<usize> = options.done.iter().map(|r| r.index).collect();
    let todo: Vec<usize> = chosen.iter().copied().filter(|i| !done.contains(i)).collect();
    let merged = if options.mode == Mode::Enterprise {
        let catalogs = crate::catalog::spider::load_catalogs(&options.data.join("tables.json"))?;
        let location = crate::vector_store::VectorsLocation::Embedded(options.workdir.join("merged"));
        Some(MergedIndex::build(&catalogs, embedder.as_ref(), &location)?)
    } else {
        None
    };
    let shared = Shared {
        options,
        base,
        questions: &questions,
        embedder,
        merged,
        copied: Mutex::new(BTreeSet::new()),
    };
    let mut results = options.done.clone();
    let total = chosen.len();
    let next = AtomicUsize::new(0);
    let jobs = options.jobs.clamp(1, todo.len().max(1));
    std::thread::scope(|scope| -> Result<(), SpiderEvalError> {
        let (sender, receiver) = std::sync::mpsc::channel::<Result<QuestionResult, SpiderEvalError>>();
        for job in 0..jobs {
            let (sender, shared, todo, next) = (sender.clone(), &shared, &todo, &next);
            scope.spawn(move || {
                let llm = match load_llm() {
                    Ok(llm) => Arc::new(Metered::new(llm)),
                    Err(e) => return sender.send(Err(e.into())).unwrap_or(()),
                };
                let workdir = shared.options.workdir.join(format!("worker-{job}"));
                let mut worker = Worker { shared, llm, workdir, open: None };
                // Questions in file order, so a worker tends to stay on one database.
                while let Some(&index) = todo.get(next.fetch_add(1, Ordering::Relaxed)) {
                    let outcome = worker.evaluate(index);
                    let failed = outcome.is_err();
                    if sender.send(outcome).is_err() || failed {
                        break;
                    }
                }
            });
        }
        drop(sender);
        for outcome in receiver {
            // On an error the receiver is dropped on return: each worker stops at its next send.
            results.push(outcome?);
            if let Some(last) = results.last() {
                record(last, results.len(), total)?;
            }
        }
        Ok(())
    })?;
    results.sort_by_key(|r| r.index);
    Ok((results, skipped))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::Level;

    fn q(db: &str, sql: &str, question: &str) -> SpiderQuestion {
        SpiderQuestion {
            db_id: db.into(),
            query: sql.into(),
            question: question.into(),
            sql: None,
            query_alternatives: Vec::new(),
            category: None,
        }
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
            difficulty: "easy".into(),
            category: None,
            question: String::new(),
            gold: String::new(),
            predicted: None,
            correct,
            outcome: outcome.into(),
            error: None,
            gold_tables: vec!["t".into(), "u".into()],
            chosen_tables: vec!["t".into()],
            repairs,
            attempts: 1 + repairs,
            prompt_tokens: 100,
            completion_tokens: 10,
            total_ms: ms,
            routed_db: None,
            readings: 0,
            reading_right: false,
            confidence: Some(Level::High),
        };
        let offered = |mut r: QuestionResult, right: bool| {
            (r.readings, r.reading_right) = (2, right);
            r
        };
        let unsure = |mut r: QuestionResult| {
            r.confidence = Some(Level::Low);
            r
        };
        let refused = |mut r: QuestionResult| {
            r.confidence = None;
            r
        };
        let results = vec![
            offered(result("a", true, "correct", 0, 10), true),
            unsure(offered(result("a", false, "wrong_result", 1, 20), true)),
            result("b", true, "correct", 1, 30),
            refused(result("b", false, "refused:unknown_column", 0, 40)),
            result("b", false, "gold_failed", 0, 0),
        ];
        let s = summarize(&results, Mode::Cold, "m", 3, 1);
        assert_eq!((s.questions, s.correct, s.gold_failed, s.skipped_no_database), (4, 2, 1, 3));
        assert!((s.ex - 50.0).abs() < 1e-9);
        assert!((s.table_recall - 0.5).abs() < 1e-9);
        assert!((s.valid - 0.75).abs() < 1e-9);
        assert_eq!((s.repaired, s.repaired_correct), (2, 1));
        assert_eq!(s.by_database["b"].questions, 2);
        assert_eq!(s.errors.get("refused:unknown_column"), Some(&1));
        assert_eq!((s.latency_p50_ms, s.latency_p95_ms), (30, 40));
        assert_eq!((s.clarified, s.clarified_shown_right, s.clarified_any_right), (2, 1, 2));
        let by = |level: &str| s.by_confidence.get(level).map(|g| (g.questions, g.correct));
        assert_eq!(
            (by("high"), by("low"), by("no answer"), by("medium")),
            (Some((2, 2)), Some((1, 0)), Some((1, 0)), None)
        );
        assert!(markdown(&s, "defog_dev").starts_with("# defog_dev, mode cold"));
        assert!(markdown(&s, "spider").contains("| confidence | questions | EX |\n|---|---|---|\n| high | 2 | 100.0% |\n| low | 1 | 0.0% |\n| no answer | 1 | 0.0% |"));
        assert!(markdown(&s, "spider").contains("| b | 2 | 50.0% |"));
        assert!(markdown(&s, "spider")
            .contains("| offered readings to choose from | 2 (1 shown right, 2 with a right reading) |"));
    }
}
