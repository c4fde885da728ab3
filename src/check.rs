//! Plausibility checks on a query that ran: what a careful analyst looks at before trusting a
//! result. A filter comparing a column with a value it never holds (or a date in another
//! shape), `LIMIT 1` for a question about several rows, a ratio in integer arithmetic or
//! scaled to a percentage, a column selected beside an aggregate without GROUP BY, a range
//! that misses or overruns the question's period by a day, a value divided by itself, a
//! period after the data ends, a strftime format SQLite does not know, a month compared with a day, values the question wants
//! rounded left unrounded, several rows for a question asking for one number, several rows per
//! group for a question asking for the top one in each.
//!
//! Checks read the SQL the model wrote, the result, and the catalog as the role sees it (so a
//! finding never names a value the role may not see). A finding that names a fix is sent back
//! to the model once (`Finding::repairable`); every finding left lowers the answer's
//! confidence.

use std::ops::ControlFlow;

use serde::Serialize;
use sqlparser::ast::{
    BinaryOperator, CastKind, DataType, Expr, FunctionArg, FunctionArgExpr, FunctionArguments, GroupByExpr,
    InTarget, LimitClause, Query, Select, SelectItem, SetExpr, Value, Visit, Visitor,
};

use crate::catalog::{Catalog, Column};
use crate::history::structure::{conjuncts, parse_query, plain_arguments, selects_of, Scope, AGGREGATES};
use crate::timeframe::Period;
use crate::warehouse::ResultSet;
use walker::Walker;

/// What a check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FindingCode {
    /// A filter compares a column with a value it does not hold.
    ValueNeverHeld,
    /// A filter compares a date (or a part of one) with a literal of another shape.
    DateShape,
    /// The outermost LIMIT differs from the number of rows the question asks for.
    LimitMismatch,
    /// `LIMIT 1` although the question asks about several rows.
    LimitOne,
    /// A division of integers: SQLite drops the fraction.
    IntegerDivision,
    /// A column selected beside an aggregate without GROUP BY: one arbitrary row's value.
    UngroupedColumn,
    /// A range on a date column that leaves out the period's last day or counts the day after.
    PeriodBounds,
    /// A ratio asked for, multiplied by 100 as if a percentage had been.
    RatioAsPercentage,
    /// A value divided by itself: 1 in every row.
    RatioOfItself,
    /// The question's period starts after the last date in the tables read.
    PeriodAfterData,
    /// A strftime format SQLite does not know (`%q`, `%B` …): it returns NULL.
    UnknownDateFormat,
    /// The question asks for rounded values and nothing is rounded.
    Rounding,
    /// The question asks for one number and the result has several rows.
    SeveralRows,
    /// The question asks for the top row in each group and a group has several.
    TopPerGroup,
    /// No rows.
    Empty,
}

/// One finding, worded for the model and for the reader.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Finding {
    pub code: FindingCode,
    pub message: String,
}

impl Finding {
    /// True when the finding names a fix the model can make (the others are facts the answer
    /// reports: no repair round changes the data).
    pub fn repairable(&self) -> bool {
        !matches!(self.code, FindingCode::PeriodAfterData | FindingCode::Empty)
    }
}

/// How far an answer can be trusted.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    Low,
    Medium,
    High,
}

impl Level {
    /// The level as the API spells it.
    pub fn name(self) -> &'static str {
        match self {
            Level::Low => "low",
            Level::Medium => "medium",
            Level::High => "high",
        }
    }
}

/// The answer's confidence, with the reasons that lowered it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Confidence {
    pub level: Level,
    pub reasons: Vec<String>,
}

impl Confidence {
    /// A verified query asked the same: no model involved.
    pub fn verified() -> Confidence {
        Confidence { level: Level::High, reasons: vec!["a verified query asked the same".into()] }
    }

    /// The analyst chose this reading among `offered` the candidates disagreed on.
    pub fn chosen(offered: usize) -> Confidence {
        Confidence {
            level: Level::Medium,
            reasons: vec![format!(
                "you chose this reading among {offered} the candidates disagreed on; check it reads the question as you meant"
            )],
        }
    }

