//! Filters that cannot mean what was asked: a table joined that nothing reads (its join only
//! drops and repeats rows of the tables that are read), one column required to hold two values
//! in the same row (no row can; "both X and Y" asks for what the two have in common), an
//! exclusion copied from a past query shown as an example that the question never asked for, a
//! ratio's own condition repeated in its WHERE (the ratio is then 1), the last day of a range
//! the question names left out by `<`, a period copied into an absence asked over all time, and
//! an absence asked of what is counted made of the counted table's own rows.

use std::ops::ControlFlow;

use sqlparser::ast::{
    BinaryOperator, Expr, InTarget, JoinConstraint, JoinOperator, Select, SelectItem, SetExpr, TableFactor,
    TableWithJoins, Value,
};

use crate::catalog::Catalog;
use crate::check::{has_aggregate, has_division};
use crate::history::structure::{conjuncts, parse_query};

/// A plain list of rows (no DISTINCT, grouping, aggregate or subquery) with its INNER JOINs to
/// tables that neither the list, the filters, the order nor another join reads dropped, or
/// None when there is none. Such a join only keeps the rows that have a partner, once per
/// partner: duplicates nobody asked for. Where the join *is* the question ("customers who
/// ordered"), the model writes DISTINCT, EXISTS or IN, and those are left alone.
pub fn unread_joins(sql: &str, catalog: &Catalog) -> Option<String> {
    let mut query = parse_query(sql)?;
    if query.with.is_some() || has_subquery(&query) {
        return None;
    }
    let order = query.order_by.clone();
    let SetExpr::Select(select) = query.body.as_mut() else { return None };
    if !is_plain_list(select) {
        return None;
    }
    let [from] = select.from.as_slice() else { return None };
    let mut changed = false;
    for j in (0..from.joins.len()).rev() {
        let join = &select.from[0].joins[j];
        let inner = matches!(
            &join.join_operator,
            JoinOperator::Join(JoinConstraint::On(_)) | JoinOperator::Inner(JoinConstraint::On(_))
        );
        let TableFactor::Table { name, alias, .. } = &join.relation else { continue };
        let Some(table) = name.0.last().and_then(|p| p.as_ident()).and_then(|i| catalog.table(&i.value))
        else {
            continue;
        };
        if !inner {
            continue;
        }
        let handle = alias.as_ref().map(|a| a.name.value.clone()).unwrap_or_else(|| table.name.clone());
        let mut without = select.as_ref().clone();
        without.from[0].joins.remove(j);
        let reads = |expr: &Expr| match expr {
            Expr::CompoundIdentifier(parts) => {
                parts.len() >= 2 && parts[parts.len() - 2].value.eq_ignore_ascii_case(&handle)
            }
            Expr::Identifier(ident) => table.column(&ident.value).is_some(),
            _ => false,
        };
        let mut read = false;
        let _ = sqlparser::ast::visit_expressions(&without, |e| {
            read |= reads(e);
            ControlFlow::<()>::Continue(())
        });
        let _ = sqlparser::ast::visit_expressions(&order, |e| {
            read |= reads(e);
            ControlFlow::<()>::Continue(())
        });
        let wildcard = without.projection.iter().any(|item| {
            !matches!(
                item,
                sqlparser::ast::SelectItem::UnnamedExpr(_) | sqlparser::ast::SelectItem::ExprWithAlias { .. }
            )
        });
        if !read && !wildcard {
            **select = without;
            changed = true;
        }
    }
    changed.then(|| query.to_string())
}

/// A list of rows whose WHERE requires one column to equal two different values (or to lie
/// in two ranges that do not meet), written as the INTERSECT of the query with each of the
/// two — the rows that have one and the rows that have the other, their common values — or
/// None when there is no such pair.
pub fn both_values(sql: &str) -> Option<String> {
    let query = parse_query(sql)?;
    if query.with.is_some() || query.order_by.is_some() || query.limit_clause.is_some() {
        return None;
    }
    let SetExpr::Select(select) = query.body.as_ref() else { return None };
    if !select.group_by_is_empty()
        || select.having.is_some()
        || select.projection.iter().any(|i| match i {
            sqlparser::ast::SelectItem::UnnamedExpr(e)
            | sqlparser::ast::SelectItem::ExprWithAlias { expr: e, .. } => has_aggregate(e),
            _ => false,
        })
    {
        return None;
    }
    let mut parts = Vec::new();
    conjuncts(select.selection.as_ref()?, &mut parts);
    let bounds: Vec<Option<(String, Bound)>> = parts.iter().map(|p| bound(p)).collect();
    let (first, second) = (0..parts.len()).find_map(|i| {
        let (column, a) = bounds[i].as_ref()?;
        (i + 1..parts.len()).find_map(|j| {
            let (other, b) = bounds[j].as_ref()?;
            (other == column && a.excludes(b)).then_some((i, j))
        })
    })?;
    let branch = |leave_out: usize| {
        let kept: Vec<String> = parts
            .iter()
            .enumerate()
            .filter(|(k, _)| *k != leave_out)
            .map(|(_, p)| format!("({p})"))
            .collect();
        let mut branch: Select = select.as_ref().clone();
        branch.selection = if kept.is_empty() { None } else { super::parse_expr(&kept.join(" AND ")) };
        branch
    };
    let rewritten = format!("{} INTERSECT {}", branch(second), branch(first));
    parse_query(&rewritten).map(|q| q.to_string())
}

