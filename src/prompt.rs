//! Prompt assembly: the retrieved tables as compact DDL with descriptions and governance
//! notes, the closest past queries as examples, and the question, in one chat prompt; and
//! reading the model's reply back as a `DraftSql`.
//!
//! The same function builds the prompt at run time and for fine-tuning exports, so the model
//! is trained on exactly what it sees.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::catalog::{Catalog, Engine, GlossaryTerm, Table};
use crate::config::AnswerSettings;
use crate::llm::{ChatPrompt, Turn};
use crate::retrieve::Retrieved;
use crate::validate::DraftSql;
use tables::{described_columns, stem, table_ddl, Mentions};

mod tables;

const SYSTEM: &str = "You are a careful data analyst who writes SQLite SQL. \
Answer the question with exactly one SQLite SELECT statement that uses only the tables and \
columns given; when a column you need is in another table, JOIN that table on its FOREIGN KEY. \
Prefer certified (tier 1) tables and never use deprecated ones. \
Dates are ISO text unless a column's comment says otherwise: filter a period as date_column >= 'first day' AND date_column < 'day after', \
and take parts with strftime ('%Y-%m' month, '%Y' year). \
A ratio is 1.0 * a / b; only a percentage is 100.0 * a / b (neither is integer division). \
Group by every column you select beside the aggregates. \
Use LIMIT only when the question asks for a number of rows or for the top or bottom one. \
Reply with the SQL only.";

/// The same instructions for a PostgreSQL warehouse: its date functions and casts.
const SYSTEM_POSTGRES: &str = "You are a careful data analyst who writes PostgreSQL SQL. \
Answer the question with exactly one PostgreSQL SELECT statement that uses only the tables and \
columns given; when a column you need is in another table, JOIN that table on its FOREIGN KEY. \
Prefer certified (tier 1) tables and never use deprecated ones. \
Filter a period as date_column >= DATE 'first day' AND date_column < DATE 'day after', \
and take parts with to_char(date_column, 'YYYY-MM') for a month or EXTRACT(YEAR FROM date_column) for a year; cast a text date first (date_column::date). \
A ratio is 1.0 * a / b; only a percentage is 100.0 * a / b (neither is integer division). \
Group by every column you select beside the aggregates. \
Use LIMIT only when the question asks for a number of rows or for the top or bottom one. \
Reply with the SQL only.";

/// The instructions for the warehouse's engine.
fn system(engine: Engine) -> &'static str {
    match engine {
        Engine::Sqlite => SYSTEM,
        Engine::Postgres => SYSTEM_POSTGRES,
    }
}

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

/// An earlier turn of the conversation a question follows up on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriorTurn {
    pub question: String,
    /// The SQL that answered it (empty: not shown).
    pub sql: String,
    /// The tables that SQL read.
    pub tables: Vec<String>,
}

/// What a prompt is built from.
#[derive(Clone, Copy)]
pub struct Context<'a> {
    pub question: &'a str,
    pub retrieved: &'a Retrieved,
    /// The catalog as the role may see it.
    pub catalog: &'a Catalog,
    /// The day the question is asked (ISO date).
    pub today: &'a str,
    pub joins: &'a [JoinHint],
    /// Which facts beside the tables the prompt states.
    pub grounding: AnswerSettings,
    /// The earlier turns of the conversation, oldest first, when the question follows up.
    pub follows: &'a [PriorTurn],
    /// Past queries that read each table (by lower-cased name). The offered tables are shown
    /// the most read first, whatever their rank (tables read as often keep their rank):
    /// questions over the same tables then share the prompt's beginning, which the model
    /// computes once (#17). Without history, the rank's order.
    pub table_reads: &'a BTreeMap<String, usize>,
}

/// A previous attempt that was refused or failed, for a repair round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedAttempt {
    pub sql: String,
    pub error: String,
}

/// How much the prompt may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PromptBudget {
    /// Columns described per table; a wider table's other columns are listed by name only.
    pub columns: usize,
    /// Estimated tokens the first prompt (system and user turn) may take.
    pub tokens: usize,
}

/// Tokens a repair round adds beside the rejected SQL: the error and the request.
const REPAIR_TURN_TOKENS: usize = 150;

