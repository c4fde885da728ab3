//! Amendments to the model's SQL that need no model. The order of an answer's rows when the
//! SQL leaves it open: a breakdown by period comes in time order, a breakdown by anything else
//! largest measure first, the way an analyst reads a breakdown (only the outermost SELECT of a
//! grouped query without ORDER BY or LIMIT changes; which rows come back never does). A year
//! taken from a column of year numbers is the column. A name a select list gives, read in that
//! same list, is the expression it names. A query whose shape cannot give what the question
//! asks is rewritten to the shape it asks for (`groups`, `filters`, `values`).

use std::collections::BTreeSet;
use std::ops::ControlFlow;

use sqlparser::ast::{
    Expr, GroupByExpr, OrderBy, OrderByExpr, OrderByKind, OrderByOptions, OrderBySort, Query, Select,
    SelectItem, SetExpr, Value, Visit, Visitor, VisitorMut,
};

use crate::catalog::Catalog;
use crate::check::{has_aggregate, has_window};
use crate::history::structure::{parse_query, plain_arguments, selects_of, Scope};

mod filters;
mod groups;
mod joins;
mod literals;
mod values;

pub use filters::{
    absence_of_the_counted, absence_over_all_time, both_values, copied_exclusions, invented_periods,
    last_day_kept, ratio_filtered_twice, speaks_of_time, string_values, unread_joins,
};
pub use groups::{groups_counted, the_top_one, top_per_group};
pub use joins::{
    absence_by_exclusion, declared_join_keys, invented_lookups, joins_that_only_filter,
    references_listed_once,
};
pub use literals::{periods_as_written, values_as_held};
pub use values::{
    numbers_asked, one_total_asked, rate_over_all_rows, ratio_parts_dropped, rounding_asked,
    share_of_the_whole,
};

/// What the analyst said beyond the question, as the rewrites read it (`prompt::said`). No
/// `Default`: "nothing said about time" drops date filters, so it is only ever read, not assumed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Said {
    /// Values the examples filter on that neither the question, the conversation it follows nor
    /// a glossary definition it names says, lower-cased.
    pub copied: Vec<String>,
    /// Whether the question, the conversation or a definition speaks of time at all
    /// (`speaks_of_time`): a number, a period, a date, "latest", "still" …
    pub speaks_of_time: bool,
}

/// `sql` rewritten where its shape cannot give what the question asks (`[answer] rewrites`):
/// a join on columns its tables lack remade on the key the catalog declares, a join to an
/// invented lookup table read from the table beside it, a literal written as the column holds
/// it, a day compared with a month or year cut to it, an absence asked of a related table
/// answered by excluding what has it (not by joining what has something else), exclusions of
/// values copied from examples dropped (`Said::copied`), unread joins dropped, one column equal to
/// two values intersected, joins that only filter the one table shown made into an EXISTS (each
/// of its rows once, not once per partner), references to other tables listed alone listed
/// once, groups counted, the top row of each group ranked
/// within it, the top row asked for kept (ties too), a ratio's condition taken out of its
/// WHERE, a group's value divided by itself divided by the whole, a rate asked alone shown
/// without its parts, one rate asked computed over all rows (not over the first of groups it
/// hides), the last day of a range the question
/// names kept, a date filter on a question that speaks of no time at all dropped, a period
/// copied into an absence over all time dropped, an absence asked of what
/// is counted excluded by what is counted (not by the row's own key), one total asked computed
/// once (not as a window over every row), values asked rounded
/// rounded, a part of a date asked as a number cast to one; None when none applies.
/// `catalog` is the catalog as the asking role sees it (`Policy::visible_catalog`): a column's
/// values go into the SQL only where the role may see them. The caller runs no rewrite around
/// a policy refusal, so a table the role may not read never passes for an invented one.
pub fn rewrites(question: &str, sql: &str, catalog: &Catalog, said: &Said) -> Option<String> {
    let mut current: Option<String> = None;
    let mut apply = |step: &dyn Fn(&str) -> Option<String>| {
        if let Some(next) = step(current.as_deref().unwrap_or(sql)) {
            current = Some(next);
        }
    };
    apply(&|sql| declared_join_keys(sql, catalog));
    apply(&|sql| invented_lookups(sql, catalog));
    apply(&|sql| values_as_held(sql, catalog));
    apply(&periods_as_written);
    apply(&|sql| absence_by_exclusion(question, sql, catalog));
    apply(&|sql| copied_exclusions(sql, &said.copied));
    apply(&|sql| invented_periods(sql, said.speaks_of_time));
    apply(&|sql| unread_joins(sql, catalog));
    apply(&both_values);
    apply(&|sql| joins_that_only_filter(sql, catalog));
    apply(&|sql| references_listed_once(sql, catalog));
    apply(&|sql| groups_counted(question, sql));
    apply(&|sql| top_per_group(question, sql));
    apply(&|sql| the_top_one(question, sql));
    apply(&ratio_filtered_twice);
    apply(&|sql| share_of_the_whole(question, sql));
    apply(&|sql| ratio_parts_dropped(question, sql));
    apply(&|sql| rate_over_all_rows(question, sql));
    apply(&|sql| last_day_kept(question, sql));
    apply(&|sql| absence_over_all_time(question, sql));
    apply(&|sql| absence_of_the_counted(question, sql, catalog));
    apply(&|sql| one_total_asked(question, sql));
    apply(&|sql| rounding_asked(question, sql));
    apply(&|sql| numbers_asked(question, sql));
    current
}

