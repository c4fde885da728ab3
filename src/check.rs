//! Plausibility checks on a query that ran: what a careful analyst looks at before trusting a
//! result. A filter comparing a column with a value it never holds (or a date in another
//! shape), `LIMIT 1` for a question about several rows, a ratio in integer arithmetic or
//! scaled to a percentage, a column selected beside an aggregate without GROUP BY, a range
//! that misses or overruns the question's period by a day, a period after the data ends, a
//! strftime format SQLite does not know, a month compared with a day, values the question wants
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
use crate::execute::ResultSet;
use crate::history::structure::{conjuncts, parse_query, selects_of, Scope, AGGREGATES};
use crate::timeframe::Period;

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
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    Low,
    Medium,
    High,
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

struct Walker<'c> {
    catalog: &'c Catalog,
    empty: bool,
    /// The question's time phrases, resolved.
    periods: &'c [Period],
    /// The question asks for a ratio and not for a percentage.
    ratio_asked: bool,
    findings: Vec<Finding>,
    /// Catalog tables read.
    tables: Vec<String>,
}

impl Visitor for Walker<'_> {
    type Break = ();

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
        self.body(&query.body);
        ControlFlow::Continue(())
    }
}

impl<'c> Walker<'c> {
    fn body(&mut self, body: &SetExpr) {
        for select in selects_of(body) {
            self.select(select);
        }
    }

    fn select(&mut self, select: &Select) {
        let scope = Scope::of(select, self.catalog);
        for table in scope.aliases.values() {
            if !self.tables.contains(table) {
                self.tables.push(table.clone());
            }
        }
        let mut conditions = Vec::new();
        if let Some(selection) = &select.selection {
            conjuncts(selection, &mut conditions);
        }
        for table in &select.from {
            for join in &table.joins {
                if let Some(sqlparser::ast::JoinConstraint::On(on)) =
                    crate::validate::join_constraint(&join.join_operator)
                {
                    conjuncts(on, &mut conditions);
                }
            }
        }
        for condition in conditions {
            self.condition(condition, &scope);
        }
        self.date_functions(select, &scope);
        let items: Vec<&Expr> = select
            .projection
            .iter()
            .filter_map(|item| match item {
                SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => Some(e),
                _ => None,
            })
            .collect();
        for item in &items {
            self.divisions(item, &scope);
            if self.ratio_asked {
                self.percentage(item);
            }
        }
        let grouped = match &select.group_by {
            GroupByExpr::Expressions(exprs, _) => !exprs.is_empty(),
            GroupByExpr::All(_) => true,
        };
        let windowed = items.iter().any(|e| has_window(*e));
        if !grouped && !windowed && items.iter().any(|e| has_aggregate(e)) {
            if let Some(bare) = items.iter().find_map(|e| bare_column(e)) {
                self.findings.push(Finding {
                    code: FindingCode::UngroupedColumn,
                    message: format!(
                        "It selects {bare} beside an aggregate without GROUP BY, so SQLite returns one arbitrary {bare} with the total of all rows; add GROUP BY {bare} to get one row per {bare}"
                    ),
                });
            }
        }
    }

    fn column(&self, expr: &Expr, scope: &Scope) -> Option<(String, &'c Column)> {
        let catalog: &'c Catalog = self.catalog;
        let reference = scope.column(expr, catalog)?;
        let (table, name) = reference.split_once('.')?;
        let column = catalog.table(table)?.column(name)?;
        Some((reference, column))
    }