/// `sql` with each exclusion in a WHERE (`c <> 'v'`, `c != 'v'`, `c NOT IN ('v', …)`, in any
/// SELECT of it) dropped whose values are all among `copied` (lower-cased: values the examples
/// filtered on and the question never says, `prompt::copied_values`), or None when there is
/// none. "How many orders in each status" answered with `status <> 'cancelled'` because a past
/// query about GMV had it silently drops a status. Only exclusions: a value the model keeps is
/// often the question's own word put otherwise ("returned" for 'refunded').
pub fn copied_exclusions(sql: &str, copied: &[String]) -> Option<String> {
    if copied.is_empty() {
        return None;
    }
    super::edit_every_select(sql, |select| drop_conjuncts(select, |part| copied_exclusion(part, copied)))
}

/// Words that speak of time; a question with none of them and no digit asks about all time.
/// Broad on purpose: a word that might mean a period ("still", "current", "expired") leaves the
/// SQL alone.
const TIME_WORDS: &str = "\
    year years yearly annual annually quarter quarters quarterly month months monthly week weeks \
    weekly weekend weekday day days daily hour hours hourly minute minutes today tonight \
    yesterday tomorrow now date dates dated time times timeline period periods season seasons \
    semester term since before after during until till between recent recently latest earliest \
    newest oldest last past ago next previous prior current currently still yet already upcoming \
    future expired expiring expire overdue due valid effective ytd mtd qtd wtd fiscal calendar \
    morning evening night january february march april may june july august september october \
    november december monday tuesday wednesday thursday friday saturday sunday spring summer \
    autumn fall winter christmas holiday holidays anniversary birthday age old new young";

/// Whether `text` speaks of time at all: a digit, or a word of `TIME_WORDS`.
pub fn speaks_of_time(text: &str) -> bool {
    text.chars().any(|c| c.is_ascii_digit())
        || text
            .to_lowercase()
            .split(|c: char| !c.is_alphanumeric())
            .any(|word| TIME_WORDS.split_whitespace().any(|w| w == word))
}

/// `sql` with each WHERE condition dropped that compares a column with a date written out
/// (`created >= '2018-03-09'`, `d BETWEEN '2018-01-01' AND '2018-12-31'`, in any SELECT of
/// it) when nothing the analyst said speaks of time (`speaks_of_time`); None when there is none
/// or something did. "The treatment type whose total cost is the lowest" answered over one week
/// of treatments, a week nobody asked for, is another answer than the one asked.
pub fn invented_periods(sql: &str, speaks_of_time: bool) -> Option<String> {
    if speaks_of_time {
        return None;
    }
    super::edit_every_select(sql, |select| drop_conjuncts(select, compares_with_a_written_date))
}

/// `c <op> 'YYYY-MM-DD…'` (either side; the column possibly inside a function) or
/// `c BETWEEN 'date' AND 'date'`.
fn compares_with_a_written_date(expr: &Expr) -> bool {
    let reads_a_column = |e: &Expr| {
        let mut found = false;
        let _ = sqlparser::ast::visit_expressions(e, |inner| {
            found |= is_column(inner);
            ControlFlow::<()>::Continue(())
        });
        found
    };
    match expr {
        Expr::BinaryOp {
            left,
            op:
                BinaryOperator::Lt
                | BinaryOperator::LtEq
                | BinaryOperator::Gt
                | BinaryOperator::GtEq
                | BinaryOperator::Eq,
            right,
        } => {
            (reads_a_column(left) && is_written_date(right))
                || (is_written_date(left) && reads_a_column(right))
        }
        Expr::Between { expr, low, high, negated: false } => {
            reads_a_column(expr) && is_written_date(low) && is_written_date(high)
        }
        Expr::Nested(inner) => compares_with_a_written_date(inner),
        _ => false,
    }
}

/// A string literal that is an ISO date or date and time ('2018-03-09', '2018-03-09 10:00:00').
fn is_written_date(expr: &Expr) -> bool {
    let Expr::Value(v) = expr else { return false };
    let Value::SingleQuotedString(s) = &v.value else { return false };
    let bytes = s.as_bytes();
    let digits =
        |range: std::ops::Range<usize>| bytes.get(range).is_some_and(|b| b.iter().all(u8::is_ascii_digit));
    digits(0..4)
        && bytes.get(4) == Some(&b'-')
        && digits(5..7)
        && bytes.get(7) == Some(&b'-')
        && digits(8..10)
        && (bytes.len() == 10 || matches!(bytes.get(10), Some(b' ' | b'T')))
}

/// `sql` with each WHERE condition dropped that a ratio of its select list also counts by
/// (`SUM(CASE WHEN c THEN 1 ELSE 0 END) / COUNT(*) … WHERE c`), in any SELECT of it, or None
/// when there is none. The WHERE keeps only rows the CASE counts, so the ratio is 1 whatever
/// the data (or, for `c1 / c2` filtered by both, no row at all): "restaurants rated above 4.5
/// to all restaurants" asks for the share among all rows.
pub fn ratio_filtered_twice(sql: &str) -> Option<String> {
    super::edit_every_select(sql, |select| {
        let mut counted = Vec::new();
        for item in &select.projection {
            let expr = match item {
                SelectItem::UnnamedExpr(expr) | SelectItem::ExprWithAlias { expr, .. } => expr,
                _ => continue,
            };
            if has_division(expr) {
                case_conditions(expr, &mut counted);
            }
        }
        if counted.is_empty() {
            return false;
        }
        let counted: Vec<String> = counted.iter().map(normalized).collect();
        drop_conjuncts(select, |part| counted.contains(&normalized(part)))
    })
}