/// One expression in SQLite's syntax.
fn parse_expr(text: &str) -> Option<Expr> {
    sqlparser::parser::Parser::new(&sqlparser::dialect::SQLiteDialect {})
        .try_with_sql(text)
        .ok()?
        .parse_expr()
        .ok()
}

/// Words of a question that ask for another order than largest first.
const OTHER_ORDER: &[&str] =
    &["alphabetical", "alphabetically", "ascending", "lowest", "least", "fewest", "smallest", "bottom"];

/// Date functions, SQLite's and PostgreSQL's: a key computed by one is a period.
const DATE_FUNCTIONS: &[&str] =
    &["strftime", "date", "datetime", "julianday", "time", "to_char", "date_trunc", "date_part"];

/// Words of a key's name that make it a period.
const PERIOD_WORDS: &[&str] = &["year", "month", "quarter", "week", "day", "date", "hour", "period"];

/// `sql` with an ORDER BY for its breakdown, or None when it has an order already, is not a
/// breakdown (a grouped SELECT with an aggregate beside its keys), or the question asks for
/// another order.
pub fn sort_groups(question: &str, sql: &str, catalog: &Catalog) -> Option<String> {
    let lower = question.to_lowercase();
    if lower.split(|c: char| !c.is_alphanumeric()).any(|w| OTHER_ORDER.contains(&w)) {
        return None;
    }
    let mut query: Query = parse_query(sql)?;
    if query.order_by.is_some() || query.limit_clause.is_some() || query.fetch.is_some() {
        return None;
    }
    let SetExpr::Select(select) = query.body.as_ref() else { return None };
    let order = breakdown_order(select, catalog)?;
    query.order_by = Some(OrderBy { kind: OrderByKind::Expressions(order), interpolate: None });
    Some(query.to_string())
}

/// The ORDER BY of a breakdown: its period keys ascending, or its first measure descending.
fn breakdown_order(select: &Select, catalog: &Catalog) -> Option<Vec<OrderByExpr>> {
    let GroupByExpr::Expressions(keys, _) = &select.group_by else { return None };
    if keys.is_empty() {
        return None;
    }
    let items: Vec<(&Expr, Option<&str>)> = select
        .projection
        .iter()
        .map(|item| match item {
            SelectItem::UnnamedExpr(e) => Some((e, None)),
            SelectItem::ExprWithAlias { expr, alias } => Some((expr, Some(alias.value.as_str()))),
            _ => None,
        })
        .collect::<Option<_>>()?;
    // Each key as the position of the item that selects it.
    let key_items: Vec<usize> = keys.iter().map(|key| item_of(key, &items)).collect::<Option<_>>()?;
    let scope = Scope::of(select, catalog);
    let periods = key_items.iter().any(|&i| is_period(items[i].0, items[i].1, &scope, catalog));
    let by = |i: usize, sort: Option<OrderBySort>| OrderByExpr {
        expr: reference(i, &items),
        options: OrderByOptions { sort, nulls_first: None },
        with_fill: None,
    };
    if periods {
        return Some(key_items.iter().map(|&i| by(i, None)).collect());
    }
    let measure = (0..items.len()).find(|&i| !key_items.contains(&i) && has_aggregate(items[i].0))?;
    // Ties keep the order SQLite gives them (its GROUP BY reads the keys in order): a
    // deterministic order without naming the keys again.
    Some(vec![by(measure, Some(OrderBySort::Desc))])
}