    /// From the findings left on the answer, how sampled candidates agreed (`agreeing` of
    /// `ran`), and the finding a repair round fixed, if one did.
    pub fn assess(
        findings: &[Finding],
        agreement: Option<(usize, usize)>,
        corrected: Option<&str>,
    ) -> Confidence {
        let mut level = Level::High;
        let mut reasons = Vec::new();
        let mut lower = |to: Level, reason: String| {
            level = level.min(to);
            reasons.push(reason);
        };
        for finding in findings {
            let to = if finding.code == FindingCode::Empty { Level::Medium } else { Level::Low };
            lower(to, finding.message.clone());
        }
        if let Some((agreeing, ran)) = agreement {
            if ran == 0 {
                lower(Level::Low, "none of the sampled candidates ran".into());
            } else if agreeing * 2 <= ran && ran > 1 {
                lower(
                    Level::Low,
                    format!("the candidates disagree: only {agreeing} of {ran} gave this result"),
                );
            } else if agreeing < ran {
                lower(Level::Medium, format!("{agreeing} of {ran} candidates gave this result"));
            }
        }
        if let Some(corrected) = corrected {
            lower(Level::Medium, format!("corrected once after a check: {corrected}"));
        }
        Confidence { level, reasons }
    }
}

/// What the checks look at.
pub struct Subject<'a> {
    pub question: &'a str,
    /// The SQL as the model wrote it (before the policy's rewrite).
    pub sql: &'a str,
    pub result: &'a ResultSet,
    /// The catalog as the role sees it.
    pub catalog: &'a Catalog,
    /// The question's time phrases, resolved.
    pub periods: &'a [Period],
}

/// Every finding on `subject`, repairable ones first.
pub fn check(subject: &Subject) -> Vec<Finding> {
    let Some(query) = parse_query(subject.sql) else { return Vec::new() };
    let empty = subject.result.rows.is_empty();
    let mut walker = Walker {
        catalog: subject.catalog,
        empty,
        periods: subject.periods,
        ratio_asked: asks_for_ratio(subject.question),
        findings: Vec::new(),
        tables: Vec::new(),
    };
    let _ = query.visit(&mut walker);
    let mut findings = walker.findings;
    findings.extend(limit_findings(subject.question, &query));
    findings.extend(format_findings(&query));
    findings.extend(rounding_findings(subject.question, &query));
    findings.extend(several_rows_findings(subject.question, subject.result));
    findings.extend(top_per_group_findings(subject.question, &query, subject.result));
    findings.extend(period_findings(subject.periods, &walker.tables, subject.catalog));
    if empty && findings.iter().all(|f| f.code == FindingCode::PeriodAfterData) {
        findings.push(Finding { code: FindingCode::Empty, message: "The query returned no rows.".into() });
    }
    findings.sort_by_key(|f| !f.repairable());
    findings.dedup();
    findings
}

/// The literal 100 (or 100.0).
fn is_hundred(expr: &Expr) -> bool {
    matches!(expr, Expr::Value(v) if matches!(&v.value, Value::Number(n, _) if n.parse::<f64>() == Ok(100.0)))
}

/// True when `expr` divides somewhere.
pub(crate) fn has_division(expr: &Expr) -> bool {
    let mut found = false;
    let _ = sqlparser::ast::visit_expressions(expr, |e| {
        found |= matches!(e, Expr::BinaryOp { op: BinaryOperator::Divide, .. });
        ControlFlow::<()>::Continue(())
    });
    found
}

/// "ratio" asked for, and no percentage, percent sign or rate (which some read as percent).
fn asks_for_ratio(question: &str) -> bool {
    let lower = question.to_lowercase();
    let words: Vec<&str> = lower.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).collect();
    words.iter().any(|w| *w == "ratio" || *w == "ratios")
        && !lower.contains('%')
        && !words.iter().any(|w| w.starts_with("percent") || *w == "pct" || *w == "rate")
}

fn single_argument(args: &FunctionArguments) -> Option<&Expr> {
    match args {
        FunctionArguments::List(list) if list.args.len() == 1 => match &list.args[0] {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e),
            _ => None,
        },
        _ => None,
    }
}

fn text_literal(expr: &Expr) -> Option<&str> {
    match expr {
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => Some(s),
            _ => None,
        },
        Expr::Nested(inner) => text_literal(inner),
        _ => None,
    }
}

/// The format of `strftime('<format>', …)`.
fn strftime_format(expr: &Expr) -> Option<String> {
    let Expr::Function(f) = expr else { return None };
    if !f.name.to_string().eq_ignore_ascii_case("strftime") {
        return None;
    }
    let FunctionArguments::List(list) = &f.args else { return None };
    match list.args.first()? {
        FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => text_literal(e).map(str::to_string),
        _ => None,
    }
}