/// `sql` with each `column < 'D'` moved to the day after D where the question names D as the
/// last day of a range ("from 2026-10-01 to 2026-10-07", "between … and 2026-09-30"), or None
/// when there is none. The range includes its last day; `< 'D'` leaves it out.
pub fn last_day_kept(question: &str, sql: &str) -> Option<String> {
    let ends = range_ends(question);
    if ends.is_empty() {
        return None;
    }
    let mut query = parse_query(sql)?;
    let mut changed = false;
    let _ = sqlparser::ast::visit_expressions_mut(&mut query, |e| {
        let bound = match e {
            Expr::BinaryOp { left, op: BinaryOperator::Lt, right } if is_column(left) => Some(right.as_mut()),
            Expr::BinaryOp { left, op: BinaryOperator::Gt, right } if is_column(right) => Some(left.as_mut()),
            _ => None,
        };
        if let Some(Expr::Value(v)) = bound {
            if let Value::SingleQuotedString(day) = &v.value {
                if let Some(next) = ends.contains(day).then(|| crate::calendar::day_number(day)).flatten() {
                    v.value = Value::SingleQuotedString(crate::calendar::iso_date(next + 1));
                    changed = true;
                }
            }
        }
        ControlFlow::<()>::Continue(())
    });
    changed.then(|| query.to_string())
}

/// The ISO dates a question names as the last day of a range: a date after another date and
/// "to", "through", "until", "and" or a dash between them.
fn range_ends(question: &str) -> Vec<String> {
    let is_date = |w: &str| w.len() == 10 && crate::calendar::day_number(w).is_some();
    let words: Vec<&str> = question
        .split(|c: char| c.is_whitespace() || matches!(c, '(' | ')' | ',' | '?' | '.' | ';'))
        .filter(|w| !w.is_empty())
        .collect();
    let mut ends = Vec::new();
    for (i, word) in words.iter().enumerate() {
        if i >= 2 && is_date(word) && is_date(words[i - 2]) {
            let joint = words[i - 1].to_lowercase();
            if matches!(
                joint.as_str(),
                "to" | "through" | "thru" | "until" | "till" | "and" | "-" | "–" | "—"
            ) {
                ends.push(word.to_string());
            }
        }
    }
    ends
}

/// `sql` with the period filter of a `NOT IN (SELECT …)` or `NOT EXISTS (SELECT …)` dropped when
/// the question asks for an absence over all time ("no engagement events at all", "never
/// active") and the subquery's filter only repeats values of the outer query's own filters, or
/// None. "Posts published in September that received no engagement at all" answered with "no
/// engagement in September" counts posts that were engaged with later.
pub fn absence_over_all_time(question: &str, sql: &str) -> Option<String> {
    if !asks_for_absence_over_all_time(question) {
        return None;
    }
    let mut query = parse_query(sql)?;
    let SetExpr::Select(outer) = query.body.as_mut() else { return None };
    let selection = outer.selection.as_mut()?;
    let mut parts = Vec::new();
    conjuncts(selection, &mut parts);
    let outer_values: Vec<String> = parts
        .iter()
        .filter(|p| !matches!(p, Expr::In { target: InTarget::Subquery(_), .. } | Expr::Exists { .. }))
        .flat_map(|p| literals(p))
        .collect();
    if outer_values.is_empty() {
        return None;
    }
    let mut changed = false;
    let _ = sqlparser::ast::visit_expressions_mut(selection, |e| {
        let subquery = match e {
            Expr::In { target: InTarget::Subquery(q), negated: true, .. } => Some(q.as_mut()),
            Expr::Exists { subquery, negated: true } => Some(subquery.as_mut()),
            _ => None,
        };
        if let Some(SetExpr::Select(inner)) = subquery.map(|q| q.body.as_mut()) {
            changed |= drop_conjuncts(inner, |part| {
                let values = literals(part);
                !values.is_empty() && values.iter().all(|v| outer_values.contains(v))
            });
        }
        ControlFlow::<()>::Continue(())
    });
    changed.then(|| query.to_string())
}

/// For a question asking for an absence ("… but none in September", "never", "no", "without",
/// "did not"), a query counting the distinct `x` of one table (`COUNT(DISTINCT p.x)`) that
/// excludes rows by the table's own primary key (`p.id NOT IN (SELECT id FROM same_table WHERE
/// …)`): the exclusion made on `x` (`p.x NOT IN (SELECT x FROM same_table WHERE …)`). Excluding
/// a row only when it is itself in the other period excludes nothing when the two periods do
/// not overlap — the question ("authors who posted in August but none in September") asks for
/// the `x` that have no such row. None otherwise.
pub fn absence_of_the_counted(question: &str, sql: &str, catalog: &Catalog) -> Option<String> {
    if !asks_for_an_absence(question) {
        return None;
    }
    let mut query = parse_query(sql)?;
    let SetExpr::Select(outer) = query.body.as_mut() else { return None };
    let [item] = outer.projection.as_slice() else { return None };
    let (SelectItem::UnnamedExpr(counted) | SelectItem::ExprWithAlias { expr: counted, .. }) = item else {
        return None;
    };
    let counted = last_name(super::groups::distinct_count_of(counted)?)?;
    let [from] = outer.from.as_slice() else { return None };
    let table = single_table(from)?;
    let key = match catalog.table(&table)?.primary_key.as_slice() {
        [key] if !key.eq_ignore_ascii_case(&counted) => key.clone(),
        _ => return None,
    };
    let selection = outer.selection.as_mut()?;
    let mut changed = false;
    let _ = sqlparser::ast::visit_expressions_mut(selection, |e| {
        if let Expr::In { expr, target: InTarget::Subquery(q), negated: true, .. } = e {
            let SetExpr::Select(inner) = q.body.as_mut() else { return ControlFlow::<()>::Continue(()) };
            let same_table = inner.from.len() == 1
                && single_table(&inner.from[0]).is_some_and(|t| t.eq_ignore_ascii_case(&table));
            let selects_key = matches!(inner.projection.as_slice(), [SelectItem::UnnamedExpr(k)] if last_name(k).is_some_and(|k| k.eq_ignore_ascii_case(&key)));
            if same_table && selects_key && last_name(expr).is_some_and(|k| k.eq_ignore_ascii_case(&key)) {
                renamed_last(expr, &counted);
                if let [SelectItem::UnnamedExpr(k)] = inner.projection.as_mut_slice() {
                    renamed_last(k, &counted);
                }
                changed = true;
            }
        }
        ControlFlow::<()>::Continue(())
    });
    changed.then(|| query.to_string())
}