impl PromptBudget {
    /// The budget that leaves room in a `context_tokens` window for the reply (up to
    /// `max_tokens`) and `max_repairs` repair rounds (each a rejected reply and its error).
    pub fn for_model(context_tokens: usize, max_tokens: usize, max_repairs: usize, columns: usize) -> Self {
        let reserved = max_tokens + max_repairs * (max_tokens + REPAIR_TURN_TOKENS);
        PromptBudget { columns, tokens: context_tokens.saturating_sub(reserved).max(256) }
    }
}

/// A cautious token estimate for SQL and English (the models' tokenizers average 3.5 to 4
/// characters per token on such text).
pub fn estimate_tokens(text: &str) -> usize {
    text.len() / 3 + 1
}

/// The user turn with the first `tables` offered tables, `columns` described per table and
/// the first `examples` examples.
fn user_turn(
    context: &Context,
    offered: &[&Table],
    mentions: &Mentions,
    (tables, columns, examples): (usize, usize, usize),
) -> String {
    let Context { question, retrieved, today, joins, table_reads, .. } = *context;
    let offered = &offered[..tables.min(offered.len())];
    // Most read first; tables read as often keep their rank (a stable sort).
    let mut shown = offered.to_vec();
    shown.sort_by_cached_key(|t| {
        std::cmp::Reverse(table_reads.get(&t.name.to_lowercase()).copied().unwrap_or(0))
    });
    let mut user = String::from("Tables:\n");
    for table in shown {
        let referenced: Vec<&str> = offered
            .iter()
            .flat_map(|t| &t.foreign_keys)
            .filter(|fk| fk.ref_table.eq_ignore_ascii_case(&table.name))
            .map(|fk| fk.ref_column.as_str())
            .collect();
        user.push_str(&table_ddl(table, &described_columns(table, columns, mentions, &referenced)));
        user.push('\n');
    }
    let joins: Vec<&JoinHint> = joins
        .iter()
        .filter(|j| {
            let table_of = |c: &str| c.split_once('.').map(|(t, _)| t.to_string()).unwrap_or_default();
            let offered = |c: &str| offered.iter().any(|t| t.name.eq_ignore_ascii_case(&table_of(c)));
            offered(&j.left) && offered(&j.right)
        })
        .collect();
    if !joins.is_empty() {
        user.push_str("Joins analysts used between these tables:\n");
        for join in joins {
            let _ = writeln!(user, "-- {} = {} ({} past queries)", join.left, join.right, join.queries);
        }
        user.push('\n');
    }
    let examples = &retrieved.examples[..examples.min(retrieved.examples.len())];
    if !examples.is_empty() {
        user.push_str(
            "Past queries by analysts (their dates and filter values answered their own questions, not this one):\n",
        );
        for example in examples {
            let _ = writeln!(
                user,
                "-- {}\n{}\n",
                crate::text::for_prompt(&example.label),
                crate::text::for_prompt(example.sql.trim())
            );
        }
    }
    let terms = if context.grounding.glossary {
        terms_named(&asked_so_far(context), offered, context.catalog)
    } else {
        Vec::new()
    };
    if !terms.is_empty() {
        user.push_str("Definitions the SQL must follow:\n");
        for term in terms {
            let _ = writeln!(user, "- {}: {}", term.term, crate::text::for_prompt(&term.definition));
        }
        user.push('\n');
    }
    // Today's date only helps relative questions; beside explicit dates it misleads small models.
    if crate::timeframe::is_relative(question) {
        let _ = writeln!(user, "Today is {today}.");
    }
    let periods =
        if context.grounding.dates { crate::timeframe::resolve(question, today) } else { Vec::new() };
    if !periods.is_empty() {
        user.push_str("Dates in the question, as ranges on the date column:\n");
        for period in periods {
            let _ = write!(user, "- \"{}\": >= '{}' AND < '{}'", period.phrase, period.start, period.end);
            match period.year {
                Some(year) => {
                    let _ = writeln!(user, " (a year-number column: = {year})");
                }
                None => user.push('\n'),
            }
        }
    }
    // Earlier questions of the conversation whose SQL is not shown (with SQL, they are turns).
    for turn in context.follows {
        let _ = write!(user, "\nEarlier question: {}", crate::text::for_prompt(&turn.question));
    }
    let _ = write!(user, "\nQuestion: {question}");
    user
}

