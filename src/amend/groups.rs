//! Grouped queries whose shape cannot give what the question asks: the top row of each group
//! written as the top rows of all groups together, and groups counted one row per group.

use sqlparser::ast::{Expr, GroupByExpr, Ident, OrderByKind, OrderBySort, Select, SelectItem, SetExpr};

use super::{item_of, parse_expr};
use crate::check::{
    asks_for_one_number, asks_for_the_top_one, asks_for_top_per_group, has_aggregate, has_window,
    outer_limit, rows_asked,
};
use crate::history::structure::parse_query;

/// The column that ranks a row within its group; the outer SELECT leaves it out.
const RANK: &str = "rank_in_group";

/// The column that ranks a row among all rows; the outer SELECT leaves it out.
const TOP_RANK: &str = "row_rank";

/// For a question asking for the top row (or top N) in each group, a grouped query ordered by
/// its measure with that LIMIT — the top of all groups together — rewritten to rank within the
/// group the question names ("in each category": the key named like it, else the first
/// column), ties kept:
/// `SELECT … FROM (SELECT …, RANK() OVER (PARTITION BY group ORDER BY measure DESC) AS
/// rank_in_group FROM … GROUP BY …) WHERE rank_in_group <= N`. None for any other shape.
pub fn top_per_group(question: &str, sql: &str) -> Option<String> {
    if !asks_for_top_per_group(question) {
        return None;
    }
    let query = parse_query(sql)?;
    if query.with.is_some() || has_window(&query) {
        return None;
    }
    let SetExpr::Select(select) = query.body.as_ref() else { return None };
    let wanted = rows_asked(question).unwrap_or(1);
    if outer_limit(&query)? != wanted {
        return None;
    }
    let items = Items::of(select)?;
    let GroupByExpr::Expressions(keys, _) = &select.group_by else { return None };
    if keys.len() < 2 {
        return None;
    }
    let group = group_item(question, keys, &items)?;
    let OrderByKind::Expressions(order) = &query.order_by.as_ref()?.kind else { return None };
    let [order] = order.as_slice() else { return None };
    let measure = item_of(&order.expr, &items.pairs()).map_or(&order.expr, |i| &items.exprs[i]);
    if !has_aggregate(measure) {
        return None;
    }
    let direction = if matches!(order.options.sort, Some(OrderBySort::Asc)) { "ASC" } else { "DESC" };
    let window = parse_expr(&format!(
        "RANK() OVER (PARTITION BY {} ORDER BY {measure} {direction})",
        items.exprs[group]
    ))?;
    let mut inner = items.named(select);
    inner.projection.push(SelectItem::ExprWithAlias { expr: window, alias: Ident::new(RANK) });
    let rewritten = format!(
        "SELECT {} FROM ({inner}) AS ranked WHERE {RANK} <= {wanted} ORDER BY {}, {RANK}",
        items.outer(),
        quoted(&items.names[group])
    );
    parse_query(&rewritten).map(|q| q.to_string())
}

/// For a question asking for *the* row with the most or least of something, a query that
/// returns every row in that order (no LIMIT) rewritten to keep the first, ties kept:
/// `SELECT … FROM (SELECT …, RANK() OVER (ORDER BY …) AS row_rank FROM …) WHERE row_rank = 1`.
/// "Which owner owns the most dogs?" answered with every owner, most dogs first, would read as
/// a list. None for any other shape (a LIMIT already, a set operation, a window, one row).
pub fn the_top_one(question: &str, sql: &str) -> Option<String> {
    if !asks_for_the_top_one(question) {
        return None;
    }
    let query = parse_query(sql)?;
    if query.with.is_some() || query.limit_clause.is_some() || query.fetch.is_some() || has_window(&query) {
        return None;
    }
    let SetExpr::Select(select) = query.body.as_ref() else { return None };
    let items = Items::of(select)?;
    // An aggregate without GROUP BY is one row already.
    let grouped = !matches!(&select.group_by, GroupByExpr::Expressions(keys, _) if keys.is_empty());
    if !grouped && items.exprs.iter().any(has_aggregate) {
        return None;
    }
    let OrderByKind::Expressions(order) = &query.order_by.as_ref()?.kind else { return None };
    let pairs = items.pairs();
    let keys: Vec<String> = order
        .iter()
        .map(|o| {
            // The key as the inner SELECT reads it, its direction and NULLS as written.
            let mut key = o.clone();
            key.expr = item_of(&o.expr, &pairs).map_or(&o.expr, |i| &items.exprs[i]).clone();
            key.to_string()
        })
        .collect();
    let window = parse_expr(&format!("RANK() OVER (ORDER BY {})", keys.join(", ")))?;
    let mut inner = items.named(select);
    inner.projection.push(SelectItem::ExprWithAlias { expr: window, alias: Ident::new(TOP_RANK) });
    let rewritten = format!("SELECT {} FROM ({inner}) AS ranked WHERE {TOP_RANK} = 1", items.outer());
    parse_query(&rewritten).map(|q| q.to_string())
}