/// The position of the item a GROUP BY key selects: the same expression, its alias, or its
/// ordinal.
fn item_of(key: &Expr, items: &[(&Expr, Option<&str>)]) -> Option<usize> {
    if let Some(i) = items.iter().position(|(e, _)| *e == key) {
        return Some(i);
    }
    match key {
        Expr::Identifier(ident) => {
            items.iter().position(|(_, alias)| alias.is_some_and(|a| a.eq_ignore_ascii_case(&ident.value)))
        }
        Expr::Value(v) => match &v.value {
            Value::Number(n, _) => {
                n.parse::<usize>().ok().filter(|n| (1..=items.len()).contains(n)).map(|n| n - 1)
            }
            _ => None,
        },
        _ => None,
    }
}

/// How ORDER BY names item `i`: its alias, the column itself, or its ordinal.
fn reference(i: usize, items: &[(&Expr, Option<&str>)]) -> Expr {
    match items[i] {
        (_, Some(alias)) => Expr::Identifier(sqlparser::ast::Ident::new(alias)),
        (column @ (Expr::Identifier(_) | Expr::CompoundIdentifier(_)), None) => column.clone(),
        _ => Expr::value(Value::Number((i + 1).to_string(), false)),
    }
}

/// True when a key is a period: computed by a date function, a date column of the catalog, or
/// named like one (`year`, `order_month`, `created_at`).
fn is_period(expr: &Expr, alias: Option<&str>, scope: &Scope, catalog: &Catalog) -> bool {
    match expr {
        Expr::Function(f) if DATE_FUNCTIONS.contains(&f.name.to_string().to_lowercase().as_str()) => {
            return true
        }
        Expr::Extract { .. } => return true,
        _ => {}
    }
    let dated = scope.column(expr, catalog).is_some_and(|reference| {
        let (table, name) = reference.split_once('.').unwrap_or(("", &reference));
        catalog.table(table).and_then(|t| t.column(name)).is_some_and(|c| c.date_format.is_some())
    });
    let name = match (alias, expr) {
        (Some(alias), _) => alias.to_lowercase(),
        (None, Expr::Identifier(ident)) => ident.value.to_lowercase(),
        (None, Expr::CompoundIdentifier(parts)) => {
            parts.last().map(|p| p.value.to_lowercase()).unwrap_or_default()
        }
        _ => String::new(),
    };
    dated || name.ends_with("_at") || name.split('_').any(|part| PERIOD_WORDS.contains(&part))
}

/// `sql` with each `strftime('%Y', c)` over a column `c` of year numbers written as `c`, or
/// None when it has none.
pub fn year_numbers(sql: &str, catalog: &Catalog) -> Option<String> {
    let mut query = parse_query(sql)?;
    let mut found = YearColumns { catalog, columns: BTreeSet::new() };
    let _ = query.visit(&mut found);
    if found.columns.is_empty() {
        return None;
    }
    let _ = sqlparser::ast::visit_expressions_mut(&mut query, |e| {
        if let Some(column) = year_of(e).filter(|c| found.columns.contains(&c.to_string())) {
            *e = column.clone();
        }
        ControlFlow::<()>::Continue(())
    });
    Some(query.to_string())
}

/// The column `strftime('%Y', column)` reads, as written.
fn year_of(expr: &Expr) -> Option<&Expr> {
    let Expr::Function(f) = expr else { return None };
    if !f.name.to_string().eq_ignore_ascii_case("strftime") {
        return None;
    }
    let [format, column] = plain_arguments(f)[..] else { return None };
    let year_format = matches!(format, Expr::Value(v) if v.value == Value::SingleQuotedString("%Y".into()));
    (year_format && matches!(column, Expr::Identifier(_) | Expr::CompoundIdentifier(_))).then_some(column)
}

/// The columns, as written, that `strftime('%Y', …)` reads in some SELECT where they resolve to
/// a catalog column of year numbers.
struct YearColumns<'c> {
    catalog: &'c Catalog,
    columns: BTreeSet<String>,
}

