//! The walk over every SELECT of a query that ran: the findings read from the SQL itself —
//! filters against the values a column holds and the shape of its dates, ratios in integer
//! arithmetic, scaled to a percentage or of a value to itself, columns beside an aggregate
//! without GROUP BY, ranges against the question's periods. `check` runs it with the checks on
//! the result.

use super::*;

pub(super) struct Walker<'c> {
    pub(super) catalog: &'c Catalog,
    pub(super) empty: bool,
    /// The question's time phrases, resolved.
    pub(super) periods: &'c [Period],
    /// The question asks for a ratio and not for a percentage.
    pub(super) ratio_asked: bool,
    pub(super) findings: Vec<Finding>,
    /// Catalog tables read.
    pub(super) tables: Vec<String>,
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
            self.divided_by_itself(item);
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
        if self.year_against_date(expr, scope) {
            return;
        }
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

    /// A year-number column compared with a date (`year >= '1970-01-01'`): a number against
    /// text, true or false for every row whatever the year. True when found.
    fn year_against_date(&mut self, expr: &Expr, scope: &Scope) -> bool {
        let pairs: Vec<(&Expr, &Expr)> = match expr {
            Expr::BinaryOp {
                left,
                op:
                    BinaryOperator::Eq
                    | BinaryOperator::NotEq
                    | BinaryOperator::Lt
                    | BinaryOperator::LtEq
                    | BinaryOperator::Gt
                    | BinaryOperator::GtEq,
                right,
            } => vec![(left, right), (right, left)],
            Expr::Between { expr, low, high, .. } => vec![(expr, low), (expr, high)],
            _ => return false,
        };
        for (side, other) in pairs {
            let Some(literal) = text_literal(other) else { continue };
            let Some((name, column)) = self.column(side, scope) else { continue };
            if column.date_format.as_deref() != Some(crate::catalog::YEAR_NUMBER)
                || !shape(literal).starts_with("9999-")
            {
                continue;
            }
            let year = &literal[..4];
            let said = format!("{name} holds year numbers");
            if self.findings.iter().any(|f| f.message.starts_with(&said)) {
                return true;
            }
            self.findings.push(Finding {
                code: FindingCode::DateShape,
                message: format!(
                    "{name} holds year numbers like 2021, not dates, so comparing it with '{literal}' does not filter by date; compare the year itself: {name} = {year}"
                ),
            });
            return true;
        }
        false
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
            if found.is_some() || !DATE_FUNCTIONS.contains(&name.as_str()) {
                return ControlFlow::Continue(());
            }
            let args = crate::history::structure::plain_arguments(f);
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
            } else if column.date_format.as_deref() == Some(crate::catalog::YEAR_NUMBER) {
                found = Some(format!(
                    "{column_name} holds year numbers like 2021, not dates, so {name}() reads it as a Julian day number; use {column_name} itself (= 2021, GROUP BY {column_name})"
                ));
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
                "strftime('{format}', ...) gives values shaped like '{}', so comparing it with '{bound}' moves the bound (text comparison: '2026-07' < '2026-07-01'); filter the date column itself: date_column >= the period's first day AND date_column < the day after its last",
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

    /// A value divided by itself (`COUNT(id) / COUNT(id)`): 1 in every row, whatever was asked.
    fn divided_by_itself(&mut self, expr: &Expr) {
        if let Some(division) = first_division(expr, |left, right| divided_by_itself(left, right).is_some()) {
            self.findings.push(Finding {
                code: FindingCode::RatioOfItself,
                message: format!(
                    "{division} divides a value by itself, so it is 1 in every row; divide the part the question asks about (the rows its condition keeps, e.g. COUNT(CASE WHEN … THEN 1 END)) by the whole (every row, e.g. a subquery without GROUP BY)"
                ),
            });
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
        let integers = |left: &Expr, right: &Expr| {
            // A row's value over a constant is bucketing (`(month + 2) / 3` is the quarter),
            // meant to drop the fraction; an aggregate or a column below the line is a ratio.
            let bucketing =
                self.integer(right, scope) && matches!(right, Expr::Value(_)) && !has_aggregate(left);
            !bucketing && self.integer(left, scope) && self.integer(right, scope)
        };
        if let Some(division) = first_division(expr, integers) {
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
            // A scalar subquery (`(SELECT COUNT(*) FROM orders)`): its one item, in its own scope.
            Expr::Subquery(query) => match query.body.as_ref() {
                SetExpr::Select(select) => match select.projection.as_slice() {
                    [SelectItem::UnnamedExpr(item) | SelectItem::ExprWithAlias { expr: item, .. }] => {
                        self.integer(item, &Scope::of(select, self.catalog))
                    }
                    _ => false,
                },
                _ => false,
            },
            _ => false,
        }
    }
}

/// `left / right` for the first division in `expr` whose operands `matches`.
fn first_division(expr: &Expr, mut matches: impl FnMut(&Expr, &Expr) -> bool) -> Option<String> {
    let mut found = None;
    let _ = sqlparser::ast::visit_expressions(expr, |e| match e {
        Expr::BinaryOp { left, op: BinaryOperator::Divide, right } if matches(left, right) => {
            found = Some(format!("{left} / {right}"));
            ControlFlow::Break(())
        }
        _ => ControlFlow::Continue(()),
    });
    found
}
