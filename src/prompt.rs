//! Prompt assembly: the retrieved tables as compact DDL with descriptions and governance
//! notes, the closest past queries as examples, and the question, in one chat prompt; and
//! reading the model's reply back as a `DraftSql`.
//!
//! The same function builds the prompt at run time and for fine-tuning exports, so the model
//! is trained on exactly what it sees.

use std::fmt::Write;

use crate::catalog::{Catalog, Table};
use crate::llm::{ChatPrompt, Turn};
use crate::retrieve::Retrieved;
use crate::validate::DraftSql;

const SYSTEM: &str = "You are a careful data analyst who writes SQLite SQL. \
Answer the question with exactly one SQLite SELECT statement that uses only the tables and \
columns given; when a column you need is in another table, JOIN that table on its FOREIGN KEY. \
Prefer certified (tier 1) tables and never use deprecated ones. Reply with the SQL only.";

/// The beginning of the answer the model continues from, and where it must stop.
pub const ASSISTANT_PREFIX: &str = "```sql\n";
pub const STOP: &str = "```";

/// A join key seen in past queries between two of the prompt's tables.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct JoinHint {
    pub left: String,
    pub right: String,
    pub queries: usize,
}

/// The join keys of `counts` between tables of `tables` (and visible to the model), most used
/// first, at most `limit`.
pub fn join_hints(
    counts: &std::collections::BTreeMap<crate::history::structure::JoinEdge, usize>,
    tables: &[&str],
    catalog: &Catalog,
    limit: usize,
) -> Vec<JoinHint> {
    let visible = |column: &str| {
        let (table, name) = column.split_once('.').unwrap_or((column, ""));
        tables.iter().any(|t| t.eq_ignore_ascii_case(table))
            && catalog.table(table).is_some_and(|t| t.column(name).is_some())
    };
    let mut hints: Vec<JoinHint> = counts
        .iter()
        .filter(|(edge, _)| visible(&edge.left) && visible(&edge.right))
        .map(|(edge, n)| JoinHint { left: edge.left.clone(), right: edge.right.clone(), queries: *n })
        .collect();
    hints.sort_by(|a, b| b.queries.cmp(&a.queries).then_with(|| a.left.cmp(&b.left)));
    hints.truncate(limit);
    hints
}

/// A previous attempt that was refused or failed, for a repair round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedAttempt {
    pub sql: String,
    pub error: String,
}

/// The DDL of one table, with descriptions and governance notes as SQL comments.
pub fn table_ddl(table: &Table) -> String {
    let mut out = String::new();
    let mut notes = Vec::new();
    if !table.description.is_empty() {
        notes.push(table.description.clone());
    }
    if let Some(tier) = table.tier {
        notes.push(tier.to_string());
    }
    if let Some(dep) = &table.deprecated {
        notes.push(format!("DEPRECATED, use {}", dep.replacement));
    }
    if !notes.is_empty() {
        let _ = writeln!(out, "-- {}", notes.join(" | "));
    }
    let _ = writeln!(out, "CREATE TABLE {} (", table.name);
    let count = table.columns.len();
    for (i, column) in table.columns.iter().enumerate() {
        let comma = if i + 1 < count || !table.foreign_keys.is_empty() { "," } else { "" };
        let mut comment = column.description.clone();
        let described = column.sample_values.iter().all(|v| column.description.contains(v.as_str()));
        if !column.sample_values.is_empty() && !described {
            let values: Vec<String> = column.sample_values.iter().map(|v| format!("'{v}'")).collect();
            if !comment.is_empty() {
                comment.push_str("; ");
            }
            comment.push_str(&format!("values: {}", values.join(", ")));
        }
        let comment = if comment.is_empty() { String::new() } else { format!(" -- {comment}") };
        let _ = writeln!(out, "  {} {}{comma}{comment}", column.name, column.data_type);
    }
    for (i, fk) in table.foreign_keys.iter().enumerate() {
        let comma = if i + 1 < table.foreign_keys.len() { "," } else { "" };
        let _ = writeln!(
            out,
            "  FOREIGN KEY ({}) REFERENCES {}({}){comma}",
            fk.column, fk.ref_table, fk.ref_column
        );
    }
    out.push_str(");\n");
    out
}

