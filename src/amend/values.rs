//! Values the question asks for in a form the SQL does not give: rounded to N decimals, a
//! number where the SQL yields text, a rate alone where the SQL shows its parts beside it, one
//! rate where the SQL computes one per hidden group and keeps the first, one total where the
//! SQL computes it as a window over every row, and each group's share of the whole where the
//! SQL divides the group's value by itself.

use std::collections::BTreeMap;
use std::ops::ControlFlow;

use sqlparser::ast::{BinaryOperator, Expr, GroupByExpr, Ident, OrderByKind, SelectItem, SetExpr, Value};

use super::parse_expr;
use crate::check::{
    asks_for_several, decimals_asked, divided_by_itself, has_aggregate, has_window, lowercase_words, rounds,
};
use crate::history::structure::parse_query;

/// For a question asking for values rounded to N decimals, a query that rounds nothing with
/// each computed value of its outermost SELECT (an aggregate other than COUNT, or arithmetic)
/// wrapped in `ROUND(…, N)` under the name it had; None otherwise. Counts stay whole numbers.
pub fn rounding_asked(question: &str, sql: &str) -> Option<String> {
    let decimals = decimals_asked(question)?;
    if rounds(&parse_query(sql)?) {
        return None;
    }
    outer_items_replaced(sql, |expr| {
        is_computed(expr).then(|| parse_expr(&format!("ROUND({expr}, {decimals})"))).flatten()
    })
}

/// `sql` with each item of its outermost SELECT that `replace` gives a new expression for
/// replaced by it, under the name the item had; None when none changed.
fn outer_items_replaced(sql: &str, replace: impl Fn(&Expr) -> Option<Expr>) -> Option<String> {
    let mut query = parse_query(sql)?;
    let SetExpr::Select(select) = query.body.as_mut() else { return None };
    let mut changed = false;
    for item in &mut select.projection {
        let (expr, alias) = match item {
            SelectItem::UnnamedExpr(expr) => (expr.clone(), None),
            SelectItem::ExprWithAlias { expr, alias } => (expr.clone(), Some(alias.clone())),
            _ => continue,
        };
        let Some(replaced) = replace(&expr) else { continue };
        let alias = alias.unwrap_or_else(|| Ident::with_quote('"', expr.to_string()));
        *item = SelectItem::ExprWithAlias { expr: replaced, alias };
        changed = true;
    }
    changed.then(|| query.to_string())
}

/// Words of a question that ask for a value per row, over a window.
const RUNNING: &[&str] = &["running", "cumulative", "cumulatively", "rolling", "moving", "trailing"];

/// A total asked once ("What is our revenue year to date?") that the SQL computes as a window
/// over the rows (`SUM(total_amount) OVER (ORDER BY ordered_at)`: a running total, one row per
/// order) computed once, as the aggregate it windows (`SUM(total_amount)`); None otherwise.
/// Only an outermost SELECT without GROUP BY or ORDER BY whose every item reads the rows only
/// through windows of SUM, AVG, COUNT, MIN or MAX that partition nothing, for a question that asks
/// neither for a running, cumulative or moving value nor for several.
pub fn one_total_asked(question: &str, sql: &str) -> Option<String> {
    if asks_for_several(question) || lowercase_words(question).iter().any(|w| RUNNING.contains(&w.as_str())) {
        return None;
    }
    let query = parse_query(sql)?;
    let SetExpr::Select(select) = query.body.as_ref() else { return None };
    // An ORDER BY beside one total orders nothing, and reads rows PostgreSQL would refuse.
    if !matches!(&select.group_by, GroupByExpr::Expressions(keys, _) if keys.is_empty())
        || select.having.is_some()
        || query.order_by.is_some()
    {
        return None;
    }
    for item in &select.projection {
        let (SelectItem::UnnamedExpr(expr) | SelectItem::ExprWithAlias { expr, .. }) = item else {
            return None;
        };
        // With its windowed aggregates taken out, the item reads no row and holds no window.
        let mut rest = expr.clone();
        let mut windows = 0;
        let _ = sqlparser::ast::visit_expressions_mut(&mut rest, |e| {
            if whole_window_aggregate(e) {
                *e = Expr::value(Value::Null);
                windows += 1;
            }
            ControlFlow::<()>::Continue(())
        });
        let mut reads = false;
        let _ = sqlparser::ast::visit_expressions(&rest, |e| {
            reads |= matches!(e, Expr::Identifier(_) | Expr::CompoundIdentifier(_) | Expr::Subquery(_));
            ControlFlow::<()>::Continue(())
        });
        if windows == 0 || reads || has_window(&rest) {
            return None;
        }
    }
    outer_items_replaced(sql, |expr| {
        let mut once = expr.clone();
        let _ = sqlparser::ast::visit_expressions_mut(&mut once, |e| {
            if let Expr::Function(f) = e {
                if whole_window_aggregate(&Expr::Function(f.clone())) {
                    f.over = None;
                }
            }
            ControlFlow::<()>::Continue(())
        });
        Some(once)
    })
}

