//! Verified queries as templates: a verified past question that differs from the one asked
//! only in its literals — a period, a number, a value of a column — answers it with the past
//! SQL and the new literals put in its syntax tree, never edited as text.
//!
//! A template is used only when every difference maps onto literals of the SQL faithfully:
//! the words around the literals are the same, a period is bounded on both sides in the SQL
//! (or compared as a whole month or year), a number is written once, a value is a literal the
//! SQL compares with, and a value the catalog knows is spelled as the catalog spells it.
//! Anything else is a `Mismatch`, and the model answers instead. Sans-IO: the caller
//! validates the result under the asker's policy like any other SQL.

use std::ops::ControlFlow;

use serde::Serialize;
use sqlparser::ast::{Value, ValueWithSpan, Visit, VisitMut, Visitor, VisitorMut};
use sqlparser::dialect::SQLiteDialect;
use sqlparser::parser::Parser;

use crate::calendar::day_number;
use crate::catalog::Catalog;
use crate::timeframe::{segments, Period, Segment};

/// A question and the day it was asked on (ISO date), against which its relative time
/// phrases ("last month") are read.
#[derive(Debug, Clone, Copy)]
pub struct Asked<'a> {
    pub question: &'a str,
    pub day: &'a str,
}

/// One difference between the two questions and the SQL literals it replaced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Substitution {
    /// The words of the past question ("september 2026").
    pub before: String,
    /// The words of the question asked ("august 2026").
    pub now: String,
    /// Each literal replaced, as SQL: `'2026-09-01' → '2026-08-01'`.
    pub literals: Vec<String>,
}

/// The past SQL with the question's literals in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instantiated {
    pub sql: String,
    /// Empty when the questions mean the same: `sql` is then the past SQL as written.
    pub substitutions: Vec<Substitution>,
}

/// Why a past query is not a template for the question.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Mismatch {
    #[error("the questions differ in more than their literals")]
    Wording,
    #[error("the past SQL is not one statement sqlparser reads")]
    Unparsable,
    #[error("\"{0}\" is not a literal of the past SQL")]
    NotInSql(String),
    #[error("\"{0}\" is written more than once in the past SQL, so which one it means is unclear")]
    Ambiguous(String),
    #[error("\"{0}\" is not bounded on both sides in the past SQL")]
    OpenPeriod(String),
    #[error("\"{before}\" and \"{now}\" are periods of different lengths")]
    PeriodShape { before: String, now: String },
    #[error("the past SQL has {0}, inside the period but not one of its bounds")]
    DateInside(String),
    #[error("\"{0}\" is not a value of the column the past SQL compares")]
    UnknownValue(String),
    #[error("the literal {0} would be replaced by two different ones")]
    Conflict(String),
}

/// `now` answered with the SQL of `before`, if they differ only in literals the SQL holds.
pub fn instantiate(
    before: Asked,
    now: Asked,
    sql: &str,
    catalog: &Catalog,
) -> Result<Instantiated, Mismatch> {
    let old = comparable(segments(before.question, before.day));
    let new = comparable(segments(now.question, now.day));
    if old.len() != new.len() {
        return Err(Mismatch::Wording);
    }
    let mut statements = Parser::parse_sql(&SQLiteDialect {}, sql).map_err(|_| Mismatch::Unparsable)?;
    if statements.len() != 1 {
        return Err(Mismatch::Unparsable);
    }
    let literals = literals_of(&statements[0]);
    let mut plan = Plan::default();
    let mut i = 0;
    while i < old.len() {
        match (&old[i], &new[i]) {
            (Segment::Word(a), Segment::Word(b)) if a == b => i += 1,
            (Segment::Period(a), Segment::Period(b)) if a.start == b.start && a.end == b.end => i += 1,
            (Segment::Period(a), Segment::Period(b)) => {
                plan.period(a, b, &literals)?;
                i += 1;
            }
            (Segment::Word(a), Segment::Word(b)) => match (number(a), number(b)) {
                (Some(x), Some(y)) => {
                    plan.number(a, x, b, y, &literals)?;
                    i += 1;
                }
                (None, None) => {
                    // A run of differing words is one value: "new york" for "los angeles".
                    let mut end = i + 1;
                    while end < old.len() && differing_words(&old[end], &new[end]) {
                        end += 1;
                    }
                    plan.value(&words(&old[i..end]), &words(&new[i..end]), &literals, catalog)?;
                    i = end;
                }
                _ => return Err(Mismatch::Wording),
            },
            _ => return Err(Mismatch::Wording),
        }
    }
    if plan.substitutions.is_empty() {
        return Ok(Instantiated { sql: sql.to_string(), substitutions: Vec::new() });
    }
    let mut replace = Replace { changes: &plan.changes };
    let _ = VisitMut::visit(&mut statements[0], &mut replace);
    Ok(Instantiated { sql: statements[0].to_string(), substitutions: plan.substitutions })
}

