//! The one-line reading of an answer: what its SQL computes, read from the syntax tree (never
//! from the model), so an analyst can check an answer against the question at a glance —
//! "Number of orders per month, from orders, where status = 'refunded' and ordered_at
//! 2026-01-01 to 2026-12-31".
//!
//! It reads the outermost SELECT: its measures (aggregates, by alias when computed), its groups,
//! its tables, its filters (a date range as its first and last day) and a top N. A query it
//! cannot read plainly (a set operation, no SELECT) has no reading.

use sqlparser::ast::{BinaryOperator, Expr, GroupByExpr, SelectItem, SetExpr, Statement, TableFactor};
use sqlparser::dialect::SQLiteDialect;
use sqlparser::parser::Parser;

/// Aggregate functions and how a reading names their result.
const AGGREGATES: &[(&str, &str)] = &[
    ("count", "number of"),
    ("sum", "total"),
    ("total", "total"),
    ("avg", "average"),
    ("min", "lowest"),
    ("max", "highest"),
    ("group_concat", "list of"),
];

/// Longest filter shown as written; a longer one is cut with "…".
const MAX_FILTER_CHARS: usize = 80;

/// What `sql` computes, in one line; None when it is not a plain SELECT.
pub fn read(sql: &str) -> Option<String> {
    let statements = Parser::parse_sql(&SQLiteDialect {}, sql).ok()?;
    let [Statement::Query(query)] = statements.as_slice() else { return None };
    let SetExpr::Select(select) = query.body.as_ref() else { return None };

    let mut tables = Vec::new();
    for from in &select.from {
        for factor in std::iter::once(&from.relation).chain(from.joins.iter().map(|j| &j.relation)) {
            if let TableFactor::Table { name, .. } = factor {
                tables.push(unquote(&name.to_string()));
            }
        }
    }
    let groups: Vec<String> = match &select.group_by {
        GroupByExpr::Expressions(exprs, _) => exprs.iter().map(|e| e.to_string()).collect(),
        GroupByExpr::All(_) => Vec::new(),
    };

    let mut measures = Vec::new();
    let mut dimensions = Vec::new();
    for item in &select.projection {
        let (expr, alias) = match item {
            SelectItem::UnnamedExpr(expr) => (expr, None),
            SelectItem::ExprWithAlias { expr, alias } => (expr, Some(alias.value.clone())),
            _ => continue,
        };
        let text = expr.to_string();
        if has_aggregate(&text) {
            measures.push(measure(expr, alias.as_deref(), &tables));
        } else {
            dimensions.push(words(alias.as_deref().unwrap_or(&text)));
        }
    }

    let mut line = if measures.is_empty() {
        format!("Rows with {}", list(&dimensions))
    } else if groups.is_empty() {
        crate::text::capitalise(&list(&measures))
    } else {
        format!("{} per {}", crate::text::capitalise(&list(&measures)), list(&dimensions))
    };
    if !tables.is_empty() {
        line.push_str(&format!(", from {}", list(&tables)));
    }
    let filters = select.selection.as_ref().map(filters).unwrap_or_default();
    if !filters.is_empty() {
        line.push_str(&format!(", where {}", filters.join(" and ")));
    }
    let limit = query.limit_clause.as_ref().and_then(|l| match l {
        sqlparser::ast::LimitClause::LimitOffset { limit: Some(limit), .. } => {
            limit.to_string().parse::<u64>().ok()
        }
        _ => None,
    });
    let order = query.order_by.as_ref().map(|o| o.to_string()).unwrap_or_default();
    let order = order.trim_start_matches("ORDER BY ").trim();
    match limit {
        // A cap the policy added is not part of what the question asked.
        Some(n) if n <= 100 && !order.is_empty() => {
            let order = order.replace(" DESC", " (highest first)").replace(" ASC", " (lowest first)");
            line.push_str(&format!(", the first {n} by {}", words(&order)))
        }
        Some(n) if n <= 100 => line.push_str(&format!(", {n} rows")),
        _ => {}
    }
    Some(line)
}

/// How a measure reads: a plain aggregate by its function and argument; anything computed
/// from aggregates by its alias, else as written.
fn measure(expr: &Expr, alias: Option<&str>, tables: &[String]) -> String {
    if let Expr::Function(function) = expr {
        let name = function.name.to_string().to_lowercase();
        if let Some((_, verb)) = AGGREGATES.iter().find(|(f, _)| *f == name) {
            let args = function.args.to_string();
            let args = args.trim().trim_start_matches('(').trim_end_matches(')').trim();
            let (distinct, argument) =
                match args.strip_prefix("DISTINCT ").or_else(|| args.strip_prefix("distinct ")) {
                    Some(rest) => (true, rest),
                    None => (false, args),
                };
            let what = if argument == "*" || argument.is_empty() {
                tables.first().cloned().unwrap_or_else(|| "rows".into())
            } else {
                words(argument)
            };
            return match (name.as_str(), distinct) {
                ("count", true) => format!("number of distinct {what}"),
                // SUM(total_amount) is the total amount, not the "total total amount".
                _ if what.starts_with(verb) => what,
                _ => format!("{verb} {what}"),
            };
        }
    }
    match alias {
        Some(alias) => words(alias),
        None => words(&expr.to_string()),
    }
}