    fn condition(&mut self, expr: &Expr, scope: &Scope) {
        match expr {
            Expr::BinaryOp { left, op: op @ (BinaryOperator::Eq | BinaryOperator::NotEq), right } => {
                let (side, literal) = match (text_literal(left), text_literal(right)) {
                    (None, Some(l)) => (left.as_ref(), l),
                    (Some(l), None) => (right.as_ref(), l),
                    _ => return,
                };
                if let Some(format) = strftime_format(side) {
                    if *op == BinaryOperator::Eq && shape(&format_shape(&format)) != shape(literal) {
                        self.findings.push(Finding {
                            code: FindingCode::DateShape,
                            message: format!(
                                "strftime('{format}', ...) gives values shaped like '{}', so = '{literal}' never matches; compare with a value of that shape, or filter the date column with a range",
                                example_of(&format)
                            ),
                        });
                    }
                    return;
                }
                if *op == BinaryOperator::Eq {
                    self.value(side, &[literal], scope);
                }
            }
            Expr::In { expr, target: InTarget::List(list), negated: false, .. } => {
                let literals: Vec<&str> = list.iter().filter_map(text_literal).collect();
                if literals.len() == list.len() {
                    self.value(expr, &literals, scope);
                }
            }
            Expr::Between { expr, negated: false, low, high } => {
                if let (Some(format), Some(low)) = (strftime_format(expr), text_literal(low)) {
                    self.strftime_bound(&format, low);
                    return;
                }
                let (Some((name, column)), Some(high)) = (self.column(expr, scope), text_literal(high))
                else {
                    return;
                };
                let timestamps = column.date_format.as_deref().is_some_and(|f| f.contains("HH"));
                let low = text_literal(low).unwrap_or_default();
                if let Some(period) = self.periods.iter().find(|p| p.start == low && p.end == high) {
                    // On timestamps the day after's midnight is all it adds: harmless.
                    if !timestamps {
                        self.findings.push(Finding {
                            code: FindingCode::PeriodBounds,
                            message: format!(
                                "BETWEEN includes both ends, so BETWEEN '{low}' AND '{high}' also counts {high}, the day after \"{}\"; use {name} >= '{low}' AND {name} < '{high}'",
                                period.phrase
                            ),
                        });
                    }
                    return;
                }
                if timestamps && shape(high) == "9999-99-99" {
                    let next = crate::calendar::day_number(high).map(|d| crate::calendar::iso_date(d + 1));
                    self.findings.push(Finding {
                        code: FindingCode::DateShape,
                        message: format!(
                            "{name} holds timestamps ({}), so BETWEEN ... AND '{high}' leaves out {high} after midnight; use {name} >= start AND {name} < '{}'",
                            column.date_format.as_deref().unwrap_or_default(),
                            next.unwrap_or_else(|| "the day after".into())
                        ),
                    });
                }
            }
            Expr::BinaryOp {
                left,
                op: BinaryOperator::Lt | BinaryOperator::LtEq | BinaryOperator::Gt | BinaryOperator::GtEq,
                right,
            } if strftime_format(left).is_some() || strftime_format(right).is_some() => {
                let (format, bound) = match (strftime_format(left), strftime_format(right)) {
                    (Some(f), _) => (f, text_literal(right)),
                    (None, Some(f)) => (f, text_literal(left)),
                    _ => return,
                };
                if let Some(bound) = bound {
                    self.strftime_bound(&format, bound);
                }
            }
            Expr::BinaryOp { left, op: op @ (BinaryOperator::Lt | BinaryOperator::LtEq), right } => {
                let (Some((name, _)), Some(bound)) = (self.column(left, scope), text_literal(right)) else {
                    return;
                };
                self.upper_bound(&name, op, bound);
            }
            Expr::BinaryOp { left, op: op @ (BinaryOperator::Gt | BinaryOperator::GtEq), right } => {
                let (Some(bound), Some((name, _))) = (text_literal(left), self.column(right, scope)) else {
                    return;
                };
                let flipped =
                    if *op == BinaryOperator::Gt { BinaryOperator::Lt } else { BinaryOperator::LtEq };
                self.upper_bound(&name, &flipped, bound);
            }
            Expr::Nested(inner) => self.condition(inner, scope),
            _ => {}
        }
    }

