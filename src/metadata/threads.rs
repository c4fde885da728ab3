//! Conversation threads in the metadata DB: each answered ask a turn (question, SQL, tables, the
//! readings it offered), threads per principal, branches copying the turns they continue, and
//! expiry `keep_days` after a thread's last turn.

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

/// SQLite's modifier for "`days` days ago".
fn days_ago(days: u32) -> String {
    format!("-{days} days")
}

/// The last activity at which a thread is still kept, as SQLite computes it.
const KEPT_SINCE: &str = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now', ?)";

impl Metadata {
    /// The thread `id` of `principal` with its turns, if it exists, is theirs and had a turn in
    /// the last `keep_days` days.
    pub fn thread(
        &self,
        id: &str,
        principal: &str,
        keep_days: u32,
    ) -> Result<Option<StoredThread>, MetadataError> {
        let conn = self.conn();
        let thread = conn
            .query_row(
                &format!(
                    "SELECT id, created_at, updated_at, branched_from FROM threads
                     WHERE id = ?1 AND principal = ?2 AND updated_at >= {}",
                    KEPT_SINCE.replace('?', "?3")
                ),
                params![id, principal, days_ago(keep_days)],
                |r| {
                    Ok(StoredThread {
                        id: r.get(0)?,
                        created_at: r.get(1)?,
                        updated_at: r.get(2)?,
                        branched_from: r.get(3)?,
                        turns: Vec::new(),
                    })
                },
            )
            .optional()?;
        let Some(mut thread) = thread else { return Ok(None) };
        let mut stmt = conn.prepare(
            "SELECT turn, at, question, sql, tables, choices FROM thread_turns WHERE thread = ?1 ORDER BY turn",
        )?;
        let turns = stmt.query_map([id], |r| {
            let tables: String = r.get(4)?;
            let choices: String = r.get(5)?;
            Ok(StoredTurn {
                turn: r.get(0)?,
                at: r.get(1)?,
                question: r.get(2)?,
                sql: r.get(3)?,
                tables: serde_json::from_str(&tables).unwrap_or_default(),
                choices: serde_json::from_str(&choices).unwrap_or_default(),
            })
        })?;
        thread.turns = turns.collect::<Result<_, _>>()?;
        Ok(Some(thread))
    }

    /// The threads of `principal` with a turn in the last `keep_days` days, most recent first.
    pub fn threads(
        &self,
        principal: &str,
        keep_days: u32,
        limit: usize,
    ) -> Result<Vec<ThreadSummary>, MetadataError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT t.id, t.updated_at, COUNT(u.turn),
                    (SELECT question FROM thread_turns f WHERE f.thread = t.id ORDER BY f.turn LIMIT 1)
             FROM threads t JOIN thread_turns u ON u.thread = t.id
             WHERE t.principal = ?1 AND t.updated_at >= {}
             GROUP BY t.id ORDER BY t.updated_at DESC, t.id LIMIT ?3",
            KEPT_SINCE.replace('?', "?2")
        ))?;
        let rows = stmt.query_map(params![principal, days_ago(keep_days), limit as i64], |r| {
            Ok(ThreadSummary { id: r.get(0)?, updated_at: r.get(1)?, turns: r.get(2)?, title: r.get(3)? })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
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
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let new_thread = |tx: &rusqlite::Transaction<'_>, branched_from: Option<&str>| {
            tx.query_row(
                "INSERT INTO threads (id, principal, branched_from) VALUES ('t' || lower(hex(randomblob(12))), ?1, ?2)
                 RETURNING id",
                params![principal, branched_from],
                |r| r.get::<_, String>(0),
            )
        };
        let id = match place {
            TurnPlace::NewThread => new_thread(&tx, None)?,
            TurnPlace::Continue(id) => id.clone(),
            TurnPlace::Branch { from, after } => {
                let id = new_thread(&tx, Some(from))?;
                tx.execute(
                    "INSERT INTO thread_turns (thread, turn, at, question, sql, tables, choices)
                     SELECT ?1, turn, at, question, sql, tables, choices FROM thread_turns WHERE thread = ?2 AND turn <= ?3",
                    params![id, from, after],
                )?;
                id
            }
        };
        let tables = serde_json::to_string(turn.tables).unwrap_or_else(|_| "[]".into());
        let choices = serde_json::to_string(turn.choices).unwrap_or_else(|_| "[]".into());
        let number: u32 = tx.query_row(
            "INSERT INTO thread_turns (thread, turn, question, sql, tables, choices)
             VALUES (?1, (SELECT COALESCE(MAX(turn), 0) + 1 FROM thread_turns WHERE thread = ?1), ?2, ?3, ?4, ?5)
             RETURNING turn",
            params![id, turn.question, turn.sql, tables, choices],
            |r| r.get(0),
        )?;
        tx.execute(
            "UPDATE threads SET updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE id = ?1",
            [&id],
        )?;
        tx.commit()?;
        Ok((id, number))
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
        let tables = serde_json::to_string(tables).unwrap_or_else(|_| "[]".into());
        let conn = self.conn();
        conn.execute(
            "UPDATE thread_turns SET sql = ?3, tables = ?4 WHERE thread = ?1 AND turn = ?2",
            params![id, turn, sql, tables],
        )?;
        conn.execute(
            "UPDATE threads SET updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE id = ?1",
            [id],
        )?;
        Ok(())
    }

    /// Deletes the threads without a turn in the last `keep_days` days; returns how many.
    pub fn expire_threads(&self, keep_days: u32) -> Result<usize, MetadataError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let stale = format!("SELECT id FROM threads WHERE updated_at < {}", KEPT_SINCE.replace('?', "?1"));
        tx.execute(&format!("DELETE FROM thread_turns WHERE thread IN ({stale})"), [days_ago(keep_days)])?;
        let gone =
            tx.execute(&format!("DELETE FROM threads WHERE id IN ({stale})"), [days_ago(keep_days)])?;
        tx.commit()?;
        Ok(gone)
    }
}