/// The replacements found so far, each literal mapped once.
#[derive(Default)]
struct Plan {
    changes: Vec<(Value, Value)>,
    substitutions: Vec<Substitution>,
}

impl Plan {
    fn add(&mut self, before: &str, now: &str, changes: Vec<(Value, Value)>) -> Result<(), Mismatch> {
        let mut shown = Vec::new();
        for (from, to) in changes {
            match self.changes.iter().find(|(f, _)| *f == from) {
                Some((_, kept)) if *kept != to => return Err(Mismatch::Conflict(from.to_string())),
                Some(_) => {}
                None => {
                    shown.push(format!("{from} → {to}"));
                    self.changes.push((from, to));
                }
            }
        }
        self.substitutions.push(Substitution {
            before: before.to_string(),
            now: now.to_string(),
            literals: shown,
        });
        Ok(())
    }

    fn period(&mut self, a: &Period, b: &Period, literals: &[Value]) -> Result<(), Mismatch> {
        let shape = Shape::of(a);
        if shape != Shape::of(b) {
            return Err(Mismatch::PeriodShape { before: a.phrase.clone(), now: b.phrase.clone() });
        }
        let text = |s: &str| Value::SingleQuotedString(s.to_string());
        let mut candidates = vec![
            (text(&a.start), text(&b.start)),
            (text(&a.end), text(&b.end)),
            (text(&a.last_day()), text(&b.last_day())),
        ];
        let mut whole = Vec::new();
        let prefix = |p: &Period, n: usize| p.start.get(..n).unwrap_or_default().to_string();
        match shape {
            Shape::Month => {
                let (x, y) = (&prefix(a, 7), &prefix(b, 7));
                whole.push((text(x), text(y)));
                whole.push((text(&format!("{x}%")), text(&format!("{y}%"))));
            }
            Shape::Year => {
                let (x, y) = (&prefix(a, 4), &prefix(b, 4));
                whole.push((text(x), text(y)));
                whole.push((Value::Number(x.to_string(), false), Value::Number(y.to_string(), false)));
                whole.push((text(&format!("{x}%")), text(&format!("{y}%"))));
                whole.push((text(&format!("{x}-%")), text(&format!("{y}-%"))));
            }
            Shape::Quarter | Shape::Days(_) => {}
        }
        let present = |v: &Value| literals.contains(v);
        let bounded = (present(&candidates[0].0) && (present(&candidates[1].0) || present(&candidates[2].0)))
            || whole.iter().any(|(from, _)| present(from));
        if !bounded {
            return Err(Mismatch::OpenPeriod(a.phrase.clone()));
        }
        candidates.extend(whole);
        candidates.retain(|(from, _)| present(from));
        // A day inside the old period that is none of its bounds would keep the old period.
        let (first, after) = (day_number(&a.start), day_number(&a.end));
        for literal in literals {
            if let Value::SingleQuotedString(s) = literal {
                let day = s.get(..10).and_then(day_number);
                let inside = matches!((day, first, after), (Some(d), Some(f), Some(e)) if d >= f && d <= e);
                if inside && !candidates.iter().any(|(from, _)| from == literal) {
                    return Err(Mismatch::DateInside(literal.to_string()));
                }
            }
        }
        self.add(&a.phrase, &b.phrase, candidates)
    }

    fn number(&mut self, a: &str, x: i64, b: &str, y: i64, literals: &[Value]) -> Result<(), Mismatch> {
        let found: Vec<&Value> = literals
            .iter()
            .filter(|v| matches!(v, Value::Number(n, _) if n.parse::<f64>().is_ok_and(|n| n == x as f64)))
            .collect();
        match found.as_slice() {
            [] => Err(Mismatch::NotInSql(a.to_string())),
            [one] => self.add(a, b, vec![((*one).clone(), Value::Number(y.to_string(), false))]),
            _ => Err(Mismatch::Ambiguous(a.to_string())),
        }
    }

