//! Synthetic training pairs from the workspace's own catalog: questions an analyst asks of
//! these tables (counts and sums by period with SQLite's date idioms, month, quarter and year
//! filters, relative dates, ratios and percentages in real arithmetic, top-N, joins along
//! foreign keys, distinct counts, running totals, month-over-month changes, shares of a total)
//! written over the tables' real columns, values and date range, each with its SQL.
//!
//! This module only proposes candidates; the export keeps a pair when its SQL validates for
//! every role, reads nothing deprecated or governed, and returns a non-trivial result.

use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::catalog::{Catalog, Column, Table};
use crate::timeframe::resolve;

/// A proposed pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub question: String,
    pub sql: String,
    /// The day the question is asked on, for a relative time phrase.
    pub today: Option<String>,
    /// Which pattern wrote it (for the export's report).
    pub pattern: &'static str,
}

/// What a table offers to questions: a date column and its last month with data, grouping
/// columns with their values, measures, and parents along foreign keys.
struct Facts<'t> {
    table: &'t Table,
    /// Plural noun for its rows ("orders", "ad daily stats rows").
    noun: String,
    date: Option<(&'t Column, i64, i64)>,
    dimensions: Vec<&'t Column>,
    measures: Vec<&'t Column>,
    /// (foreign key column, parent table, parent key column, a parent dimension)
    parents: Vec<(&'t str, &'t Table, &'t str, &'t Column)>,
}

fn words(name: &str) -> String {
    name.replace('_', " ")
}

fn noun(table: &Table) -> String {
    let words = words(&table.name);
    if words.ends_with('s') {
        words
    } else {
        format!("{words} rows")
    }
}

fn is_key(table: &Table, column: &Column) -> bool {
    let name = column.name.to_lowercase();
    table.primary_key.iter().any(|k| k.eq_ignore_ascii_case(&name))
        || table.foreign_keys.iter().any(|f| f.column.eq_ignore_ascii_case(&name))
        || name == "id"
        || name.ends_with("_id")
}

fn dimensions(table: &Table) -> Vec<&Column> {
    table
        .columns
        .iter()
        .filter(|c| {
            (2..=12).contains(&c.sample_values.len())
                && c.tags.is_empty()
                && c.date_format.is_none()
                && !is_key(table, c)
        })
        .collect()
}

fn facts<'t>(table: &'t Table, catalog: &'t Catalog) -> Facts<'t> {
    let date = table.last_change.as_ref().and_then(|last| {
        let column = table.column(&last.column)?;
        column.date_format.as_ref().filter(|f| f.starts_with("YYYY-MM-DD"))?;
        let year: i64 = last.date.get(0..4)?.parse().ok()?;
        let month: i64 = last.date.get(5..7)?.parse().ok()?;
        Some((column, year, month))
    });
    let measures = table
        .columns
        .iter()
        .filter(|c| {
            let t = c.data_type.to_uppercase();
            (t.contains("INT") || t.contains("REAL") || t.contains("NUM") || t.contains("DOUBLE"))
                && !is_key(table, c)
                && c.tags.is_empty()
                && !c.name.to_lowercase().starts_with("is_")
        })
        .collect();
    let parents = table
        .foreign_keys
        .iter()
        .filter_map(|fk| {
            let parent = catalog.table(&fk.ref_table)?;
            let dimension = dimensions(parent).into_iter().next()?;
            Some((fk.column.as_str(), parent, fk.ref_column.as_str(), dimension))
        })
        .collect();
    Facts { table, noun: noun(table), date, dimensions: dimensions(table), measures, parents }
}

/// The first day of month `m` (counted past December or before January) of year `y`.
fn month_start(y: i64, m: i64) -> String {
    let index = y * 12 + (m - 1);
    format!("{:04}-{:02}-01", index.div_euclid(12), index.rem_euclid(12) + 1)
}

