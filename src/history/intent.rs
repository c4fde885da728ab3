//! Intent text: what a past query answers, in words, for the search index. Built in the
//! design's three steps: the domain context the query touches (table and column
//! descriptions, glossary terms), a summary with the questions it answers (by the local LLM,
//! literals generalised; or, without an LLM, deterministically from the structure), then
//! embedded by `index`.

use crate::catalog::Catalog;
use crate::llm::{ChatPrompt, GenerationParams, Llm, LlmError};

use super::structure::{LiteralKind, QueryStructure};
use super::LoggedQuery;

/// The first sentence of a description.
fn first_sentence(text: &str) -> &str {
    match text.find(". ") {
        Some(end) => &text[..=end],
        None => text,
    }
}

/// The domain context of a query: what its tables are, and the glossary terms they carry.
pub fn domain_context(structure: &QueryStructure, catalog: &Catalog) -> String {
    let mut parts = Vec::new();
    for name in &structure.tables {
        if let Some(table) = catalog.table(name) {
            if !table.description.is_empty() {
                parts.push(format!(
                    "{}: {}",
                    table.name,
                    first_sentence(&table.description).trim_end_matches('.')
                ));
            }
        }
    }
    let terms: Vec<&str> = catalog
        .glossary()
        .iter()
        .filter(|g| g.tables.iter().any(|t| structure.tables.iter().any(|s| s.eq_ignore_ascii_case(t))))
        .map(|g| g.term.as_str())
        .collect();
    if !terms.is_empty() {
        parts.push(format!("business terms: {}", terms.join(", ")));
    }
    parts.join("; ")
}

/// A column's readable name: `orders.total_amount` -> `total amount`.
fn words(column: &str) -> String {
    column.rsplit('.').next().unwrap_or(column).replace('_', " ")
}

/// The deterministic intent: the question or title when the log has one (with the tables
/// read); otherwise a summary built from the structure, with the domain context.
pub fn describe(logged: &LoggedQuery, structure: &QueryStructure, catalog: &Catalog) -> String {
    // What the analyst said the query answers is the best intent there is: kept short, so the
    // embedding is about that question and not diluted by a generated summary.
    let stated: Vec<&str> = [&logged.question, &logged.title]
        .into_iter()
        .flatten()
        .map(|s| s.trim().trim_end_matches('.'))
        .filter(|s| !s.is_empty())
        .collect();
    if !stated.is_empty() {
        return format!("{}. Reads {}.", stated.join(". "), structure.tables.join(", "));
    }
    let mut text = String::new();
    let measures: Vec<String> = structure
        .aggregates
        .iter()
        .map(|a| {
            let (function, argument) = a.split_once('(').unwrap_or((a, ""));
            let argument = argument.trim_end_matches(')').trim_start_matches("distinct ");
            let what =
                if argument == "*" || argument.is_empty() { "rows".to_string() } else { words(argument) };
            let verb = match function {
                "count" if a.contains("distinct") => "number of distinct",
                "count" => "number of",
                "sum" | "total" => "total",
                "avg" => "average",
                "min" => "minimum",
                "max" => "maximum",
                _ => "list of",
            };
            format!("{verb} {what}")
        })
        .collect();
    let mut summary = if measures.is_empty() {
        "Lists rows".to_string()
    } else {
        format!("Computes {}", measures.join(", "))
    };
    if !structure.group_by.is_empty() {
        let by: Vec<String> = structure.group_by.iter().map(|c| words(c)).collect();
        summary.push_str(&format!(" per {}", by.join(" and ")));
    }
    summary.push_str(&format!(" from {}", structure.tables.join(", ")));
    if !structure.filters.is_empty() {
        let filters: Vec<String> = structure
            .filters
            .iter()
            .map(|f| match f.kind {
                LiteralKind::Date => format!("a {} period", words(&f.column)),
                _ => words(&f.column),
            })
            .collect();
        summary.push_str(&format!(", filtered by {}", filters.join(", ")));
    }
    if structure.window {
        summary.push_str(", with a running or ranked window calculation");
    }
    text.push_str(&summary);
    text.push('.');
    let context = domain_context(structure, catalog);
    if !context.is_empty() {
        text.push_str(&format!(" Context: {context}."));
    }
    text
}

const SYSTEM: &str = "You describe SQL queries for a search index of analytical questions. \
Reply with one sentence saying what the query computes, then 3 to 5 questions it answers, \
one per line. Write general questions: replace specific dates, IDs, names and numbers with \
general words (\"in a given month\", \"for a country\"). No SQL, no preamble.";

/// The intent written by the local LLM: domain context and SQL in, summary and questions out.
/// The title or question from the log, if any, leads.
pub fn with_llm(
    llm: &dyn Llm,
    logged: &LoggedQuery,
    structure: &QueryStructure,
    catalog: &Catalog,
) -> Result<String, LlmError> {
    let context = domain_context(structure, catalog);
    let user = format!("Tables: {context}\n\nSQL:\n{}\n", logged.sql.trim());
    let prompt =
        ChatPrompt { system: SYSTEM.to_string(), user, turns: Vec::new(), assistant_prefix: String::new() };
    let generation = llm.generate(&prompt, &GenerationParams::greedy(160, "```"))?;
    let written: Vec<&str> =
        generation.text.lines().map(str::trim).filter(|l| !l.is_empty()).take(6).collect();
    let mut text = String::new();
    for stated in [&logged.question, &logged.title].into_iter().flatten() {
        text.push_str(stated.trim().trim_end_matches('.'));
        text.push_str(". ");
    }
    text.push_str(&written.join(" "));
    Ok(text)
}
