//! Conversation threads in the metadata DB: each answered ask a turn (question, SQL, tables, the
//! readings it offered), threads per principal, branches copying the turns they continue, and
//! expiry `keep_days` after a thread's last turn. This file owns their types, row mapping and
//! `Metadata` methods; the statements are in each engine's store.

use super::*;

/// One answered turn of a conversation thread.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct StoredTurn {
    /// Counts from 1 within its thread.
    pub turn: u32,
    pub at: String,
    pub question: String,
    /// The SQL that ran (through the API: empty once the principal may no longer run it).
    pub sql: String,
    /// The tables it read.
    pub tables: Vec<String>,
    /// The readings its answer offered when its candidates disagreed (empty: none); the turn's
    /// `sql` is the one answered with.
    pub choices: Vec<TurnChoice>,
}

/// A reading a turn's answer offered, kept so the analyst can answer the turn with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TurnChoice {
    /// What it computes, in one sentence (through the API: a placeholder once the principal may
    /// no longer run it, since the sentence names its columns and values).
    pub reading: String,
    /// Its SQL as the model wrote it, validated again when chosen (through the API: empty
    /// once the principal may no longer run it).
    pub sql: String,
    /// Candidates that returned its result.
    pub votes: usize,
}

/// A turn to record: the question, the SQL answered with, its tables and the readings offered.
#[derive(Debug, Clone, Copy)]
pub struct NewTurn<'a> {
    pub question: &'a str,
    pub sql: &'a str,
    pub tables: &'a [String],
    pub choices: &'a [TurnChoice],
}

/// A conversation thread with its turns, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct StoredThread {
    pub id: String,
    pub created_at: String,
    pub updated_at: String,
    /// The thread an earlier turn of which this one continued, if it branched.
    pub branched_from: Option<String>,
    pub turns: Vec<StoredTurn>,
}

/// A thread as listed: its first question, its size, its last activity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ThreadSummary {
    pub id: String,
    /// The thread's first question.
    pub title: String,
    pub turns: u32,
    pub updated_at: String,
}

/// Where a new turn goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TurnPlace {
    /// The first turn of a new thread.
    NewThread,
    /// After the last turn of this thread.
    Continue(String),
    /// A new thread holding this thread's turns up to `after`, then the new turn.
    Branch { from: String, after: u32 },
}

impl NewTurn<'_> {
    /// Its tables and choices as the JSON text stored.
    pub(super) fn json(&self) -> (String, String) {
        (
            serde_json::to_string(self.tables).unwrap_or_else(|_| "[]".into()),
            serde_json::to_string(self.choices).unwrap_or_else(|_| "[]".into()),
        )
    }
}

pub(super) const THREAD_COLUMNS: &str = "id, created_at, updated_at, branched_from";

/// A thread without its turns.
pub(super) fn thread_row(r: &impl Row) -> Result<StoredThread, MetadataError> {
    Ok(StoredThread {
        id: r.cell(0)?,
        created_at: r.cell(1)?,
        updated_at: r.cell(2)?,
        branched_from: r.cell(3)?,
        turns: Vec::new(),
    })
}

pub(super) const TURN_COLUMNS: &str = "turn, at, question, sql, tables, choices";

pub(super) fn turn_row(r: &impl Row) -> Result<StoredTurn, MetadataError> {
    Ok(StoredTurn {
        turn: r.cell::<i64>(0)? as u32,
        at: r.cell(1)?,
        question: r.cell(2)?,
        sql: r.cell(3)?,
        tables: json(r.cell(4)?).unwrap_or_default(),
        choices: json(r.cell(5)?).unwrap_or_default(),
    })
}

/// Id, last activity, number of turns, first question.
pub(super) fn summary_row(r: &impl Row) -> Result<ThreadSummary, MetadataError> {
    Ok(ThreadSummary {
        id: r.cell(0)?,
        updated_at: r.cell(1)?,
        turns: r.cell::<i64>(2)? as u32,
        title: r.cell(3)?,
    })
}

impl Metadata {
    /// The thread `id` of `principal` with its turns, if it exists, is theirs and had a turn in
    /// the last `keep_days` days.
    pub fn thread(
        &self,
        id: &str,
        principal: &str,
        keep_days: u32,
    ) -> Result<Option<StoredThread>, MetadataError> {
        on_store!(self.thread(id, principal, keep_days))
    }

    /// The threads of `principal` with a turn in the last `keep_days` days, most recent first.
    pub fn threads(
        &self,
        principal: &str,
        keep_days: u32,
        limit: usize,
    ) -> Result<Vec<ThreadSummary>, MetadataError> {
        on_store!(self.threads(principal, keep_days, limit))
    }

    /// Adds an answered turn for `principal` at `place`, in one transaction; returns the thread
    /// and the turn's number. The caller has checked that a continued or branched thread is
    /// the principal's (`thread`).
    pub fn add_turn(
        &self,
        place: &TurnPlace,
        principal: &str,
        turn: NewTurn<'_>,
    ) -> Result<(String, u32), MetadataError> {
        on_store!(self.add_turn(place, principal, turn))
    }

    /// Answers turn `turn` of thread `id` with another of the readings it offered: its SQL and
    /// tables replace the turn's. The caller has checked that the thread is the principal's.
    pub fn answer_turn_with(
        &self,
        id: &str,
        turn: u32,
        sql: &str,
        tables: &[String],
    ) -> Result<(), MetadataError> {
        on_store!(self.answer_turn_with(id, turn, sql, tables))
    }

    /// Deletes the threads without a turn in the last `keep_days` days; returns how many.
    pub fn expire_threads(&self, keep_days: u32) -> Result<usize, MetadataError> {
        on_store!(self.expire_threads(keep_days))
    }
}