    fn value(&mut self, a: &str, b: &str, literals: &[Value], catalog: &Catalog) -> Result<(), Mismatch> {
        let mut spellings: Vec<&String> = literals
            .iter()
            .filter_map(|v| match v {
                Value::SingleQuotedString(s) if s.eq_ignore_ascii_case(a) => Some(s),
                _ => None,
            })
            .collect();
        spellings.dedup();
        if spellings.is_empty() {
            return Err(Mismatch::NotInSql(a.to_string()));
        }
        let mut changes = Vec::new();
        for old in spellings {
            let new = spelled_like(old, b, catalog).ok_or_else(|| Mismatch::UnknownValue(b.to_string()))?;
            changes.push((Value::SingleQuotedString(old.clone()), Value::SingleQuotedString(new)));
        }
        self.add(a, b, changes)
    }
}

/// How long a period is, as far as a template cares: the same shape maps bound to bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Month,
    Quarter,
    Year,
    Days(i64),
}

impl Shape {
    fn of(period: &Period) -> Shape {
        let months = |k: i64| {
            let y = period.start.get(..4)?.parse::<i64>().ok()?;
            let m = period.start.get(5..7)?.parse::<i64>().ok()?;
            let index = y * 12 + (m - 1) + k;
            Some(format!("{:04}-{:02}-01", index.div_euclid(12), index.rem_euclid(12) + 1))
        };
        let first_of_month = period.start.len() == 10 && period.start.ends_with("-01");
        if first_of_month && months(1).as_deref() == Some(period.end.as_str()) {
            return Shape::Month;
        }
        let quarter_start = matches!(period.start.get(5..7), Some("01" | "04" | "07" | "10"));
        if first_of_month && quarter_start && months(3).as_deref() == Some(period.end.as_str()) {
            return Shape::Quarter;
        }
        if period.start.ends_with("-01-01") && months(12).as_deref() == Some(period.end.as_str()) {
            return Shape::Year;
        }
        let days = day_number(&period.end).zip(day_number(&period.start)).map(|(e, s)| e - s);
        Shape::Days(days.unwrap_or(-1))
    }
}

/// The segments without the little word before a period ("in", "during", "the" …), so that
/// "in September 2026" and "last month" line up.
fn comparable(segments: Vec<Segment>) -> Vec<Segment> {
    let mut out: Vec<Segment> = Vec::with_capacity(segments.len());
    for segment in segments {
        if matches!(segment, Segment::Period(_)) {
            while matches!(out.last(), Some(Segment::Word(w)) if PERIOD_WORDS.contains(&w.as_str())) {
                out.pop();
            }
        }
        out.push(segment);
    }
    out
}

const PERIOD_WORDS: [&str; 8] = ["in", "during", "for", "over", "on", "within", "of", "the"];

/// The question's number for a word: digits, or digits with `k` (thousands) or `m` (millions).
fn number(word: &str) -> Option<i64> {
    let (digits, scale) = match word.strip_suffix('k') {
        Some(d) => (d, 1_000),
        None => match word.strip_suffix('m') {
            Some(d) => (d, 1_000_000),
            None => (word, 1),
        },
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<i64>().ok()?.checked_mul(scale)
}

fn differing_words(a: &Segment, b: &Segment) -> bool {
    matches!((a, b), (Segment::Word(x), Segment::Word(y))
        if x != y && number(x).is_none() && number(y).is_none())
}

fn words(segments: &[Segment]) -> String {
    let words: Vec<&str> = segments
        .iter()
        .filter_map(|s| match s {
            Segment::Word(w) => Some(w.as_str()),
            Segment::Period(_) => None,
        })
        .collect();
    words.join(" ")
}

/// The new value as the data spells it: the catalog's spelling when a column knows `old`
/// among its values (and `None` when that column does not know the new one); otherwise
/// `old`'s case (lower, upper or capitalised words) applied to the question's words.
fn spelled_like(old: &str, new: &str, catalog: &Catalog) -> Option<String> {
    let columns: Vec<&crate::catalog::Column> = catalog
        .tables()
        .flat_map(|t| &t.columns)
        .filter(|c| c.allowed_values.iter().chain(&c.sample_values).any(|v| v == old))
        .collect();
    if !columns.is_empty() {
        return columns
            .iter()
            .flat_map(|c| c.allowed_values.iter().chain(&c.sample_values))
            .find(|v| v.eq_ignore_ascii_case(new))
            .cloned();
    }
    if old == old.to_lowercase() {
        Some(new.to_lowercase())
    } else if old == old.to_uppercase() {
        Some(new.to_uppercase())
    } else if old.split(' ').all(|w| capitalised(w) == w) {
        Some(new.split(' ').map(capitalised).collect::<Vec<_>>().join(" "))
    } else {
        None
    }
}

fn capitalised(word: &str) -> String {
    let mut chars = word.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars.flat_map(char::to_lowercase)).collect(),
        None => String::new(),
    }
}