/// The shape of what a strftime format (`%Y-%m`) or a catalog date format (`YYYY-MM-DD`)
/// writes, every digit as 9.
fn format_shape(format: &str) -> String {
    if !format.contains('%') {
        return format.replace("YYYY", "9999").replace(['Y', 'M', 'D', 'H', 'S'], "9");
    }
    let mut out = String::new();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('Y') => out.push_str("9999"),
            Some('j') => out.push_str("999"),
            Some('w') => out.push('9'),
            Some('f') => out.push_str("99.999"),
            Some('%') => out.push('%'),
            Some(_) => out.push_str("99"),
            None => {}
        }
    }
    out
}

/// A literal's shape: every digit as 9.
fn shape(text: &str) -> String {
    text.chars().map(|c| if c.is_ascii_digit() { '9' } else { c }).collect()
}

/// An example value for a strftime format.
fn example_of(format: &str) -> String {
    format
        .replace("%Y", "2026")
        .replace("%m", "09")
        .replace("%d", "30")
        .replace("%H", "14")
        .replace("%M", "05")
        .replace("%S", "00")
        .replace("%w", "3")
        .replace("%j", "273")
        .replace("%W", "39")
}

fn is_aggregate(name: &str) -> bool {
    AGGREGATES.contains(&name)
}

/// The aggregate a division divides by itself — `CAST(COUNT(id) AS REAL) / NULLIF(COUNT(id), 0)`
/// is 1 in every group — read through parentheses, casts, `NULLIF(…, 0)` and a constant scale
/// (`1.0 * …`); None when the two sides differ or are not one aggregate.
pub(crate) fn divided_by_itself<'e>(left: &'e Expr, right: &'e Expr) -> Option<&'e Expr> {
    let (left, right) = (ratio_core(left), ratio_core(right));
    let Expr::Function(f) = right else { return None };
    let aggregate = f.over.is_none() && is_aggregate(&f.name.to_string().to_lowercase());
    (aggregate && left.to_string() == right.to_string()).then_some(right)
}

/// `expr` without the parentheses, casts, `NULLIF(…, 0)` and constant factors around it.
fn ratio_core(expr: &Expr) -> &Expr {
    let number = |e: &Expr| matches!(e, Expr::Value(v) if matches!(v.value, Value::Number(..)));
    match expr {
        Expr::Nested(inner) | Expr::Cast { expr: inner, .. } => ratio_core(inner),
        Expr::BinaryOp { left, op: BinaryOperator::Multiply, right } if number(left) => ratio_core(right),
        Expr::BinaryOp { left, op: BinaryOperator::Multiply, right } if number(right) => ratio_core(left),
        Expr::Function(f) if f.name.to_string().eq_ignore_ascii_case("nullif") => {
            match plain_arguments(f)[..] {
                [value, zero] if zero.to_string() == "0" => ratio_core(value),
                _ => expr,
            }
        }
        _ => expr,
    }
}

/// True when `expr` aggregates outside any window.
pub(crate) fn has_aggregate(expr: &Expr) -> bool {
    let mut found = false;
    let _ = sqlparser::ast::visit_expressions(expr, |e| {
        if let Expr::Function(f) = e {
            if f.over.is_none() && is_aggregate(&f.name.to_string().to_lowercase()) {
                found = true;
            }
        }
        ControlFlow::<()>::Continue(())
    });
    found
}

pub(crate) fn has_window(node: &impl Visit) -> bool {
    let mut found = false;
    let _ = sqlparser::ast::visit_expressions(node, |e| {
        if matches!(e, Expr::Function(f) if f.over.is_some()) {
            found = true;
        }
        ControlFlow::<()>::Continue(())
    });
    found
}

/// A column reference of `expr` outside every aggregate and subquery, as written.
fn bare_column(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Identifier(i) => Some(i.value.clone()),
        Expr::CompoundIdentifier(parts) => {
            Some(parts.iter().map(|p| p.value.as_str()).collect::<Vec<_>>().join("."))
        }
        Expr::Function(f) if is_aggregate(&f.name.to_string().to_lowercase()) => None,
        Expr::Function(f) => match &f.args {
            FunctionArguments::List(list) => list.args.iter().find_map(|a| match a {
                FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => bare_column(e),
                _ => None,
            }),
            _ => None,
        },
        Expr::BinaryOp { left, right, .. } => bare_column(left).or_else(|| bare_column(right)),
        Expr::UnaryOp { expr, .. } | Expr::Nested(expr) | Expr::Cast { expr, .. } => bare_column(expr),
        _ => None,
    }
}