/// The user turn of a follow-up, after the conversation so far: the question, the date ranges
/// it names, earlier questions whose SQL is not shown, and what to write.
fn follow_up_turn(context: &Context, unshown: &[&PriorTurn], terms: &[&GlossaryTerm]) -> String {
    let mut user = String::new();
    for turn in unshown {
        let _ = writeln!(user, "Earlier question: {}", crate::text::for_prompt(&turn.question));
    }
    let _ = writeln!(user, "Follow-up question: {}", context.question);
    if crate::timeframe::is_relative(context.question) {
        let _ = writeln!(user, "Today is {}.", context.today);
    }
    let periods = if context.grounding.dates {
        crate::timeframe::resolve(context.question, context.today)
    } else {
        Vec::new()
    };
    for period in periods {
        let _ = writeln!(user, "- \"{}\": >= '{}' AND < '{}'", period.phrase, period.start, period.end);
    }
    for term in terms {
        let _ = writeln!(
            user,
            "Definition the SQL must follow - {}: {}",
            term.term,
            crate::text::for_prompt(&term.definition)
        );
    }
    user.push_str(
        "Write the previous query again, changed only as the follow-up asks: keep its columns, \
         periods, filters and grouping unless the follow-up changes them.",
    );
    user
}

/// The question with the earlier questions of its conversation: what a follow-up means.
fn asked_so_far(context: &Context) -> String {
    let mut text: Vec<&str> = context.follows.iter().map(|t| t.question.as_str()).collect();
    text.push(context.question);
    text.join("\n")
}

/// Builds the chat prompt for a question, within `budget`: when the whole context would not
/// fit, the examples go first (the farthest first), then columns are described for fewer per
/// table, then the lowest-ranked tables go.
pub fn build(context: &Context, failed: &[FailedAttempt], budget: PromptBudget) -> ChatPrompt {
    let Context { question, retrieved, catalog, joins, .. } = *context;
    // Deprecated tables stay out of the prompt: the model cannot pick what it does not see.
    let offered: Vec<&Table> = retrieved
        .tables
        .iter()
        .filter(|c| c.deprecated_for.is_none())
        .filter_map(|c| catalog.table(&c.name))
        .collect();
    let declared_only: Vec<Table>;
    let offered: Vec<&Table> = if context.grounding.inferred_joins {
        offered
    } else {
        declared_only = offered
            .iter()
            .map(|t| {
                let mut t = (*t).clone();
                t.foreign_keys.retain(|k| !k.inferred);
                t
            })
            .collect();
        declared_only.iter().collect()
    };
    let mentions = Mentions::new(question, retrieved, joins, context.follows);
    // A follow-up is shown as the conversation it is: the first question with the tables, each
    // earlier SQL as the model's reply, then the follow-up. Earlier turns whose SQL is not shown
    // are named in the follow-up's text.
    let (shown, unshown): (Vec<&PriorTurn>, Vec<&PriorTurn>) =
        context.follows.iter().partition(|t| !t.sql.trim().is_empty());
    let opening = match shown.first() {
        Some(first) => Context { question: &first.question, follows: &[], ..*context },
        None => *context,
    };
    let mut shape = (offered.len(), budget.columns, retrieved.examples.len());
    let user = loop {
        let user = user_turn(&opening, &offered, &mentions, shape);
        if estimate_tokens(system(catalog.engine())) + estimate_tokens(&user) <= budget.tokens {
            break user;
        }
        match shape {
            (_, _, examples) if examples > 0 => shape.2 -= 1,
            (_, columns, _) if columns > MIN_COLUMNS => shape.1 = (columns * 2 / 3).max(MIN_COLUMNS),
            (tables, _, _) if tables > 1 => shape.0 -= 1,
            // As small as it gets: the model's context limit decides.
            _ => break user,
        }
    };
    // The glossary terms the follow-ups name that the first question did not (its own are
    // defined with the tables).
    let later_terms: Vec<&GlossaryTerm> = if context.grounding.glossary && !shown.is_empty() {
        let opened = terms_named(opening.question, &offered, catalog);
        let later: Vec<&str> =
            shown[1..].iter().chain(&unshown).map(|t| t.question.as_str()).chain([question]).collect();
        let later = later.join("\n");
        let conversation = format!("{}\n{later}", opening.question);
        terms_followed(&later, &conversation, &offered, catalog)
            .into_iter()
            .filter(|t| !opened.iter().any(|o| o.term == t.term))
            .collect()
    } else {
        Vec::new()
    };
    let mut turns: Vec<Turn> = Vec::new();
    for (i, turn) in shown.iter().enumerate() {
        let next = match shown.get(i + 1) {
            Some(later) => format!("Follow-up question: {}", crate::text::for_prompt(&later.question)),
            None => follow_up_turn(context, &unshown, &later_terms),
        };
        let sql = crate::text::for_prompt(turn.sql.trim());
        turns.push(Turn { assistant: format!("{ASSISTANT_PREFIX}{sql}\n{STOP}"), user: next });
    }
    finish(catalog.engine(), user, turns, failed)
}