/// True when the question asks for something that did not happen.
pub(super) fn asks_for_an_absence(question: &str) -> bool {
    let text = format!(" {} ", crate::check::lowercase_words(question).join(" "));
    ["none", "never", "no", "without", "did not", "didn t", "not any"]
        .iter()
        .any(|phrase| text.contains(&format!(" {phrase} ")))
}

/// The column a plain reference names: `x` of `x` and of `p.x`.
fn last_name(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Identifier(name) => Some(name.value.clone()),
        Expr::CompoundIdentifier(parts) => parts.last().map(|p| p.value.clone()),
        _ => None,
    }
}

/// A plain reference pointed at another column of the same table.
fn renamed_last(expr: &mut Expr, column: &str) {
    match expr {
        Expr::Identifier(name) => name.value = column.to_string(),
        Expr::CompoundIdentifier(parts) => {
            if let Some(last) = parts.last_mut() {
                last.value = column.to_string();
            }
        }
        _ => {}
    }
}

/// The table a FROM item without joins reads.
fn single_table(from: &TableWithJoins) -> Option<String> {
    if !from.joins.is_empty() {
        return None;
    }
    match &from.relation {
        TableFactor::Table { name, .. } => name.0.last().and_then(|p| p.as_ident()).map(|i| i.value.clone()),
        _ => None,
    }
}

/// True when the question asks for something that never happened: "… at all", "never …",
/// with no period named after it ("no conversions at all in September" keeps its period).
fn asks_for_absence_over_all_time(question: &str) -> bool {
    let lower = question.to_lowercase();
    let Some(cue) = [" at all", "never "].iter().filter_map(|c| lower.find(c).map(|i| i + c.len())).min()
    else {
        return false;
    };
    let rest = &lower[cue..];
    let sentence = rest.split(['?', '.']).next().unwrap_or_default();
    crate::timeframe::resolve(sentence, &crate::calendar::today()).is_empty()
        && !sentence.chars().any(|c| c.is_ascii_digit())
}

/// The string literals `expr` compares with, lower-cased.
fn literals(expr: &Expr) -> Vec<String> {
    let mut found = Vec::new();
    let _ = sqlparser::ast::visit_expressions(expr, |e| {
        if let Expr::Value(v) = e {
            if let Value::SingleQuotedString(s) = &v.value {
                found.push(s.to_lowercase());
            }
        }
        ControlFlow::<()>::Continue(())
    });
    found
}

/// Drops the conjuncts of `select`'s WHERE that `drop` picks; true when it dropped one.
fn drop_conjuncts(select: &mut Select, drop: impl Fn(&Expr) -> bool) -> bool {
    let Some(selection) = &select.selection else { return false };
    let mut parts = Vec::new();
    conjuncts(selection, &mut parts);
    let kept: Vec<Expr> = parts.iter().filter(|p| !drop(p)).map(|p| (*p).clone()).collect();
    if kept.len() == parts.len() {
        return false;
    }
    select.selection = kept.into_iter().reduce(|left, right| Expr::BinaryOp {
        left: Box::new(left),
        op: BinaryOperator::And,
        right: Box::new(right),
    });
    true
}

/// The WHEN conditions of every searched CASE inside `expr`.
fn case_conditions(expr: &Expr, out: &mut Vec<Expr>) {
    let _ = sqlparser::ast::visit_expressions(expr, |e| {
        if let Expr::Case { operand: None, conditions, .. } = e {
            out.extend(conditions.iter().map(|c| c.condition.clone()));
        }
        ControlFlow::<()>::Continue(())
    });
}

/// `expr` written with its numbers as numbers (`4.0` and `4` alike) and parentheses around it
/// dropped: two conditions that mean the same compare equal.
fn normalized(expr: &Expr) -> String {
    let mut expr = expr.clone();
    while let Expr::Nested(inner) = expr {
        expr = *inner;
    }
    let _ = sqlparser::ast::visit_expressions_mut(&mut expr, |e| {
        if let Expr::Value(v) = e {
            if let Value::Number(n, long) = &v.value {
                if let Ok(number) = n.parse::<f64>() {
                    v.value = Value::Number(number.to_string(), *long);
                }
            }
        }
        ControlFlow::<()>::Continue(())
    });
    expr.to_string().to_lowercase()
}