/// The question's words, lower-cased, split at anything not a letter or digit.
pub(crate) fn lowercase_words(question: &str) -> Vec<String> {
    question
        .to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

/// The number of rows a question asks for: "top 5", "the 3 most", "10 largest", "first 10".
pub(crate) fn rows_asked(question: &str) -> Option<u64> {
    let words = lowercase_words(question);
    const BEFORE: &[&str] = &["top", "first", "bottom", "last"];
    const AFTER: &[&str] = &[
        "most", "least", "largest", "smallest", "biggest", "highest", "lowest", "best", "worst", "top",
        "busiest", "longest", "shortest", "newest", "oldest", "latest", "earliest",
    ];
    for (i, word) in words.iter().enumerate() {
        let Some(n) = number_word(word) else { continue };
        let before = i > 0 && BEFORE.contains(&words[i - 1].as_str());
        // "the 3 most viewed", "which 5 countries had the most users"; not "at least 15".
        let after = words.iter().skip(i + 1).take(4).any(|w| AFTER.contains(&w.as_str()))
            && !(i > 0 && matches!(words[i - 1].as_str(), "least" | "most" | "than"));
        if before || after {
            return Some(n);
        }
    }
    None
}

fn number_word(word: &str) -> Option<u64> {
    const WORDS: [&str; 10] = ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"];
    WORDS
        .iter()
        .position(|w| *w == word)
        .map(|i| i as u64 + 1)
        .or_else(|| word.parse().ok().filter(|n| *n <= 100))
}

/// True when the question asks about several rows: one per group, or a list.
pub(crate) fn asks_for_several(question: &str) -> bool {
    let q = format!(" {} ", question.to_lowercase().replace(|c: char| !c.is_alphanumeric(), " "));
    [" each ", " per ", " every ", " by ", " list ", " all ", " for all "].iter().any(|cue| q.contains(cue))
}

pub(crate) fn outer_limit(query: &Query) -> Option<u64> {
    let limit = match &query.limit_clause {
        Some(LimitClause::LimitOffset { limit: Some(limit), .. }) => limit,
        Some(LimitClause::OffsetCommaLimit { limit, .. }) => limit,
        _ => return None,
    };
    match limit {
        Expr::Value(v) => match &v.value {
            Value::Number(n, _) => n.parse().ok(),
            _ => None,
        },
        _ => None,
    }
}

fn limit_findings(question: &str, query: &Query) -> Vec<Finding> {
    let Some(limit) = outer_limit(query) else { return Vec::new() };
    match rows_asked(question) {
        Some(asked) if asked != limit => vec![Finding {
            code: FindingCode::LimitMismatch,
            message: format!("The question asks for {asked} rows but the query has LIMIT {limit}: use LIMIT {asked}"),
        }],
        None if limit == 1 && asks_for_top_per_group(question) => vec![Finding {
            code: FindingCode::LimitOne,
            message: "The question asks for the top row in each group, but LIMIT 1 keeps one row in all: rank within each group instead, e.g. RANK() OVER (PARTITION BY the group ORDER BY the measure DESC) in a subquery, keep rank = 1, and drop the LIMIT".into(),
        }],
        None if limit == 1 && asks_for_several(question) => vec![Finding {
            code: FindingCode::LimitOne,
            message: "The question asks for a row per group (or a list), but LIMIT 1 keeps only one: remove the LIMIT".into(),
        }],
        _ => Vec::new(),
    }
}

/// The conversions SQLite's strftime knows; any other returns NULL.
const STRFTIME_CONVERSIONS: &str = "defFGgHIjJklmMpPRsSTuUVwWY%";

/// A strftime format with a conversion SQLite does not know (`%q`, `%B`, `%y` …).
fn format_findings(query: &Query) -> Vec<Finding> {
    let mut findings = Vec::new();
    let _ = sqlparser::ast::visit_expressions(query, |e| {
        if let Some(format) = strftime_format(e) {
            let mut chars = format.chars();
            while let Some(c) = chars.next() {
                if c != '%' {
                    continue;
                }
                match chars.next() {
                    Some(d) if STRFTIME_CONVERSIONS.contains(d) => {}
                    other => {
                        let conversion = other.map(|d| format!("%{d}")).unwrap_or_else(|| "%".into());
                        findings.push(Finding {
                            code: FindingCode::UnknownDateFormat,
                            message: format!(
                                "SQLite's strftime has no {conversion} (strftime('{format}', ...) returns NULL); use %Y year, %m month, %d day, %w weekday (0 = Sunday), %j day of year, %H hour, and for a quarter (CAST(strftime('%m', date_column) AS INTEGER) + 2) / 3"
                            ),
                        });
                        return ControlFlow::Break(());
                    }
                }
            }
        }
        ControlFlow::<()>::Continue(())
    });
    findings
}

/// The decimals a question asks values rounded to: "rounded to 2 decimals", "round to one
/// decimal place".
pub(crate) fn decimals_asked(question: &str) -> Option<u64> {
    let q = question.to_lowercase();
    if !q.contains("round") {
        return None;
    }
    let words: Vec<&str> = q.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).collect();
    words.windows(2).find_map(|pair| {
        let decimals = pair[1].starts_with("decimal");
        if !decimals {
            return None;
        }
        if pair[0] == "zero" || pair[0] == "0" {
            Some(0)
        } else {
            number_word(pair[0])
        }
    })
}