/// `SUM|AVG|COUNT|MIN|MAX(…) OVER (…)` over a window that partitions nothing, of no aggregate
/// (`SUM(SUM(x)) OVER ()` would nest one without its window).
fn whole_window_aggregate(expr: &Expr) -> bool {
    let Expr::Function(f) = expr else { return false };
    let aggregate = ["sum", "avg", "count", "min", "max"]
        .contains(&f.name.to_string().to_lowercase().as_str())
        && !crate::history::structure::plain_arguments(f).into_iter().any(has_aggregate);
    let whole = match &f.over {
        Some(sqlparser::ast::WindowType::WindowSpec(spec)) => spec.partition_by.is_empty(),
        _ => false,
    };
    aggregate && whole
}

/// An aggregate other than a bare COUNT, or arithmetic: a value that can have decimals.
fn is_computed(expr: &Expr) -> bool {
    match expr {
        Expr::Nested(inner) => is_computed(inner),
        Expr::Function(f) if f.name.to_string().eq_ignore_ascii_case("count") => false,
        Expr::BinaryOp {
            op:
                BinaryOperator::Divide | BinaryOperator::Multiply | BinaryOperator::Plus | BinaryOperator::Minus,
            ..
        } => true,
        other => has_aggregate(other),
    }
}

/// Words and phrases of a question that ask for a rate, a share or a ratio ("per" as in "cost
/// per click").
const RATE_PHRASES: &[&str] = &[
    "rate",
    "rates",
    "ratio",
    "ratios",
    "percentage",
    "percent",
    "share",
    "proportion",
    "per",
    "roas",
    "divided by",
];

/// Words and phrases of a question that ask for counts or totals beside the rate.
const PARTS_PHRASES: &[&str] = &[
    "how many",
    "the count",
    "and the number",
    "and the total",
    "counts",
    "totals",
    "numerator",
    "denominator",
];

/// True when the question asks for a rate and for no counts or totals beside it. Phrases are
/// matched on whole words ("rate" is not in "separate").
fn asks_for_a_rate_alone(question: &str) -> bool {
    asks_for_a_rate(question) && !says_any(question, PARTS_PHRASES)
}

/// True when the question asks for a rate, a share or a ratio.
fn asks_for_a_rate(question: &str) -> bool {
    says_any(question, RATE_PHRASES)
}

/// True when the question says one of `phrases`, as whole words.
fn says_any(question: &str, phrases: &[&str]) -> bool {
    let text = format!(" {} ", lowercase_words(question).join(" "));
    phrases.iter().any(|phrase| text.contains(&format!(" {phrase} ")))
}