fn month_name(y: i64, m: i64) -> String {
    let index = y * 12 + (m - 1);
    format!(
        "{} {}",
        crate::text::capitalise(crate::timeframe::MONTHS[index.rem_euclid(12) as usize]),
        index.div_euclid(12)
    )
}

fn quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// Up to `per_table` candidates for each table of `catalog` the filter keeps, seeded.
pub fn candidates(
    catalog: &Catalog,
    keep: &dyn Fn(&Table) -> bool,
    per_table: usize,
    seed: u64,
) -> Vec<Candidate> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut out = Vec::new();
    for table in catalog.tables().filter(|t| keep(t)) {
        let facts = facts(table, catalog);
        let mut mine = Vec::new();
        for _ in 0..per_table * 10 {
            if let Some(candidate) = propose(&facts, &mut rng) {
                if !mine.iter().any(|c: &Candidate| c.sql == candidate.sql) {
                    mine.push(candidate);
                }
            }
            if mine.len() >= per_table {
                break;
            }
        }
        out.extend(mine);
    }
    out
}

/// One candidate of a pattern picked at random among those the table allows.
fn propose(f: &Facts, rng: &mut ChaCha8Rng) -> Option<Candidate> {
    let t = &f.table.name;
    let pattern = rng.random_range(0..14);
    let dimension = f.dimensions.choose(rng).copied();
    let measure = f.measures.choose(rng).copied();
    // A month with data: the last one, or up to four before it.
    let (date, month) = match f.date {
        Some((column, y, m)) => {
            let index = y * 12 + (m - 1) - rng.random_range(0..5);
            (Some(column), Some((index.div_euclid(12), index.rem_euclid(12) + 1)))
        }
        None => (None, None),
    };
    let period = |y: i64, m: i64| (month_start(y, m), month_start(y, m + 1));
    let pick = |phrasings: &[&str], rng: &mut ChaCha8Rng| {
        phrasings.choose(rng).copied().unwrap_or_default().to_string()
    };
    let fill =
        |text: String, pairs: &[(&str, &str)]| pairs.iter().fold(text, |acc, (k, v)| acc.replace(k, v));
    let noun = f.noun.as_str();
    let (question, sql, today, name): (String, String, Option<String>, &'static str) = match pattern {
        0 => {
            let (d, (y, m)) = (date?, month?);
            let (s, e) = period(y, m);
            let q = pick(
                &[
                    "How many {noun} were there in {month}?",
                    "Number of {noun} in {month}",
                    "Count the {noun} of {month}.",
                ],
                rng,
            );
            (
                fill(q, &[("{noun}", noun), ("{month}", &month_name(y, m))]),
                format!("SELECT COUNT(*) FROM {t} WHERE {d} >= '{s}' AND {d} < '{e}'", d = d.name),
                None,
                "count_in_month",
            )
        }
        1 => {
            let (d, (y, m), v) = (date?, month?, measure?);
            let q_start = (m - 1).div_euclid(3) * 3 + 1;
            let quarter = (q_start - 1).rem_euclid(12) / 3 + 1;
            let year = (y * 12 + q_start - 1).div_euclid(12);
            let (s, e) = (month_start(y, q_start), month_start(y, q_start + 3));
            let q = pick(
                &["What was the total {measure} in Q{q} {y}?", "Total {measure} of {noun} in Q{q} {y}"],
                rng,
            );
            (
                fill(
                    q,
                    &[
                        ("{measure}", &words(&v.name)),
                        ("{noun}", noun),
                        ("{q}", &quarter.to_string()),
                        ("{y}", &year.to_string()),
                    ],
                ),
                format!(
                    "SELECT SUM({v}) FROM {t} WHERE {d} >= '{s}' AND {d} < '{e}'",
                    v = v.name,
                    d = d.name
                ),
                None,
                "sum_in_quarter",
            )
        }
        2 => {
            let (d, (y, m), v) = (date?, month?, measure?);
            let first = m - 2;
            let (s, e) = (month_start(y, first), month_start(y, m + 1));
            let q = pick(
                &["Total {measure} per month from {from} to {to}, in month order (month as YYYY-MM)", "Monthly total {measure} between {from} and {to}, oldest month first, with the month as YYYY-MM"],
                rng,
            );
            (
                fill(q, &[("{measure}", &words(&v.name)), ("{from}", &month_name(y, first)), ("{to}", &month_name(y, m))]),
                format!(
                    "SELECT strftime('%Y-%m', {d}) AS month, SUM({v}) AS total FROM {t} WHERE {d} >= '{s}' AND {d} < '{e}' GROUP BY month ORDER BY month",
                    v = v.name,
                    d = d.name
                ),
                None,
                "sum_by_month",
            )
        }
        3 => {
            let (d, (y, m), c) = (date?, month?, dimension?);
            let (s, e) = period(y, m);
            let q = pick(
                &[
                    "How many {noun} were there for each {dim} in {month}?",
                    "{noun} per {dim} in {month}: how many?",
                    "Number of {noun} by {dim} in {month}",
                ],
                rng,
            );
            (
                fill(q, &[("{noun}", noun), ("{dim}", &words(&c.name)), ("{month}", &month_name(y, m))]),
                format!(
                    "SELECT {c}, COUNT(*) FROM {t} WHERE {d} >= '{s}' AND {d} < '{e}' GROUP BY {c}",
                    c = c.name,
                    d = d.name
                ),
                None,
                "count_by_dimension",
            )
        }
        4 => {
            let (d, (y, m), c) = (date?, month?, dimension?);
            let value = c.sample_values.choose(rng)?;
            let (s, e) = period(y, m);
            let q = pick(
                &[
                    "How many {noun} with {dim} {value} were there in {month}?",
                    "Count of {noun} whose {dim} is {value} in {month}",
                ],
                rng,
            );
            (
                fill(
                    q,
                    &[
                        ("{noun}", noun),
                        ("{dim}", &words(&c.name)),
                        ("{value}", value),
                        ("{month}", &month_name(y, m)),
                    ],
                ),
                format!(
                    "SELECT COUNT(*) FROM {t} WHERE {c} = {v} AND {d} >= '{s}' AND {d} < '{e}'",
                    c = c.name,
                    v = quote(value),
                    d = d.name
                ),
                None,
                "count_with_value",
            )
        }
        5 => {
            let (d, (y, m), c) = (date?, month?, dimension?);
            let value = c.sample_values.choose(rng)?;
            let (s, e) = period(y, m);
            let q = pick(
                &[
                    "What percentage of {noun} in {month} had {dim} {value}?",
                    "Share of {noun} with {dim} {value} in {month}, as a percentage",
                ],
                rng,
            );
            (
                fill(q, &[("{noun}", noun), ("{dim}", &words(&c.name)), ("{value}", value), ("{month}", &month_name(y, m))]),
                format!(
                    "SELECT 100.0 * SUM(CASE WHEN {c} = {v} THEN 1 ELSE 0 END) / COUNT(*) FROM {t} WHERE {d} >= '{s}' AND {d} < '{e}'",
                    c = c.name,
                    v = quote(value),
                    d = d.name
                ),
                None,
                "percentage",
            )
        }
        6 => {
            let (c, v) = (dimension?, measure?);
            let n = rng.random_range(2..=3).min(c.sample_values.len() - 1).max(1);
            let q = pick(
                &[
                    "Which {n} {dim} values have the highest total {measure}?",
                    "Top {n} {dim} by total {measure}",
                ],
                rng,
            );
            (
                fill(
                    q,
                    &[("{n}", &n.to_string()), ("{dim}", &words(&c.name)), ("{measure}", &words(&v.name))],
                ),
                format!(
                    "SELECT {c}, SUM({v}) AS total FROM {t} GROUP BY {c} ORDER BY total DESC LIMIT {n}",
                    c = c.name,
                    v = v.name
                ),
                None,
                "top_n",
            )
        }
        7 => {
            let (c, v) = (dimension?, measure?);
            let q =
                pick(&["What is the average {measure} for each {dim}?", "Average {measure} by {dim}"], rng);
            (
                fill(q, &[("{dim}", &words(&c.name)), ("{measure}", &words(&v.name))]),
                format!("SELECT {c}, AVG({v}) FROM {t} GROUP BY {c}", c = c.name, v = v.name),
                None,
                "average_by_dimension",
            )
        }
        8 => {
            let (fk, parent, key, pc) = *f.parents.choose(rng)?;
            let (filter, phrase) = match (date, month) {
                (Some(d), Some((y, m))) => {
                    let (s, e) = period(y, m);
                    (
                        format!(" WHERE c.{d} >= '{s}' AND c.{d} < '{e}'", d = d.name),
                        format!(" in {}", month_name(y, m)),
                    )
                }
                _ => (String::new(), String::new()),
            };
            let q = pick(
                &[
                    "How many {noun} were there per {pdim} of the {parent}{when}?",
                    "Number of {noun} by {parent} {pdim}{when}",
                ],
                rng,
            );
            (
                fill(q, &[("{noun}", noun), ("{pdim}", &words(&pc.name)), ("{parent}", &words(&parent.name)), ("{when}", &phrase)]),
                format!(
                    "SELECT p.{pc}, COUNT(*) FROM {t} AS c JOIN {pt} AS p ON c.{fk} = p.{key}{filter} GROUP BY p.{pc}",
                    pc = pc.name,
                    pt = parent.name
                ),
                None,
                "join_count",
            )
        }
        9 => {
            let (d, (y, m)) = (date?, month?);
            let (fk, parent, _, _) = *f.parents.choose(rng)?;
            let (s, e) = period(y, m);
            let q = pick(
                &[
                    "How many distinct {parent} had {noun} in {month}?",
                    "Number of different {parent} with at least one of the {noun} in {month}",
                ],
                rng,
            );
            (
                fill(
                    q,
                    &[("{parent}", &words(&parent.name)), ("{noun}", noun), ("{month}", &month_name(y, m))],
                ),
                format!(
                    "SELECT COUNT(DISTINCT {fk}) FROM {t} WHERE {d} >= '{s}' AND {d} < '{e}'",
                    d = d.name
                ),
                None,
                "distinct_count",
            )
        }
        10 => {
            let (d, (y, m)) = (date?, month?);
            let today = format!("{}-{:02}", &month_start(y, m + 1)[..7], rng.random_range(1..=20));
            let phrase = pick(&["last month", "the previous month"], rng);
            let range = resolve(&phrase, &today).into_iter().next()?;
            let v = measure;
            let (what, select) = match v {
                Some(v) if rng.random_bool(0.5) => {
                    (format!("the total {}", words(&v.name)), format!("SUM({})", v.name))
                }
                _ => (format!("the number of {noun}"), "COUNT(*)".to_string()),
            };
            (
                format!("What was {what} {phrase}?"),
                format!(
                    "SELECT {select} FROM {t} WHERE {d} >= '{}' AND {d} < '{}'",
                    range.start,
                    range.end,
                    d = d.name
                ),
                Some(today),
                "relative_period",
            )
        }
        11 => {
            let (d, (y, m), v) = (date?, month?, measure?);
            let first = m - 3;
            let (s, e) = (month_start(y, first), month_start(y, m + 1));
            let q = pick(&["Running total of {measure} by month from {from} to {to}, month as YYYY-MM, in month order", "Cumulative {measure} per month between {from} and {to} (month as YYYY-MM), oldest first"], rng);
            (
                fill(q, &[("{measure}", &words(&v.name)), ("{from}", &month_name(y, first)), ("{to}", &month_name(y, m))]),
                format!(
                    "WITH monthly AS (SELECT strftime('%Y-%m', {d}) AS month, SUM({v}) AS total FROM {t} WHERE {d} >= '{s}' AND {d} < '{e}' GROUP BY month) SELECT month, SUM(total) OVER (ORDER BY month) AS running_total FROM monthly ORDER BY month",
                    v = v.name,
                    d = d.name
                ),
                None,
                "running_total",
            )
        }
        12 => {
            let (d, (y, m)) = (date?, month?);
            let first = m - 3;
            let (s, e) = (month_start(y, first), month_start(y, m + 1));
            let q = pick(&["How did the number of {noun} change from month to month between {from} and {to}? Show each month (YYYY-MM), its count and the change from the month before, in month order.", "Monthly {noun} counts from {from} to {to} with the difference from the previous month (month as YYYY-MM), oldest first"], rng);
            (
                fill(q, &[("{noun}", noun), ("{from}", &month_name(y, first)), ("{to}", &month_name(y, m))]),
                format!(
                    "WITH monthly AS (SELECT strftime('%Y-%m', {d}) AS month, COUNT(*) AS n FROM {t} WHERE {d} >= '{s}' AND {d} < '{e}' GROUP BY month) SELECT month, n, n - LAG(n) OVER (ORDER BY month) AS change FROM monthly ORDER BY month",
                    d = d.name
                ),
                None,
                "month_over_month",
            )
        }
        _ => {
            let (c, v) = (dimension?, measure?);
            let q = pick(
                &[
                    "What share of the total {measure} does each {dim} have, as a percentage?",
                    "Each {dim}'s percentage of all {measure}",
                ],
                rng,
            );
            (
                fill(q, &[("{dim}", &words(&c.name)), ("{measure}", &words(&v.name))]),
                format!(
                    "SELECT {c}, 100.0 * SUM({v}) / (SELECT SUM({v}) FROM {t}) AS share FROM {t} GROUP BY {c}",
                    c = c.name,
                    v = v.name
                ),
                None,
                "share_of_total",
            )
        }
    };
    Some(Candidate { question: crate::text::capitalise(&question), sql, today, pattern: name })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{ForeignKey, LastChange};

    fn catalog() -> Catalog {
        let mut users = Table::new(
            "users",
            vec![
                Column::new("user_id", "INTEGER"),
                Column {
                    sample_values: vec!["free".into(), "plus".into(), "pro".into()],
                    ..Column::new("plan", "TEXT")
                },
                Column { tags: vec!["pii".into()], ..Column::new("email", "TEXT") },
            ],
        );
        users.primary_key = vec!["user_id".into()];
        let mut orders = Table::new(
            "orders",
            vec![
                Column::new("order_id", "INTEGER"),
                Column::new("user_id", "INTEGER"),
                Column {
                    date_format: Some("YYYY-MM-DD HH:MM:SS".into()),
                    ..Column::new("ordered_at", "TEXT")
                },
                Column {
                    sample_values: vec!["completed".into(), "refunded".into()],
                    ..Column::new("status", "TEXT")
                },
                Column::new("total_amount", "REAL"),
            ],
        );
        orders.foreign_keys = vec![ForeignKey {
            column: "user_id".into(),
            ref_table: "users".into(),
            ref_column: "user_id".into(),
            inferred: false,
        }];
        orders.last_change = Some(LastChange { date: "2026-10-31".into(), column: "ordered_at".into() });
        Catalog::from_tables(vec![users, orders])
    }

    #[test]
    fn candidates_are_seeded_varied_and_never_name_a_tagged_column() {
        let catalog = catalog();
        let a = candidates(&catalog, &|_| true, 20, 7);
        assert_eq!(a, candidates(&catalog, &|_| true, 20, 7), "seeded");
        let patterns: std::collections::BTreeSet<&str> = a.iter().map(|c| c.pattern).collect();
        assert!(patterns.len() >= 8, "{patterns:?}");
        assert!(a.iter().all(|c| !c.sql.contains("email")), "a pii column is never used");
        let relative = a.iter().find(|c| c.pattern == "relative_period").expect("a relative period");
        assert!(relative.today.is_some());
        assert!(candidates(&catalog, &|t| t.name != "orders", 20, 7)
            .iter()
            .all(|c| !c.sql.contains("orders")));
    }
}