    /// SQLite's date functions over a column that does not hold ISO dates: Unix time read
    /// without the 'unixepoch' modifier (taken for a Julian day number), or text that is no
    /// date at all ('Monday'): both give NULL or nonsense.
    fn date_functions(&mut self, select: &Select, scope: &Scope) {
        const DATE_FUNCTIONS: &[&str] = &["strftime", "date", "datetime", "julianday", "time"];
        let mut found = None;
        let _ = sqlparser::ast::visit_expressions(select, |e| {
            let Expr::Function(f) = e else { return ControlFlow::<()>::Continue(()) };
            let name = f.name.to_string().to_lowercase();
            let FunctionArguments::List(list) = &f.args else { return ControlFlow::Continue(()) };
            if found.is_some() || !DATE_FUNCTIONS.contains(&name.as_str()) {
                return ControlFlow::Continue(());
            }
            let args: Vec<&Expr> = list
                .args
                .iter()
                .filter_map(|a| match a {
                    FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e),
                    _ => None,
                })
                .collect();
            let time_value = if name == "strftime" { args.get(1) } else { args.first() };
            let Some((column_name, column)) = time_value.and_then(|v| self.column(v, scope)) else {
                return ControlFlow::Continue(());
            };
            let modifiers: Vec<&str> = args
                .iter()
                .skip(if name == "strftime" { 2 } else { 1 })
                .filter_map(|a| text_literal(a))
                .collect();
            if column.date_format.as_deref() == Some(crate::catalog::UNIX_SECONDS) {
                if !modifiers
                    .iter()
                    .any(|m| m.eq_ignore_ascii_case("unixepoch") || m.eq_ignore_ascii_case("auto"))
                {
                    found = Some(format!(
                        "{column_name} holds Unix time in seconds, which {name}() reads as a Julian day number without the 'unixepoch' modifier; write {name}({}{column_name}, 'unixepoch')",
                        if name == "strftime" { args.first().map(|f| format!("{f}, ")).unwrap_or_default() } else { String::new() }
                    ));
                }
            } else if column.date_format.is_none()
                && !column.sample_values.is_empty()
                && column.sample_values.iter().all(|v| !v.starts_with(|c: char| c.is_ascii_digit()))
            {
                let values =
                    column.sample_values.iter().take(4).map(|v| format!("'{v}'")).collect::<Vec<_>>();
                found = Some(format!(
                    "{column_name} holds {} ..., not dates, so {name}() on it gives NULL; compare its values directly",
                    values.join(", ")
                ));
            }
            ControlFlow::Continue(())
        });
        if let Some(message) = found {
            self.findings.push(Finding { code: FindingCode::DateShape, message });
        }
    }

    /// `strftime(format, …)` compared in a range with a literal of another shape: text
    /// comparison puts '2026-07' before '2026-07-01', so the bound moves by a month.
    fn strftime_bound(&mut self, format: &str, bound: &str) {
        if shape(&format_shape(format)) == shape(bound) {
            return;
        }
        self.findings.push(Finding {
            code: FindingCode::DateShape,
            message: format!(
                "strftime('{format}', ...) gives values shaped like '{}', so comparing it with '{bound}' moves the bound (text comparison: '2026-07' < '2026-07-01'); filter the date column itself: date_column >= 'first day' AND date_column < 'day after'",
                example_of(format)
            ),
        });
    }

    /// `column < bound` or `column <= bound` against the question's periods: the last day left
    /// out, or the day after counted.
    fn upper_bound(&mut self, name: &str, op: &BinaryOperator, bound: &str) {
        for period in self.periods {
            let last = period.last_day();
            let message = match op {
                BinaryOperator::Lt if bound == last && last != period.start => format!(
                    "{name} < '{last}' leaves out {last}, the last day of \"{}\"; use {name} < '{}'",
                    period.phrase, period.end
                ),
                BinaryOperator::LtEq if bound == period.end => format!(
                    "{name} <= '{}' also counts {}, the day after \"{}\"; use {name} < '{}'",
                    period.end, period.end, period.phrase, period.end
                ),
                _ => continue,
            };
            self.findings.push(Finding { code: FindingCode::PeriodBounds, message });
            return;
        }
    }

    /// A ratio scaled by 100 (`100.0 * a / b`, `a * 100 / b`).
    fn percentage(&mut self, expr: &Expr) {
        let mut scaled = None;
        let _ = sqlparser::ast::visit_expressions(expr, |e| {
            if let Expr::BinaryOp { left, op: BinaryOperator::Multiply, right } = e {
                if scaled.is_none() && (is_hundred(left) || is_hundred(right)) {
                    scaled = Some(e.to_string());
                }
            }
            ControlFlow::<()>::Continue(())
        });
        // `100.0 * a / b` parses as `(100.0 * a) / b`: the division may sit around the scale.
        if let (Some(expr), true) = (scaled, has_division(expr)) {
            self.findings.push(Finding {
                code: FindingCode::RatioAsPercentage,
                message: format!(
                    "The question asks for a ratio, not a percentage, but {expr} multiplies by 100; write the ratio as 1.0 * a / b"
                ),
            });
        }
    }

    /// A column compared with `literals`: one it never holds, or a date of another shape.
    fn value(&mut self, side: &Expr, literals: &[&str], scope: &Scope) {
        let Some((name, column)) = self.column(side, scope) else { return };
        if let Some(format) = &column.date_format {
            let full = format_shape(format);
            for literal in literals {
                let got = shape(literal);
                if self.empty && got != shape(&full) && got.len() < full.len() {
                    let hint = if format.contains("HH") {
                        "compare a range of days (>= the first day AND < the day after the last)"
                    } else {
                        "use a range, or strftime for a month or year"
                    };
                    self.findings.push(Finding {
                        code: FindingCode::DateShape,
                        message: format!(
                            "{name} is written {format}, so = '{literal}' matches no row; {hint}"
                        ),
                    });
                    return;
                }
            }
            return;
        }
        let values =
            if column.allowed_values.is_empty() { &column.sample_values } else { &column.allowed_values };
        if values.is_empty() {
            return;
        }
        for literal in literals {
            if values.iter().any(|v| v == literal) {
                continue;
            }
            let cased = values.iter().find(|v| v.eq_ignore_ascii_case(literal));
            let listed = values.iter().map(|v| format!("'{v}'")).collect::<Vec<_>>().join(", ");
            match cased {
                Some(right) => self.findings.push(Finding {
                    code: FindingCode::ValueNeverHeld,
                    message: format!(
                        "{name} holds '{right}', not '{literal}' (values are case-sensitive): use '{right}'"
                    ),
                }),
                None if self.empty => self.findings.push(Finding {
                    code: FindingCode::ValueNeverHeld,
                    message: format!("{name} never holds '{literal}'; its values are {listed}"),
                }),
                None => {}
            }
        }
    }

    fn divisions(&mut self, expr: &Expr, scope: &Scope) {
        let mut found = None;
        let _ = sqlparser::ast::visit_expressions(expr, |e| {
            if let Expr::BinaryOp { left, op: BinaryOperator::Divide, right } = e {
                // A row's value over a constant is bucketing (`(month + 2) / 3` is the quarter),
                // meant to drop the fraction; an aggregate or a column below the line is a ratio.
                let bucketing = self.integer(right, scope)
                    && matches!(right.as_ref(), Expr::Value(_))
                    && !has_aggregate(left);
                if found.is_none() && !bucketing && self.integer(left, scope) && self.integer(right, scope) {
                    found = Some(format!("{left} / {right}"));
                }
            }
            ControlFlow::<()>::Continue(())
        });
        if let Some(division) = found {
            self.findings.push(Finding {
                code: FindingCode::IntegerDivision,
                message: format!(
                    "{division} divides integers, so SQLite drops the fraction (1 / 4 is 0); multiply by 1.0 first (100.0 for a percentage)"
                ),
            });
        }
    }

    /// True when `expr` is sure to be an integer in SQLite.
    fn integer(&self, expr: &Expr, scope: &Scope) -> bool {
        match expr {
            Expr::Value(v) => matches!(&v.value, Value::Number(n, _) if !n.contains(['.', 'e', 'E'])),
            Expr::Nested(inner) => self.integer(inner, scope),
            Expr::UnaryOp { expr, .. } => self.integer(expr, scope),
            Expr::BinaryOp {
                left,
                op:
                    BinaryOperator::Plus
                    | BinaryOperator::Minus
                    | BinaryOperator::Multiply
                    | BinaryOperator::Divide,
                right,
            } => self.integer(left, scope) && self.integer(right, scope),
            Expr::Cast { data_type, kind: CastKind::Cast | CastKind::DoubleColon, .. } => {
                matches!(data_type, DataType::Int(_) | DataType::Integer(_) | DataType::BigInt(_))
            }
            Expr::Case { conditions, else_result, .. } => {
                conditions.iter().all(|c| self.integer(&c.result, scope))
                    && else_result.as_ref().is_none_or(|e| self.integer(e, scope))
            }
            Expr::Function(f) => {
                let name = f.name.to_string().to_lowercase();
                match name.as_str() {
                    "count" => true,
                    "sum" | "max" | "min" | "abs" => {
                        single_argument(&f.args).is_some_and(|a| self.integer(a, scope))
                    }
                    _ => false,
                }
            }
            Expr::Identifier(_) | Expr::CompoundIdentifier(_) => {
                self.column(expr, scope).is_some_and(|(_, c)| c.data_type.to_uppercase().contains("INT"))
            }
            _ => false,
        }
    }
}