/// For a question asking for a share, ratio or rate, a grouped query that divides an aggregate
/// by itself — `CAST(COUNT(business_id) AS REAL) / NULLIF(COUNT(business_id), 0)` per state,
/// 1 for every state — rewritten with the divisor taken over every row its FROM and WHERE keep
/// (`… / NULLIF((SELECT COUNT(business_id) FROM business), 0)`): each group's share of the
/// whole. None otherwise: no such division, no GROUP BY, a WITH, a window, a set operation.
pub fn share_of_the_whole(question: &str, sql: &str) -> Option<String> {
    if !asks_for_a_rate(question) {
        return None;
    }
    let mut query = parse_query(sql)?;
    if query.with.is_some() || has_window(&query) {
        return None;
    }
    let SetExpr::Select(select) = query.body.as_mut() else { return None };
    if !matches!(&select.group_by, GroupByExpr::Expressions(keys, _) if !keys.is_empty()) {
        return None;
    }
    let from = select.from.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
    let filter = select.selection.as_ref().map(|w| format!(" WHERE {w}")).unwrap_or_default();
    let whole = |aggregate: &Expr| parse_expr(&format!("(SELECT {aggregate} FROM {from}{filter})"));
    let mut changed = false;
    for item in &mut select.projection {
        if let SelectItem::UnnamedExpr(expr) | SelectItem::ExprWithAlias { expr, .. } = item {
            changed |= divisors_made_whole(expr, &whole);
        }
    }
    if let Some(OrderByKind::Expressions(orders)) = query.order_by.as_mut().map(|o| &mut o.kind) {
        for order in orders {
            changed |= divisors_made_whole(&mut order.expr, &whole);
        }
    }
    changed.then(|| query.to_string())
}

/// `expr` with the divisor of each division of an aggregate by itself replaced by `whole` of
/// that aggregate; true when one was.
fn divisors_made_whole(expr: &mut Expr, whole: &dyn Fn(&Expr) -> Option<Expr>) -> bool {
    let mut changed = false;
    let _ = sqlparser::ast::visit_expressions_mut(expr, |e| {
        if let Expr::BinaryOp { left, op: BinaryOperator::Divide, right } = e {
            if let Some(aggregate) = divided_by_itself(left, right).map(ToString::to_string) {
                let _ = sqlparser::ast::visit_expressions_mut(right.as_mut(), |inner| {
                    if inner.to_string() != aggregate {
                        return ControlFlow::Continue(());
                    }
                    if let Some(replaced) = whole(inner) {
                        *inner = replaced;
                        changed = true;
                    }
                    ControlFlow::Break(())
                });
            }
        }
        ControlFlow::<()>::Continue(())
    });
    changed
}

/// For a question asking for a rate (and no counts or totals beside it), the items of the
/// outermost SELECT that are only the parts of another item's division — `SUM(clicks)` beside
/// `100.0 * SUM(clicks) / SUM(impressions)` — dropped; an ORDER BY on a dropped item's name
/// orders by its expression. None otherwise, and when an ORDER BY by position or a HAVING would
/// lose what it reads: a division's parts shown beside it make every row differ from the one
/// value per group that was asked.
pub fn ratio_parts_dropped(question: &str, sql: &str) -> Option<String> {
    if !asks_for_a_rate_alone(question) {
        return None;
    }
    let mut query = parse_query(sql)?;
    let SetExpr::Select(select) = query.body.as_mut() else { return None };
    let expr_of = |item: &SelectItem| match item {
        SelectItem::UnnamedExpr(expr) | SelectItem::ExprWithAlias { expr, .. } => Some(expr.clone()),
        _ => None,
    };
    // Every expression inside an operand of a division in an item, by the item it is in.
    let operands: Vec<Vec<String>> = select
        .projection
        .iter()
        .map(|item| {
            let mut inside = Vec::new();
            if let Some(expr) = expr_of(item) {
                let _ = sqlparser::ast::visit_expressions(&expr, |e| {
                    if let Expr::BinaryOp { left, op: BinaryOperator::Divide, right } = e {
                        for side in [left, right] {
                            let _ = sqlparser::ast::visit_expressions(side.as_ref(), |part| {
                                inside.push(part.to_string());
                                ControlFlow::<()>::Continue(())
                            });
                        }
                    }
                    ControlFlow::<()>::Continue(())
                });
            }
            inside
        })
        .collect();
    let is_part = |index: usize, expr: &Expr| {
        has_aggregate(expr)
            && !has_window(expr)
            && operands[index].is_empty()
            && operands
                .iter()
                .enumerate()
                .any(|(other, inside)| other != index && inside.contains(&expr.to_string()))
    };
    // The dropped items' names, lower-cased, with their expressions.
    let mut dropped_names: BTreeMap<String, Expr> = BTreeMap::new();
    let mut kept = Vec::new();
    for (index, item) in select.projection.iter().enumerate() {
        match (expr_of(item), item) {
            (Some(expr), SelectItem::ExprWithAlias { alias, .. }) if is_part(index, &expr) => {
                dropped_names.insert(alias.value.to_lowercase(), expr);
            }
            (Some(expr), _) if is_part(index, &expr) => {}
            _ => kept.push(item.clone()),
        }
    }
    if kept.len() == select.projection.len() {
        return None;
    }
    let reads_a_dropped_name = |node: &Expr| {
        let mut reads = false;
        let _ = sqlparser::ast::visit_expressions(node, |e| {
            reads |=
                matches!(e, Expr::Identifier(name) if dropped_names.contains_key(&name.value.to_lowercase()));
            ControlFlow::<()>::Continue(())
        });
        reads
    };
    if select.having.as_ref().is_some_and(reads_a_dropped_name) {
        return None;
    }
    select.projection = kept;
    if let Some(order_by) = query.order_by.as_mut() {
        let OrderByKind::Expressions(exprs) = &mut order_by.kind else { return None };
        for order in exprs {
            // A position would now point at another column.
            if matches!(&order.expr, Expr::Value(v) if matches!(v.value, Value::Number(..))) {
                return None;
            }
            match &order.expr {
                Expr::Identifier(name) => {
                    if let Some(expr) = dropped_names.get(&name.value.to_lowercase()) {
                        order.expr = expr.clone();
                    }
                }
                other if reads_a_dropped_name(other) => return None,
                _ => {}
            }
        }
    }
    Some(query.to_string())
}