impl Visitor for YearColumns<'_> {
    type Break = ();

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
        for select in selects_of(&query.body) {
            let scope = Scope::of(select, self.catalog);
            let _ = sqlparser::ast::visit_expressions(select, |e| {
                let Some(column) = year_of(e) else { return ControlFlow::<()>::Continue(()) };
                let years = scope.column(column, self.catalog).is_some_and(|reference| {
                    let (table, name) = reference.split_once('.').unwrap_or(("", &reference));
                    self.catalog
                        .table(table)
                        .and_then(|t| t.column(name))
                        .is_some_and(|c| c.date_format.as_deref() == Some(crate::catalog::YEAR_NUMBER))
                });
                if years {
                    self.columns.insert(column.to_string());
                }
                ControlFlow::Continue(())
            });
        }
        ControlFlow::Continue(())
    }
}

/// `sql` with each of `names` that a select list gives and reads inside that same list (the
/// validator's `AliasInItsList`: SQLite does not know the name there) replaced there by the
/// expression it names, or None when nothing is replaced. A name whose expression holds a
/// window function stays (windows do not nest), and so does an item's own name.
pub fn aliases_written_out(sql: &str, names: &[String]) -> Option<String> {
    if names.is_empty() {
        return None;
    }
    edit_every_select(sql, |select| write_out_aliases(select, names))
}

/// `sql` with `edit` applied to every SELECT of it (CTEs and subqueries included), or None when
/// no edit changed anything (`edit` says whether it did).
fn edit_every_select(sql: &str, edit: impl FnMut(&mut Select) -> bool) -> Option<String> {
    let mut query = parse_query(sql)?;
    let mut editor = EverySelect { edit, changed: false };
    let _ = sqlparser::ast::VisitMut::visit(&mut query, &mut editor);
    editor.changed.then(|| query.to_string())
}

struct EverySelect<F> {
    edit: F,
    changed: bool,
}

impl<F: FnMut(&mut Select) -> bool> VisitorMut for EverySelect<F> {
    type Break = ();

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        for select in selects_of_mut(&mut query.body) {
            self.changed |= (self.edit)(select);
        }
        ControlFlow::Continue(())
    }
}

fn selects_of_mut(body: &mut SetExpr) -> Vec<&mut Select> {
    match body {
        SetExpr::Select(select) => vec![select.as_mut()],
        SetExpr::SetOperation { left, right, .. } => {
            let mut all = selects_of_mut(left);
            all.extend(selects_of_mut(right));
            all
        }
        _ => Vec::new(),
    }
}

/// One SELECT's list with its names (those of `names`) written out; true when one was. A
/// name's expression may read another name: a few passes write those out too.
fn write_out_aliases(select: &mut Select, names: &[String]) -> bool {
    let named: Vec<(String, Expr)> = select
        .projection
        .iter()
        .filter_map(|item| match item {
            SelectItem::ExprWithAlias { expr, alias }
                if !has_window(expr) && names.iter().any(|n| n.eq_ignore_ascii_case(&alias.value)) =>
            {
                Some((alias.value.clone(), expr.clone()))
            }
            _ => None,
        })
        .collect();
    let mut changed = false;
    for _pass in 0..3 {
        let mut replaced = false;
        for item in select.projection.iter_mut() {
            let (expr, own) = match item {
                SelectItem::ExprWithAlias { expr, alias } => (expr, Some(alias.value.clone())),
                SelectItem::UnnamedExpr(expr) => (expr, None),
                _ => continue,
            };
            let mut writer = NameWriter { named: &named, own, subqueries: 0, replaced: false };
            let _ = sqlparser::ast::VisitMut::visit(expr, &mut writer);
            replaced |= writer.replaced;
        }
        changed |= replaced;
        if !replaced {
            break;
        }
    }
    changed
}

/// Replaces the list's names in one item, outside its subqueries (their names are their own).
struct NameWriter<'n> {
    named: &'n [(String, Expr)],
    /// The item's own name, never replaced by its own expression.
    own: Option<String>,
    subqueries: usize,
    replaced: bool,
}

