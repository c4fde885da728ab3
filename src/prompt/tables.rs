//! The offered tables as DDL: which columns of a wide table to describe within the budget
//! (its keys, the columns the question or the context names, then the rest in order), and each
//! table's notes, column comments, sample values and date formats.

use std::fmt::Write;

use super::{JoinHint, PriorTurn};
use crate::catalog::Table;
use crate::retrieve::Retrieved;

/// What the question and the context name: words of the question, and identifiers of the
/// examples' SQL and of the join hints. Columns they name are kept when a table is pruned.
pub(super) struct Mentions {
    words: std::collections::BTreeSet<String>,
    identifiers: std::collections::BTreeSet<String>,
}

impl Mentions {
    pub(super) fn new(
        question: &str,
        retrieved: &Retrieved,
        joins: &[JoinHint],
        follows: &[PriorTurn],
    ) -> Mentions {
        let split = |text: &str| -> Vec<String> {
            text.split(|c: char| !c.is_alphanumeric() && c != '_')
                .filter(|w| !w.is_empty())
                .map(str::to_lowercase)
                .collect()
        };
        let asked = std::iter::once(question).chain(follows.iter().map(|t| t.question.as_str()));
        let words = asked.flat_map(split).flat_map(|w| w.split('_').map(stem).collect::<Vec<_>>()).collect();
        let mut identifiers: std::collections::BTreeSet<String> = retrieved
            .examples
            .iter()
            .map(|e| &e.sql)
            .chain(follows.iter().map(|t| &t.sql))
            .flat_map(|s| split(s))
            .collect();
        for join in joins {
            identifiers.extend(split(&join.left));
            identifiers.extend(split(&join.right));
        }
        Mentions { words, identifiers }
    }

    /// True when the column's name appears in the context, or a telling word of it (not `id`,
    /// `code`, `date` …) in the question: "revenue by country" names `country_code`.
    pub(super) fn names(&self, column: &str) -> bool {
        const GENERIC: &[&str] =
            &["id", "code", "key", "name", "date", "at", "type", "num", "no", "value", "count", "is", "has"];
        let column = column.to_lowercase();
        self.identifiers.contains(&column)
            || column
                .split('_')
                .filter(|p| !p.is_empty() && !GENERIC.contains(p))
                .any(|part| self.words.contains(&stem(part)))
    }
}

/// A crude plural folding, enough to match "countries" with `country`.
pub(super) fn stem(word: &str) -> String {
    let word = word.to_lowercase();
    if let Some(base) = word.strip_suffix("ies") {
        format!("{base}y")
    } else if word.len() > 3 && word.ends_with('s') && !word.ends_with("ss") {
        word[..word.len() - 1].to_string()
    } else {
        word
    }
}

/// The columns of `table` to describe, in table order: all when there are at most `limit`;
/// otherwise its keys (primary, foreign, and those other offered tables reference), then the
/// columns the question or context names, then the rest in order, up to `limit` (keys always).
pub(super) fn described_columns(
    table: &Table,
    limit: usize,
    mentions: &Mentions,
    referenced: &[&str],
) -> Vec<bool> {
    let count = table.columns.len();
    if count <= limit {
        return vec![true; count];
    }
    let keys: std::collections::BTreeSet<String> = table
        .primary_key
        .iter()
        .map(String::as_str)
        .chain(table.foreign_keys.iter().map(|f| f.column.as_str()))
        .chain(referenced.iter().copied())
        .map(str::to_lowercase)
        .collect();
    let mut keep = vec![false; count];
    let mut kept = 0;
    let key = |c: &crate::catalog::Column| keys.contains(&c.name.to_lowercase());
    let named = |c: &crate::catalog::Column| mentions.names(&c.name);
    let rest = |_: &crate::catalog::Column| true;
    for (rank, wanted) in
        [&key as &dyn Fn(&crate::catalog::Column) -> bool, &named, &rest].into_iter().enumerate()
    {
        for (i, column) in table.columns.iter().enumerate() {
            if !keep[i] && wanted(column) && (rank == 0 || kept < limit) {
                keep[i] = true;
                kept += 1;
            }
        }
    }
    keep
}

/// The DDL of one table, with descriptions and governance notes as SQL comments; columns
/// not in `described` are listed by name after it.
pub(super) fn table_ddl(table: &Table, described: &[bool]) -> String {
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
    if let Some(last) = &table.last_change {
        notes.push(format!("data through {} ({})", last.date, last.column));
    }
    if !notes.is_empty() {
        let _ = writeln!(out, "-- {}", notes.join(" | "));
    }
    let _ = writeln!(out, "CREATE TABLE {} (", table.name);
    let shown: Vec<&crate::catalog::Column> =
        table.columns.iter().zip(described).filter(|(_, d)| **d).map(|(c, _)| c).collect();
    let count = shown.len();
    for (i, column) in shown.into_iter().enumerate() {
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
        if let Some(format) = &column.date_format {
            if !comment.is_empty() {
                comment.push_str("; ");
            }
            if format == crate::catalog::UNIX_SECONDS {
                comment.push_str(&format!("{format}: read it as datetime({}, 'unixepoch')", column.name));
            } else if format == crate::catalog::YEAR_NUMBER {
                comment.push_str("a year number like 2021, not a date: compare and group it as it is");
            } else {
                comment.push_str(&format!("format {format}"));
            }
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
    let others: Vec<&str> =
        table.columns.iter().zip(described).filter(|(_, d)| !**d).map(|(c, _)| c.name.as_str()).collect();
    if !others.is_empty() {
        let _ = writeln!(out, "-- {} also has: {}", table.name, others.join(", "));
    }
    out
}