/// strftime formats whose text is a number: weekday, month, day, hour, year, day and week of
/// the year.
const NUMBER_FORMATS: &[&str] = &["%w", "%u", "%m", "%d", "%H", "%Y", "%j", "%W"];

/// For a question asking for one rate (a rate alone, not for each or by anything), a query
/// whose outermost SELECT shows only aggregates, one of them a division, grouped by keys it does
/// not show, and cut to its first row (`LIMIT 1`) rewritten without the grouping, order and
/// limit: the rate over every row its filters keep. "What percentage of active users are
/// paid?" answered with `… GROUP BY user_id, plan ORDER BY pct DESC LIMIT 1` gives the rate of
/// whichever group came first, and no row says which. None for any other shape (a HAVING, a
/// key shown, a window, a set operation).
pub fn rate_over_all_rows(question: &str, sql: &str) -> Option<String> {
    if !asks_for_a_rate_alone(question) || asks_for_several(question) {
        return None;
    }
    let mut query = parse_query(sql)?;
    if query.with.is_some() || has_window(&query) || crate::check::outer_limit(&query) != Some(1) {
        return None;
    }
    let SetExpr::Select(select) = query.body.as_mut() else { return None };
    let GroupByExpr::Expressions(keys, _) = &select.group_by else { return None };
    if keys.is_empty() || select.having.is_some() || select.distinct.is_some() {
        return None;
    }
    let items: Option<Vec<&Expr>> = select
        .projection
        .iter()
        .map(|item| match item {
            SelectItem::UnnamedExpr(expr) | SelectItem::ExprWithAlias { expr, .. } => Some(expr),
            _ => None,
        })
        .collect();
    let items = items?;
    let divides = |expr: &Expr| {
        let mut found = false;
        let _ = sqlparser::ast::visit_expressions(expr, |e| {
            found |= matches!(e, Expr::BinaryOp { op: BinaryOperator::Divide, .. });
            ControlFlow::<()>::Continue(())
        });
        found
    };
    if !items.iter().all(|e| has_aggregate(e)) || !items.iter().any(|e| divides(e)) {
        return None;
    }
    select.group_by = GroupByExpr::Expressions(Vec::new(), Vec::new());
    query.order_by = None;
    query.limit_clause = None;
    Some(query.to_string())
}