/// True when `expr` excludes only `copied` values from a column.
fn copied_exclusion(expr: &Expr, copied: &[String]) -> bool {
    let is_copied = |e: &Expr| match e {
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) => copied.contains(&s.to_lowercase()),
            _ => false,
        },
        _ => false,
    };
    match expr {
        Expr::BinaryOp { left, op: BinaryOperator::NotEq, right } => {
            (is_column(left) && is_copied(right)) || (is_copied(left) && is_column(right))
        }
        Expr::In { expr, target: InTarget::List(list), negated: true, .. } => {
            is_column(expr) && !list.is_empty() && list.iter().all(is_copied)
        }
        Expr::Nested(inner) => copied_exclusion(inner, copied),
        _ => false,
    }
}

fn is_column(expr: &Expr) -> bool {
    matches!(expr, Expr::Identifier(_) | Expr::CompoundIdentifier(_))
}

/// The string literals of `sql`, as written (none when it does not parse).
pub fn string_values(sql: &str) -> Vec<String> {
    let Some(query) = parse_query(sql) else { return Vec::new() };
    let mut values = Vec::new();
    let _ = sqlparser::ast::visit_expressions(&query, |e| {
        if let Expr::Value(v) = e {
            if let Value::SingleQuotedString(s) = &v.value {
                values.push(s.clone());
            }
        }
        ControlFlow::<()>::Continue(())
    });
    values
}

/// What one comparison of a column with a literal allows.
#[derive(Debug, Clone, PartialEq)]
enum Bound {
    Equal(String),
    /// Above the number (strictly when true).
    Above(f64, bool),
    Below(f64, bool),
}

impl Bound {
    /// True when no value satisfies both.
    fn excludes(&self, other: &Bound) -> bool {
        match (self, other) {
            (Bound::Equal(a), Bound::Equal(b)) => a != b,
            (Bound::Above(low, strict_low), Bound::Below(high, strict_high))
            | (Bound::Below(high, strict_high), Bound::Above(low, strict_low)) => {
                low > high || (low == high && (*strict_low || *strict_high))
            }
            _ => false,
        }
    }
}

/// The column a conjunct compares with a literal (as written, lower-cased) and what it allows.
fn bound(expr: &Expr) -> Option<(String, Bound)> {
    let Expr::BinaryOp { left, op, right } = expr else { return None };
    let (column, literal, op) = match (left.as_ref(), right.as_ref()) {
        (c @ (Expr::Identifier(_) | Expr::CompoundIdentifier(_)), Expr::Value(v)) => {
            (c, &v.value, op.clone())
        }
        (Expr::Value(v), c @ (Expr::Identifier(_) | Expr::CompoundIdentifier(_))) => {
            (c, &v.value, flipped(op)?)
        }
        _ => return None,
    };
    let text = match literal {
        Value::Number(n, _) => n.clone(),
        Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => s.clone(),
        _ => return None,
    };
    let number = || text.parse::<f64>().ok();
    let bound = match op {
        BinaryOperator::Eq => Bound::Equal(number().map_or(text.clone(), |n| n.to_string())),
        BinaryOperator::Gt => Bound::Above(number()?, true),
        BinaryOperator::GtEq => Bound::Above(number()?, false),
        BinaryOperator::Lt => Bound::Below(number()?, true),
        BinaryOperator::LtEq => Bound::Below(number()?, false),
        _ => return None,
    };
    Some((column.to_string().to_lowercase(), bound))
}

fn flipped(op: &BinaryOperator) -> Option<BinaryOperator> {
    Some(match op {
        BinaryOperator::Eq => BinaryOperator::Eq,
        BinaryOperator::Gt => BinaryOperator::Lt,
        BinaryOperator::GtEq => BinaryOperator::LtEq,
        BinaryOperator::Lt => BinaryOperator::Gt,
        BinaryOperator::LtEq => BinaryOperator::GtEq,
        _ => return None,
    })
}

/// No DISTINCT, grouping or aggregate: one row per row of the joined tables.
pub(super) fn is_plain_list(select: &Select) -> bool {
    select.distinct.is_none()
        && select.group_by_is_empty()
        && select.having.is_none()
        && !select.projection.iter().any(|item| match item {
            sqlparser::ast::SelectItem::UnnamedExpr(e)
            | sqlparser::ast::SelectItem::ExprWithAlias { expr: e, .. } => has_aggregate(e),
            _ => false,
        })
}

fn has_subquery(query: &sqlparser::ast::Query) -> bool {
    let mut found = false;
    let _ = sqlparser::ast::visit_expressions(query, |e| {
        found |= matches!(
            e,
            Expr::Subquery(_) | Expr::In { target: InTarget::Subquery(_), .. } | Expr::Exists { .. }
        );
        ControlFlow::<()>::Continue(())
    });
    found
}

trait GroupByEmpty {
    fn group_by_is_empty(&self) -> bool;
}

