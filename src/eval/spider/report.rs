//! A Spider run's record: one result per question (the JSONL lines, read back for
//! `--resume`), Spider's difficulty classes, and the summary with its Markdown report.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{Mode, SpiderEvalError};
use crate::bench::percentile;
use crate::check::Level;

/// How one question went: a line of the per-question JSONL.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuestionResult {
    /// Position in the questions file.
    pub index: usize,
    pub db_id: String,
    /// Spider's difficulty class of the gold SQL: easy, medium, hard or extra.
    #[serde(default)]
    pub difficulty: String,
    /// The question's category, where the data has one (defog's `gen:ratio`, …).
    #[serde(default)]
    pub category: Option<String>,
    pub question: String,
    pub gold: String,
    /// The SQL that ran (or was refused), when the model wrote one.
    pub predicted: Option<String>,
    pub correct: bool,
    /// `correct`, `wrong_result`, `wrong_database` (enterprise), `refused:<violation code>`,
    /// `execution`, `generation`, `gold_failed`.
    pub outcome: String,
    pub error: Option<String>,
    pub gold_tables: Vec<String>,
    /// Tables offered to the model (retrieval's choice; every table in the baseline).
    pub chosen_tables: Vec<String>,
    pub repairs: usize,
    /// Generations the question took (repairs and samples included), answered or not.
    #[serde(default)]
    pub attempts: usize,
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
    pub total_ms: u64,
    /// The database retrieval picked (enterprise mode).
    #[serde(default)]
    pub routed_db: Option<String>,
    /// Readings the answer offered because its candidates disagreed (0: none offered).
    #[serde(default)]
    pub readings: usize,
    /// Whether one of the offered readings gave a gold result (the analyst could choose it).
    #[serde(default)]
    pub reading_right: bool,
    /// The confidence the answer came with (none when it was refused or failed).
    #[serde(default)]
    pub confidence: Option<Level>,
}

use crate::eval::Score;

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
    /// EX by the questions' category, where the data has categories (defog_dev).
    pub by_category: BTreeMap<String, Score>,
    /// EX by Spider difficulty class (easy, medium, hard, extra).
    pub by_difficulty: BTreeMap<String, Score>,
    /// Enterprise mode: share of questions routed to their own database.
    pub routing_accuracy: Option<f64>,
    /// Candidates generated per question (1: greedy only).
    pub samples: usize,
    /// Mean generations per question.
    pub mean_attempts: f64,
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
    /// Answers that offered readings to choose from, those whose shown reading was right, and
    /// those with a right reading among the offered ones.
    pub clarified: usize,
    pub clarified_shown_right: usize,
    pub clarified_any_right: usize,
    /// EX by the confidence each answer came with (`eval::by_confidence`); questions routed to
    /// another database (enterprise) were not asked and are not counted.
    pub by_confidence: BTreeMap<String, Score>,
}

/// Spider's difficulty class of a gold query, by the official evaluation's rules
/// (`eval_hardness` of the Spider evaluation script), read from the `sql` field of `dev.json`:
/// it counts clauses and joins (component 1), nested queries and set operations
/// (component 2), and aggregates, select columns, conditions and group-by columns (others).
pub fn difficulty(sql: &serde_json::Value) -> &'static str {
    use serde_json::Value;
    let list = |v: &Value| v.as_array().cloned().unwrap_or_default();
    let every_other =
        |v: &Value, start: usize| list(v).into_iter().skip(start).step_by(2).collect::<Vec<_>>();
    // Spider's `has_agg`: the unit's first field is not 0 (agg id, or a NOT flag).
    let has_agg = |unit: &Value| match unit {
        Value::Array(fields) => match fields.first() {
            Some(Value::Bool(b)) => *b,
            Some(Value::Number(n)) => n.as_i64() != Some(0),
            Some(Value::Null) | None => false,
            Some(_) => true,
        },
        Value::Null => false,
        _ => true,
    };
    let from_conds = &sql["from"]["conds"];
    let (where_, having) = (&sql["where"], &sql["having"]);
    let conds: Vec<Value> =
        [every_other(from_conds, 0), every_other(where_, 0), every_other(having, 0)].concat();
    let connectors: Vec<Value> =
        [every_other(from_conds, 1), every_other(where_, 1), every_other(having, 1)].concat();
    const LIKE: i64 = 9;

    let table_units = list(&sql["from"]["table_units"]).len();
    let mut component1 = [
        !list(where_).is_empty(),
        !list(&sql["groupBy"]).is_empty(),
        !list(&sql["orderBy"]).is_empty(),
        !sql["limit"].is_null(),
    ]
    .iter()
    .filter(|b| **b)
    .count();
    component1 += table_units.saturating_sub(1);
    component1 += connectors.iter().filter(|c| c.as_str() == Some("or")).count();
    component1 += conds.iter().filter(|c| c[1].as_i64() == Some(LIKE)).count();

    let nested =
        conds.iter().map(|c| usize::from(c[3].is_object()) + usize::from(c[4].is_object())).sum::<usize>();
    let component2 =
        nested + ["intersect", "union", "except"].iter().filter(|k| sql[**k].is_object()).count();

    let select = list(&sql["select"][1]);
    let order_units: Vec<Value> = list(&sql["orderBy"][1])
        .iter()
        .flat_map(|unit| [unit[1].clone(), unit[2].clone()])
        .filter(|u| !u.is_null())
        .collect();
    let aggregates = select.iter().filter(|u| has_agg(u)).count()
        + every_other(where_, 0).iter().filter(|u| has_agg(u)).count()
        + list(&sql["groupBy"]).iter().filter(|u| has_agg(u)).count()
        + order_units.iter().filter(|u| has_agg(u)).count()
        + list(having).iter().filter(|u| has_agg(u)).count();
    let others = [aggregates > 1, select.len() > 1, list(where_).len() > 1, list(&sql["groupBy"]).len() > 1]
        .iter()
        .filter(|b| **b)
        .count();

    if component1 <= 1 && others == 0 && component2 == 0 {
        "easy"
    } else if (others <= 2 && component1 <= 1 && component2 == 0)
        || (component1 <= 2 && others < 2 && component2 == 0)
    {
        "medium"
    } else if (others > 2 && component1 <= 2 && component2 == 0)
        || (2 < component1 && component1 <= 3 && others <= 2 && component2 == 0)
        || (component1 <= 1 && others == 0 && component2 <= 1)
    {
        "hard"
    } else {
        "extra"
    }
}