/// Every literal value the statement holds.
fn literals_of(statement: &sqlparser::ast::Statement) -> Vec<Value> {
    struct Collect(Vec<Value>);
    impl Visitor for Collect {
        type Break = ();
        fn post_visit_value(&mut self, value: &ValueWithSpan) -> ControlFlow<()> {
            self.0.push(value.value.clone());
            ControlFlow::Continue(())
        }
    }
    let mut collect = Collect(Vec::new());
    let _ = statement.visit(&mut collect);
    collect.0
}

/// Puts each planned literal in place of the one it replaces, all at once.
struct Replace<'a> {
    changes: &'a [(Value, Value)],
}

impl VisitorMut for Replace<'_> {
    type Break = ();
    fn post_visit_value(&mut self, value: &mut ValueWithSpan) -> ControlFlow<()> {
        if let Some((_, to)) = self.changes.iter().find(|(from, _)| *from == value.value) {
            value.value = to.clone();
        }
        ControlFlow::Continue(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{Column, Table};

    const DAY: &str = "2026-11-20";

    fn catalog() -> Catalog {
        let mut status = Column::new("status", "TEXT");
        status.sample_values = vec!["completed".into(), "refunded".into(), "cancelled".into()];
        Catalog::from_tables(vec![Table::new("orders", vec![status, Column::new("ordered_at", "TEXT")])])
    }

    fn fill(before: &str, now: &str, sql: &str) -> Result<Instantiated, Mismatch> {
        instantiate(Asked { question: before, day: DAY }, Asked { question: now, day: DAY }, sql, &catalog())
    }

    const REFUNDED_IN_MONTH: &str = "SELECT COUNT(*) FROM orders WHERE status = 'refunded' \
        AND ordered_at >= '2026-09-01' AND ordered_at < '2026-10-01'";

    #[test]
    fn another_month_replaces_both_bounds_in_the_tree() {
        let done = fill(
            "How many orders were refunded in September 2026?",
            "how many orders were refunded in August 2026",
            REFUNDED_IN_MONTH,
        )
        .expect("a template");
        assert_eq!(
            done.sql,
            "SELECT COUNT(*) FROM orders WHERE status = 'refunded' \
             AND ordered_at >= '2026-08-01' AND ordered_at < '2026-09-01'"
        );
        assert_eq!(done.substitutions.len(), 1);
        assert_eq!(done.substitutions[0].before, "september 2026");
        assert_eq!(
            done.substitutions[0].literals,
            ["'2026-09-01' → '2026-08-01'", "'2026-10-01' → '2026-09-01'"]
        );
    }

    #[test]
    fn the_same_question_keeps_the_sql_as_written() {
        let asked = "How many orders were refunded in September 2026?";
        let done = fill(asked, "how many orders were REFUNDED in september 2026", REFUNDED_IN_MONTH).unwrap();
        assert_eq!((done.sql.as_str(), done.substitutions.len()), (REFUNDED_IN_MONTH, 0));
    }

    #[test]
    fn a_relative_period_is_read_on_each_day_it_was_asked() {
        let before = Asked { question: "refunded orders last month", day: "2026-10-15" };
        let now = Asked { question: "refunded orders last month", day: "2026-11-20" };
        let done = instantiate(before, now, REFUNDED_IN_MONTH, &catalog()).unwrap();
        assert!(done.sql.contains(">= '2026-10-01' AND ordered_at < '2026-11-01'"), "{}", done.sql);
        // "in September 2026" and "last month" line up: the little word before a period goes.
        let done = fill("refunded orders in September 2026", "refunded orders last month", REFUNDED_IN_MONTH)
            .unwrap();
        assert!(done.sql.contains(">= '2026-10-01' AND ordered_at < '2026-11-01'"), "{}", done.sql);
    }

    #[test]
    fn values_numbers_and_month_prefixes_are_replaced() {
        let sql = "SELECT COUNT(*) FROM orders WHERE status = 'refunded' \
                   AND strftime('%Y-%m', ordered_at) = '2026-09'";
        let done = fill("refunded orders in September 2026", "cancelled orders in July 2026", sql).unwrap();
        assert!(
            done.sql.contains("status = 'cancelled'") && done.sql.contains("= '2026-07'"),
            "{}",
            done.sql
        );

        let top = "SELECT status, COUNT(*) AS n FROM orders GROUP BY status HAVING COUNT(*) >= 100000 \
                   ORDER BY n DESC LIMIT 10";
        let done =
            fill("top 10 statuses with at least 100k orders", "top 3 statuses with at least 50k orders", top)
                .unwrap();
        assert!(done.sql.contains(">= 50000") && done.sql.ends_with("LIMIT 3"), "{}", done.sql);
    }

    #[test]
    fn a_year_compared_as_a_number_or_text_is_replaced() {
        let sql = "SELECT COUNT(*) FROM orders WHERE CAST(strftime('%Y', ordered_at) AS INTEGER) = 2026";
        let done = fill("orders in 2026", "orders in 2025", sql).unwrap();
        assert!(done.sql.ends_with("= 2025"), "{}", done.sql);
    }

    #[test]
    fn what_cannot_be_mapped_faithfully_is_not_a_template() {
        use Mismatch::*;
        let cases: &[(&str, &str, &str, Mismatch)] = &[
            // Only the start of the year is in the SQL: 2025 would also count 2026.
            (
                "refunds in 2026",
                "refunds in 2025",
                "SELECT COUNT(*) FROM orders WHERE ordered_at >= '2026-01-01'",
                OpenPeriod("2026".into()),
            ),
            (
                "refunded orders",
                "cancelled orders",
                "SELECT COUNT(*) FROM orders",
                NotInSql("refunded".into()),
            ),
            (
                "refunded orders",
                "shipped orders",
                "SELECT COUNT(*) FROM orders WHERE status = 'refunded'",
                UnknownValue("shipped".into()),
            ),
            ("orders by status", "orders by status per month", REFUNDED_IN_MONTH, Wording),
            (
                "refunded orders in September 2026",
                "refunded orders in Q3 2026",
                REFUNDED_IN_MONTH,
                PeriodShape { before: "september 2026".into(), now: "q3 2026".into() },
            ),
            (
                "top 2 orders",
                "top 5 orders",
                "SELECT ordered_at FROM orders WHERE status = 'refunded' LIMIT 2 OFFSET 2",
                Ambiguous("2".into()),
            ),
            (
                "orders in September 2026",
                "orders in August 2026",
                "SELECT COUNT(*) FROM orders WHERE ordered_at >= '2026-09-01' AND ordered_at < '2026-10-01' \
                 AND ordered_at <> '2026-09-15'",
                DateInside("'2026-09-15'".into()),
            ),
            ("orders", "orders", "SELECT 1; SELECT 2", Unparsable),
        ];
        for (before, now, sql, expected) in cases {
            assert_eq!(fill(before, now, sql).as_ref().err(), Some(expected), "{before} → {now}");
        }
    }

    #[test]
    fn an_identifier_that_reads_like_a_literal_is_never_touched() {
        // Replacement is by literal value in the tree: the alias and the column name stay.
        let sql = "SELECT COUNT(*) AS \"refunded 2026-09-01\" FROM orders WHERE status = 'refunded' \
                   AND ordered_at >= '2026-09-01' AND ordered_at < '2026-10-01'";
        let done = fill("refunded orders in September 2026", "refunded orders in October 2026", sql).unwrap();
        assert!(
            done.sql.contains("\"refunded 2026-09-01\"") && done.sql.contains(">= '2026-10-01'"),
            "{}",
            done.sql
        );
    }
}