/// True when `query` rounds anything, in any SELECT of it.
pub(crate) fn rounds(query: &Query) -> bool {
    let mut rounded = false;
    let _ = sqlparser::ast::visit_expressions(query, |e| {
        if matches!(e, Expr::Function(f) if f.name.to_string().eq_ignore_ascii_case("round")) {
            rounded = true;
        }
        ControlFlow::<()>::Continue(())
    });
    rounded
}

/// Values the question wants rounded, and no ROUND anywhere in the query.
fn rounding_findings(question: &str, query: &Query) -> Vec<Finding> {
    let Some(decimals) = decimals_asked(question) else { return Vec::new() };
    if rounds(query) {
        return Vec::new();
    }
    // The computed values of the outermost SELECT, named with their whole expression, so the
    // repair wraps them rather than rewriting them (a small model drops the AVG otherwise).
    let computed: Vec<String> = selects_of(&query.body)
        .first()
        .map(|select| {
            select
                .projection
                .iter()
                .filter_map(|item| match item {
                    SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => Some(e),
                    _ => None,
                })
                .filter(|e| {
                    !matches!(e, Expr::Identifier(_) | Expr::CompoundIdentifier(_) | Expr::Function(_))
                        || has_aggregate(e)
                })
                .map(|e| format!("ROUND({e}, {decimals})"))
                .collect()
        })
        .unwrap_or_default();
    let fix = if computed.is_empty() {
        format!("select ROUND(value, {decimals}) for each computed value")
    } else {
        format!("select {} and keep everything else as it is", computed.join(", "))
    };
    vec![Finding {
        code: FindingCode::Rounding,
        message: format!("The question asks for values rounded to {decimals} decimals, but the query rounds nothing: {fix}"),
    }]
}

/// True when the question asks for a single number: "how many …" with no group or list cue.
pub(crate) fn asks_for_one_number(question: &str) -> bool {
    let q = question.trim_start().to_lowercase();
    (q.starts_with("how many")
        || q.starts_with("what is the total number")
        || q.starts_with("what was the total number"))
        && !asks_for_several(question)
}

/// Several rows for a question that asks for one number: most often the groups of a
/// `GROUP BY … HAVING`, which the question wants counted.
fn several_rows_findings(question: &str, result: &ResultSet) -> Vec<Finding> {
    let rows = result.rows.len();
    if rows < 2 || !asks_for_one_number(question) {
        return Vec::new();
    }
    vec![Finding {
        code: FindingCode::SeveralRows,
        message: format!(
            "The question asks for one number, but the query returned {rows}{} rows; if it counts groups (GROUP BY ... HAVING ...), count them in an outer query: SELECT COUNT(*) FROM (the grouped query)",
            if result.truncated { " or more" } else { "" }
        ),
    }]
}

/// True when the question asks for the top rows within each group: "in each category, which
/// product sold the most".
pub(crate) fn asks_for_top_per_group(question: &str) -> bool {
    let q = format!(" {} ", question.to_lowercase().replace(|c: char| !c.is_alphanumeric(), " "));
    let any = |cues: &[&str]| cues.iter().any(|cue| q.contains(cue));
    any(&[" in each ", " for each ", " within each ", " of each "])
        && any(&[" which ", " what ", " who "])
        && any(&[
            " most ",
            " highest ",
            " largest ",
            " biggest ",
            " best ",
            " top ",
            " lowest ",
            " least ",
            " fewest ",
            " smallest ",
            " worst ",
        ])
}