/// The literal 100 (or 100.0).
fn is_hundred(expr: &Expr) -> bool {
    matches!(expr, Expr::Value(v) if matches!(&v.value, Value::Number(n, _) if n.parse::<f64>() == Ok(100.0)))
}

/// True when `expr` divides somewhere.
fn has_division(expr: &Expr) -> bool {
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

fn has_aggregate(expr: &Expr) -> bool {
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

fn has_window(node: &impl Visit) -> bool {
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

/// The number of rows a question asks for: "top 5", "the 3 most", "10 largest", "first 10".
fn rows_asked(question: &str) -> Option<u64> {
    let words: Vec<String> = question
        .to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect();
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
fn asks_for_several(question: &str) -> bool {
    let q = format!(" {} ", question.to_lowercase().replace(|c: char| !c.is_alphanumeric(), " "));
    [" each ", " per ", " every ", " by ", " list ", " all ", " for all "].iter().any(|cue| q.contains(cue))
}

fn outer_limit(query: &Query) -> Option<u64> {
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
fn decimals_asked(question: &str) -> Option<u64> {
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

/// Values the question wants rounded, and no ROUND anywhere in the query.
fn rounding_findings(question: &str, query: &Query) -> Vec<Finding> {
    let Some(decimals) = decimals_asked(question) else { return Vec::new() };
    let mut rounded = false;
    let _ = sqlparser::ast::visit_expressions(query, |e| {
        if matches!(e, Expr::Function(f) if f.name.to_string().eq_ignore_ascii_case("round")) {
            rounded = true;
        }
        ControlFlow::<()>::Continue(())
    });
    if rounded {
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
fn asks_for_one_number(question: &str) -> bool {
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
fn asks_for_top_per_group(question: &str) -> bool {
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