/// The chat prompt: the first user turn, the conversation's turns, then a repair turn for each
/// failed attempt.
fn finish(engine: Engine, user: String, mut turns: Vec<Turn>, failed: &[FailedAttempt]) -> ChatPrompt {
    turns.extend(failed.iter().map(|attempt| Turn {
        assistant: format!("{ASSISTANT_PREFIX}{}\n{STOP}", attempt.sql.trim()),
        user: format!("That query is wrong.\nError: {}\nWrite the corrected query.", attempt.error),
    }));
    ChatPrompt {
        system: system(engine).to_string(),
        user,
        turns,
        assistant_prefix: ASSISTANT_PREFIX.to_string(),
    }
}

/// The prompt a user would write without Quarry, for the evaluation's baseline: every table of
/// the database as plain DDL (names, types, keys; no descriptions, samples, governance,
/// examples or retrieval), then the question. Same model, same answer format.
pub fn baseline(question: &str, catalog: &Catalog) -> ChatPrompt {
    let mut user = String::from("Database schema:\n");
    for table in catalog.tables() {
        let columns: Vec<String> =
            table.columns.iter().map(|c| format!("  {} {}", c.name, c.data_type)).collect();
        let mut lines = columns;
        if !table.primary_key.is_empty() {
            lines.push(format!("  PRIMARY KEY ({})", table.primary_key.join(", ")));
        }
        for fk in &table.foreign_keys {
            lines.push(format!(
                "  FOREIGN KEY ({}) REFERENCES {}({})",
                fk.column, fk.ref_table, fk.ref_column
            ));
        }
        let _ = writeln!(user, "CREATE TABLE {} (\n{}\n);", table.name, lines.join(",\n"));
    }
    let _ = write!(user, "\nQuestion: {question}");
    ChatPrompt {
        system:
            "You write SQLite SQL. Answer the question with one SELECT statement. Reply with the SQL only."
                .to_string(),
        user,
        turns: Vec::new(),
        assistant_prefix: ASSISTANT_PREFIX.to_string(),
    }
}

/// The words of `text`, lower case, each without a plural ending (`_` stays inside a word).
fn stemmed_words(text: &str) -> Vec<String> {
    text.to_lowercase()
        .split(|c: char| !c.is_alphanumeric() && c != '_')
        .filter(|w| !w.is_empty())
        .map(stem)
        .collect()
}

/// The glossary terms the question names by one of their names (whole words, a plural too)
/// that belong to one of the offered tables.
fn terms_named<'c>(question: &str, offered: &[&Table], catalog: &'c Catalog) -> Vec<&'c GlossaryTerm> {
    let padded = format!(" {} ", stemmed_words(question).join(" "));
    catalog
        .glossary()
        .iter()
        .filter(|term| {
            term.names()
                .into_iter()
                .map(stemmed_words)
                .any(|phrase| !phrase.is_empty() && padded.contains(&format!(" {} ", phrase.join(" "))))
        })
        .filter(|term| term.tables.iter().any(|t| offered.iter().any(|o| o.name.eq_ignore_ascii_case(t))))
        .collect()
}

/// What the analyst said beyond the question, read from the question with the conversation it
/// follows and the definitions of the glossary terms it names: the string values the past
/// queries offered as examples filter on that none of it says, lower-cased (values the model
/// would copy from an example rather than read from the question; `amend::copied_exclusions`
/// drops exclusions of them), and whether any of it speaks of time (`amend::speaks_of_time`;
/// `amend::invented_periods` drops date filters when none does).
pub fn said(context: &Context) -> crate::amend::Said {
    let asked = asked_so_far(context);
    let every_table: Vec<&Table> = context.catalog.tables().collect();
    let mut said = asked.to_lowercase();
    for term in terms_named(&asked, &every_table, context.catalog) {
        said.push('\n');
        said.push_str(&term.definition.to_lowercase());
    }
    crate::amend::Said {
        copied: copied_values(context, &said),
        speaks_of_time: crate::amend::speaks_of_time(&said),
    }
}

