//! Training data for fine-tuning the local model: question/SQL pairs written as the exact prompt
//! the runtime builds for each question (`Quarry::first_prompt`: the same retrieval, context
//! assembly and template, rendered by the model's own chat template) followed by the SQL the
//! model should answer. Pairs come from Spider train (schemas from `tables.json`; each question
//! is asked on its database, once cold and once with the database's other questions as
//! history) and from a workspace's history (verified pairs only, and only those every role
//! may be shown: a poisoned log line cannot teach the model a value a role may not read).
//! Deduplicated, split into train and held-out by database, and never
//! holding an evaluation question or a question whose SQL is an evaluation question's gold SQL.
//!
//! Beside them, synthetic pairs from the workspace's own catalog (`synthetic`): kept only when
//! their SQL validates and runs for the export's analyst with a non-trivial result, and every
//! role may be shown it.
//!
//! `training/train_lora.py` reads what this writes.

pub mod synthetic;

use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::catalog::spider::{create_empty_database, load_catalogs, read_questions, SpiderQuestion};
use crate::config::Config;
use crate::embed::Embedder;
use crate::eval::spider::{open_database, warm_history};
use crate::history::sql_key;
use crate::llm::PromptRenderer;
use crate::pipeline::{AskOptions, Principal, Quarry};

/// What to export.
#[derive(Debug, Clone)]
pub struct ExportOptions {
    /// Folder for `train.jsonl`, `heldout.jsonl` and `export.json`.
    pub out: PathBuf,
    /// The Spider folder (`train_spider_min.json`, `tables.json`; `dev.json` is the evaluation
    /// whose questions are kept out); None: no Spider pairs.
    pub spider: Option<PathBuf>,
    /// At most this many Spider train questions, a seeded sample (None: all).
    pub spider_limit: Option<usize>,
    /// Share of databases (and of history questions) held out, in percent.
    pub heldout_percent: u64,
    pub seed: u64,
    /// Synthetic pairs proposed per workspace table (0: none).
    pub synthetic_per_table: usize,
    /// Evaluation sets (folders with a `dev.json`) whose questions and gold SQL, every
    /// alternative included, never reach the export: Spider's dev set is always among them.
    pub keep_out: Vec<PathBuf>,
}

/// One training example, as a line of `train.jsonl` / `heldout.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingExample {
    pub id: String,
    /// `spider_train` or `history`.
    pub source: String,
    /// `cold` (no history), `warm` (the database's other questions as history) or `history`.
    pub variant: String,
    /// The Spider database, or `workspace`.
    pub db_id: String,
    pub question: String,
    pub sql: String,
    /// The rendered prompt, ending with the answer's beginning (`prompt::ASSISTANT_PREFIX`).
    pub prompt: String,
    /// What the model should write after the prompt: the SQL, the closing fence, end of turn.
    pub completion: String,
}

/// What an export wrote.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ExportReport {
    pub train: usize,
    pub heldout: usize,
    /// Examples by source and variant, e.g. `spider_train/cold`.
    pub by_kind: BTreeMap<String, usize>,
    /// Pairs left out because the question, or its SQL, belongs to an evaluation.
    pub excluded_for_evaluation: usize,
    pub duplicates: usize,
    /// Pairs (or whole databases) that gave no example, with the reason (the first 20).
    pub failed: Vec<String>,
    pub failed_count: usize,
    /// History queries left out as not verified (only verified pairs teach the model).
    pub unverified: usize,
    /// Synthetic pairs proposed, and those left out: refused or failed to run, empty or
    /// all-zero results, or not to be shown to every role.
    pub synthetic_proposed: usize,
    pub synthetic_refused: usize,
    pub synthetic_trivial: usize,
    pub synthetic_governed: usize,
    /// Verified history pairs left out because some role may not be shown them (they read
    /// a denied or masked column, or a table a role may not read): a model serves every role.
    pub governed: usize,
    pub train_sha256: String,
    pub heldout_sha256: String,
    /// The model whose chat template rendered the prompts.
    pub template_model: String,
    pub exported_at: String,
}

