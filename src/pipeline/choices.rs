//! Clarify instead of guessing: when the sampled candidates disagree and no result has most of
//! them, the answer offers the leading readings as choices — what each computes in one
//! sentence, the tables it reads, its first rows — the most shared one shown. Choosing another
//! answers the thread's turn with it, validated and run for the asker as any SQL is, and a
//! follow-up then builds on it.

use super::*;
use crate::metadata::TurnChoice;
use serde_json::Value;

/// Readings are offered when the most shared result has at most this share of the candidates
/// that ran: 3 of 5 (a 3–2 split is a question read two ways; 4–1 is an answer and an outlier).
const LEADER_SHARE_AT_MOST: (usize, usize) = (3, 5);
/// Readings offered at most.
const MOST_CHOICES: usize = 3;
/// What a reading the principal may no longer run says instead of itself (its sentence names
/// the columns and values it reads).
pub(super) const WITHHELD: &str = "A reading you may no longer run";
/// Rows of each reading shown with it.
const PREVIEW_ROWS: usize = 3;

/// One reading of a question its candidates disagreed on.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Choice {
    /// What it computes, in one sentence read from its SQL.
    pub reading: String,
    /// Its SQL, validated for the asker (empty when the asker may no longer run it).
    pub sql: String,
    /// The tables it reads.
    pub tables: Vec<String>,
    /// How many candidates returned its result.
    pub votes: usize,
    /// Its result: the columns, the first rows, and how many rows there are.
    pub columns: Vec<String>,
    pub first_rows: Vec<Vec<Value>>,
    pub row_count: usize,
    /// Whether it is the reading the answer shows.
    pub shown: bool,
    /// The SQL as the model wrote it: what is kept, and validated again when chosen.
    #[serde(skip)]
    draft: String,
}

impl Choice {
    fn new(reading: String, draft: &str, query: &ValidatedQuery, result: &ResultSet, votes: usize) -> Choice {
        Choice {
            draft: draft.to_string(),
            reading,
            sql: query.sql().to_string(),
            tables: query.tables().to_vec(),
            votes,
            columns: result.columns.clone(),
            first_rows: result.rows.iter().take(PREVIEW_ROWS).cloned().collect(),
            row_count: result.rows.len(),
            shown: false,
        }
    }

    fn stored(&self) -> TurnChoice {
        TurnChoice { reading: self.reading.clone(), sql: self.draft.clone(), votes: self.votes }
    }
}

/// The readings to offer for candidates split into `groups` (most shared first), the first
/// one shown; empty when the candidates agree enough.
pub(super) fn offered(candidates: &[Candidate], groups: &[Group]) -> Vec<Choice> {
    let (most, of) = LEADER_SHARE_AT_MOST;
    let leader = groups.first().map_or(0, |g| g.count);
    if groups.len() < 2 || leader * of > candidates.len() * most {
        return Vec::new();
    }
    let mut choices: Vec<Choice> = groups
        .iter()
        .take(MOST_CHOICES)
        .map(|g| {
            let c = &candidates[g.first];
            Choice::new(sentence(&c.query), &c.draft, &c.query, &c.result, g.count)
        })
        .collect();
    choices[0].shown = true;
    choices
}

/// The readings of an answer as its thread turn keeps them.
pub(super) fn stored(choices: &[Choice]) -> Vec<TurnChoice> {
    choices.iter().map(Choice::stored).collect()
}

/// What a query computes, in one sentence: its reading, or the tables it reads.
fn sentence(query: &ValidatedQuery) -> String {
    crate::reading::read(query.sql())
        .unwrap_or_else(|| format!("A query reading {}", query.tables().join(", ")))
}

impl Quarry {
    /// Answers the last turn of the principal's thread `id` with reading `choice` (counted
    /// from 0) of those its answer offered: validated and run for the principal now, it becomes
    /// the turn's SQL, so a follow-up builds on it. Audited as an ask of the turn's question.
    pub fn choose(
        &self,
        id: &str,
        turn: u32,
        choice: usize,
        principal: &Principal,
    ) -> Result<Answer, AskError> {
        let started = Instant::now();
        let mut question = format!("(a reading of turn {turn} of thread {id})");
        let outcome = self.authorize(principal, Action::Ask).map_err(AskError::from).and_then(|policy| {
            let keep = self.config.thread_keep_days;
            let thread = self
                .metadata
                .thread(id, &principal.name, keep)?
                .ok_or_else(|| AskError::UnknownThread(threads::unknown_thread(id, keep)))?;
            let last = thread.turns.len() as u32;
            let Some(stored) = thread.turns.into_iter().find(|t| t.turn == turn && turn == last) else {
                return Err(AskError::InvalidQuestion(format!(
                    "thread {id} has turns 1 to {last}: choose a reading of its last turn ({last}), or follow up from an earlier one"
                )));
            };
            question = stored.question.clone();
            let Some(picked) = stored.choices.get(choice) else {
                return Err(AskError::InvalidQuestion(if stored.choices.is_empty() {
                    format!("turn {turn} offered no readings to choose from: its candidates agreed; ask again or follow up")
                } else {
                    format!("turn {turn} offered readings 0 to {}: choose one of them", stored.choices.len() - 1)
                }));
            };
            let catalog = self.catalog();
            let (query, result, timings) =
                self.run_checked(&picked.sql, &catalog, policy, principal, &Cancel::default())?;
            let choices = stored
                .choices
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    let mut again = if i == choice {
                        Choice::new(c.reading.clone(), &c.sql, &query, &result, c.votes)
                    } else {
                        self.reading_again(c, &catalog, policy, principal)
                    };
                    again.shown = i == choice;
                    again
                })
                .collect();
            let mut tables = self.table_uses(&catalog, &query, None);
            for table in &mut tables {
                table.evidence.push("read by the reading you chose".into());
            }
            let names: Vec<String> = tables.iter().map(|t| t.name.clone()).collect();
            self.metadata.answer_turn_with(id, turn, query.sql(), &names)?;
            Ok(Answer {
                reading: Some(picked.reading.clone()),
                choices,
                confidence: Confidence::chosen(stored.choices.len()),
                model: self.model_id().to_string(),
                thread: Some(ThreadPosition { id: id.to_string(), turn }),
                ..Answer::plain(&question, &query, result, tables, timings)
            })
        });
        self.audit_ask(principal, &question, started, outcome)
    }

    /// A reading not chosen, validated and run again for the principal now; its sentence, SQL
    /// and rows left out when the principal may no longer run it.
    fn reading_again(
        &self,
        choice: &TurnChoice,
        catalog: &Catalog,
        policy: &Policy,
        principal: &Principal,
    ) -> Choice {
        let ran = self.run_checked(&choice.sql, catalog, policy, principal, &Cancel::default()).ok();
        match ran {
            Some((query, result, _)) => {
                Choice::new(choice.reading.clone(), &choice.sql, &query, &result, choice.votes)
            }
            None => Choice {
                reading: WITHHELD.into(),
                sql: String::new(),
                tables: Vec::new(),
                votes: choice.votes,
                columns: Vec::new(),
                first_rows: Vec::new(),
                row_count: 0,
                shown: false,
                draft: String::new(),
            },
        }
    }
}