/// The string values the examples filter on that `said` does not hold, lower-cased.
fn copied_values(context: &Context, said: &str) -> Vec<String> {
    let mut values = std::collections::BTreeSet::new();
    for example in &context.retrieved.examples {
        for value in crate::amend::string_values(&example.sql) {
            let value = value.to_lowercase();
            if !value.trim().is_empty() && !said.contains(&value) {
                values.insert(value);
            }
        }
    }
    values.into_iter().collect()
}

/// The glossary terms a follow-up names with the conversation's help: every word of the term
/// is somewhere in the conversation and one is in the follow-up ("only the paid ones" after a
/// question about users names "paid user").
fn terms_followed<'c>(
    follow_up: &str,
    conversation: &str,
    offered: &[&Table],
    catalog: &'c Catalog,
) -> Vec<&'c GlossaryTerm> {
    let words =
        |text: &str| -> std::collections::BTreeSet<String> { stemmed_words(text).into_iter().collect() };
    let (asked, said) = (words(follow_up), words(conversation));
    catalog
        .glossary()
        .iter()
        .filter(|term| {
            term.names().into_iter().map(words).any(|phrase| {
                !phrase.is_empty() && phrase.is_subset(&said) && phrase.iter().any(|w| asked.contains(w))
            })
        })
        .filter(|term| term.tables.iter().any(|t| offered.iter().any(|o| o.name.eq_ignore_ascii_case(t))))
        .collect()
}