/// Errors of an export.
#[derive(Debug, thiserror::Error)]
pub enum FinetuneError {
    #[error("cannot write {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Catalog(#[from] crate::catalog::CatalogError),
    #[error(transparent)]
    Eval(#[from] crate::eval::EvalError),
    #[error(transparent)]
    Spider(#[from] crate::eval::spider::SpiderEvalError),
    #[error(transparent)]
    Llm(#[from] crate::llm::LlmError),
}

/// The questions and gold SQL of the evaluations, which training data must never contain.
pub struct EvaluationGuard {
    questions: HashSet<String>,
    sql_keys: HashSet<String>,
}

impl EvaluationGuard {
    /// The demo evaluation, and every `dev.json` in `eval_sets` (folders in Spider's layout:
    /// Spider dev, defog_dev …), each question with every acceptable gold SQL. A folder
    /// without `dev.json` is skipped.
    pub fn load(eval_sets: &[PathBuf]) -> Result<EvaluationGuard, FinetuneError> {
        let mut guard = EvaluationGuard { questions: HashSet::new(), sql_keys: HashSet::new() };
        for dev in eval_sets.iter().map(|s| s.join("dev.json")).filter(|p| p.is_file()) {
            for q in read_questions(&dev)? {
                for gold in q.golds() {
                    guard.add(&q.question, gold);
                }
            }
        }
        for case in crate::eval::parse_cases(crate::eval::DEMO_QUESTIONS)? {
            guard.add(&case.question, &case.gold);
        }
        Ok(guard)
    }

    /// How many distinct questions it keeps out.
    pub fn len(&self) -> usize {
        self.questions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.questions.is_empty()
    }

    fn add(&mut self, question: &str, sql: &str) {
        self.questions.insert(normalize_question(question));
        self.sql_keys.insert(sql_key(sql));
    }

    /// True when the pair is an evaluation question or has an evaluation question's SQL.
    pub fn excludes(&self, question: &str, sql: &str) -> bool {
        self.questions.contains(&normalize_question(question)) || self.sql_keys.contains(&sql_key(sql))
    }
}

/// `spider` and every evaluation set beside it (a sibling folder holding a `dev.json`, such as
/// defog_dev next to Spider): what an export keeps out by default.
pub fn evaluation_sets_beside(spider: &Path) -> Vec<PathBuf> {
    let mut sets = vec![spider.to_path_buf()];
    let siblings = spider.parent().and_then(|parent| std::fs::read_dir(parent).ok());
    for entry in siblings.into_iter().flatten().flatten() {
        let path = entry.path();
        if path.join("dev.json").is_file() && !sets.contains(&path) {
            sets.push(path);
        }
    }
    sets.sort();
    sets
}

/// A question folded for comparison: lower case, single spaces, no final punctuation.
pub fn normalize_question(question: &str) -> String {
    let folded: Vec<String> = question.split_whitespace().map(str::to_lowercase).collect();
    folded.join(" ").trim_end_matches(['?', '.', '!']).trim_end().to_string()
}

/// The answer the model should give: the SQL on one line of single spaces, the closing fence
/// the runtime stops at, and the end of the assistant's turn.
fn completion(sql: &str) -> String {
    let sql: Vec<&str> = sql.split_whitespace().collect();
    format!("{}\n{}<|im_end|>", sql.join(" ").trim_end_matches(';'), crate::prompt::STOP)
}

/// The catalog as every role sees it: tables each may read (none deprecated), columns each
/// reads unmasked, and sample values only where each may see them. (The tables' last dates
/// stay: they only place the synthetic questions' periods; no result reaches training data.)
fn seen_by_every_role(
    catalog: &crate::catalog::Catalog,
    policies: &[&crate::policy::Policy],
) -> crate::catalog::Catalog {
    use crate::policy::ColumnRule;
    catalog.restricted(|table| {
        if table.deprecated.is_some() {
            return None;
        }
        let mut common = table.clone();
        for policy in policies {
            let seen = policy.browsable(table)?;
            common.columns.retain(|c| policy.column_rule(c) == ColumnRule::Read);
            for column in &mut common.columns {
                if seen.column(&column.name).is_none_or(|s| s.sample_values.is_empty()) {
                    column.sample_values.clear();
                }
            }
        }
        let kept = |name: &str| common.columns.iter().any(|c| c.name.eq_ignore_ascii_case(name));
        let foreign_keys = common.foreign_keys.iter().filter(|fk| kept(&fk.column)).cloned().collect();
        common.foreign_keys = foreign_keys;
        Some(common)
    })
}

/// A result worth learning from: some row holds a value other than NULL and 0.
fn non_trivial(result: &crate::warehouse::ResultSet) -> bool {
    result.rows.iter().flatten().any(|v| match v {
        serde_json::Value::Null => false,
        serde_json::Value::Number(n) => n.as_f64() != Some(0.0),
        serde_json::Value::String(s) => !s.is_empty(),
        _ => true,
    })
}

/// A number from 0 to 99 fixed by `text`: which split a database or question falls in.
fn bucket(text: &str) -> u64 {
    let digest = Sha256::digest(text.as_bytes());
    u64::from_le_bytes(digest[..8].try_into().unwrap_or_default()) % 100
}

/// One pair to add: (source, variant, database), question, SQL, the day it is asked on, and
/// what decides its split.
struct Pair<'a> {
    kind: (&'a str, &'a str, &'a str),
    question: &'a str,
    sql: &'a str,
    today: Option<&'a str>,
    split_key: &'a str,
}

/// Collects examples, dropping duplicates and evaluation pairs.
struct Collector<'g> {
    guard: &'g EvaluationGuard,
    renderer: &'g PromptRenderer,
    seen: HashSet<(String, String, String)>,
    train: Vec<TrainingExample>,
    heldout: Vec<TrainingExample>,
    report: ExportReport,
}

impl Collector<'_> {
    /// Counts a pair or database that gave no example, keeping the first reasons.
    fn fail(&mut self, reason: String) {
        self.report.failed_count += 1;
        if self.report.failed.len() < 20 {
            self.report.failed.push(reason);
        }
    }

    /// Builds and keeps one example; `pair.split_key` decides train or held-out.
    fn add(&mut self, quarry: &Quarry, principal: &Principal, pair: Pair, heldout_percent: u64) {
        let Pair { kind: (source, variant, db_id), question, sql, today, split_key } = pair;
        if self.guard.excludes(question, sql) {
            self.report.excluded_for_evaluation += 1;
            return;
        }
        if !self.seen.insert((variant.to_string(), normalize_question(question), sql_key(sql))) {
            self.report.duplicates += 1;
            return;
        }
        // The pair's own SQL is never its example (as the evaluation asks).
        let options = AskOptions {
            exclude_sql_keys: vec![sql_key(sql)],
            today: today.map(str::to_string),
            ..AskOptions::default()
        };
        let rendered = quarry
            .first_prompt(question, principal, &options)
            .map_err(|e| e.to_string())
            .and_then(|prompt| self.renderer.render(&prompt).map_err(|e| e.to_string()));
        let prompt = match rendered {
            Ok(prompt) => prompt,
            Err(e) => {
                self.fail(format!("{db_id}: {question}: {e}"));
                return;
            }
        };
        let example = TrainingExample {
            id: format!("{source}-{variant}-{}", &sql_key(&format!("{db_id}\n{question}\n{sql}"))[..16]),
            source: source.to_string(),
            variant: variant.to_string(),
            db_id: db_id.to_string(),
            question: question.trim().to_string(),
            sql: sql.trim().to_string(),
            prompt,
            completion: completion(sql),
        };
        *self.report.by_kind.entry(format!("{source}/{variant}")).or_default() += 1;
        if bucket(split_key) < heldout_percent {
            self.heldout.push(example);
        } else {
            self.train.push(example);
        }
    }
}

/// Writes the training data; `workspace` adds its history; `progress` hears each database.
pub fn export(
    options: &ExportOptions,
    base: &Config,
    workspace: Option<&Quarry>,
    embedder: Arc<dyn Embedder>,
    progress: &mut dyn FnMut(&str),
) -> Result<ExportReport, FinetuneError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| FinetuneError::Io { path, source }
    };
    std::fs::create_dir_all(&options.out).map_err(io(&options.out))?;
    let renderer = PromptRenderer::load(&base.model)?;
    let eval_sets: Vec<PathBuf> = options.spider.iter().chain(&options.keep_out).cloned().collect();
    let guard = EvaluationGuard::load(&eval_sets)?;
    let mut collector = Collector {
        guard: &guard,
        renderer: &renderer,
        seen: HashSet::new(),
        train: Vec::new(),
        heldout: Vec::new(),
        report: ExportReport::default(),
    };
    let principal = Principal { name: "finetune-export".to_string(), ..Principal::local() };

    if let Some(spider) = &options.spider {
        let mut questions = read_questions(&spider.join("train_spider_min.json"))?;
        if let Some(limit) = options.spider_limit {
            questions.shuffle(&mut ChaCha8Rng::seed_from_u64(options.seed));
            questions.truncate(limit);
        }
        let catalogs = load_catalogs(&spider.join("tables.json"))?;
        let work = options.out.join(".work");
        let _ = std::fs::remove_dir_all(&work);
        std::fs::create_dir_all(work.join("warehouses")).map_err(io(&work))?;
        // Per database, in the order the questions come.
        let mut by_db: BTreeMap<String, Vec<SpiderQuestion>> = BTreeMap::new();
        for q in questions {
            by_db.entry(q.db_id.clone()).or_default().push(q);
        }
        for (done, (db, of_db)) in by_db.iter().enumerate() {
            progress(&format!("spider {}/{}: {db}", done + 1, by_db.len()));
            let Some(catalog) = catalogs.get(db) else {
                collector.fail(format!("{db}: not in tables.json"));
                continue;
            };
            let warehouse = work.join("warehouses").join(format!("{db}.sqlite"));
            if let Err(e) = create_empty_database(catalog, &warehouse) {
                collector.fail(format!("{db}: {e}"));
                continue;
            }
            for (variant, history) in [("cold", None), ("warm", Some(warm_history(of_db, db)))] {
                let quarry = open_database(
                    base,
                    crate::config::WarehouseLocation::Sqlite(warehouse.clone()),
                    db,
                    history,
                    &work.join("workspaces"),
                    embedder.clone(),
                    None,
                )?;
                for q in of_db {
                    let pair = Pair {
                        kind: ("spider_train", variant, db),
                        question: &q.question,
                        sql: &q.query,
                        today: None,
                        split_key: db,
                    };
                    collector.add(&quarry, &principal, pair, options.heldout_percent);
                }
            }
        }
        let _ = std::fs::remove_dir_all(&work);
    }

    if let Some(quarry) = workspace {
        progress("workspace history");
        let history = quarry.history();
        let catalog = quarry.catalog();
        // A model serves every role: it learns only what each of them may be shown.
        let readers: Vec<(&crate::policy::Policy, Principal)> = quarry
            .config()
            .policy
            .roles()
            .map(|policy| {
                // Any principal of the role: its row filters' attributes bound to a value.
                let mut reader = Principal::new("finetune-export", policy.role());
                for parameter in policy.row_filters().iter().flat_map(|f| f.parameters()) {
                    reader.attributes.insert(parameter, String::new());
                }
                (policy, reader)
            })
            .collect();
        let shown_to_every_role = |sql: &str| {
            readers.iter().all(|(policy, reader)| crate::history::visible_to(sql, &catalog, policy, reader))
        };
        for past in history.history.usable() {
            let question = past.logged.question.as_deref().unwrap_or_default();
            if !past.verified || question.trim().is_empty() {
                collector.report.unverified += 1;
                continue;
            }
            if !shown_to_every_role(&past.logged.sql) {
                collector.report.governed += 1;
                continue;
            }
            let pair = Pair {
                kind: ("history", "history", "workspace"),
                question,
                sql: &past.logged.sql,
                today: None,
                split_key: question,
            };
            collector.add(quarry, &principal, pair, options.heldout_percent);
        }

        if options.synthetic_per_table > 0 {
            progress("synthetic pairs from the workspace's catalog");
            let policies: Vec<&crate::policy::Policy> = readers.iter().map(|(policy, _)| *policy).collect();
            let common = seen_by_every_role(&catalog, &policies);
            let proposed =
                synthetic::candidates(&common, &|_| true, options.synthetic_per_table, options.seed);
            collector.report.synthetic_proposed = proposed.len();
            let mut seen_sql = HashSet::new();
            for candidate in &proposed {
                if !seen_sql.insert(sql_key(&candidate.sql)) {
                    collector.report.duplicates += 1;
                    continue;
                }
                if !shown_to_every_role(&candidate.sql) {
                    collector.report.synthetic_governed += 1;
                    continue;
                }
                match quarry.run_sql(&candidate.sql, &principal) {
                    Err(e) => {
                        collector.report.synthetic_refused += 1;
                        collector.fail(format!("synthetic: {}: {e}", candidate.sql));
                        continue;
                    }
                    Ok(answer) if !non_trivial(&answer.result) => {
                        collector.report.synthetic_trivial += 1;
                        continue;
                    }
                    Ok(_) => {}
                }
                let pair = Pair {
                    kind: ("synthetic", candidate.pattern, "workspace"),
                    question: &candidate.question,
                    sql: &candidate.sql,
                    today: candidate.today.as_deref(),
                    split_key: &candidate.question,
                };
                collector.add(quarry, &principal, pair, options.heldout_percent);
            }
        }
    }

    let mut report = std::mem::take(&mut collector.report);
    for (name, examples, digest) in [
        ("train.jsonl", &collector.train, &mut report.train_sha256),
        ("heldout.jsonl", &collector.heldout, &mut report.heldout_sha256),
    ] {
        let path = options.out.join(name);
        let mut text = String::new();
        for example in examples {
            text.push_str(
                &serde_json::to_string(example).map_err(|e| FinetuneError::Io {
                    path: path.clone(),
                    source: std::io::Error::other(e),
                })?,
            );
            text.push('\n');
        }
        std::fs::write(&path, &text).map_err(io(&path))?;
        *digest = format!("{:x}", Sha256::digest(text.as_bytes()));
    }
    report.train = collector.train.len();
    report.heldout = collector.heldout.len();
    report.template_model = base.model_name();
    report.exported_at = crate::calendar::now();
    let path = options.out.join("export.json");
    let mut file = std::fs::File::create(&path).map_err(io(&path))?;
    let json = serde_json::to_string_pretty(&report).unwrap_or_default();
    file.write_all(json.as_bytes()).map_err(io(&path))?;
    Ok(report)
}