/// For a question asking for one number, a grouped query that returns one row per group
/// instead of counting them — `COUNT(DISTINCT k) … GROUP BY k` (every group counts 1), or an
/// aggregate over groups a HAVING keeps — rewritten to count the groups:
/// `SELECT COUNT(*) AS name FROM (SELECT keys FROM … GROUP BY keys HAVING …)`. None otherwise.
pub fn groups_counted(question: &str, sql: &str) -> Option<String> {
    let query = parse_query(sql)?;
    if query.with.is_some() || has_window(&query) {
        return None;
    }
    let SetExpr::Select(select) = query.body.as_ref() else { return None };
    let items = Items::of(select)?;
    let [expr] = items.exprs.as_slice() else { return None };
    let GroupByExpr::Expressions(keys, _) = &select.group_by else { return None };
    let counts_its_key = matches!(keys.as_slice(), [key] if distinct_count_of(expr) == Some(key));
    let counts_groups = select.having.is_some() && has_aggregate(expr) && asks_for_one_number(question);
    if !(counts_its_key || counts_groups) {
        return None;
    }
    let mut inner = select.clone();
    inner.projection = keys
        .iter()
        .enumerate()
        .map(|(i, key)| SelectItem::ExprWithAlias {
            expr: key.clone(),
            alias: Ident::new(format!("group_{}", i + 1)),
        })
        .collect();
    // COUNT(DISTINCT k) leaves out the NULL group; so does COUNT(group_1).
    let counted = if counts_its_key { "group_1" } else { "*" };
    let rewritten =
        format!("SELECT COUNT({counted}) AS {} FROM ({inner}) AS grouped", quoted(&items.names[0]));
    parse_query(&rewritten).map(|q| q.to_string())
}

/// The `k` of `COUNT(DISTINCT k)`.
pub(super) fn distinct_count_of(expr: &Expr) -> Option<&Expr> {
    let Expr::Function(f) = expr else { return None };
    if !f.name.to_string().eq_ignore_ascii_case("count") {
        return None;
    }
    let sqlparser::ast::FunctionArguments::List(list) = &f.args else { return None };
    if !matches!(list.duplicate_treatment, Some(sqlparser::ast::DuplicateTreatment::Distinct)) {
        return None;
    }
    match list.args.as_slice() {
        [sqlparser::ast::FunctionArg::Unnamed(sqlparser::ast::FunctionArgExpr::Expr(e))] => Some(e),
        _ => None,
    }
}

/// The item a question's "each …" names among the group keys: a key whose name shares a word
/// with the two words after "each", else the first item when it is a key.
fn group_item(question: &str, keys: &[Expr], items: &Items) -> Option<usize> {
    let words: Vec<String> = question
        .to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| w.trim_end_matches('s').to_string())
        .collect();
    let each = words.iter().position(|w| w == "each")?;
    let named: Vec<&str> = words.iter().skip(each + 1).take(2).map(String::as_str).collect();
    let pairs = items.pairs();
    let grouped: Vec<usize> = keys.iter().filter_map(|key| item_of(key, &pairs)).collect();
    let says = |i: &usize| {
        items.names[*i].to_lowercase().split('_').any(|part| named.contains(&part.trim_end_matches('s')))
    };
    grouped.iter().copied().find(says).or_else(|| grouped.contains(&0).then_some(0))
}

/// The outermost select list: each item's expression and the name its column gets.
struct Items {
    exprs: Vec<Expr>,
    aliases: Vec<Option<Ident>>,
    names: Vec<String>,
}