/// Fewest columns described per table when the budget is tight.
const MIN_COLUMNS: usize = 6;

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

    fn wide_catalog() -> Catalog {
        use crate::catalog::{Column, ForeignKey, Table};
        let mut columns = vec![Column::new("event_id", "INTEGER"), Column::new("user_id", "INTEGER")];
        columns.extend((0..30).map(|i| Column::new(format!("attribute_{i}"), "TEXT")));
        columns.push(Column::new("country_code", "TEXT"));
        columns.push(Column::new("revenue_usd", "REAL"));
        let mut events = Table::new("events", columns);
        events.primary_key = vec!["event_id".into()];
        events.foreign_keys = vec![ForeignKey {
            column: "user_id".into(),
            ref_table: "users".into(),
            ref_column: "user_id".into(),
            inferred: false,
        }];
        let users = Table::new("users", vec![Column::new("user_id", "INTEGER"), Column::new("plan", "TEXT")]);
        Catalog::from_tables(vec![events, users])
    }

    fn context<'a>(
        question: &'a str,
        retrieved: &'a Retrieved,
        catalog: &'a Catalog,
        today: &'a str,
    ) -> Context<'a> {
        Context {
            question,
            retrieved,
            catalog,
            today,
            joins: &[],
            grounding: AnswerSettings::default(),
            follows: &[],
            table_reads: &NO_READS,
        }
    }

    static NO_READS: BTreeMap<String, usize> = BTreeMap::new();

    fn retrieved(tables: &[&str], examples: usize) -> Retrieved {
        let candidate = |name: &str| crate::retrieve::TableCandidate::named(name, 0.5);
        let example = |i: usize| crate::retrieve::Example {
            label: format!("past question {i}"),
            sql: format!("SELECT attribute_{} FROM events", 20 + i),
            author: "a".into(),
            tables: vec!["events".into()],
            score: 0.5,
            verified: false,
        };
        Retrieved {
            tables: tables.iter().map(|t| candidate(t)).collect(),
            examples: (0..examples).map(example).collect(),
            reusable: Vec::new(),
            embed_ms: 0,
            search_ms: 0,
        }
    }

    #[test]
    fn a_wide_table_shows_keys_and_named_columns_and_lists_the_rest() {
        let catalog = wide_catalog();
        let budget = PromptBudget { columns: 8, tokens: 10_000 };
        let question = "Revenue by country for users on each plan";
        let retrieved = retrieved(&["events", "users"], 1);
        let prompt = build(&context(question, &retrieved, &catalog, "2026-11-27"), &[], budget);
        let ddl = prompt.user.split("Past queries").next().unwrap_or_default();
        for kept in [
            "event_id INTEGER",
            "user_id INTEGER",
            "country_code TEXT",
            "revenue_usd REAL",
            "attribute_20 TEXT",
        ] {
            assert!(ddl.contains(kept), "{kept} missing from:\n{ddl}");
        }
        assert_eq!(
            ddl.matches(" TEXT").count() + ddl.matches(" REAL").count() + ddl.matches(" INTEGER").count(),
            8 + 2
        );
        assert!(ddl.contains("-- events also has: attribute_3, attribute_4,"), "{ddl}");
        assert!(!ddl.contains("users also has"), "{ddl}");
    }

    #[test]
    fn a_date_column_says_its_format_and_unix_seconds_and_year_numbers_how_to_read_them() {
        let column = |name: &str, format: &str| crate::catalog::Column {
            date_format: Some(format.into()),
            ..crate::catalog::Column::new(name, "INTEGER")
        };
        let table = Table::new(
            "flights",
            vec![column("departure_time", crate::catalog::UNIX_SECONDS), column("year", "YYYY")],
        );
        let ddl = table_ddl(&table, &[true, true]);
        assert!(
            ddl.contains(
                "departure_time INTEGER, -- unix seconds: read it as datetime(departure_time, 'unixepoch')"
            ),
            "{ddl}"
        );
        assert!(ddl.contains("year INTEGER -- a year number like 2021, not a date"), "{ddl}");
    }

    #[test]
    fn a_tight_budget_drops_examples_then_columns_then_tables() {
        let catalog = wide_catalog();
        let question = "How many events per plan?";
        let prompt = |columns: usize, tokens: usize| {
            let retrieved = retrieved(&["events", "users"], 3);
            build(&context(question, &retrieved, &catalog, ""), &[], PromptBudget { columns, tokens })
        };
        let size = |p: &ChatPrompt| estimate_tokens(&p.system) + estimate_tokens(&p.user);
        // (tables, described columns, examples) of the prompt at each budget, largest first.
        let shape = |p: &ChatPrompt| {
            let described =
                p.user.lines().filter(|l| l.starts_with("  ") && !l.contains("FOREIGN KEY")).count();
            (p.user.matches("CREATE TABLE").count(), described, p.user.matches("past question").count())
        };
        let full = prompt(40, 100_000);
        assert_eq!(shape(&full), (2, 36, 3));
        let mut shapes = Vec::new();
        let mut limit = size(&full);
        while limit > 100 {
            let fitted = prompt(40, limit);
            assert!(size(&fitted) <= limit || shape(&fitted).0 == 1, "over budget at {limit}");
            assert!(fitted.user.ends_with("Question: How many events per plan?"));
            shapes.push(shape(&fitted));
            limit -= 5;
        }
        assert!(shapes.windows(2).all(|w| w[1] <= w[0]), "{shapes:?}");
        // Examples go before any column, columns before any table.
        let first_pruned = shapes.iter().position(|s| s.1 < 36).unwrap_or(usize::MAX);
        let first_dropped = shapes.iter().position(|s| s.0 < 2).unwrap_or(usize::MAX);
        assert!(shapes.iter().take(first_pruned).any(|s| s.2 < 3), "{shapes:?}");
        assert!(shapes.get(first_pruned).is_some_and(|s| s.2 == 0), "{shapes:?}");
        assert!(first_dropped > first_pruned && first_dropped < shapes.len(), "{shapes:?}");
        assert_eq!(shapes[first_dropped], (1, MIN_COLUMNS, 0), "{shapes:?}");
    }

    #[test]
    fn tables_are_shown_most_read_first_whatever_their_rank_and_the_lowest_ranked_go_first() {
        use crate::catalog::Column;
        let catalog = Catalog::from_tables(
            ["orders", "users", "countries"]
                .map(|name| Table::new(name, vec![Column::new(format!("{name}_id"), "INTEGER")]))
                .to_vec(),
        );
        let reads: BTreeMap<String, usize> = [("orders".to_string(), 9), ("users".to_string(), 4)].into();
        // The tables section of the prompt for tables retrieved in `ranked` order, of which the
        // budget keeps `kept`, and the names in the order it shows them.
        let tables = |ranked: &[&str], kept: usize| {
            let retrieved = retrieved(ranked, 0);
            let context =
                Context { table_reads: &reads, ..context("How many orders?", &retrieved, &catalog, "") };
            let offered: Vec<&Table> = ranked.iter().filter_map(|t| catalog.table(t)).collect();
            let mentions = Mentions::new(context.question, &retrieved, &[], &[]);
            let user = user_turn(&context, &offered, &mentions, (kept, 20, 0));
            let names: Vec<String> = user
                .lines()
                .filter_map(|l| l.strip_prefix("CREATE TABLE "))
                .map(|l| l.replace(" (", ""))
                .collect();
            (names, user.split("Question:").next().unwrap_or_default().to_string())
        };
        // Ranked either way, the same tables read the same: most read first.
        let (names, text) = tables(&["countries", "users", "orders"], 3);
        assert_eq!(names, ["orders", "users", "countries"]);
        assert_eq!(text, tables(&["users", "orders", "countries"], 3).1);
        // A table the budget leaves out is the lowest ranked, not the least read.
        assert_eq!(tables(&["countries", "users", "orders"], 2).0, ["users", "countries"]);
        // Without any history, in the rank's order.
        for ranked in [["users", "countries"], ["countries", "users"]] {
            let retrieved = retrieved(&ranked, 0);
            let budget = PromptBudget { columns: 20, tokens: 100_000 };
            let user = build(&context("How many users?", &retrieved, &catalog, ""), &[], budget).user;
            let at = |table: &str| user.find(&format!("CREATE TABLE {table} (")).expect("shown");
            assert!(at(ranked[0]) < at(ranked[1]), "{user}");
        }
    }

    #[test]
    fn a_term_is_named_by_the_name_its_definition_opens_with() {
        use crate::catalog::Column;
        let mut catalog =
            Catalog::from_tables(vec![Table::new("orders", vec![Column::new("total_amount", "REAL")])]);
        let term = |term: &str, definition: &str| GlossaryTerm {
            term: term.into(),
            definition: definition.into(),
            tables: vec!["orders".into()],
        };
        for t in [
            term("AOV", "Average order value: AVG(orders.total_amount) over completed orders."),
            term("GMV", "SUM(orders.total_amount): every order but cancelled ones."),
            term("refund rate", "Refunded orders divided by all orders: a share."),
        ] {
            catalog.set_term(t).expect("term");
        }
        let offered: Vec<&Table> = catalog.tables().collect();
        let named = |question: &str| -> Vec<String> {
            terms_named(question, &offered, &catalog).into_iter().map(|t| t.term.clone()).collect()
        };
        assert_eq!(named("What was the average order value by month?"), ["AOV"]);
        assert_eq!(named("AOV by month"), ["AOV"]);
        // SQL before the colon is no name, nor is a phrase longer than five words.
        assert!(named("Sum orders total amount by month").is_empty());
        assert!(named("refunded orders divided by all orders").is_empty());
        let aov = term("AOV", "Average order value: AVG(orders.total_amount)");
        assert_eq!(aov.names(), ["AOV", "Average order value"]);
    }

    #[test]
    fn time_is_heard_in_the_conversation_and_in_the_definitions_a_question_names() {
        use crate::catalog::Column;
        let mut catalog =
            Catalog::from_tables(vec![Table::new("orders", vec![Column::new("created_at", "TEXT")])]);
        catalog
            .set_term(GlossaryTerm {
                term: "churned customer".into(),
                definition: "A customer with no order in the last 90 days.".into(),
                tables: vec!["orders".into()],
            })
            .expect("term");
        let retrieved = retrieved(&["orders"], 0);
        let speaks = |question: &str, follows: &[PriorTurn]| {
            said(&Context { follows, ..context(question, &retrieved, &catalog, "") }).speaks_of_time
        };
        assert!(!speaks("Which customers bought the most?", &[]));
        assert!(speaks("How many churned customers are there?", &[]));
        let earlier = PriorTurn {
            question: "How many orders in September?".into(),
            sql: String::new(),
            tables: vec!["orders".into()],
        };
        assert!(speaks("and only the refunded ones", std::slice::from_ref(&earlier)));
        assert!(!speaks("and only the refunded ones", &[]));
    }

    #[test]
    fn the_budget_leaves_room_for_the_reply_and_repairs() {
        let budget = PromptBudget::for_model(4096, 256, 2, 20);
        assert_eq!(budget.tokens, 4096 - 256 - 2 * (256 + REPAIR_TURN_TOKENS));
        assert_eq!(PromptBudget::for_model(512, 512, 1, 20).tokens, 256);
    }
}
