//! Joins the catalog can correct without a model: a join made on columns its two tables do not
//! have, remade on the one key the catalog declares between them; a join to a table that does
//! not exist whose only use is the column its ON already takes from a table that does; an
//! absence asked of a related table, answered by excluding what has it; joins that only filter
//! the one table shown, made into an EXISTS so that each of its rows comes once; and references
//! to other tables listed alone, listed once.

use sqlparser::ast::{
    BinaryOperator, Expr, Ident, JoinConstraint, JoinOperator, OrderBy, Select, SelectItem, SetExpr,
    TableFactor, TableWithJoins,
};

use crate::catalog::{Catalog, Table};

/// `sql` with each join whose ON (`a.x = b.y`) names a column one of its two tables does not
/// have remade on the key the catalog declares between those tables (`a.fk = b.key`), when it
/// declares exactly one; None when there is no such join. "cars_data JOIN car_names ON
/// T1.MakeId = T2.MakeId" guesses a key that cars_data does not have; the catalog says
/// `cars_data.Id` references `car_names.MakeId`. A join whose columns exist is left alone,
/// even when another key is declared: the model may mean another relation.
pub fn declared_join_keys(sql: &str, catalog: &Catalog) -> Option<String> {
    super::edit_every_select(sql, |select| {
        let handles = handles_of(select, catalog);
        let mut changed = false;
        for join in select.from.iter_mut().flat_map(|from| from.joins.iter_mut()) {
            let Some(on) = on_of_mut(&mut join.join_operator) else { continue };
            let Expr::BinaryOp { left, op: BinaryOperator::Eq, right } = on else { continue };
            let (Some((left_handle, left_column)), Some((right_handle, right_column))) =
                (qualified(left), qualified(right))
            else {
                continue;
            };
            let (Some(left_table), Some(right_table)) =
                (table_of(&handles, &left_handle), table_of(&handles, &right_handle))
            else {
                continue;
            };
            if left_table.name.eq_ignore_ascii_case(&right_table.name)
                || (left_table.column(&left_column.value).is_some()
                    && right_table.column(&right_column.value).is_some())
            {
                continue;
            }
            let keys = declared_between(left_table, right_table);
            let [(from_left, from_right)] = keys.as_slice() else {
                continue;
            };
            *on = Expr::BinaryOp {
                left: Box::new(Expr::CompoundIdentifier(vec![left_handle, Ident::new(from_left.clone())])),
                op: BinaryOperator::Eq,
                right: Box::new(Expr::CompoundIdentifier(vec![right_handle, Ident::new(from_right.clone())])),
            };
            changed = true;
        }
        changed
    })
}

/// `sql` with each inner or left join to a table the catalog does not have dropped, when its ON
/// is one equality with a column of a table that exists (`co.region = r.region`) and the query
/// reads nothing else of it: its column is then that same value, so each use of it reads the
/// existing table's column instead. None when there is no such join. The model invents lookup
/// tables ("JOIN regions r ON co.region = r.region" to show `r.region`) for values the table
/// beside them already holds.
pub fn invented_lookups(sql: &str, catalog: &Catalog) -> Option<String> {
    super::edit_every_select(sql, |select| {
        let mut changed = false;
        'joins: loop {
            for (f, j) in join_positions(select) {
                let join = &select.from[f].joins[j];
                let TableFactor::Table { name, alias, .. } = &join.relation else { continue };
                let Some(table_name) = name.0.last().and_then(|p| p.as_ident()) else { continue };
                if catalog.table(&table_name.value).is_some() || !is_inner_or_left(&join.join_operator) {
                    continue;
                }
                let handle =
                    alias.as_ref().map(|a| a.name.value.clone()).unwrap_or_else(|| table_name.value.clone());
                let mut operator = join.join_operator.clone();
                let Some(Expr::BinaryOp { left, op: BinaryOperator::Eq, right }) = on_of_mut(&mut operator)
                else {
                    continue;
                };
                let (Some(left_ref), Some(right_ref)) = (qualified(left), qualified(right)) else { continue };
                let (invented, kept) = if left_ref.0.value.eq_ignore_ascii_case(&handle) {
                    (left_ref, right.as_ref().clone())
                } else if right_ref.0.value.eq_ignore_ascii_case(&handle) {
                    (right_ref, left.as_ref().clone())
                } else {
                    continue;
                };
                let mut without = select.clone();
                without.from[f].joins.remove(j);
                if !reads_only(&without, &handle, &invented.1.value) {
                    continue;
                }
                let _ = sqlparser::ast::visit_expressions_mut(&mut without, |expr| {
                    if qualified(expr).is_some_and(|(h, _)| h.value.eq_ignore_ascii_case(&handle)) {
                        *expr = kept.clone();
                    }
                    std::ops::ControlFlow::<()>::Continue(())
                });
                *select = without;
                changed = true;
                continue 'joins;
            }
            break;
        }
        changed
    })
}