impl VisitorMut for NameWriter<'_> {
    type Break = ();

    fn pre_visit_query(&mut self, _query: &mut Query) -> ControlFlow<()> {
        self.subqueries += 1;
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, _query: &mut Query) -> ControlFlow<()> {
        self.subqueries -= 1;
        ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        let Expr::Identifier(ident) = expr else { return ControlFlow::Continue(()) };
        if self.subqueries > 0 || self.own.as_ref().is_some_and(|own| own.eq_ignore_ascii_case(&ident.value))
        {
            return ControlFlow::Continue(());
        }
        if let Some((_, named)) = self.named.iter().find(|(name, _)| name.eq_ignore_ascii_case(&ident.value))
        {
            *expr = Expr::Nested(Box::new(named.clone()));
            self.replaced = true;
        }
        ControlFlow::Continue(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{Column, Table};

    fn catalog() -> Catalog {
        let dated = |name: &str, format: &str| Column {
            date_format: Some(format.into()),
            ..Column::new(name, "TEXT")
        };
        Catalog::from_tables(vec![
            Table::new(
                "orders",
                vec![
                    Column::new("order_id", "INTEGER"),
                    Column::new("status", "TEXT"),
                    Column::new("region", "TEXT"),
                    dated("ordered_at", "YYYY-MM-DD"),
                    Column::new("total_amount", "REAL"),
                ],
            ),
            Table::new("papers", vec![Column::new("paper_id", "INTEGER"), dated("year", "YYYY")]),
        ])
    }

    #[test]
    fn a_breakdown_by_category_comes_largest_first() {
        let catalog = catalog();
        let sort = |sql: &str| sort_groups("How many orders per status and region?", sql, &catalog);
        assert_eq!(
            sort("SELECT status, COUNT(*) AS orders FROM orders GROUP BY status").as_deref(),
            Some("SELECT status, COUNT(*) AS orders FROM orders GROUP BY status ORDER BY orders DESC")
        );
        assert_eq!(
            sort("SELECT o.region, o.status, SUM(o.total_amount) FROM orders AS o GROUP BY 1, o.status")
                .as_deref(),
            Some(
                "SELECT o.region, o.status, SUM(o.total_amount) FROM orders AS o GROUP BY 1, o.status ORDER BY 3 DESC"
            )
        );
    }

    #[test]
    fn a_breakdown_by_period_comes_in_time_order() {
        let catalog = catalog();
        let sort = |sql: &str| sort_groups("Orders by month", sql, &catalog);
        assert_eq!(
            sort("SELECT strftime('%Y-%m', ordered_at) AS month, COUNT(*) FROM orders GROUP BY month").as_deref(),
            Some("SELECT strftime('%Y-%m', ordered_at) AS month, COUNT(*) FROM orders GROUP BY month ORDER BY month")
        );
        assert_eq!(
            sort("SELECT year, COUNT(*) FROM papers GROUP BY year").as_deref(),
            Some("SELECT year, COUNT(*) FROM papers GROUP BY year ORDER BY year")
        );
        // PostgreSQL's period keys, under names that say nothing.
        assert_eq!(
            sort("SELECT to_char(ordered_at, 'YYYY-MM') AS k, SUM(total_amount) FROM orders GROUP BY k").as_deref(),
            Some("SELECT to_char(ordered_at, 'YYYY-MM') AS k, SUM(total_amount) FROM orders GROUP BY k ORDER BY k")
        );
        assert_eq!(
            sort("SELECT EXTRACT(YEAR FROM ordered_at) AS k, COUNT(*) FROM orders GROUP BY k").as_deref(),
            Some("SELECT EXTRACT(YEAR FROM ordered_at) AS k, COUNT(*) FROM orders GROUP BY k ORDER BY k")
        );
    }

    #[test]
    fn an_order_the_sql_or_the_question_gives_is_kept() {
        let catalog = catalog();
        for (question, sql) in [
            ("Orders per status", "SELECT status, COUNT(*) FROM orders GROUP BY status ORDER BY status"),
            ("Top status", "SELECT status, COUNT(*) FROM orders GROUP BY status LIMIT 1"),
            ("Orders per status, lowest first", "SELECT status, COUNT(*) FROM orders GROUP BY status"),
            ("Statuses", "SELECT status FROM orders GROUP BY status"),
            ("All orders", "SELECT * FROM orders"),
            ("Total", "SELECT COUNT(*) FROM orders"),
            ("Per status", "SELECT COUNT(*) FROM orders GROUP BY status"),
            ("Not SQL", "DELETE FROM orders"),
            ("Union", "SELECT status, COUNT(*) FROM orders GROUP BY status UNION SELECT 'x', 1"),
        ] {
            assert_eq!(sort_groups(question, sql, &catalog), None, "{question}: {sql}");
        }
    }

    #[test]
    fn a_year_taken_from_a_column_of_year_numbers_is_the_column() {
        let catalog = catalog();
        assert_eq!(
            year_numbers(
                "SELECT strftime('%Y', p.year) AS year, COUNT(*) FROM papers AS p GROUP BY strftime('%Y', p.year)",
                &catalog
            )
            .as_deref(),
            Some("SELECT p.year AS year, COUNT(*) FROM papers AS p GROUP BY p.year")
        );
        // A date column's year, another format, or no year column: nothing to amend.
        for sql in [
            "SELECT strftime('%Y', ordered_at), COUNT(*) FROM orders GROUP BY 1",
            "SELECT strftime('%m', year) FROM papers",
            "SELECT year FROM papers",
        ] {
            assert_eq!(year_numbers(sql, &catalog), None, "{sql}");
        }
    }

    #[test]
    fn a_name_read_in_the_list_that_gives_it_is_the_expression_it_names() {
        let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let sql = "SELECT strftime('%Y-%m', ordered_at) AS month, COUNT(*) AS orders, \
                   SUM(orders) OVER (ORDER BY month) AS running FROM orders GROUP BY month";
        assert_eq!(
            aliases_written_out(sql, &names(&["month", "orders"])).as_deref(),
            Some(
                "SELECT strftime('%Y-%m', ordered_at) AS month, COUNT(*) AS orders, \
                 SUM((COUNT(*))) OVER (ORDER BY (strftime('%Y-%m', ordered_at))) AS running \
                 FROM orders GROUP BY month"
            )
        );
        // A name whose expression reads another name: both written out.
        let chained = "SELECT total_amount AS amount, amount * 2 AS double, double + 1 AS more FROM orders";
        assert_eq!(
            aliases_written_out(chained, &names(&["amount", "double"])).as_deref(),
            Some("SELECT total_amount AS amount, (total_amount) * 2 AS double, ((total_amount) * 2) + 1 AS more FROM orders")
        );
        // In a CTE as in the outer query.
        let inner = "WITH m AS (SELECT status AS s, s || '!' AS loud FROM orders) SELECT loud FROM m";
        assert_eq!(
            aliases_written_out(inner, &names(&["s"])).as_deref(),
            Some("WITH m AS (SELECT status AS s, (status) || '!' AS loud FROM orders) SELECT loud FROM m")
        );
    }

    #[test]
    fn names_not_flagged_windows_and_an_items_own_name_stay() {
        let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        for (sql, flagged) in [
            ("SELECT status AS s, s FROM orders", &[][..]),
            ("SELECT RANK() OVER (ORDER BY total_amount) AS r, r + 1 FROM orders", &["r"][..]),
            ("SELECT total_amount + 1 AS total_amount2, total_amount2 AS x FROM orders", &["y"][..]),
            ("SELECT s || 'x' AS s FROM orders", &["s"][..]),
            // A subquery's names are its own: the list's name is not written out in it.
            ("SELECT COUNT(*) AS n, (SELECT MAX(n) FROM orders) AS m FROM orders", &["n"][..]),
        ] {
            assert_eq!(aliases_written_out(sql, &names(flagged)), None, "{sql}");
        }
    }

    #[test]
    fn a_rate_asked_alone_and_rounded_is_the_rate_alone_rounded() {
        // The parts go before the rounding, so a part is never rounded and then kept.
        let question = "What was the refund rate in each region, as a percentage rounded to 2 decimals?";
        let sql = "SELECT region, COUNT(*) AS orders, 100.0 * SUM(CASE WHEN status = 'refunded' THEN 1 ELSE 0 END) \
                   / COUNT(*) AS refund_rate_pct FROM orders GROUP BY region";
        assert_eq!(
            rewrites(question, sql, &catalog(), &Said { copied: Vec::new(), speaks_of_time: true }).as_deref(),
            Some(
                "SELECT region, ROUND(100.0 * SUM(CASE WHEN status = 'refunded' THEN 1 ELSE 0 END) / COUNT(*), 2) \
                 AS refund_rate_pct FROM orders GROUP BY region"
            )
        );
    }
}