impl Items {
    /// None when an item is a wildcard or two columns would share a name.
    fn of(select: &Select) -> Option<Items> {
        let mut items = Items { exprs: Vec::new(), aliases: Vec::new(), names: Vec::new() };
        for item in &select.projection {
            let (expr, alias) = match item {
                SelectItem::UnnamedExpr(expr) => (expr, None),
                SelectItem::ExprWithAlias { expr, alias } => (expr, Some(alias.clone())),
                _ => return None,
            };
            let name = match (&alias, expr) {
                (Some(alias), _) => alias.value.clone(),
                (None, Expr::Identifier(ident)) => ident.value.clone(),
                (None, Expr::CompoundIdentifier(parts)) => parts.last()?.value.clone(),
                (None, other) => other.to_string(),
            };
            if items.names.iter().any(|n| n.eq_ignore_ascii_case(&name)) {
                return None;
            }
            items.exprs.push(expr.clone());
            items.aliases.push(alias);
            items.names.push(name);
        }
        Some(items)
    }

    fn pairs(&self) -> Vec<(&Expr, Option<&str>)> {
        self.exprs.iter().zip(&self.aliases).map(|(e, a)| (e, a.as_ref().map(|a| a.value.as_str()))).collect()
    }

    /// `select` with each computed item named (as SQLite would name it), so an outer query can
    /// read it.
    fn named(&self, select: &Select) -> Select {
        let mut named = select.clone();
        named.projection = (0..self.exprs.len())
            .map(|i| match (&self.exprs[i], &self.aliases[i]) {
                (expr @ (Expr::Identifier(_) | Expr::CompoundIdentifier(_)), None) => {
                    SelectItem::UnnamedExpr(expr.clone())
                }
                (expr, Some(alias)) => SelectItem::ExprWithAlias { expr: expr.clone(), alias: alias.clone() },
                (expr, None) => SelectItem::ExprWithAlias {
                    expr: expr.clone(),
                    alias: Ident::with_quote('"', &self.names[i]),
                },
            })
            .collect();
        named
    }

    /// The outer select list: every column by its name.
    fn outer(&self) -> String {
        self.names.iter().map(|n| quoted(n)).collect::<Vec<_>>().join(", ")
    }
}

