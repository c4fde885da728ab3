//! Evaluation: execution accuracy scored the way the official Spider evaluation compares
//! results (rows as a multiset; order only when the gold query has ORDER BY), and the demo
//! suite of questions with hand-written gold SQL.
//!
//! Gold SQL goes through the same validator and executor as everything else: on the
//! workspace's warehouse, or on a SQLite copy of it when the golds are in SQLite's dialect and
//! the warehouse is not (`GoldSource`).

pub mod followups;
pub mod spider;

use serde::{Deserialize, Serialize};

use std::collections::BTreeMap;
use std::path::Path;

use crate::catalog::Catalog;
use crate::check::Level;
use crate::config::{Config, WarehouseLocation};
use crate::pipeline::{AskError, AskOptions, Principal, Quarry, Timings};
use crate::validate::{validate, DraftSql};
use crate::warehouse::{Executor, ResultSet, Warehouse};

/// The demo questions with gold SQL (TOML: `[[case]] question = …, gold = …`).
pub const DEMO_QUESTIONS: &str = include_str!("../demo/questions.toml");

/// One question and its gold SQL.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    pub question: String,
    pub gold: String,
    /// The day the question is asked (ISO date), for relative time phrases ("last month");
    /// absent: today.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub today: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseFile {
    case: Vec<Case>,
}

/// Errors while evaluating.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// The cases file is malformed.
    #[error("the evaluation cases are malformed: {0}")]
    Cases(String),
    /// A gold query failed; the case itself is wrong.
    #[error("gold SQL for \"{question}\" failed: {error}")]
    Gold { question: String, error: String },
    /// The SQLite copy the golds run on could not be opened.
    #[error("cannot open {path} to run the gold SQL on: {error}")]
    GoldCopy { path: String, error: String },
}

/// Where gold SQL runs.
pub enum GoldSource {
    /// The workspace's own warehouse: the golds are written in its dialect.
    Workspace,
    /// A SQLite copy of the warehouse, with its catalog: the demo's golds are SQLite SQL, and a
    /// PostgreSQL copy of the demo (`quarry demo --postgres`) is scored against what they
    /// return on the SQLite original.
    SqliteCopy { catalog: Box<Catalog>, executor: Executor },
}

impl GoldSource {
    /// The SQLite database at `path`, described by the workspace's governance files and steward
    /// edits as the warehouse is.
    pub fn sqlite_copy(config: &Config, path: &Path) -> Result<GoldSource, EvalError> {
        let error = |error: String| EvalError::GoldCopy { path: path.display().to_string(), error };
        if !path.is_file() {
            return Err(error(
                "no such file (quarry demo --postgres leaves the SQLite original in the workspace)".into(),
            ));
        }
        let mut sqlite = config.clone();
        sqlite.warehouse = WarehouseLocation::Sqlite(path.to_path_buf());
        sqlite.sources.clear();
        let warehouse =
            Warehouse::open(&sqlite.warehouse, &sqlite.sources).map_err(|e| error(e.to_string()))?;
        let metadata = crate::metadata::Metadata::open_location(&sqlite.metadata_location())
            .map_err(|e| error(e.to_string()))?;
        let loaded = crate::pipeline::load_catalog(&sqlite, &metadata).map_err(|e| error(e.to_string()))?;
        Ok(GoldSource::SqliteCopy {
            catalog: Box::new(loaded.catalog),
            executor: warehouse.executor(sqlite.execution_limits()),
        })
    }

    /// The rows of `gold` for `principal`, under the same policy as the answer's.
    pub(crate) fn rows(
        &self,
        quarry: &Quarry,
        gold: &str,
        principal: &Principal,
    ) -> Result<ResultSet, String> {
        match self {
            GoldSource::Workspace => {
                quarry.run_sql(gold, principal).map(|a| a.result).map_err(|e| e.to_string())
            }
            GoldSource::SqliteCopy { catalog, executor } => {
                let policy = quarry.policy_of(principal).map_err(|e| e.to_string())?;
                let query =
                    validate(&DraftSql::new(gold), catalog, policy, principal).map_err(|e| e.to_string())?;
                executor.run(&query).map_err(|e| e.to_string())
            }
        }
    }
}

/// Parses a TOML file of cases.
pub fn parse_cases(text: &str) -> Result<Vec<Case>, EvalError> {
    toml::from_str::<CaseFile>(text).map(|f| f.case).map_err(|e| EvalError::Cases(e.to_string()))
}

/// True when the query sorts its final result (the official evaluation then compares order).
pub fn has_order_by(sql: &str) -> bool {
    sql.to_lowercase().split_whitespace().collect::<Vec<_>>().windows(2).any(|w| w == ["order", "by"])
}