/// `sql` with a join that reads a related table only to leave out one of its values made into
/// an exclusion, when the question asks for an absence ("channels that play no cartoon
/// directed by Ben Jones", "students who do not have a cat"); None otherwise. `FROM p JOIN c ON
/// p.k = c.fk WHERE c.x <> 'v'` keeps each p that has some c other than 'v', and loses each p
/// that has none at all; the question asks for each p that has no c of 'v': `FROM p WHERE p.k
/// NOT IN (SELECT c.fk FROM c WHERE c.x = 'v' AND c.fk IS NOT NULL)`. Joins beyond c (`c JOIN d
/// … WHERE d.x <> 'v'`) go into the subquery with it. Only the outermost SELECT changes, and
/// only when nothing else of it reads the joined tables.
pub fn absence_by_exclusion(question: &str, sql: &str, catalog: &Catalog) -> Option<String> {
    if !says_not(question) {
        return None;
    }
    let mut query = crate::history::structure::parse_query(sql)?;
    let sqlparser::ast::SetExpr::Select(select) = query.body.as_ref() else { return None };
    let handles = handles_of(select, catalog);
    if handles.len() < 2 || query.order_by.as_ref().is_some_and(|order| reads_joined(order, &handles[1..])) {
        return None;
    }
    let sqlparser::ast::SetExpr::Select(select) = query.body.as_mut() else { return None };
    let [from] = select.from.as_slice() else { return None };
    let distinct =
        handles.iter().all(|(h, _)| handles.iter().filter(|(o, _)| o.eq_ignore_ascii_case(h)).count() == 1);
    if from.joins.is_empty()
        || handles.len() != from.joins.len() + 1
        || !distinct
        || !from.joins.iter().all(|j| is_inner_or_left(&j.join_operator))
    {
        return None;
    }
    let outer = &handles[0];
    let joined = &handles[1..];
    let mut first_operator = from.joins[0].join_operator.clone();
    let Some(Expr::BinaryOp { left, op: BinaryOperator::Eq, right }) = on_of_mut(&mut first_operator) else {
        return None;
    };
    let names = |expr: &Expr, handle: &str| {
        qualified(expr).is_some_and(|(h, _)| h.value.eq_ignore_ascii_case(handle))
    };
    let (key, foreign) = if names(left, &outer.0) && names(right, &joined[0].0) {
        (left.to_string(), right.to_string())
    } else if names(right, &outer.0) && names(left, &joined[0].0) {
        (right.to_string(), left.to_string())
    } else {
        return None;
    };
    // The joins beyond the first link the joined tables among themselves.
    let mut later = from.joins[1..].to_vec();
    if later.iter_mut().any(|j| {
        on_of_mut(&mut j.join_operator).is_none_or(|on| reads_joined(&*on, std::slice::from_ref(outer)))
    }) {
        return None;
    }
    let mut parts = Vec::new();
    crate::history::structure::conjuncts(select.selection.as_ref()?, &mut parts);
    let unequal = |part: &Expr| -> Option<(String, String)> {
        let Expr::BinaryOp { left, op: BinaryOperator::NotEq, right } = part else { return None };
        let is_joined = |e: &Expr| joined.iter().any(|(h, _)| names(e, h));
        match (left.as_ref(), right.as_ref()) {
            (column, Expr::Value(value)) | (Expr::Value(value), column) if is_joined(column) => {
                Some((column.to_string(), value.to_string()))
            }
            _ => None,
        }
    };
    let excluded: Vec<(String, String)> = parts.iter().filter_map(|p| unequal(p)).collect();
    let [(column, value)] = excluded.as_slice() else { return None };
    let kept: Vec<String> = parts
        .iter()
        .filter(|p| unequal(p).is_none())
        .map(|p| match p {
            Expr::BinaryOp { op: BinaryOperator::Or, .. } => format!("({p})"),
            _ => p.to_string(),
        })
        .collect();
    let mut rest = select.as_ref().clone();
    rest.from.clear();
    rest.selection = None;
    if parts.iter().filter(|p| unequal(p).is_none()).any(|p| reads_joined(*p, joined))
        || reads_joined(&rest, joined)
        || rest
            .projection
            .iter()
            .any(|item| !matches!(item, SelectItem::UnnamedExpr(_) | SelectItem::ExprWithAlias { .. }))
    {
        return None;
    }
    let mut subquery = format!("SELECT {foreign} FROM {}", from.joins[0].relation);
    for join in &later {
        subquery.push_str(&format!(" {join}"));
    }
    let exclusion = format!("{key} NOT IN ({subquery} WHERE {column} = {value} AND {foreign} IS NOT NULL)");
    let condition = kept.into_iter().chain(std::iter::once(exclusion)).collect::<Vec<_>>().join(" AND ");
    select.selection = Some(super::parse_expr(&condition)?);
    select.from[0].joins.clear();
    Some(query.to_string())
}