impl GroupByEmpty for Select {
    fn group_by_is_empty(&self) -> bool {
        match &self.group_by {
            sqlparser::ast::GroupByExpr::Expressions(keys, modifiers) => {
                keys.is_empty() && modifiers.is_empty()
            }
            sqlparser::ast::GroupByExpr::All(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{Column, Table};

    fn catalog() -> Catalog {
        let table = |name: &str, columns: &[&str]| {
            Table::new(name, columns.iter().map(|c| Column::new(*c, "TEXT")).collect())
        };
        Catalog::from_tables(vec![
            table("teacher", &["teacher_id", "name", "age"]),
            table("course_arrange", &["teacher_id", "course_id", "grade"]),
            table("course", &["course_id", "title"]),
        ])
    }

    #[test]
    fn a_join_nothing_reads_is_dropped_from_a_plain_list() {
        let sql =
            "SELECT T1.name FROM teacher AS T1 JOIN course_arrange AS T2 ON T1.teacher_id = T2.teacher_id \
                   WHERE T1.age IN ('32', '33')";
        assert_eq!(
            unread_joins(sql, &catalog()).as_deref(),
            Some("SELECT T1.name FROM teacher AS T1 WHERE T1.age IN ('32', '33')")
        );
    }

    #[test]
    fn joins_that_are_read_or_asked_for_stay() {
        let catalog = catalog();
        for sql in [
            // Read in the list, in the filter (unqualified), in the order, by another join.
            "SELECT T1.name, T2.grade FROM teacher AS T1 JOIN course_arrange AS T2 ON T1.teacher_id = T2.teacher_id",
            "SELECT name FROM teacher JOIN course_arrange ON teacher.teacher_id = course_arrange.teacher_id WHERE grade = 1",
            "SELECT T1.name FROM teacher AS T1 JOIN course_arrange AS T2 ON T1.teacher_id = T2.teacher_id ORDER BY T2.grade",
            "SELECT c.title FROM teacher AS t JOIN course_arrange AS a ON t.teacher_id = a.teacher_id \
             JOIN course AS c ON c.course_id = a.course_id",
            // The join is the question: DISTINCT, a count, a LEFT JOIN.
            "SELECT DISTINCT T1.name FROM teacher AS T1 JOIN course_arrange AS T2 ON T1.teacher_id = T2.teacher_id",
            "SELECT COUNT(*) FROM teacher AS T1 JOIN course_arrange AS T2 ON T1.teacher_id = T2.teacher_id",
            "SELECT T1.name FROM teacher AS T1 LEFT JOIN course_arrange AS T2 ON T1.teacher_id = T2.teacher_id",
        ] {
            assert_eq!(unread_joins(sql, &catalog), None, "{sql}");
        }
    }

    #[test]
    fn one_column_equal_to_two_values_becomes_an_intersect() {
        let sql = "SELECT T1.Name FROM country AS T1 JOIN countrylanguage AS T2 ON T1.Code = T2.CountryCode \
                   WHERE T2.Language = 'English' AND T2.IsOfficial = 'T' AND T2.Language = 'French'";
        assert_eq!(
            both_values(sql).as_deref(),
            Some(
                "SELECT T1.Name FROM country AS T1 JOIN countrylanguage AS T2 ON T1.Code = T2.CountryCode \
                 WHERE (T2.Language = 'English') AND (T2.IsOfficial = 'T') INTERSECT SELECT T1.Name FROM country AS T1 \
                 JOIN countrylanguage AS T2 ON T1.Code = T2.CountryCode WHERE (T2.IsOfficial = 'T') AND (T2.Language = 'French')"
            )
        );
    }

    #[test]
    fn an_exclusion_copied_from_an_example_is_dropped_wherever_it_is() {
        let copied = vec!["cancelled".to_string()];
        let sql =
            "SELECT status, COUNT(*) FROM orders WHERE status <> 'cancelled' AND ordered_at >= '2026-09-01' \
                   GROUP BY status";
        assert_eq!(
            copied_exclusions(sql, &copied).as_deref(),
            Some("SELECT status, COUNT(*) FROM orders WHERE ordered_at >= '2026-09-01' GROUP BY status")
        );
        // In a subquery, as NOT IN, and as the whole WHERE.
        let nested = "SELECT COUNT(*) FROM (SELECT user_id FROM orders WHERE status NOT IN ('Cancelled') \
                      GROUP BY user_id HAVING COUNT(*) > 10)";
        assert_eq!(
            copied_exclusions(nested, &copied).as_deref(),
            Some("SELECT COUNT(*) FROM (SELECT user_id FROM orders GROUP BY user_id HAVING COUNT(*) > 10)")
        );
    }

    #[test]
    fn values_asked_for_kept_and_other_filters_stay() {
        let copied = vec!["cancelled".to_string()];
        for sql in [
            // An equality is often the question's own word put otherwise; a value not copied; a
            // NOT IN with a value that was not copied.
            "SELECT COUNT(*) FROM orders WHERE status = 'cancelled'",
            "SELECT COUNT(*) FROM orders WHERE status <> 'pending'",
            "SELECT COUNT(*) FROM orders WHERE status NOT IN ('cancelled', 'pending')",
        ] {
            assert_eq!(copied_exclusions(sql, &copied), None, "{sql}");
        }
        assert_eq!(copied_exclusions("SELECT 1 FROM orders WHERE status <> 'cancelled'", &[]), None);
        assert_eq!(string_values("SELECT a FROM t WHERE b = 'x' AND c IN ('y', 2)"), ["x", "y"]);
    }

    #[test]
    fn ranges_that_do_not_meet_intersect_and_ranges_that_do_stay() {
        let disjoint = "SELECT country FROM singer WHERE age > 40 AND age < 30";
        assert_eq!(
            both_values(disjoint).as_deref(),
            Some("SELECT country FROM singer WHERE (age > 40) INTERSECT SELECT country FROM singer WHERE (age < 30)")
        );
        for sql in [
            "SELECT country FROM singer WHERE age > 30 AND age < 40",
            "SELECT country FROM singer WHERE age >= 30 AND age <= 30",
            "SELECT country FROM singer WHERE age = 30 AND age = 30.0",
            "SELECT country FROM singer WHERE age = 30 OR age = 40",
            "SELECT COUNT(*) FROM singer WHERE age = 30 AND age = 40",
        ] {
            assert_eq!(both_values(sql), None, "{sql}");
        }
    }
    #[test]
    fn a_ratio_whose_condition_is_also_its_filter_counts_among_all_rows() {
        let sql = "SELECT CAST(SUM(CASE WHEN rating > 4.5 THEN 1 ELSE 0 END) AS REAL) / COUNT(*) AS ratio \
                   FROM restaurant WHERE rating > 4.5 AND city = 'Paris'";
        assert_eq!(
            ratio_filtered_twice(sql).as_deref(),
            Some(
                "SELECT CAST(SUM(CASE WHEN rating > 4.5 THEN 1 ELSE 0 END) AS REAL) / COUNT(*) AS ratio \
                 FROM restaurant WHERE city = 'Paris'"
            )
        );
        // Two conditions that no row meets together, numbers written two ways.
        let sql =
            "SELECT CAST(COUNT(CASE WHEN rating > 4.0 THEN 1 END) AS REAL) / COUNT(CASE WHEN rating < 4 \
                   THEN 1 END) AS ratio FROM restaurant WHERE (rating > 4) AND rating < 4.0";
        assert_eq!(
            ratio_filtered_twice(sql).as_deref(),
            Some(
                "SELECT CAST(COUNT(CASE WHEN rating > 4.0 THEN 1 END) AS REAL) / COUNT(CASE WHEN rating < 4 \
                 THEN 1 END) AS ratio FROM restaurant"
            )
        );
    }

    #[test]
    fn filters_a_ratio_does_not_count_by_stay() {
        let sql = "SELECT CAST(SUM(CASE WHEN rating > 4.5 THEN 1 ELSE 0 END) AS REAL) / COUNT(*) \
                   FROM restaurant WHERE city = 'Paris'";
        assert_eq!(ratio_filtered_twice(sql), None);
        // No division: a CASE beside its own filter is only redundant.
        let sql = "SELECT SUM(CASE WHEN rating > 4.5 THEN 1 ELSE 0 END) FROM restaurant WHERE rating > 4.5";
        assert_eq!(ratio_filtered_twice(sql), None);
    }

    #[test]
    fn the_last_day_of_a_range_the_question_names_is_kept() {
        let question = "Which products had no orders placed in the first week of October 2026 (2026-10-01 to 2026-10-07)?";
        let sql = "SELECT name FROM products WHERE id NOT IN (SELECT product_id FROM orders \
                   WHERE ordered_at >= '2026-10-01' AND ordered_at < '2026-10-07')";
        assert_eq!(
            last_day_kept(question, sql).as_deref(),
            Some(
                "SELECT name FROM products WHERE id NOT IN (SELECT product_id FROM orders \
                 WHERE ordered_at >= '2026-10-01' AND ordered_at < '2026-10-08')"
            )
        );
        let between = "How many orders between 2026-07-01 and 2026-09-30?";
        let sql =
            "SELECT COUNT(*) FROM orders WHERE '2026-09-30' > ordered_at AND ordered_at >= '2026-07-01'";
        assert_eq!(
            last_day_kept(between, sql).as_deref(),
            Some(
                "SELECT COUNT(*) FROM orders WHERE '2026-10-01' > ordered_at AND ordered_at >= '2026-07-01'"
            )
        );
    }

    #[test]
    fn a_day_the_question_excludes_or_a_bound_already_right_stays() {
        let sql = "SELECT COUNT(*) FROM orders WHERE ordered_at < '2026-10-01'";
        // "Before" a day leaves it out; one date alone is no range.
        assert_eq!(last_day_kept("How many orders before 2026-10-01?", sql), None);
        assert_eq!(last_day_kept("How many orders on 2026-10-01?", sql), None);
        let sql =
            "SELECT COUNT(*) FROM orders WHERE ordered_at >= '2026-07-01' AND ordered_at < '2026-10-01'";
        assert_eq!(last_day_kept("How many orders from 2026-07-01 to 2026-09-30?", sql), None);
    }

    #[test]
    fn an_absence_over_all_time_loses_the_period_copied_into_it() {
        let question =
            "How many posts published in September 2026 have received no engagement events at all?";
        let sql = "SELECT COUNT(post_id) FROM posts WHERE created_at >= '2026-09-01' AND created_at < '2026-10-01' \
                   AND post_id NOT IN (SELECT post_id FROM post_engagement WHERE event_date >= '2026-09-01' \
                   AND event_date < '2026-10-01')";
        assert_eq!(
            absence_over_all_time(question, sql).as_deref(),
            Some(
                "SELECT COUNT(post_id) FROM posts WHERE created_at >= '2026-09-01' AND created_at < '2026-10-01' \
                 AND post_id NOT IN (SELECT post_id FROM post_engagement)"
            )
        );
        let never = "How many users who signed up between 2026-01-01 and 2026-05-31 have never been active?";
        let sql = "SELECT COUNT(*) FROM users u WHERE u.signup_date BETWEEN '2026-01-01' AND '2026-05-31' AND NOT \
                   EXISTS (SELECT 1 FROM activity a WHERE a.user_id = u.user_id AND a.day BETWEEN '2026-01-01' AND '2026-05-31')";
        assert_eq!(
            absence_over_all_time(never, sql).as_deref(),
            Some(
                "SELECT COUNT(*) FROM users u WHERE u.signup_date BETWEEN '2026-01-01' AND '2026-05-31' AND NOT \
                 EXISTS (SELECT 1 FROM activity a WHERE a.user_id = u.user_id)"
            )
        );
    }

    #[test]
    fn an_absence_in_a_period_the_question_names_keeps_it() {
        let sql = "SELECT COUNT(*) FROM campaigns c WHERE c.start >= '2026-09-01' AND c.id NOT IN \
                   (SELECT campaign_id FROM conversions WHERE converted_at >= '2026-09-01')";
        let question =
            "How many campaigns started in September 2026 got no conversions at all in September 2026?";
        assert_eq!(absence_over_all_time(question, sql), None);
        // Not an absence over all time; or the subquery's own values, not copied ones.
        assert_eq!(
            absence_over_all_time("How many campaigns started in September 2026 had no conversions?", sql),
            None
        );
        let own = sql.replace("converted_at >= '2026-09-01'", "kind = 'click'");
        assert_eq!(absence_over_all_time("Which campaigns got no clicks at all?", &own), None);
    }

    #[test]
    fn an_absence_is_asked_of_what_is_counted_not_of_the_row() {
        let mut posts = Table::new(
            "posts",
            ["post_id", "author_id", "created_at"].iter().map(|c| Column::new(*c, "TEXT")).collect(),
        );
        posts.primary_key = vec!["post_id".to_string()];
        let with_posts = Catalog::from_tables(vec![posts]);
        let sql =
            "SELECT COUNT(DISTINCT p.author_id) AS authors FROM posts p WHERE p.created_at >= '2026-08-01' \
                   AND p.post_id NOT IN (SELECT post_id FROM posts WHERE created_at >= '2026-09-01')";
        let question = "How many distinct authors posted in August 2026 but none in September 2026?";
        assert_eq!(
            absence_of_the_counted(question, sql, &with_posts).as_deref(),
            Some(
                "SELECT COUNT(DISTINCT p.author_id) AS authors FROM posts p WHERE p.created_at >= '2026-08-01' \
                 AND p.author_id NOT IN (SELECT author_id FROM posts WHERE created_at >= '2026-09-01')"
            )
        );
        // Rows of another table excluded; the key itself counted; no primary key known.
        let other = sql.replace("SELECT post_id FROM posts", "SELECT post_id FROM flagged");
        assert_eq!(absence_of_the_counted(question, &other, &with_posts), None);
        let keys = sql.replace("DISTINCT p.author_id", "DISTINCT p.post_id");
        assert_eq!(absence_of_the_counted(question, &keys, &with_posts), None);
        assert_eq!(absence_of_the_counted(question, sql, &catalog()), None);
        // No absence asked: an August post that is not a September one may be what is meant.
        let other_than = "How many authors have posts from August other than September ones?";
        assert_eq!(absence_of_the_counted(other_than, sql, &with_posts), None);
    }

    #[test]
    fn a_date_filter_nobody_asked_for_is_dropped() {
        let question = "Give me the description of the treatment type whose total cost is the lowest.";
        assert!(!speaks_of_time(question));
        let sql = "SELECT T2.d FROM Treatments AS T1 JOIN Treatment_Types AS T2 ON T1.c = T2.c \
                   WHERE T1.date_of_treatment >= '2018-03-24' AND T1.date_of_treatment < '2018-04-01' \
                   GROUP BY T2.d ORDER BY SUM(T1.cost) ASC LIMIT 1";
        assert_eq!(
            invented_periods(sql, false).as_deref(),
            Some("SELECT T2.d FROM Treatments AS T1 JOIN Treatment_Types AS T2 ON T1.c = T2.c GROUP BY T2.d ORDER BY SUM(T1.cost) ASC LIMIT 1")
        );
        // Other conditions stay; a BETWEEN of dates, a date function over the column, a
        // subquery's WHERE and the date on the left go.
        assert_eq!(
            invented_periods(
                "SELECT name FROM t WHERE kind = 'a' AND d BETWEEN '2018-01-01' AND '2018-12-31' \
                 AND id IN (SELECT id FROM u WHERE '2020-01-01 00:00:00' <= date(u.at))",
                false
            )
            .as_deref(),
            Some("SELECT name FROM t WHERE kind = 'a' AND id IN (SELECT id FROM u)")
        );
    }

    #[test]
    fn a_date_filter_stays_when_anything_said_speaks_of_time() {
        let sql = "SELECT COUNT(*) FROM orders WHERE created_at >= '2026-09-01'";
        for said in [
            "How many orders in September?",
            "How many orders since the launch?",
            "How many orders are still open?",
            "How many orders this quarter?",
            "How many orders over 100?",
            "Which subscriptions have expired?",
        ] {
            assert!(speaks_of_time(said), "{said}");
        }
        assert_eq!(invented_periods(sql, true), None);
        // Comparisons that are not with a date: a number, a month name, a date-like word.
        for sql in [
            "SELECT COUNT(*) FROM orders WHERE total > 2018",
            "SELECT COUNT(*) FROM review WHERE month = 'March'",
            "SELECT COUNT(*) FROM orders WHERE code = '2018-03'",
            "SELECT COUNT(*) FROM orders WHERE created_at <> '2018-03-01'",
        ] {
            assert_eq!(invented_periods(sql, false), None, "{sql}");
        }
    }
}