/// Same rows (as a multiset, or as a sequence when `ordered`), as the official Spider
/// evaluation compares them: the predicted columns may come in another order (some
/// permutation of them must match the gold columns, value for value), never in another number.
pub fn same_result(gold: &ResultSet, predicted: &ResultSet, ordered: bool) -> bool {
    if gold.rows.len() != predicted.rows.len() {
        return false;
    }
    if gold.rows.is_empty() {
        return true;
    }
    if gold.columns.len() != predicted.columns.len() {
        return false;
    }
    let gold_rows = gold.canonical_rows(true);
    let predicted_rows = predicted.canonical_rows(true);
    let width = gold.columns.len();
    let column = |rows: &[Vec<String>], i: usize| {
        let mut values: Vec<String> = rows.iter().map(|r| r.get(i).cloned().unwrap_or_default()).collect();
        values.sort();
        values
    };
    let gold_columns: Vec<Vec<String>> = (0..width).map(|i| column(&gold_rows, i)).collect();
    let predicted_columns: Vec<Vec<String>> = (0..width).map(|j| column(&predicted_rows, j)).collect();
    // For each gold column, the predicted columns holding the same values.
    let options: Vec<Vec<usize>> =
        gold_columns.iter().map(|g| (0..width).filter(|j| predicted_columns[*j] == *g).collect()).collect();
    let mut target = gold_rows.clone();
    if !ordered {
        target.sort();
    }
    let mut chosen = Vec::with_capacity(width);
    let mut tried = 0usize;
    permutations_match(&options, &mut chosen, &mut tried, &mut |mapping| {
        let mut rows: Vec<Vec<String>> =
            predicted_rows.iter().map(|r| mapping.iter().map(|j| r[*j].clone()).collect()).collect();
        if !ordered {
            rows.sort();
        }
        rows == target
    })
}

/// Tries each assignment of distinct predicted columns to gold columns (`options[i]`: those
/// that may stand for gold column `i`) until `matches` accepts one; gives up after 10,000.
fn permutations_match(
    options: &[Vec<usize>],
    chosen: &mut Vec<usize>,
    tried: &mut usize,
    matches: &mut dyn FnMut(&[usize]) -> bool,
) -> bool {
    if chosen.len() == options.len() {
        *tried += 1;
        return matches(chosen);
    }
    for &j in &options[chosen.len()] {
        if chosen.contains(&j) || *tried >= 10_000 {
            continue;
        }
        chosen.push(j);
        if permutations_match(options, chosen, tried, matches) {
            return true;
        }
        chosen.pop();
    }
    false
}

/// How one case went.
#[derive(Debug, Clone, Serialize)]
pub struct CaseResult {
    pub question: String,
    pub gold: String,
    pub predicted: Option<String>,
    pub correct: bool,
    pub error: Option<String>,
    pub repairs: usize,
    /// Readings the answer offered because its candidates disagreed (0: none offered).
    pub readings: usize,
    /// Whether one of the offered readings gave the gold result.
    pub reading_right: bool,
    /// The confidence the answer came with (none when it was refused or failed).
    pub confidence: Option<Level>,
    pub timings: Timings,
}

/// Totals of a run.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub cases: usize,
    pub correct: usize,
    /// Execution accuracy in percent.
    pub ex: f64,
    pub model: String,
    /// Median and 95th-percentile time to an answer, in milliseconds (answered questions).
    pub p50_ms: u64,
    pub p95_ms: u64,
    /// Answers that offered readings to choose from, those whose shown reading was right, and
    /// those with a right reading among the offered ones.
    pub clarified: usize,
    pub clarified_shown_right: usize,
    pub clarified_any_right: usize,
    /// EX by the confidence each answer came with (`by_confidence`).
    pub by_confidence: BTreeMap<String, Score>,
}

/// EX of one group of questions.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Score {
    pub questions: usize,
    pub correct: usize,
    pub ex: f64,
}

impl Score {
    pub(crate) fn add(&mut self, correct: bool) {
        self.questions += 1;
        self.correct += usize::from(correct);
        self.ex = 100.0 * self.correct as f64 / self.questions as f64;
    }
}

/// What "no answer" is called among the confidence levels (refused, failed, not understood).
const NO_ANSWER: &str = "no answer";