/// `sql` with the joins that only filter the rows of the one table it shows made into an
/// EXISTS, so that each row of that table comes once; None otherwise. `SELECT s.name FROM
/// singer AS s JOIN performance AS p ON p.singer_id = s.id WHERE p.year = 2014` shows a singer
/// once for each of their performances that year: copies of one row, which say nothing the
/// first did not. `SELECT s.name FROM singer AS s WHERE EXISTS (SELECT 1 FROM performance AS p
/// WHERE (p.singer_id = s.id) AND (p.year = 2014))` shows each such singer once, and two
/// singers of the same name twice (DISTINCT would merge them). Only the outermost SELECT
/// changes, and only when it is a plain list (no DISTINCT, grouping or aggregate) whose items
/// and ORDER BY read one table, every join is an inner join on a condition, and some joined
/// table may repeat the shown table's rows (one joined on its whole primary key cannot).
pub fn joins_that_only_filter(sql: &str, catalog: &Catalog) -> Option<String> {
    let mut query = crate::history::structure::parse_query(sql)?;
    let order_by = query.order_by.clone();
    let SetExpr::Select(select) = query.body.as_mut() else { return None };
    let [from] = select.from.as_slice() else { return None };
    let handles = handles_of(select, catalog);
    let conditions: Vec<&Expr> = from.joins.iter().filter_map(|j| inner_on(&j.join_operator)).collect();
    if !super::filters::is_plain_list(select)
        || !select.named_window.is_empty()
        || from.joins.is_empty()
        || conditions.len() != from.joins.len()
        || handles.len() != from.joins.len() + 1
    {
        return None;
    }
    let mut items = Vec::new();
    let mut names = Vec::new();
    for item in &select.projection {
        match item {
            SelectItem::UnnamedExpr(expr) => items.push(expr),
            SelectItem::ExprWithAlias { expr, alias } => {
                items.push(expr);
                names.push(alias.value.to_lowercase());
            }
            _ => return None,
        }
    }
    if items.iter().any(|e| crate::check::has_window(*e)) {
        return None;
    }
    // The one table the list reads, and the others.
    let reading: Vec<usize> =
        (0..handles.len()).filter(|&i| items.iter().any(|e| reads_joined(*e, &handles[i..=i]))).collect();
    let [shown] = reading[..] else { return None };
    let others: Vec<(String, &Table)> =
        handles.iter().enumerate().filter(|(i, _)| *i != shown).map(|(_, h)| h.clone()).collect();
    if items.iter().any(|e| reads_joined(*e, &others)) || sorts_by(order_by.as_ref(), &names, &others) {
        return None;
    }
    if others.iter().all(|(handle, table)| joined_on_whole_key(handle, table, &conditions)) {
        return None;
    }
    // A column named bare that the shown table and another both have: refused as ambiguous
    // in the join, it would read the other table's inside the EXISTS without a word.
    let shown_table = handles[shown].1;
    let mut ambiguous = false;
    let _ = sqlparser::ast::visit_expressions(&**select, |expr| {
        if let Expr::Identifier(name) = expr {
            ambiguous |= shown_table.column(&name.value).is_some()
                && others.iter().any(|(_, table)| table.column(&name.value).is_some());
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
    if ambiguous {
        return None;
    }
    let relations: Vec<&TableFactor> =
        std::iter::once(&from.relation).chain(from.joins.iter().map(|j| &j.relation)).collect();
    let inner_from: Vec<String> =
        relations.iter().enumerate().filter(|(i, _)| *i != shown).map(|(_, r)| r.to_string()).collect();
    let inner_where: Vec<String> = (conditions.iter().copied())
        .chain(select.selection.as_ref())
        .map(|condition| format!("({condition})"))
        .collect();
    let exists =
        format!("EXISTS (SELECT 1 FROM {} WHERE {})", inner_from.join(", "), inner_where.join(" AND "));
    let relation = relations[shown].clone();
    select.selection = Some(super::parse_expr(&exists)?);
    select.from = vec![TableWithJoins { relation, joins: Vec::new() }];
    Some(query.to_string())
}

/// Whether an ORDER BY reads a column of one of `tables` (a name the list gives is not one).
fn sorts_by(order: Option<&OrderBy>, names: &[String], tables: &[(String, &Table)]) -> bool {
    let Some(order) = order else { return false };
    let mut found = false;
    let _ = sqlparser::ast::visit_expressions(order, |expr| {
        found |= match expr {
            Expr::Identifier(name) if names.contains(&name.value.to_lowercase()) => false,
            Expr::Identifier(_) | Expr::CompoundIdentifier(_) => reads_joined(expr, tables),
            _ => false,
        };
        std::ops::ControlFlow::<()>::Continue(())
    });
    found
}

/// Whether a conjunct of `conditions` equates the whole primary key of `table`, read through
/// `handle`, with something else: each row on the other side then meets one row of it at most.
fn joined_on_whole_key(handle: &str, table: &Table, conditions: &[&Expr]) -> bool {
    let [key] = table.primary_key.as_slice() else { return false };
    let mut parts = Vec::new();
    for condition in conditions {
        crate::history::structure::conjuncts(condition, &mut parts);
    }
    let is_key = |e: &Expr| {
        qualified(e)
            .is_some_and(|(h, c)| h.value.eq_ignore_ascii_case(handle) && c.value.eq_ignore_ascii_case(key))
    };
    parts.iter().any(|part| match part {
        Expr::BinaryOp { left, op: BinaryOperator::Eq, right } => is_key(left) != is_key(right),
        _ => false,
    })
}

/// `sql` listing only the references one table holds to others (`SELECT student_id FROM
/// enrolment WHERE grade = 'A'`) made DISTINCT; None otherwise. Each value names one row of
/// the referenced table (a student), and a student with two such enrolments is still one
/// student: the list asks which students, not how many enrolments. Only a plain list of one
/// table (no join, DISTINCT, grouping, aggregate or LIMIT) whose every item is a foreign key
/// of that table, declared or inferred and not its own primary key, and whose ORDER BY, if
/// any, reads only those items.
pub fn references_listed_once(sql: &str, catalog: &Catalog) -> Option<String> {
    let mut query = crate::history::structure::parse_query(sql)?;
    if query.limit_clause.is_some() || query.fetch.is_some() {
        return None;
    }
    let order_by = query.order_by.clone();
    let SetExpr::Select(select) = query.body.as_mut() else { return None };
    let [from] = select.from.as_slice() else { return None };
    let handles = handles_of(select, catalog);
    let [(handle, table)] = handles.as_slice() else { return None };
    if !from.joins.is_empty() || !super::filters::is_plain_list(select) || !select.named_window.is_empty() {
        return None;
    }
    let reference = |expr: &Expr| -> Option<String> {
        let column = match expr {
            Expr::Identifier(name) => name.value.clone(),
            Expr::CompoundIdentifier(parts) => match &parts[..] {
                [h, c] if h.value.eq_ignore_ascii_case(handle) => c.value.clone(),
                _ => return None,
            },
            _ => return None,
        };
        let foreign = table.foreign_keys.iter().any(|k| k.column.eq_ignore_ascii_case(&column));
        let own = table.primary_key.iter().any(|k| k.eq_ignore_ascii_case(&column));
        (foreign && !own).then(|| column.to_lowercase())
    };
    let mut listed = Vec::new();
    for item in &select.projection {
        match item {
            SelectItem::UnnamedExpr(expr) => listed.push(reference(expr)?),
            SelectItem::ExprWithAlias { expr, alias } => {
                listed.push(reference(expr)?);
                listed.push(alias.value.to_lowercase());
            }
            _ => return None,
        }
    }
    let orders_by_other = order_by.as_ref().is_some_and(|order| {
        let mut other = false;
        let _ = sqlparser::ast::visit_expressions(order, |expr| {
            other |= match expr {
                Expr::Identifier(name) => !listed.contains(&name.value.to_lowercase()),
                Expr::CompoundIdentifier(parts) => {
                    parts.last().is_none_or(|c| !listed.contains(&c.value.to_lowercase()))
                }
                _ => false,
            };
            std::ops::ControlFlow::<()>::Continue(())
        });
        other
    });
    if orders_by_other {
        return None;
    }
    select.distinct = Some(sqlparser::ast::Distinct::Distinct);
    Some(query.to_string())
}

/// True when the question denies something: an absence ("no", "none", "without", "never") or a
/// plain "not" ("channels that do not play …", "students who don't have …").
fn says_not(question: &str) -> bool {
    let words = crate::check::lowercase_words(question);
    super::filters::asks_for_an_absence(question)
        || words.iter().any(|w| w == "not")
        || words.windows(2).any(|pair| pair[1] == "t" && pair[0].ends_with('n'))
}

/// Whether `node` reads a column of one of `joined`: through its handle, or unqualified by a
/// name one of them has (SQLite refuses a name two joined tables have as ambiguous).
fn reads_joined<V: sqlparser::ast::Visit>(node: &V, joined: &[(String, &Table)]) -> bool {
    let mut found = false;
    let _ = sqlparser::ast::visit_expressions(node, |expr| {
        match expr {
            Expr::CompoundIdentifier(parts) if parts.len() >= 2 => {
                let handle = &parts[parts.len() - 2].value;
                found |= joined.iter().any(|(h, _)| h.eq_ignore_ascii_case(handle));
            }
            Expr::Identifier(name) => found |= joined.iter().any(|(_, t)| t.column(&name.value).is_some()),
            _ => {}
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
    found
}

/// Every join of a SELECT as (FROM item, join) positions.
fn join_positions(select: &Select) -> Vec<(usize, usize)> {
    (select.from.iter().enumerate())
        .flat_map(|(f, from)| (0..from.joins.len()).map(move |j| (f, j)))
        .collect()
}

fn is_inner_or_left(operator: &JoinOperator) -> bool {
    matches!(
        operator,
        JoinOperator::Join(_) | JoinOperator::Inner(_) | JoinOperator::Left(_) | JoinOperator::LeftOuter(_)
    )
}

/// Whether every column `select` reads through `handle` is `column`, and nothing reads it
/// whole (`handle.*`, `*`). A column of it read unqualified is left to validation: without
/// the join it names no column, and a rewrite that does not validate is not kept.
fn reads_only(select: &Select, handle: &str, column: &str) -> bool {
    let whole = select.projection.iter().any(|item| {
        !matches!(
            item,
            sqlparser::ast::SelectItem::UnnamedExpr(_) | sqlparser::ast::SelectItem::ExprWithAlias { .. }
        )
    });
    let mut other = false;
    let _ = sqlparser::ast::visit_expressions(select, |expr| {
        if let Expr::CompoundIdentifier(parts) = expr {
            let names_handle = parts.len() >= 2 && parts[parts.len() - 2].value.eq_ignore_ascii_case(handle);
            other |= names_handle && !parts[parts.len() - 1].value.eq_ignore_ascii_case(column);
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
    !whole && !other
}

/// The ON condition of a join that has one.
pub(super) fn on_of_mut(operator: &mut JoinOperator) -> Option<&mut Expr> {
    match operator {
        JoinOperator::Join(JoinConstraint::On(on))
        | JoinOperator::Inner(JoinConstraint::On(on))
        | JoinOperator::Left(JoinConstraint::On(on))
        | JoinOperator::LeftOuter(JoinConstraint::On(on))
        | JoinOperator::Right(JoinConstraint::On(on))
        | JoinOperator::RightOuter(JoinConstraint::On(on))
        | JoinOperator::FullOuter(JoinConstraint::On(on)) => Some(on),
        _ => None,
    }
}

/// The ON condition of an inner join.
fn inner_on(operator: &JoinOperator) -> Option<&Expr> {
    match operator {
        JoinOperator::Join(JoinConstraint::On(on)) | JoinOperator::Inner(JoinConstraint::On(on)) => Some(on),
        _ => None,
    }
}

/// `handle.column` as its two names.
fn qualified(expr: &Expr) -> Option<(Ident, Ident)> {
    match expr {
        Expr::CompoundIdentifier(parts) if parts.len() == 2 => Some((parts[0].clone(), parts[1].clone())),
        Expr::Nested(inner) => qualified(inner),
        _ => None,
    }
}

/// The handles (alias, else name) of a SELECT's catalog tables, with their tables.
pub(super) fn handles_of<'c>(select: &Select, catalog: &'c Catalog) -> Vec<(String, &'c Table)> {
    let factors = select
        .from
        .iter()
        .flat_map(|from| std::iter::once(&from.relation).chain(from.joins.iter().map(|j| &j.relation)));
    factors
        .filter_map(|factor| {
            let TableFactor::Table { name, alias, .. } = factor else { return None };
            let table = catalog.table(&name.0.last()?.as_ident()?.value)?;
            let handle = alias.as_ref().map(|a| a.name.value.clone()).unwrap_or_else(|| table.name.clone());
            Some((handle, table))
        })
        .collect()
}

fn table_of<'c>(handles: &[(String, &'c Table)], handle: &Ident) -> Option<&'c Table> {
    let mut found = handles.iter().filter(|(h, _)| h.eq_ignore_ascii_case(&handle.value));
    match (found.next(), found.next()) {
        (Some((_, table)), None) => Some(table),
        _ => None,
    }
}

/// The keys the catalog declares between two tables, as (left column, right column), in either
/// direction, each once.
fn declared_between(left: &Table, right: &Table) -> Vec<(String, String)> {
    let mut keys: Vec<(String, String)> = Vec::new();
    let forward = left.foreign_keys.iter().filter(|k| k.ref_table.eq_ignore_ascii_case(&right.name));
    keys.extend(forward.map(|k| (k.column.clone(), k.ref_column.clone())));
    let backward = right.foreign_keys.iter().filter(|k| k.ref_table.eq_ignore_ascii_case(&left.name));
    keys.extend(backward.map(|k| (k.ref_column.clone(), k.column.clone())));
    keys.sort_by_key(|(a, b)| (a.to_lowercase(), b.to_lowercase()));
    keys.dedup_by(|a, b| a.0.eq_ignore_ascii_case(&b.0) && a.1.eq_ignore_ascii_case(&b.1));
    keys.retain(|(a, b)| left.column(a).is_some() && right.column(b).is_some());
    keys
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{Column, ForeignKey};

    fn catalog() -> Catalog {
        let table = |name: &str, columns: &[&str], keys: &[(&str, &str, &str)]| {
            let mut table = Table::new(name, columns.iter().map(|c| Column::new(*c, "TEXT")).collect());
            table.foreign_keys = keys
                .iter()
                .map(|(column, ref_table, ref_column)| ForeignKey {
                    column: column.to_string(),
                    ref_table: ref_table.to_string(),
                    ref_column: ref_column.to_string(),
                    inferred: false,
                })
                .collect();
            table
        };
        Catalog::from_tables(vec![
            table("car_names", &["MakeId", "Model", "Make"], &[]),
            table("cars_data", &["Id", "MPG", "Horsepower"], &[("Id", "car_names", "MakeId")]),
            table("countries", &["country_code", "region"], &[]),
            table(
                "ad_stats",
                &["country_code", "clicks", "impressions"],
                &[("country_code", "countries", "country_code")],
            ),
            table("people", &["id", "manager_id", "home_id", "work_id"], &[]),
            table("places", &["id", "name"], &[]),
        ])
    }

    #[test]
    fn a_join_on_guessed_columns_is_remade_on_the_declared_key() {
        let sql = "SELECT T2.Model FROM cars_data AS T1 JOIN car_names AS T2 ON T1.MakeId = T2.MakeId \
                   ORDER BY T1.MPG DESC LIMIT 1";
        assert_eq!(
            declared_join_keys(sql, &catalog()).as_deref(),
            Some(
                "SELECT T2.Model FROM cars_data AS T1 JOIN car_names AS T2 ON T1.Id = T2.MakeId \
                 ORDER BY T1.MPG DESC LIMIT 1"
            )
        );
        // Unaliased, in a subquery, with the key declared on the other side.
        let nested = "SELECT COUNT(*) FROM (SELECT car_names.Model FROM car_names JOIN cars_data \
                      ON car_names.Model = cars_data.Model)";
        assert_eq!(
            declared_join_keys(nested, &catalog()).as_deref(),
            Some(
                "SELECT COUNT(*) FROM (SELECT car_names.Model FROM car_names JOIN cars_data \
                 ON car_names.MakeId = cars_data.Id)"
            )
        );
    }

    fn pets_and_channels() -> Catalog {
        let table = |name: &str, columns: &[&str]| {
            Table::new(name, columns.iter().map(|c| Column::new(*c, "TEXT")).collect())
        };
        Catalog::from_tables(vec![
            table("Student", &["StuID", "Fname", "Major", "Age"]),
            table("Has_Pet", &["StuID", "PetID"]),
            table("Pets", &["PetID", "PetType"]),
            table("TV_Channel", &["id", "Country", "Package_Option"]),
            table("Cartoon", &["id", "Channel", "Directed_by"]),
        ])
    }

    #[test]
    fn an_absence_asked_of_a_related_table_excludes_what_has_it() {
        let catalog = pets_and_channels();
        let question =
            "What are the package options of tv channels that play no cartoon directed by Ben Jones?";
        let sql = "SELECT DISTINCT T1.Package_Option FROM TV_Channel AS T1 LEFT JOIN Cartoon AS T2 \
                   ON T1.id = T2.Channel WHERE T2.Directed_by <> 'Ben Jones'";
        assert_eq!(
            absence_by_exclusion(question, sql, &catalog).as_deref(),
            Some(
                "SELECT DISTINCT T1.Package_Option FROM TV_Channel AS T1 WHERE T1.id NOT IN \
                 (SELECT T2.Channel FROM Cartoon AS T2 WHERE T2.Directed_by = 'Ben Jones' AND T2.Channel IS NOT NULL)"
            )
        );
        // Two tables away, with a condition of the outer table kept beside the exclusion.
        let question = "Find the major and age of students who do not have a cat pet.";
        let sql = "SELECT T1.Major, T1.Age FROM Student AS T1 JOIN Has_Pet AS T2 ON T1.StuID = T2.StuID \
                   JOIN Pets AS T3 ON T2.PetID = T3.PetID WHERE T3.PetType <> 'cat' AND (T1.Age > 18 OR T1.Age < 10)";
        assert_eq!(
            absence_by_exclusion(question, sql, &catalog).as_deref(),
            Some(
                "SELECT T1.Major, T1.Age FROM Student AS T1 WHERE (T1.Age > 18 OR T1.Age < 10) AND T1.StuID NOT IN \
                 (SELECT T2.StuID FROM Has_Pet AS T2 JOIN Pets AS T3 ON T2.PetID = T3.PetID \
                 WHERE T3.PetType = 'cat' AND T2.StuID IS NOT NULL)"
            )
        );
    }

    #[test]
    fn a_plain_not_is_a_denial_too() {
        assert!(says_not("Which students don't have a cat?") && says_not("channels that do not play it"));
        assert!(says_not("advertisers with no campaign") && !says_not("Which students have a cat?"));
    }

    #[test]
    fn a_join_read_for_more_than_an_exclusion_or_a_question_without_absence_stays() {
        let catalog = pets_and_channels();
        let absent = "Which students do not have a cat?";
        for (question, sql) in [
            // No absence asked: "a pet other than a cat" is what the join says.
            (
                "Which students have a pet other than a cat?",
                "SELECT T1.Fname FROM Student AS T1 JOIN Has_Pet AS T2 ON T1.StuID = T2.StuID \
                 JOIN Pets AS T3 ON T2.PetID = T3.PetID WHERE T3.PetType <> 'cat'",
            ),
            // The joined table is shown, filtered on beside the exclusion, or ordered by.
            (
                absent,
                "SELECT T1.Fname, T3.PetType FROM Student AS T1 JOIN Has_Pet AS T2 ON T1.StuID = T2.StuID \
                 JOIN Pets AS T3 ON T2.PetID = T3.PetID WHERE T3.PetType <> 'cat'",
            ),
            (
                absent,
                "SELECT T1.Fname FROM Student AS T1 JOIN Has_Pet AS T2 ON T1.StuID = T2.StuID \
                 JOIN Pets AS T3 ON T2.PetID = T3.PetID WHERE T3.PetType <> 'cat' AND T3.PetType = 'dog'",
            ),
            (
                absent,
                "SELECT T1.Fname FROM Student AS T1 JOIN Has_Pet AS T2 ON T1.StuID = T2.StuID \
                 WHERE T2.PetID <> 3 ORDER BY T2.PetID",
            ),
            // Two exclusions, or none.
            (
                absent,
                "SELECT T1.Fname FROM Student AS T1 JOIN Has_Pet AS T2 ON T1.StuID = T2.StuID \
                 JOIN Pets AS T3 ON T2.PetID = T3.PetID WHERE T3.PetType <> 'cat' AND T3.PetType <> 'dog'",
            ),
            (absent, "SELECT T1.Fname FROM Student AS T1 JOIN Has_Pet AS T2 ON T1.StuID = T2.StuID"),
            // Every column of the join.
            (
                absent,
                "SELECT * FROM Student AS T1 JOIN Has_Pet AS T2 ON T1.StuID = T2.StuID WHERE T2.PetID <> 3",
            ),
        ] {
            assert_eq!(absence_by_exclusion(question, sql, &catalog), None, "{sql}");
        }
    }

    /// Asserts that `rewrite` leaves each of `cases` alone.
    fn left_alone(rewrite: fn(&str, &Catalog) -> Option<String>, cases: &[&str]) {
        let catalog = catalog();
        for sql in cases {
            assert_eq!(rewrite(sql, &catalog), None, "{sql}");
        }
    }

    #[test]
    fn joins_on_real_columns_or_without_one_declared_key_stay() {
        left_alone(
            declared_join_keys,
            &[
                // Both columns exist, even though not the declared key.
                "SELECT T2.Model FROM cars_data AS T1 JOIN car_names AS T2 ON T1.MPG = T2.Model",
                // No key declared between the two.
                "SELECT p.name FROM people AS e JOIN places AS p ON e.place_id = p.id",
                // Unqualified, or not an equality.
                "SELECT Model FROM cars_data JOIN car_names ON MakeId = Id",
                "SELECT T2.Model FROM cars_data AS T1 JOIN car_names AS T2 ON T1.MakeId > T2.MakeId",
            ],
        );
    }

    #[test]
    fn an_invented_lookup_table_is_read_from_the_table_beside_it() {
        let sql = "SELECT r.region, ROUND(100.0 * SUM(s.clicks) / SUM(s.impressions), 2) AS ctr \
                   FROM ad_stats AS s JOIN countries AS co ON co.country_code = s.country_code \
                   JOIN regions AS r ON co.region = r.region GROUP BY r.region ORDER BY ctr DESC";
        assert_eq!(
            invented_lookups(sql, &catalog()).as_deref(),
            Some(
                "SELECT co.region, ROUND(100.0 * SUM(s.clicks) / SUM(s.impressions), 2) AS ctr \
                 FROM ad_stats AS s JOIN countries AS co ON co.country_code = s.country_code \
                 GROUP BY co.region ORDER BY ctr DESC"
            )
        );
    }

    #[test]
    fn invented_tables_read_for_more_than_their_key_stay() {
        left_alone(
            invented_lookups,
            &[
            // Another column of the invented table is read: it is not the key's value.
            "SELECT r.region_name FROM countries AS co JOIN regions AS r ON co.region = r.region",
            // Read whole.
            "SELECT * FROM countries AS co JOIN regions AS r ON co.region = r.region",
            // A table the catalog has is not invented (unread_joins and the validator judge it).
            "SELECT co.region FROM ad_stats AS s JOIN countries AS co ON co.country_code = s.country_code",
            // Not a single equality.
            "SELECT r.region FROM countries AS co JOIN regions AS r ON co.region = r.region AND r.active = 1",
            ],
        );
    }

    /// `catalog` with the table named `name` changed by `edit`.
    fn edited(catalog: &Catalog, name: &str, edit: impl Fn(&mut Table)) -> Catalog {
        let mut tables: Vec<Table> = catalog.tables().cloned().collect();
        tables.iter_mut().filter(|t| t.name == name).for_each(edit);
        Catalog::from_tables(tables)
    }

    #[test]
    fn joins_that_only_filter_the_shown_table_become_an_exists() {
        let mut catalog = pets_and_channels();
        // Student once per cat or dog: a student with both is one student.
        let sql = "SELECT T1.Fname FROM Student AS T1 JOIN Has_Pet AS T2 ON T1.StuID = T2.StuID \
                   JOIN Pets AS T3 ON T2.PetID = T3.PetID WHERE T3.PetType = 'cat' OR T3.PetType = 'dog' \
                   ORDER BY T1.Fname";
        assert_eq!(
            joins_that_only_filter(sql, &catalog).as_deref(),
            Some(
                "SELECT T1.Fname FROM Student AS T1 WHERE EXISTS (SELECT 1 FROM Has_Pet AS T2, Pets AS T3 \
                 WHERE (T1.StuID = T2.StuID) AND (T2.PetID = T3.PetID) AND (T3.PetType = 'cat' OR T3.PetType = 'dog')) \
                 ORDER BY T1.Fname"
            )
        );
        // The shown table joined second, read by an expression under a name the ORDER BY uses.
        let sql = "SELECT c.Channel || '!' AS channel FROM TV_Channel t JOIN Cartoon c ON c.Channel = t.id \
                   WHERE t.Country = 'Italy' ORDER BY channel";
        assert_eq!(
            joins_that_only_filter(sql, &catalog).as_deref(),
            Some(
                "SELECT c.Channel || '!' AS channel FROM Cartoon c WHERE EXISTS (SELECT 1 FROM TV_Channel t \
                 WHERE (c.Channel = t.id) AND (t.Country = 'Italy')) ORDER BY channel"
            )
        );
        // A joined table met on its whole primary key repeats no row: nothing to change.
        catalog = edited(&catalog, "TV_Channel", |t| t.primary_key = vec!["id".into()]);
        assert_eq!(joins_that_only_filter(sql, &catalog), None);
    }

    #[test]
    fn joins_read_by_the_list_the_order_or_a_group_stay() {
        let catalog = pets_and_channels();
        for sql in [
            // The list or the ORDER BY reads the joined table.
            "SELECT T1.Fname, T3.PetType FROM Student AS T1 JOIN Has_Pet AS T2 ON T1.StuID = T2.StuID \
             JOIN Pets AS T3 ON T2.PetID = T3.PetID",
            "SELECT T1.Fname FROM Student AS T1 JOIN Has_Pet AS T2 ON T1.StuID = T2.StuID ORDER BY T2.PetID",
            // Deduplicated, grouped or counted already; a left join; a join without ON; all columns.
            "SELECT DISTINCT T1.Fname FROM Student AS T1 JOIN Has_Pet AS T2 ON T1.StuID = T2.StuID",
            "SELECT T1.Fname FROM Student AS T1 JOIN Has_Pet AS T2 ON T1.StuID = T2.StuID GROUP BY T1.Fname",
            "SELECT COUNT(T1.Fname) FROM Student AS T1 JOIN Has_Pet AS T2 ON T1.StuID = T2.StuID",
            "SELECT T1.Fname FROM Student AS T1 LEFT JOIN Has_Pet AS T2 ON T1.StuID = T2.StuID",
            "SELECT T1.Fname FROM Student AS T1 JOIN Has_Pet AS T2 USING (StuID)",
            "SELECT T1.* FROM Student AS T1 JOIN Has_Pet AS T2 ON T1.StuID = T2.StuID",
            // A column named bare that both tables have (SQLite refuses it as ambiguous).
            "SELECT T1.Fname FROM Student AS T1 JOIN Has_Pet AS T2 ON T1.StuID = T2.StuID WHERE StuID > 3",
            // A table the catalog does not have, no join, a set operation.
            "SELECT T1.Fname FROM Student AS T1 JOIN Invented AS T2 ON T1.StuID = T2.StuID",
            "SELECT Fname FROM Student WHERE Age > 20",
            "SELECT T1.Fname FROM Student AS T1 JOIN Has_Pet AS T2 ON T1.StuID = T2.StuID UNION SELECT 'x'",
        ] {
            assert_eq!(joins_that_only_filter(sql, &catalog), None, "{sql}");
        }
    }

    #[test]
    fn references_listed_alone_are_listed_once() {
        let catalog = edited(&pets_and_channels(), "Has_Pet", |t| {
            t.foreign_keys = vec![ForeignKey {
                column: "StuID".into(),
                ref_table: "Student".into(),
                ref_column: "StuID".into(),
                inferred: true,
            }]
        });
        assert_eq!(
            references_listed_once(
                "SELECT h.StuID AS id FROM Has_Pet AS h WHERE h.PetID > 2 ORDER BY id",
                &catalog
            )
            .as_deref(),
            Some("SELECT DISTINCT h.StuID AS id FROM Has_Pet AS h WHERE h.PetID > 2 ORDER BY id")
        );
        for sql in [
            // A column that references nothing, beside one that does, or ordered by.
            "SELECT PetID FROM Has_Pet",
            "SELECT StuID, PetID FROM Has_Pet",
            "SELECT StuID FROM Has_Pet ORDER BY PetID",
            // Counted, limited, joined, deduplicated already.
            "SELECT COUNT(StuID) FROM Has_Pet",
            "SELECT StuID FROM Has_Pet LIMIT 3",
            "SELECT h.StuID FROM Has_Pet AS h JOIN Pets AS p ON p.PetID = h.PetID",
            "SELECT DISTINCT StuID FROM Has_Pet",
            // A table's own key, where it references nothing.
            "SELECT StuID FROM Student",
        ] {
            assert_eq!(references_listed_once(sql, &catalog), None, "{sql}");
        }
    }
}