/// Builds the chat prompt for a question.
pub fn build(
    question: &str,
    retrieved: &Retrieved,
    catalog: &Catalog,
    today: &str,
    joins: &[JoinHint],
    failed: &[FailedAttempt],
) -> ChatPrompt {
    let mut user = String::from("Tables:\n");
    // Deprecated tables stay out of the prompt: the model cannot pick what it does not see.
    for candidate in retrieved.tables.iter().filter(|c| c.deprecated_for.is_none()) {
        if let Some(table) = catalog.table(&candidate.name) {
            user.push_str(&table_ddl(table));
            user.push('\n');
        }
    }
    if !joins.is_empty() {
        user.push_str("Joins analysts used between these tables:\n");
        for join in joins {
            let _ = writeln!(user, "-- {} = {} ({} past queries)", join.left, join.right, join.queries);
        }
        user.push('\n');
    }
    if !retrieved.examples.is_empty() {
        user.push_str("Past queries by analysts:\n");
        for example in &retrieved.examples {
            let _ = writeln!(user, "-- {}\n{}\n", example.label, example.sql.trim());
        }
    }
    // Today's date only helps relative questions; beside explicit dates it misleads small models.
    if is_relative_in_time(question) {
        let _ = writeln!(user, "Today is {today}.");
    }
    let _ = write!(user, "\nQuestion: {question}");
    let turns = failed
        .iter()
        .map(|attempt| Turn {
            assistant: format!("{ASSISTANT_PREFIX}{}\n{STOP}", attempt.sql.trim()),
            user: format!("That query is wrong.\nError: {}\nWrite the corrected query.", attempt.error),
        })
        .collect();
    ChatPrompt { system: SYSTEM.to_string(), user, turns, assistant_prefix: ASSISTANT_PREFIX.to_string() }
}

/// True when the question refers to time relative to now ("last month", "yesterday", …).
pub fn is_relative_in_time(question: &str) -> bool {
    const WORDS: &[&str] = &[
        "today",
        "yesterday",
        "tomorrow",
        "last",
        "this",
        "previous",
        "past",
        "recent",
        "recently",
        "ago",
        "current",
        "now",
        "latest",
        "ytd",
        "mtd",
    ];
    question.to_lowercase().split(|c: char| !c.is_alphanumeric()).any(|word| WORDS.contains(&word))
}

/// Reads the model's reply as SQL: drops code fences and surrounding prose markers. The result
/// is untrusted; only the validator decides what it is worth.
pub fn extract_sql(reply: &str) -> DraftSql {
    let mut text = reply.trim();
    if let Some(rest) = text.strip_prefix("```sql").or_else(|| text.strip_prefix("```")) {
        text = rest;
    }
    if let Some(end) = text.find("```") {
        text = &text[..end];
    }
    DraftSql::new(text.trim().trim_end_matches(';').trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_hints_name_only_offered_tables_most_used_first() {
        use crate::catalog::{Column, Table};
        use crate::history::structure::JoinEdge;
        let table = |name: &str, cols: &[&str]| {
            Table::new(name, cols.iter().map(|c| Column::new(*c, "INTEGER")).collect())
        };
        let catalog = Catalog::from_tables(vec![
            table("orders", &["order_id", "user_id"]),
            table("users", &["user_id"]),
            table("refunds", &["order_id"]),
        ]);
        let edge = |l: &str, r: &str| JoinEdge { left: l.into(), right: r.into() };
        let counts = std::collections::BTreeMap::from([
            (edge("orders.user_id", "users.user_id"), 3),
            (edge("orders.order_id", "refunds.order_id"), 9),
            (edge("orders.user_id", "users.email"), 1),
        ]);
        let hints = join_hints(&counts, &["orders", "users"], &catalog, 5);
        assert_eq!(
            hints,
            vec![JoinHint { left: "orders.user_id".into(), right: "users.user_id".into(), queries: 3 }]
        );
        let hints = join_hints(&counts, &["orders", "users", "refunds"], &catalog, 1);
        assert_eq!(hints[0].queries, 9);
    }

    #[test]
    fn only_relative_questions_get_todays_date() {
        assert!(is_relative_in_time("which 5 countries had the most active users last month?"));
        assert!(is_relative_in_time("Revenue so far this year"));
        assert!(!is_relative_in_time("How many orders were placed in September 2026?"));
        assert!(!is_relative_in_time("Lastly, show the plans"));
    }

    #[test]
    fn extract_sql_strips_fences_and_trailing_semicolon() {
        for (reply, expected) in [
            ("SELECT 1;", "SELECT 1"),
            ("```sql\nSELECT 1\n```", "SELECT 1"),
            ("SELECT 1\n```\nExplanation: ...", "SELECT 1"),
            ("  select * from t ;  ", "select * from t"),
            ("SELECT 1; DROP TABLE t", "SELECT 1; DROP TABLE t"),
        ] {
            assert_eq!(extract_sql(reply).text(), expected, "reply: {reply:?}");
        }
    }
}