/// EX by the confidence the answers came with (`high`, `medium`, `low`, and `no answer`):
/// whether an answer marked high is right more often than one marked low, which is what the
/// confidence promises the analyst.
pub fn by_confidence(results: impl IntoIterator<Item = (Option<Level>, bool)>) -> BTreeMap<String, Score> {
    let mut scores: BTreeMap<String, Score> = BTreeMap::new();
    for (level, correct) in results {
        let name = level.map_or(NO_ANSWER, Level::name);
        scores.entry(name.to_string()).or_default().add(correct);
    }
    scores
}

/// `by_confidence`'s groups from high to no answer, for a report.
pub fn confidence_order(scores: &BTreeMap<String, Score>) -> Vec<(&String, &Score)> {
    let order = [Level::High.name(), Level::Medium.name(), Level::Low.name(), NO_ANSWER];
    let mut groups: Vec<(&String, &Score)> = scores.iter().collect();
    groups.sort_by_key(|(name, _)| order.iter().position(|o| o == name));
    groups
}

/// Asks `question` with `options` and compares the answer's rows with `gold`'s; the answer
/// too, when there is one.
pub(crate) fn score(
    quarry: &Quarry,
    principal: &Principal,
    question: &str,
    gold: &str,
    gold_source: &GoldSource,
    options: &AskOptions,
) -> Result<(CaseResult, Option<crate::pipeline::Answer>), EvalError> {
    let expected = gold_source
        .rows(quarry, gold, principal)
        .map_err(|error| EvalError::Gold { question: question.to_string(), error })?;
    Ok(match quarry.ask_with(question, principal, options) {
        Ok(answer) => (
            CaseResult {
                question: question.to_string(),
                gold: gold.to_string(),
                predicted: Some(answer.sql.clone()),
                correct: same_result(&expected, &answer.result, has_order_by(gold)),
                error: None,
                repairs: answer.repairs.len(),
                readings: answer.choices.len(),
                reading_right: answer.choices.iter().any(|c| {
                    quarry
                        .run_sql(&c.sql, principal)
                        .is_ok_and(|ran| same_result(&expected, &ran.result, has_order_by(gold)))
                }),
                confidence: Some(answer.confidence.level),
                timings: answer.timings.clone(),
            },
            Some(answer),
        ),
        Err(e) => {
            let predicted = match &e {
                AskError::Refused { sql, .. }
                | AskError::Execution { sql, .. }
                | AskError::Unanswerable { sql, .. } => Some(sql.clone()),
                _ => None,
            };
            let result = CaseResult {
                question: question.to_string(),
                gold: gold.to_string(),
                predicted,
                correct: false,
                error: Some(e.to_string()),
                repairs: 0,
                readings: 0,
                reading_right: false,
                confidence: None,
                timings: Timings::default(),
            };
            (result, None)
        }
    })
}

/// Asks every case's question and compares the answer's rows with the gold query's rows,
/// `jobs` questions at a time (above 1 only worth it with an LLM server that batches);
/// `progress` hears each result as it comes, with the case's index.
pub fn run_cases(
    quarry: &Quarry,
    cases: &[Case],
    gold_source: &GoldSource,
    jobs: usize,
    progress: impl FnMut(usize, &CaseResult) + Send,
) -> Result<(Vec<CaseResult>, Summary), EvalError> {
    // The evaluation asks as the local analyst does, under the same policy.
    let principal = Principal { name: "eval".to_string(), ..Principal::local() };
    let ask = |case: &Case| {
        // Neither the gold query nor a past query with the same SQL may help answer it.
        let options = AskOptions {
            exclude_sql_keys: vec![crate::history::sql_key(&case.gold)],
            today: case.today.clone(),
            ..AskOptions::default()
        };
        score(quarry, &principal, &case.question, &case.gold, gold_source, &options).map(|(result, _)| result)
    };
    let next = std::sync::atomic::AtomicUsize::new(0);
    let progress = std::sync::Mutex::new(progress);
    let slots: Vec<std::sync::Mutex<Option<Result<CaseResult, EvalError>>>> =
        cases.iter().map(|_| std::sync::Mutex::new(None)).collect();
    std::thread::scope(|scope| {
        for _ in 0..jobs.clamp(1, cases.len().max(1)) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(case) = cases.get(i) else { break };
                let result = ask(case);
                if let Ok(result) = &result {
                    let mut hear = progress.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                    (*hear)(i, result);
                }
                *slots[i].lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(result);
            });
        }
    });
    let results = slots
        .into_iter()
        .filter_map(|slot| slot.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner))
        .collect::<Result<Vec<CaseResult>, EvalError>>()?;
    let summary = summarise(quarry, &results);
    Ok((results, summary))
}