/// The WHERE clause as its conjuncts; a column's `>= 'day' AND < 'day after'` pair (or a
/// BETWEEN of days) as "column first day to last day".
fn filters(selection: &Expr) -> Vec<String> {
    let mut conjuncts = Vec::new();
    split_and(selection, &mut conjuncts);
    let mut out: Vec<String> = Vec::new();
    let mut used = vec![false; conjuncts.len()];
    for (i, conjunct) in conjuncts.iter().enumerate() {
        if used[i] {
            continue;
        }
        if let Some((column, start)) = bound(conjunct, &[BinaryOperator::GtEq]) {
            let end = conjuncts.iter().enumerate().find_map(|(j, other)| {
                let (c, end) = bound(other, &[BinaryOperator::Lt])?;
                (!used[j] && c == column).then_some((j, end))
            });
            if let Some((j, end)) = end {
                if let Some(last) =
                    crate::calendar::day_number(&end).map(|d| crate::calendar::iso_date(d - 1))
                {
                    used[i] = true;
                    used[j] = true;
                    out.push(format!("{} {start} to {last}", words(&column)));
                    continue;
                }
            }
        }
        if let Expr::Between { expr, negated: false, low, high } = conjunct {
            if let (Some(low), Some(high)) = (day(low), day(high)) {
                used[i] = true;
                out.push(format!("{} {low} to {high}", words(&expr.to_string())));
                continue;
            }
        }
        used[i] = true;
        let text = conjunct.to_string();
        out.push(if text.chars().count() > MAX_FILTER_CHARS {
            format!("{}…", text.chars().take(MAX_FILTER_CHARS).collect::<String>())
        } else {
            text
        });
    }
    out
}

fn split_and<'e>(expr: &'e Expr, out: &mut Vec<&'e Expr>) {
    match expr {
        Expr::BinaryOp { left, op: BinaryOperator::And, right } => {
            split_and(left, out);
            split_and(right, out);
        }
        Expr::Nested(inner) if matches!(inner.as_ref(), Expr::BinaryOp { op: BinaryOperator::And, .. }) => {
            split_and(inner, out)
        }
        other => out.push(other),
    }
}

/// `column op 'YYYY-MM-DD…'` with `op` one of `ops`: the column and the day.
fn bound(expr: &Expr, ops: &[BinaryOperator]) -> Option<(String, String)> {
    let Expr::BinaryOp { left, op, right } = expr else { return None };
    if !ops.contains(op) {
        return None;
    }
    Some((left.to_string(), day(right)?))
}

/// The ISO day a literal names (`'2026-10-01'`, or its first ten characters as a timestamp).
fn day(expr: &Expr) -> Option<String> {
    let text = expr.to_string();
    let text = text.trim_matches('\'');
    let day = text.get(..10)?;
    crate::calendar::day_number(day).map(|_| day.to_string())
}

fn has_aggregate(text: &str) -> bool {
    let lower = text.to_lowercase();
    AGGREGATES.iter().any(|(f, _)| lower.contains(&format!("{f}(")))
}

/// An identifier or expression as words: `orders.total_amount` → "total amount".
fn words(text: &str) -> String {
    let text = unquote(text);
    let simple = text.chars().all(|c| c.is_alphanumeric() || c == '_' || c == '.');
    if simple {
        text.rsplit('.').next().unwrap_or(&text).replace('_', " ")
    } else {
        text
    }
}

fn unquote(text: &str) -> String {
    text.replace(['"', '`', '[', ']'], "")
}

fn list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::read;

    #[test]
    fn a_grouped_count_with_a_status_and_a_period() {
        let sql = "SELECT strftime('%Y-%m', ordered_at) AS month, COUNT(*) AS orders FROM orders \
                   WHERE ordered_at >= '2026-01-01' AND ordered_at < '2027-01-01' AND status = 'refunded' \
                   GROUP BY month LIMIT 1000";
        assert_eq!(
            read(sql).as_deref(),
            Some("Number of orders per month, from orders, where ordered at 2026-01-01 to 2026-12-31 and status = 'refunded'")
        );
    }

    #[test]
    fn sums_distinct_counts_joins_and_a_top_n() {
        let sql = "SELECT c.country_name, SUM(o.total_amount) AS revenue, COUNT(DISTINCT o.user_id) \
                   FROM orders o JOIN countries c ON c.country_code = o.country_code \
                   WHERE o.ordered_at BETWEEN '2026-10-01' AND '2026-10-31' \
                   GROUP BY c.country_name ORDER BY revenue DESC LIMIT 5";
        assert_eq!(
            read(sql).as_deref(),
            Some(
                "Total amount and number of distinct user id per country name, from orders and countries, \
                 where ordered at 2026-10-01 to 2026-10-31, the first 5 by revenue (highest first)"
            )
        );
    }

    #[test]
    fn a_computed_measure_reads_by_its_alias_and_a_plain_list_by_its_columns() {
        let ratio = "SELECT ROUND(100.0 * SUM(CASE WHEN status = 'refunded' THEN 1 ELSE 0 END) / COUNT(*), 2) AS refund_rate_pct FROM orders";
        assert_eq!(read(ratio).as_deref(), Some("Refund rate pct, from orders"));
        assert_eq!(
            read("SELECT name, price FROM products WHERE price > 100").as_deref(),
            Some("Rows with name and price, from products, where price > 100")
        );
    }

    #[test]
    fn what_it_cannot_read_plainly_has_no_reading() {
        assert_eq!(read("SELECT a FROM t UNION SELECT a FROM u"), None);
        assert_eq!(read("not sql at all"), None);
        assert_eq!(read("SELECT 1; SELECT 2"), None);
    }
}