/// Sums up results.
pub fn summarize(
    results: &[QuestionResult],
    mode: Mode,
    model: &str,
    skipped_no_database: usize,
    samples: usize,
) -> Summary {
    let scored: Vec<&QuestionResult> = results.iter().filter(|r| r.outcome != "gold_failed").collect();
    let n = scored.len().max(1) as f64;
    let mut by_database: BTreeMap<String, Score> = BTreeMap::new();
    let mut by_difficulty: BTreeMap<String, Score> = BTreeMap::new();
    let mut by_category: BTreeMap<String, Score> = BTreeMap::new();
    let mut errors: BTreeMap<String, usize> = BTreeMap::new();
    let mut recall = 0.0;
    for r in &scored {
        by_database.entry(r.db_id.clone()).or_default().add(r.correct);
        if !r.difficulty.is_empty() {
            by_difficulty.entry(r.difficulty.clone()).or_default().add(r.correct);
        }
        if let Some(category) = &r.category {
            by_category.entry(category.clone()).or_default().add(r.correct);
        }
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
    let clarified: Vec<&&QuestionResult> = scored.iter().filter(|r| r.readings > 0).collect();
    Summary {
        mode,
        model: model.to_string(),
        questions: scored.len(),
        correct,
        ex: 100.0 * correct as f64 / n,
        skipped_no_database,
        gold_failed: results.len() - scored.len(),
        by_database,
        by_difficulty,
        by_category,
        routing_accuracy: (mode == Mode::Enterprise).then(|| {
            scored.iter().filter(|r| r.routed_db.as_deref() == Some(r.db_id.as_str())).count() as f64 / n
        }),
        samples,
        mean_attempts: scored.iter().map(|r| r.attempts).sum::<usize>() as f64 / n,
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
        clarified: clarified.len(),
        clarified_shown_right: clarified.iter().filter(|r| r.correct).count(),
        clarified_any_right: clarified.iter().filter(|r| r.reading_right).count(),
        // A question routed to another database was not asked, so it has no confidence to judge.
        by_confidence: crate::eval::by_confidence(
            scored.iter().filter(|r| r.outcome != "wrong_database").map(|r| (r.confidence, r.correct)),
        ),
    }
}

/// The summary as a Markdown report on the evaluation set `set` (its folder's name).
pub fn markdown(summary: &Summary, set: &str) -> String {
    let mut out = format!(
        "# {set}, mode {} ({}, {} sample(s) per question)\n\n| | |\n|---|---|\n| questions | {} |\n\
         | EX | {:.1}% ({} correct) |\n| table recall | {:.3} |\n| valid SQL | {:.1}% |\n\
         | repaired | {} ({} then correct) |\n| generations per question | {:.2} |\n\
         | latency p50 / p95 | {} / {} ms |\n| tokens (prompt / completion) | {:.0} / {:.0} |\n\
         | skipped (no database) | {} |\n| gold SQL failed here | {} |\n",
        summary.mode,
        summary.model,
        summary.samples,
        summary.questions,
        summary.ex,
        summary.correct,
        summary.table_recall,
        100.0 * summary.valid,
        summary.repaired,
        summary.repaired_correct,
        summary.mean_attempts,
        summary.latency_p50_ms,
        summary.latency_p95_ms,
        summary.mean_prompt_tokens,
        summary.mean_completion_tokens,
        summary.skipped_no_database,
        summary.gold_failed,
    );
    if let Some(routing) = summary.routing_accuracy {
        out.push_str(&format!("| routed to the right database | {:.1}% |\n", 100.0 * routing));
    }
    if summary.clarified > 0 {
        out.push_str(&format!(
            "| offered readings to choose from | {} ({} shown right, {} with a right reading) |\n",
            summary.clarified, summary.clarified_shown_right, summary.clarified_any_right
        ));
    }
    let table = |title: &str, scores: Vec<(&String, &Score)>| {
        let mut out = format!("\n## By {title}\n\n| {title} | questions | EX |\n|---|---|---|\n");
        for (name, score) in scores {
            out.push_str(&format!("| {name} | {} | {:.1}% |\n", score.questions, score.ex));
        }
        out
    };
    let mut by_difficulty: Vec<(&String, &Score)> = summary.by_difficulty.iter().collect();
    by_difficulty.sort_by_key(|(name, _)| ["easy", "medium", "hard", "extra"].iter().position(|d| d == name));
    out.push_str(&table("difficulty", by_difficulty));
    if !summary.by_category.is_empty() {
        out.push_str(&table("category", summary.by_category.iter().collect()));
    }
    out.push_str(&table("confidence", crate::eval::confidence_order(&summary.by_confidence)));
    out.push_str(&table("database", summary.by_database.iter().collect()));
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