/// The totals of `results`.
pub(crate) fn summarise(quarry: &Quarry, results: &[CaseResult]) -> Summary {
    let correct = results.iter().filter(|r| r.correct).count();
    let mut times: Vec<u64> =
        results.iter().filter(|r| r.error.is_none()).map(|r| r.timings.total_ms).collect();
    times.sort_unstable();
    Summary {
        cases: results.len(),
        correct,
        ex: if results.is_empty() { 0.0 } else { 100.0 * correct as f64 / results.len() as f64 },
        model: quarry.model_id().to_string(),
        p50_ms: crate::bench::percentile(&times, 50.0),
        p95_ms: crate::bench::percentile(&times, 95.0),
        clarified: results.iter().filter(|r| r.readings > 0).count(),
        clarified_shown_right: results.iter().filter(|r| r.readings > 0 && r.correct).count(),
        clarified_any_right: results.iter().filter(|r| r.readings > 0 && r.reading_right).count(),
        by_confidence: by_confidence(results.iter().map(|r| (r.confidence, r.correct))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use serde_json::Value;

    fn rs(rows: Vec<Vec<Value>>) -> ResultSet {
        let width = rows.first().map(Vec::len).unwrap_or(0);
        ResultSet {
            columns: (0..width).map(|i| format!("c{i}")).collect(),
            rows,
            truncated: false,
            truncation: None,
            elapsed_ms: 0,
        }
    }

    #[test]
    fn multiset_comparison_ignores_order_but_not_duplicates() {
        let gold =
            rs(vec![vec![json!("a"), json!(1)], vec![json!("b"), json!(2)], vec![json!("b"), json!(2)]]);
        let reordered =
            rs(vec![vec![json!("b"), json!(2)], vec![json!("a"), json!(1)], vec![json!("b"), json!(2)]]);
        let deduplicated = rs(vec![vec![json!("a"), json!(1)], vec![json!("b"), json!(2)]]);
        let other_dupes =
            rs(vec![vec![json!("a"), json!(1)], vec![json!("a"), json!(1)], vec![json!("b"), json!(2)]]);
        assert!(same_result(&gold, &reordered, false));
        assert!(!same_result(&gold, &reordered, true));
        assert!(!same_result(&gold, &deduplicated, false));
        assert!(!same_result(&gold, &other_dupes, false));
    }

    #[test]
    fn columns_may_come_in_another_order_as_in_the_official_evaluation() {
        let gold = rs(vec![vec![json!("pro"), json!(3)], vec![json!("free"), json!(5)]]);
        let swapped = rs(vec![vec![json!(5), json!("free")], vec![json!(3), json!("pro")]]);
        let mixed = rs(vec![vec![json!(5), json!("pro")], vec![json!(3), json!("free")]]);
        assert!(same_result(&gold, &swapped, false));
        assert!(!same_result(&gold, &mixed, false), "values must stay in their rows");
        let ordered_gold = rs(vec![vec![json!("a"), json!(1)], vec![json!("b"), json!(2)]]);
        let ordered_swapped = rs(vec![vec![json!(1), json!("a")], vec![json!(2), json!("b")]]);
        let reversed = rs(vec![vec![json!(2), json!("b")], vec![json!(1), json!("a")]]);
        assert!(same_result(&ordered_gold, &ordered_swapped, true));
        assert!(!same_result(&ordered_gold, &reversed, true));
        let wider = rs(vec![vec![json!("pro"), json!(3), json!(0)], vec![json!("free"), json!(5), json!(0)]]);
        assert!(!same_result(&gold, &wider, false), "an extra column is another answer");
    }

    #[test]
    fn numbers_compare_by_value_and_text_is_not_a_number() {
        assert!(same_result(&rs(vec![vec![json!(3)]]), &rs(vec![vec![json!(3.0)]]), true));
        assert!(!same_result(&rs(vec![vec![json!(3)]]), &rs(vec![vec![json!("3")]]), true));
        assert!(!same_result(&rs(vec![vec![json!(2.5)]]), &rs(vec![vec![json!(2.4)]]), true));
        assert!(same_result(&rs(vec![]), &rs(vec![]), true));
    }

    #[test]
    fn order_by_is_detected_across_whitespace() {
        assert!(has_order_by("SELECT a FROM t ORDER BY a"));
        assert!(has_order_by("select a from t order\n  by a desc"));
        assert!(!has_order_by("SELECT border, bypass FROM t"));
    }

    #[test]
    fn demo_cases_parse() {
        let cases = parse_cases(DEMO_QUESTIONS).expect("demo questions parse");
        assert!(cases.len() >= 20, "need at least 20 demo questions, have {}", cases.len());
    }
}