/// For a question asking for a part of a date "as a number", each `strftime('%w', …)` (or
/// another format of one number) in the outermost SELECT cast to an integer under the name it
/// had; None otherwise. strftime returns text: '0' for Sunday, not 0.
pub fn numbers_asked(question: &str, sql: &str) -> Option<String> {
    let lower = question.to_lowercase();
    if !(lower.contains("as a number") || lower.contains("as numbers") || lower.contains("number from")) {
        return None;
    }
    outer_items_replaced(sql, |expr| {
        let text = expr.to_string();
        let format = text.get(..9).filter(|f| f.eq_ignore_ascii_case("strftime(")).map(|_| &text[9..]);
        let one_number =
            format.is_some_and(|rest| NUMBER_FORMATS.iter().any(|f| rest.starts_with(&format!("'{f}',"))));
        one_number.then(|| parse_expr(&format!("CAST({text} AS INTEGER)"))).flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_asked_rounded_are_rounded_and_counts_stay_whole() {
        let question = "What was the average number of orders per buyer, rounded to 2 decimals?";
        let sql =
            "SELECT COUNT(*) AS buyers, AVG(orders) AS avg_orders FROM (SELECT user_id, COUNT(*) AS orders \
                   FROM orders GROUP BY user_id) AS per_buyer";
        assert_eq!(
            rounding_asked(question, sql).as_deref(),
            Some(
                "SELECT COUNT(*) AS buyers, ROUND(AVG(orders), 2) AS avg_orders FROM (SELECT user_id, \
                 COUNT(*) AS orders FROM orders GROUP BY user_id) AS per_buyer"
            )
        );
        let ratio = "SELECT 100.0 * SUM(clicks) / SUM(impressions) FROM stats";
        assert_eq!(
            rounding_asked("What was the CTR as a percentage rounded to one decimal?", ratio).as_deref(),
            Some("SELECT ROUND(100.0 * SUM(clicks) / SUM(impressions), 1) AS \"100.0 * SUM(clicks) / SUM(impressions)\" FROM stats")
        );
        // Rounded already, or no rounding asked.
        assert_eq!(rounding_asked(question, "SELECT ROUND(AVG(x), 2) FROM t"), None);
        assert_eq!(rounding_asked("What was the average order value?", "SELECT AVG(x) FROM t"), None);
    }

    #[test]
    fn a_group_divided_by_itself_is_divided_by_the_whole() {
        let question = "What share of completed orders' revenue comes from each country?";
        let sql =
            "SELECT o.country_code, CAST(SUM(o.total_amount) AS REAL) / NULLIF(SUM(o.total_amount), 0) \
                   AS share FROM orders AS o JOIN users AS u ON u.user_id = o.user_id \
                   WHERE o.status = 'completed' GROUP BY o.country_code ORDER BY share DESC";
        assert_eq!(
            share_of_the_whole(question, sql).as_deref(),
            Some(
                "SELECT o.country_code, CAST(SUM(o.total_amount) AS REAL) / NULLIF((SELECT SUM(o.total_amount) \
                 FROM orders AS o JOIN users AS u ON u.user_id = o.user_id WHERE o.status = 'completed'), 0) \
                 AS share FROM orders AS o JOIN users AS u ON u.user_id = o.user_id \
                 WHERE o.status = 'completed' GROUP BY o.country_code ORDER BY share DESC"
            )
        );
        // Scaled, and in the ORDER BY too.
        assert_eq!(
            share_of_the_whole(
                "What percentage of users does each plan have?",
                "SELECT plan, 100.0 * COUNT(*) / COUNT(*) FROM users GROUP BY plan ORDER BY 100.0 * COUNT(*) / COUNT(*)"
            )
            .as_deref(),
            Some(
                "SELECT plan, 100.0 * COUNT(*) / (SELECT COUNT(*) FROM users) FROM users GROUP BY plan \
                 ORDER BY 100.0 * COUNT(*) / (SELECT COUNT(*) FROM users)"
            )
        );
        for (question, sql) in [
            // One total: the value over itself is no share of anything; the check says so.
            ("What share of orders were refunded?", "SELECT COUNT(*) / COUNT(*) FROM orders"),
            // Two different values, or a distinct count over all rows.
            ("What share of revenue comes from each country?", "SELECT c, SUM(a) / SUM(b) FROM t GROUP BY c"),
            (
                "What is the ratio of users to countries per plan?",
                "SELECT p, COUNT(u) / COUNT(DISTINCT u) FROM t GROUP BY p",
            ),
            // Not a rate.
            ("How many orders did each country place?", "SELECT c, COUNT(*) / COUNT(*) FROM t GROUP BY c"),
            // A WITH, a window.
            (
                "What share comes from each country?",
                "WITH x AS (SELECT * FROM t) SELECT c, SUM(a) / SUM(a) FROM x GROUP BY c",
            ),
            (
                "What share comes from each country?",
                "SELECT c, SUM(a) / SUM(SUM(a)) OVER () FROM t GROUP BY c",
            ),
        ] {
            assert_eq!(share_of_the_whole(question, sql), None, "{sql}");
        }
    }

    #[test]
    fn one_rate_asked_is_computed_over_all_rows_not_the_first_hidden_group() {
        let question = "Of the users active in October, what percentage are on a paid plan?";
        let sql = "SELECT ROUND(100.0 * COUNT(DISTINCT CASE WHEN u.plan <> 'free' THEN u.user_id END) / \
                   COUNT(DISTINCT u.user_id), 2) AS pct FROM active AS d JOIN users AS u ON u.user_id = d.user_id \
                   GROUP BY d.user_id, u.plan ORDER BY pct DESC LIMIT 1";
        assert_eq!(
            rate_over_all_rows(question, sql).as_deref(),
            Some(
                "SELECT ROUND(100.0 * COUNT(DISTINCT CASE WHEN u.plan <> 'free' THEN u.user_id END) / \
                 COUNT(DISTINCT u.user_id), 2) AS pct FROM active AS d JOIN users AS u ON u.user_id = d.user_id"
            )
        );
        for (question, sql) in [
            // A rate for each group, or the highest rate (a LIMIT the question may mean).
            ("What percentage of users are paid in each country?", sql),
            ("What percentage of users are paid by country?", sql),
            // The key is shown, no LIMIT 1, a HAVING, no division, not a rate.
            (
                question,
                "SELECT plan, 1.0 * COUNT(*) / 10 AS r FROM users GROUP BY plan ORDER BY r DESC LIMIT 1",
            ),
            (question, "SELECT 1.0 * COUNT(*) / 10 AS r FROM users GROUP BY plan"),
            (
                question,
                "SELECT 1.0 * COUNT(*) / 10 AS r FROM users GROUP BY plan HAVING COUNT(*) > 1 LIMIT 1",
            ),
            (question, "SELECT COUNT(*) AS r FROM users GROUP BY plan ORDER BY r DESC LIMIT 1"),
            ("How many users are paid?", sql),
        ] {
            assert_eq!(rate_over_all_rows(question, sql), None, "{question} {sql}");
        }
    }

    #[test]
    fn a_rate_asked_alone_loses_the_parts_shown_beside_it() {
        let question = "What was the click-through rate (total clicks divided by total impressions, as a \
                        percentage) of each campaign objective?";
        let sql = "SELECT c.objective, SUM(s.clicks) AS clicks, ROUND(100.0 * SUM(s.clicks) / \
                   SUM(s.impressions), 2) AS ctr_pct FROM stats s JOIN campaigns c ON c.id = s.campaign_id \
                   GROUP BY c.objective ORDER BY clicks DESC";
        assert_eq!(
            ratio_parts_dropped(question, sql).as_deref(),
            Some(
                "SELECT c.objective, ROUND(100.0 * SUM(s.clicks) / SUM(s.impressions), 2) AS ctr_pct FROM \
                 stats s JOIN campaigns c ON c.id = s.campaign_id GROUP BY c.objective ORDER BY SUM(s.clicks) DESC"
            )
        );
        let refunds =
            "SELECT region, COUNT(*) AS orders, SUM(CASE WHEN status = 'refunded' THEN 1 ELSE 0 END) \
                       AS refunded, 100.0 * SUM(CASE WHEN status = 'refunded' THEN 1 ELSE 0 END) / COUNT(*) \
                       AS pct FROM orders GROUP BY region";
        assert_eq!(
            ratio_parts_dropped("What percentage of orders were refunded, per region?", refunds).as_deref(),
            Some(
                "SELECT region, 100.0 * SUM(CASE WHEN status = 'refunded' THEN 1 ELSE 0 END) / COUNT(*) AS pct \
                 FROM orders GROUP BY region"
            )
        );
        // Counts asked beside the rate; no rate asked; a count that is no part of the division;
        // an order by position.
        assert_eq!(ratio_parts_dropped("How many orders, and what percentage were refunded?", refunds), None);
        assert_eq!(
            ratio_parts_dropped("Show the orders and the refunded orders of each region.", refunds),
            None
        );
        let other = "SELECT region, COUNT(DISTINCT user_id) AS users, 100.0 * SUM(x) / COUNT(*) AS pct \
                     FROM orders GROUP BY region";
        assert_eq!(ratio_parts_dropped("What percentage per region?", other), None);
        // "rate" only as a word ("separately"); a HAVING on a dropped part's name.
        assert_eq!(ratio_parts_dropped("Show each region's refunded orders separately.", refunds), None);
        let having = refunds.replace("GROUP BY region", "GROUP BY region HAVING orders > 10");
        assert_eq!(
            ratio_parts_dropped("What percentage of orders were refunded, per region?", &having),
            None
        );
        let by_position = format!("{refunds} ORDER BY 2 DESC");
        assert_eq!(
            ratio_parts_dropped("What percentage of orders were refunded, per region?", &by_position),
            None
        );
    }

    #[test]
    fn a_part_of_a_date_asked_as_a_number_is_a_number() {
        let question =
            "How many sessions on each day of the week? Show the day as a number from 0 (Sunday) to 6.";
        let sql = "SELECT strftime('%w', started_at) AS day_of_week, COUNT(*) FROM sessions \
                   GROUP BY strftime('%w', started_at) ORDER BY day_of_week";
        assert_eq!(
            numbers_asked(question, sql).as_deref(),
            Some(
                "SELECT CAST(strftime('%w', started_at) AS INTEGER) AS day_of_week, COUNT(*) FROM sessions \
                 GROUP BY strftime('%w', started_at) ORDER BY day_of_week"
            )
        );
        // A month asked as YYYY-MM stays text.
        let month = "SELECT strftime('%Y-%m', d) AS month, COUNT(*) FROM t GROUP BY month";
        assert_eq!(numbers_asked("Show the month as YYYY-MM and the count as a number.", month), None);
        assert_eq!(numbers_asked("How many sessions on each weekday?", sql), None);
    }

    #[test]
    fn a_total_asked_once_is_computed_once_not_over_every_row() {
        let question =
            "What is our revenue year to date, from January 1 through today, rounded to 2 decimals?";
        let sql = "SELECT ROUND(SUM(total_amount) OVER (ORDER BY ordered_at), 2) AS revenue FROM orders \
                   WHERE status = 'completed' AND ordered_at >= '2026-01-01' LIMIT 1000";
        assert_eq!(
            one_total_asked(question, sql).as_deref(),
            Some(
                "SELECT ROUND(SUM(total_amount), 2) AS revenue FROM orders \
                 WHERE status = 'completed' AND ordered_at >= '2026-01-01' LIMIT 1000"
            )
        );
        assert_eq!(
            one_total_asked(
                "How many orders and what average?",
                "SELECT COUNT(*) OVER (), AVG(x) OVER () FROM t"
            )
            .as_deref(),
            Some("SELECT COUNT(*) AS \"COUNT(*) OVER ()\", AVG(x) AS \"AVG(x) OVER ()\" FROM t")
        );
        for (question, sql) in [
            // A running total, or several values, asked.
            ("What is the running total of revenue?", "SELECT SUM(a) OVER (ORDER BY d) FROM t"),
            ("What is the revenue per day?", "SELECT SUM(a) OVER (ORDER BY d) FROM t"),
            // A row read beside the window, a window per partition, a rank, a grouped query.
            ("What is the revenue?", "SELECT d, SUM(a) OVER (ORDER BY d) FROM t"),
            ("What is the revenue?", "SELECT SUM(a) OVER (PARTITION BY s) FROM t"),
            ("What is the revenue?", "SELECT RANK() OVER (ORDER BY a) FROM t"),
            ("What is the revenue?", "SELECT SUM(SUM(a)) OVER () FROM t GROUP BY s"),
            ("What is the revenue?", "SELECT SUM(a) FROM t"),
            // An aggregate inside the window, an ORDER BY beside it.
            ("What is the revenue?", "SELECT SUM(SUM(a)) OVER () FROM t"),
            ("What is the revenue?", "SELECT SUM(a) OVER (ORDER BY d) FROM t ORDER BY d"),
        ] {
            assert_eq!(one_total_asked(question, sql), None, "{question}: {sql}");
        }
    }
}