fn quoted(name: &str) -> String {
    Ident::with_quote('"', name).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_top_row_of_all_groups_becomes_the_top_row_of_each() {
        let question = "In each advertiser industry, which advertiser had the highest total ad spend?";
        let sql = "SELECT a.industry, a.advertiser_name, ROUND(SUM(s.spend), 2) AS spend FROM stats s \
                   JOIN advertisers a ON a.id = s.advertiser_id GROUP BY a.industry, a.advertiser_name \
                   ORDER BY spend DESC LIMIT 1";
        let rewritten = top_per_group(question, sql).expect("rewritten");
        assert_eq!(
            rewritten,
            "SELECT \"industry\", \"advertiser_name\", \"spend\" FROM (SELECT a.industry, a.advertiser_name, \
             ROUND(SUM(s.spend), 2) AS spend, RANK() OVER (PARTITION BY a.industry ORDER BY ROUND(SUM(s.spend), 2) DESC) \
             AS rank_in_group FROM stats s JOIN advertisers a ON a.id = s.advertiser_id GROUP BY a.industry, \
             a.advertiser_name) AS ranked WHERE rank_in_group <= 1 ORDER BY \"industry\", rank_in_group"
        );
    }

    #[test]
    fn the_group_is_the_key_the_question_names_and_top_n_keeps_n() {
        let question = "For each category, which 3 products sold the most units?";
        let sql = "SELECT product_name, category, SUM(units) FROM sales GROUP BY product_name, category \
                   ORDER BY SUM(units) DESC LIMIT 3";
        let rewritten = top_per_group(question, sql).expect("rewritten");
        assert!(rewritten.contains("PARTITION BY category ORDER BY SUM(units) DESC"), "{rewritten}");
        assert!(rewritten.contains("\"SUM(units)\""), "{rewritten}");
        assert!(rewritten.contains("rank_in_group <= 3"), "{rewritten}");
    }

    #[test]
    fn other_shapes_and_questions_are_left_alone() {
        let grouped = "SELECT category, product_name, SUM(units) AS units FROM sales \
                       GROUP BY category, product_name ORDER BY units DESC LIMIT 1";
        // Not a top-per-group question: the top of all is what it asks.
        assert_eq!(top_per_group("Which product sold the most units?", grouped), None);
        let question = "In each category, which product sold the most units?";
        // A LIMIT other than the rows asked, one key, a window already, no aggregate to rank by.
        assert_eq!(top_per_group(question, &grouped.replace("LIMIT 1", "LIMIT 10")), None);
        assert_eq!(
            top_per_group(
                question,
                "SELECT category, SUM(units) FROM sales GROUP BY category ORDER BY 2 DESC LIMIT 1"
            ),
            None
        );
        assert_eq!(
            top_per_group(question, "SELECT category, product_name FROM sales GROUP BY category, product_name ORDER BY product_name LIMIT 1"),
            None
        );
    }

    #[test]
    fn a_count_of_its_own_group_key_counts_the_groups() {
        let sql = "SELECT COUNT(DISTINCT e.user_id) AS users FROM events e WHERE e.day >= '2026-10-01' \
                   GROUP BY e.user_id ORDER BY users DESC LIMIT 25";
        // Whatever the question: each group would count 1.
        let rewritten = groups_counted("Which users were active?", sql).expect("rewritten");
        assert_eq!(
            rewritten,
            "SELECT COUNT(group_1) AS \"users\" FROM (SELECT e.user_id AS group_1 FROM events e \
             WHERE e.day >= '2026-10-01' GROUP BY e.user_id) AS grouped"
        );
    }

    #[test]
    fn groups_a_having_keeps_are_counted_for_a_question_asking_one_number() {
        let sql = "SELECT COUNT(*) FROM orders GROUP BY user_id HAVING COUNT(*) > 10";
        let question = "How many users placed more than 10 orders?";
        let rewritten = groups_counted(question, sql).expect("rewritten");
        assert_eq!(
            rewritten,
            "SELECT COUNT(*) AS \"COUNT(*)\" FROM (SELECT user_id AS group_1 FROM orders GROUP BY user_id \
             HAVING COUNT(*) > 10) AS grouped"
        );
        // A question asking for each group's number keeps its rows.
        assert_eq!(groups_counted("How many orders did each user with more than 10 place?", sql), None);
        // A count per group of another column is a breakdown.
        assert_eq!(
            groups_counted("How many users?", "SELECT COUNT(DISTINCT user_id) FROM orders GROUP BY country"),
            None
        );
    }
    #[test]
    fn the_top_row_asked_for_keeps_the_first_rank_and_its_ties() {
        let question = "Which owner owns the most dogs? List the owner id and first name.";
        let sql = "SELECT o.owner_id, o.first_name, COUNT(*) AS dogs FROM owners o JOIN dogs d \
                   ON d.owner_id = o.owner_id GROUP BY o.owner_id, o.first_name ORDER BY dogs DESC";
        assert_eq!(
            the_top_one(question, sql).as_deref(),
            Some(
                "SELECT \"owner_id\", \"first_name\", \"dogs\" FROM (SELECT o.owner_id, o.first_name, \
                 COUNT(*) AS dogs, RANK() OVER (ORDER BY COUNT(*) DESC) AS row_rank FROM owners o JOIN dogs d \
                 ON d.owner_id = o.owner_id GROUP BY o.owner_id, o.first_name) AS ranked WHERE row_rank = 1"
            )
        );
        // An ordinal key, ascending, on a plain list.
        let rewritten = the_top_one(
            "What is the name of the youngest singer?",
            "SELECT name, age FROM singer ORDER BY 2",
        )
        .expect("rewritten");
        assert!(rewritten.contains("RANK() OVER (ORDER BY age)"), "{rewritten}");
    }

    #[test]
    fn lists_numbers_orders_and_limits_are_not_the_top_one() {
        let sql = "SELECT hometown, COUNT(*) FROM teacher GROUP BY hometown ORDER BY COUNT(*) DESC";
        assert!(the_top_one("What is the most common hometown of teachers?", sql).is_some());
        for question in [
            "What are the 3 most common hometowns of teachers?",
            "What are the most common hometowns, from most to least common?",
            "List every hometown, sorted by the most teachers.",
            "In each district, which hometown is the most common?",
            "How many teachers come from each hometown?",
        ] {
            assert_eq!(the_top_one(question, sql), None, "{question}");
        }
        let question = "What is the most common hometown of teachers?";
        assert_eq!(the_top_one(question, &format!("{sql} LIMIT 1")), None);
        assert_eq!(the_top_one(question, "SELECT MAX(age) FROM teacher ORDER BY 1"), None);
        assert_eq!(
            the_top_one(question, "SELECT hometown FROM teacher UNION SELECT hometown FROM staff ORDER BY 1"),
            None
        );
    }
}
