//! The follow-up evaluation: pairs of a question and a follow-up asked right after it in the
//! same conversation, over the demo warehouse (`demo/followups.toml`). The first question is
//! answered as any other; the follow-up is answered with the model's own first answer as the
//! conversation (as an analyst's thread would have it) and scored against its gold SQL.

use serde::{Deserialize, Serialize};

use super::{score, summarise, CaseResult, EvalError, Summary};
use crate::pipeline::{AskOptions, Principal, PriorTurn, Quarry};

/// The demo's follow-up pairs with gold SQL.
pub const DEMO_FOLLOWUPS: &str = include_str!("../demo/followups.toml");

/// A question, a follow-up to it, and the gold SQL of each.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Pair {
    pub first: String,
    pub first_gold: String,
    pub follow_up: String,
    /// The complete answer to the follow-up read in the context of the first question.
    pub gold: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PairFile {
    pair: Vec<Pair>,
}

/// Parses a TOML file of pairs (`[[pair]] first, first_gold, follow_up, gold`).
pub fn parse_pairs(text: &str) -> Result<Vec<Pair>, EvalError> {
    toml::from_str::<PairFile>(text).map(|f| f.pair).map_err(|e| EvalError::Cases(e.to_string()))
}

/// How one pair went.
#[derive(Debug, Clone, Serialize)]
pub struct PairResult {
    pub first: CaseResult,
    pub follow_up: CaseResult,
}

/// Totals of a run: each step's, and the follow-up's among pairs whose first answer was right.
#[derive(Debug, Clone, Serialize)]
pub struct PairSummary {
    pub first: Summary,
    pub follow_up: Summary,
    /// Follow-ups answered right after a right first answer, in percent of those.
    pub follow_up_after_right_first: f64,
}

/// Asks every pair's first question, then its follow-up in the context of that answer (the
/// question alone when the first ask failed), and scores both. Neither gold SQL (nor a past
/// query with the same SQL) helps answer either step.
pub fn run_pairs(
    quarry: &Quarry,
    pairs: &[Pair],
    mut progress: impl FnMut(usize, &PairResult),
) -> Result<(Vec<PairResult>, PairSummary), EvalError> {
    let principal = Principal { name: "eval".to_string(), ..Principal::local() };
    let mut results = Vec::with_capacity(pairs.len());
    for (i, pair) in pairs.iter().enumerate() {
        let guard = AskOptions {
            exclude_sql_keys: vec![
                crate::history::sql_key(&pair.first_gold),
                crate::history::sql_key(&pair.gold),
            ],
            ..AskOptions::default()
        };
        let (first, answer) =
            score(quarry, &principal, &pair.first, &pair.first_gold, &super::GoldSource::Workspace, &guard)?;
        let turn = match answer {
            Some(answer) => PriorTurn {
                question: pair.first.clone(),
                sql: answer.sql,
                tables: answer.tables.into_iter().map(|t| t.name).collect(),
            },
            None => PriorTurn { question: pair.first.clone(), sql: String::new(), tables: Vec::new() },
        };
        let options = AskOptions { follows: vec![turn], ..guard };
        let (follow_up, _) =
            score(quarry, &principal, &pair.follow_up, &pair.gold, &super::GoldSource::Workspace, &options)?;
        let result = PairResult { first, follow_up };
        progress(i, &result);
        results.push(result);
    }
    let firsts: Vec<CaseResult> = results.iter().map(|r| r.first.clone()).collect();
    let follow_ups: Vec<CaseResult> = results.iter().map(|r| r.follow_up.clone()).collect();
    let right_first = results.iter().filter(|r| r.first.correct).count();
    let both = results.iter().filter(|r| r.first.correct && r.follow_up.correct).count();
    let summary = PairSummary {
        first: summarise(quarry, &firsts),
        follow_up: summarise(quarry, &follow_ups),
        follow_up_after_right_first: if right_first == 0 {
            0.0
        } else {
            100.0 * both as f64 / right_first as f64
        },
    };
    Ok((results, summary))
}