/// True when the question asks for *the* row with the most or least of something, one row
/// (ties aside): "which owner owns the most dogs", "the most common hometown". Not a number of
/// rows ("the 3 largest"), a group ("in each"), a list ("all", "what are", "which … have"), or
/// an order ("sorted by", "from highest to lowest").
pub(crate) fn asks_for_the_top_one(question: &str) -> bool {
    let words = lowercase_words(question);
    const SUPERLATIVES: &[&str] = &[
        "most", "least", "highest", "lowest", "largest", "smallest", "fewest", "biggest", "oldest",
        "youngest", "maximum", "minimum", "greatest", "longest", "shortest", "best", "worst", "top",
        "busiest", "newest", "latest", "earliest", "cheapest",
    ];
    const NOT_ONE: &[&str] = &[
        "each",
        "every",
        "per",
        "all",
        "different",
        "order",
        "ordered",
        "sort",
        "sorted",
        "rank",
        "ranked",
        "descending",
        "ascending",
        "starting",
    ];
    // "the most …", "the two words later": "the most common", "the largest number of".
    let the_superlative = words.iter().enumerate().any(|(i, w)| {
        SUPERLATIVES.contains(&w.as_str()) && words[i.saturating_sub(3)..i].iter().any(|b| b == "the")
    });
    let most_common = words.windows(2).any(|pair| {
        matches!(pair[0].as_str(), "most" | "least")
            && matches!(pair[1].as_str(), "common" | "frequent" | "popular")
    });
    let plural_ask = words.windows(2).any(|pair| pair[0] == "what" && pair[1] == "are")
        || words.windows(3).any(|w| {
            w[0] == "which" && w[1].ends_with('s') && matches!(w[2].as_str(), "are" | "have" | "were")
        });
    (the_superlative || most_common)
        && !plural_ask
        && !words.iter().any(|w| NOT_ONE.contains(&w.as_str()) || number_word(w).is_some())
}

/// More rows per group than the question asks for (one, or its "top N"), reading the first
/// column as the group: most often a grouped query ordered by the measure, whose every row the
/// question did not want. A query that ranks within groups (a window function) is trusted with
/// its ties.
fn top_per_group_findings(question: &str, query: &Query, result: &ResultSet) -> Vec<Finding> {
    if result.rows.len() < 2 || !asks_for_top_per_group(question) || has_window(query) {
        return Vec::new();
    }
    let wanted = rows_asked(question).unwrap_or(1) as usize;
    let mut counts: std::collections::BTreeMap<String, usize> = std::collections::BTreeMap::new();
    for row in &result.rows {
        if let Some(value) = row.first() {
            *counts.entry(value.to_string()).or_default() += 1;
        }
    }
    let Some((value, rows)) = counts.iter().max_by_key(|(_, n)| **n) else { return Vec::new() };
    if *rows <= wanted {
        return Vec::new();
    }
    let column = result.columns.first().map(String::as_str).unwrap_or("the first column");
    let keep =
        if wanted == 1 { "only the top row".to_string() } else { format!("only the top {wanted} rows") };
    vec![Finding {
        code: FindingCode::TopPerGroup,
        message: format!(
            "The question asks for the top of each group, but the result has {rows} rows for {column} = {value} ({} groups, {} rows): keep {keep} per group, e.g. compute RANK() OVER (PARTITION BY the group ORDER BY the measure DESC) in a subquery and keep rank <= {wanted}",
            counts.len(),
            result.rows.len()
        ),
    }]
}

/// A period that starts after the last date of every table read that has one.
fn period_findings(periods: &[Period], tables: &[String], catalog: &Catalog) -> Vec<Finding> {
    let latest = tables
        .iter()
        .filter_map(|t| catalog.table(t))
        .filter_map(|t| t.last_change.as_ref().map(|l| (t.name.clone(), l.date.clone())))
        .max_by(|a, b| a.1.cmp(&b.1));
    let Some((table, date)) = latest else { return Vec::new() };
    periods
        .iter()
        .filter(|p| p.start > date)
        .map(|p| Finding {
            code: FindingCode::PeriodAfterData,
            message: format!(
                "The data ends on {date} ({table}), before \"{}\" ({} to {}) begins, so the result cannot cover that period",
                p.phrase,
                p.start,
                p.last_day()
            ),
        })
        .collect()
}

#[cfg(test)]
mod tests;
mod walker;
