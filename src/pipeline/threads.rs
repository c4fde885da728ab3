//! Conversation threads: each answer an ask asks to keep becomes a turn of a thread (metadata
//! DB); a follow-up in a thread is answered with its earlier turns as context. A thread belongs
//! to the principal who started it, expires `[threads] keep_days` after its last turn, and never
//! widens what its principal may read: an earlier turn's SQL is shown to the model only while
//! the principal may still run it, and every answer is validated as any other.

use super::*;
use crate::metadata::{NewTurn, StoredThread, ThreadSummary, TurnPlace};
pub use crate::prompt::PriorTurn;

/// Which thread an ask's answer is recorded in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ThreadChoice {
    /// A new thread, the answer its first turn.
    New,
    /// A follow-up in the principal's thread `id`: after its last turn, or after turn `after`
    /// (then the answer starts a new thread holding the turns up to it: a branch).
    FollowUp { id: String, after: Option<u32> },
}

/// Where an answer was recorded: the thread and the turn's number (from 1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ThreadPosition {
    pub id: String,
    pub turn: u32,
}

/// An opened thread: the earlier turns the new one follows, and where it goes.
pub(super) struct OpenThread {
    pub(super) follows: Vec<PriorTurn>,
    place: TurnPlace,
}

/// Threads listed at most.
const LISTED: usize = 50;

impl Quarry {
    /// Opens the thread an ask names: its turns up to where the follow-up goes.
    pub(super) fn open_thread(
        &self,
        choice: &ThreadChoice,
        principal: &Principal,
    ) -> Result<OpenThread, AskError> {
        let (id, after) = match choice {
            ThreadChoice::New => return Ok(OpenThread { follows: Vec::new(), place: TurnPlace::NewThread }),
            ThreadChoice::FollowUp { id, after } => (id, *after),
        };
        let thread = self
            .metadata
            .thread(id, &principal.name, self.config.thread_keep_days)?
            .ok_or_else(|| AskError::UnknownThread(unknown_thread(id, self.config.thread_keep_days)))?;
        let last = thread.turns.last().map_or(0, |t| t.turn);
        let after = after.unwrap_or(last);
        if after == 0 || after > last {
            return Err(AskError::InvalidQuestion(format!(
                "thread {id} has turns 1 to {last}; follow up after one of them, or leave 'after' out to follow its last turn"
            )));
        }
        let follows = thread
            .turns
            .iter()
            .filter(|t| t.turn <= after)
            .map(|t| PriorTurn { question: t.question.clone(), sql: t.sql.clone(), tables: t.tables.clone() })
            .collect();
        let place = if after == last {
            TurnPlace::Continue(thread.id)
        } else {
            TurnPlace::Branch { from: thread.id, after }
        };
        Ok(OpenThread { follows, place })
    }

    /// Records an answer as the next turn of its thread. A failure to record is logged and the
    /// answer still given (it is audited already): the thread then has no position.
    pub(super) fn record_turn(
        &self,
        thread: &OpenThread,
        principal: &Principal,
        answer: &Answer,
    ) -> Option<ThreadPosition> {
        let tables: Vec<String> = answer.tables.iter().map(|t| t.name.clone()).collect();
        if let Err(e) = self.metadata.expire_threads(self.config.thread_keep_days) {
            tracing::warn!("expiring old threads: {e}");
        }
        let choices = choices::stored(&answer.choices);
        let turn =
            NewTurn { question: &answer.question, sql: &answer.sql, tables: &tables, choices: &choices };
        match self.metadata.add_turn(&thread.place, &principal.name, turn) {
            Ok((id, turn)) => Some(ThreadPosition { id, turn }),
            Err(e) => {
                tracing::error!("recording a turn of {}'s thread: {e}", principal.name);
                None
            }
        }
    }

    /// The earlier turns shown with a follow-up: the last `[threads] turns`, each turn's SQL
    /// kept only while the principal may still run it (a policy tightened since the turn must
    /// not show the model what it hides now) and its tables only those the role may read.
    pub(super) fn visible_turns(
        &self,
        follows: &[PriorTurn],
        catalog: &Catalog,
        visible: &Catalog,
        policy: &Policy,
        principal: &Principal,
    ) -> Vec<PriorTurn> {
        let skip = follows.len().saturating_sub(self.config.thread_turns);
        follows[skip..]
            .iter()
            .map(|turn| PriorTurn {
                question: turn.question.clone(),
                sql: if crate::history::visible_to(&turn.sql, catalog, policy, principal) {
                    turn.sql.clone()
                } else {
                    String::new()
                },
                tables: turn.tables.iter().filter(|t| visible.table(t).is_some()).cloned().collect(),
            })
            .collect()
    }

    /// The principal's threads kept now, most recent first.
    pub fn threads(&self, principal: &Principal) -> Result<Vec<ThreadSummary>, CatalogRequestError> {
        self.authorize(principal, Action::Ask)?;
        Ok(self.metadata.threads(&principal.name, self.config.thread_keep_days, LISTED)?)
    }

    /// One of the principal's threads with its turns, as the principal may read them now: a
    /// turn's SQL only while the principal may still run it (empty otherwise), its tables only
    /// those the role may read (a policy tightened since the turn hides what it hides now).
    pub fn thread(&self, id: &str, principal: &Principal) -> Result<StoredThread, CatalogRequestError> {
        let policy = self.authorize(principal, Action::Ask)?;
        let mut thread = self
            .metadata
            .thread(id, &principal.name, self.config.thread_keep_days)?
            .ok_or_else(|| CatalogRequestError::NotFound(unknown_thread(id, self.config.thread_keep_days)))?;
        let catalog = self.catalog();
        let visible = policy.visible_catalog(&catalog);
        for turn in &mut thread.turns {
            if !crate::history::visible_to(&turn.sql, &catalog, policy, principal) {
                turn.sql.clear();
            }
            turn.tables.retain(|t| visible.table(t).is_some());
            for choice in &mut turn.choices {
                if !crate::history::visible_to(&choice.sql, &catalog, policy, principal) {
                    choice.sql.clear();
                    choice.reading = choices::WITHHELD.into();
                }
            }
        }
        Ok(thread)
    }
}

pub(super) fn unknown_thread(id: &str, keep_days: u32) -> String {
    format!(
        "no thread '{id}' of yours (threads are kept {keep_days} days after their last turn); ask without a thread to start a new one, or list yours at GET /api/v1/threads"
    )
}
