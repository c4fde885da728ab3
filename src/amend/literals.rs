//! String literals written otherwise than what they are compared with: `PetType = 'Dog'`
//! where the column holds 'dog' matches no row (SQLite's `=` and `IN` compare case and every
//! character; the value the column holds is known when it has only a few, the catalog's allowed
//! or sample values), and a month compared with a day (`strftime('%Y-%m', d) >= '2026-07-01'`
//! leaves July out: '2026-07' sorts before '2026-07-01').

use std::ops::ControlFlow;

use sqlparser::ast::{BinaryOperator, Expr, InTarget, Select, Value};

use super::joins::handles_of;
use crate::catalog::{Catalog, Column, Table};
use crate::history::structure::{is_comparison, parse_query, plain_arguments};

/// `sql` with each string literal compared by `=`, `<>` or `IN` with a column that never holds
/// it replaced by the one value the column holds that differs from it only in case, spaces,
/// punctuation or a plural `s` ('Bachelors' for 'Bachelor', 'North Carolina' for
/// 'NorthCarolina'); None when there is none. A literal with no such value, or two, stays (the
/// plausibility check tells the model). LIKE is left alone: it ignores case already.
pub fn values_as_held(sql: &str, catalog: &Catalog) -> Option<String> {
    super::edit_every_select(sql, |select| {
        let handles = handles_of(select, catalog);
        let tables: Vec<&Table> = handles.iter().map(|(_, table)| *table).collect();
        let column_of = |expr: &Expr| -> Option<&Column> {
            match expr {
                Expr::Identifier(ident) => {
                    let mut holding = tables.iter().filter_map(|t| t.column(&ident.value));
                    match (holding.next(), holding.next()) {
                        (Some(column), None) => Some(column),
                        _ => None,
                    }
                }
                Expr::CompoundIdentifier(parts) if parts.len() == 2 => {
                    let (_, table) = handles.iter().find(|(h, _)| h.eq_ignore_ascii_case(&parts[0].value))?;
                    table.column(&parts[1].value)
                }
                _ => None,
            }
        };
        let mut changed = false;
        for condition in conditions_of(select) {
            changed |= rewrite_condition(condition, &column_of);
        }
        changed
    })
}

/// The WHERE and the join conditions of one SELECT (its subqueries are SELECTs of their own).
fn conditions_of(select: &mut Select) -> Vec<&mut Expr> {
    let mut conditions: Vec<&mut Expr> = select.selection.iter_mut().collect();
    for join in select.from.iter_mut().flat_map(|from| from.joins.iter_mut()) {
        if let Some(on) = super::joins::on_of_mut(&mut join.join_operator) {
            conditions.push(on);
        }
    }
    conditions
}

/// Rewrites the literals of one condition, down through AND, OR, NOT and parentheses; true
/// when one changed.
fn rewrite_condition<'c>(expr: &mut Expr, column_of: &dyn Fn(&Expr) -> Option<&'c Column>) -> bool {
    match expr {
        Expr::BinaryOp { left, op: BinaryOperator::And | BinaryOperator::Or, right } => {
            let left = rewrite_condition(left, column_of);
            rewrite_condition(right, column_of) | left
        }
        Expr::Nested(inner) | Expr::UnaryOp { expr: inner, .. } => rewrite_condition(inner, column_of),
        Expr::BinaryOp { left, op: BinaryOperator::Eq | BinaryOperator::NotEq, right } => {
            if let Some(column) = column_of(left) {
                held_literal(right, column)
            } else if let Some(column) = column_of(right) {
                held_literal(left, column)
            } else {
                false
            }
        }
        Expr::In { expr, target: InTarget::List(list), .. } => match column_of(expr) {
            Some(column) => list.iter_mut().fold(false, |changed, item| held_literal(item, column) | changed),
            None => false,
        },
        _ => false,
    }
}

/// Replaces a string literal the column never holds by the one value it holds that is the
/// same text otherwise; true when it did.
fn held_literal(expr: &mut Expr, column: &Column) -> bool {
    let Expr::Value(value) = expr else { return false };
    let Value::SingleQuotedString(literal) = &value.value else { return false };
    let values =
        if column.allowed_values.is_empty() { &column.sample_values } else { &column.allowed_values };
    if values.is_empty() || values.iter().any(|v| v == literal) {
        return false;
    }
    let wanted = loose(literal);
    let mut same = values.iter().filter(|v| {
        let held = loose(v);
        !held.is_empty() && (held == wanted || singular(&held) == singular(&wanted))
    });
    let (Some(held), None) = (same.next(), same.next()) else { return false };
    value.value = Value::SingleQuotedString(held.clone());
    true
}

/// `sql` with each date compared with a period that `strftime` writes as a prefix of a date
/// (`'%Y'`, `'%Y-%m'`, `'%Y-%m-%d'`) cut to that period's length: `strftime('%Y-%m', d) >=
/// '2026-07-01' AND strftime('%Y-%m', d) < '2026-10-01'` becomes `>= '2026-07' … < '2026-10'`,
/// July to September, as meant; `= '2026-09-01'`, never true, becomes `= '2026-09'`. None when
/// there is none.
pub fn periods_as_written(sql: &str) -> Option<String> {
    let mut query = parse_query(sql)?;
    let mut changed = false;
    let _ = sqlparser::ast::visit_expressions_mut(&mut query, |expr| {
        match expr {
            Expr::BinaryOp { left, op, right } if is_comparison(op) => {
                if let Some(length) = period_length(left) {
                    changed |= cut_date(right, length);
                } else if let Some(length) = period_length(right) {
                    changed |= cut_date(left, length);
                }
            }
            Expr::Between { expr, low, high, .. } => {
                if let Some(length) = period_length(expr) {
                    let low = cut_date(low, length);
                    changed |= cut_date(high, length) | low;
                }
            }
            Expr::In { expr, target: InTarget::List(list), .. } => {
                if let Some(length) = period_length(expr) {
                    changed |= list.iter_mut().fold(false, |changed, item| cut_date(item, length) | changed);
                }
            }
            _ => {}
        }
        ControlFlow::<()>::Continue(())
    });
    changed.then(|| query.to_string())
}

/// How long the text of `strftime('%Y…', …)` is, for the formats that write a date's prefix.
fn period_length(expr: &Expr) -> Option<usize> {
    let Expr::Function(function) = expr else { return None };
    if !function.name.to_string().eq_ignore_ascii_case("strftime") {
        return None;
    }
    let Some(Expr::Value(format)) = plain_arguments(function).first().copied() else { return None };
    match &format.value {
        Value::SingleQuotedString(f) if f == "%Y" => Some(4),
        Value::SingleQuotedString(f) if f == "%Y-%m" => Some(7),
        Value::SingleQuotedString(f) if f == "%Y-%m-%d" => Some(10),
        _ => None,
    }
}

/// Cuts a date literal (`YYYY-MM-DD…`) longer than `length` to it; true when it did.
fn cut_date(expr: &mut Expr, length: usize) -> bool {
    let Expr::Value(value) = expr else { return false };
    let Value::SingleQuotedString(text) = &value.value else { return false };
    let bytes = text.as_bytes();
    let is_date = bytes.len() >= 10
        && bytes[..10]
            .iter()
            .enumerate()
            .all(|(i, b)| if i == 4 || i == 7 { *b == b'-' } else { b.is_ascii_digit() });
    if !is_date || text.len() <= length {
        return false;
    }
    value.value = Value::SingleQuotedString(text[..length].to_string());
    true
}

/// Lower-case letters and digits only.
fn loose(text: &str) -> String {
    text.chars().filter(|c| c.is_alphanumeric()).flat_map(char::to_lowercase).collect()
}

fn singular(word: &str) -> &str {
    word.strip_suffix('s').filter(|stem| stem.len() >= 3).unwrap_or(word)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> Catalog {
        let column = |name: &str, values: &[&str]| {
            let mut column = Column::new(name, "TEXT");
            column.sample_values = values.iter().map(|v| v.to_string()).collect();
            column
        };
        Catalog::from_tables(vec![
            Table::new("pets", vec![column("PetType", &["cat", "dog"]), column("PetID", &[])]),
            Table::new("has_pet", vec![column("PetID", &[]), column("StuID", &[])]),
            Table::new("programs", vec![column("summary", &["Bachelor", "Master", "PHD"])]),
            Table::new("addresses", vec![column("state", &["NorthCarolina", "Virginia"])]),
            Table::new("grades", vec![column("grade", &["A", "a", "B"])]),
        ])
    }

    #[test]
    fn a_literal_is_written_as_the_column_holds_it() {
        let catalog = catalog();
        for (sql, expected) in [
            ("SELECT COUNT(*) FROM pets WHERE PetType = 'Dog'", "SELECT COUNT(*) FROM pets WHERE PetType = 'dog'"),
            (
                "SELECT StuID FROM has_pet AS h JOIN pets AS p ON h.PetID = p.PetID AND p.PetType IN ('Cat', 'Dog')",
                "SELECT StuID FROM has_pet AS h JOIN pets AS p ON h.PetID = p.PetID AND p.PetType IN ('cat', 'dog')",
            ),
            (
                "SELECT 1 FROM programs WHERE NOT (summary <> 'Bachelors' OR 'phd' = summary)",
                "SELECT 1 FROM programs WHERE NOT (summary <> 'Bachelor' OR 'PHD' = summary)",
            ),
            (
                "SELECT COUNT(*) FROM pets WHERE PetID IN (SELECT PetID FROM pets WHERE PetType = 'Cat')",
                "SELECT COUNT(*) FROM pets WHERE PetID IN (SELECT PetID FROM pets WHERE PetType = 'cat')",
            ),
            ("SELECT * FROM addresses WHERE state = 'North Carolina'", "SELECT * FROM addresses WHERE state = 'NorthCarolina'"),
        ] {
            assert_eq!(values_as_held(sql, &catalog).as_deref(), Some(expected), "{sql}");
        }
    }

    #[test]
    fn a_day_compared_with_a_period_is_cut_to_the_period() {
        let sql = "SELECT SUM(spend) FROM stats WHERE strftime('%Y-%m', stat_date) >= '2026-07-01' \
                   AND strftime('%Y-%m', stat_date) < '2026-10-01' AND '2026' = strftime('%Y', stat_date) \
                   AND strftime('%Y-%m-%d', stat_date) IN ('2026-08-01 00:00:00') \
                   AND strftime('%Y-%m', stat_date) BETWEEN '2026-07-01' AND '2026-09-30'";
        assert_eq!(
            periods_as_written(sql).as_deref(),
            Some(
                "SELECT SUM(spend) FROM stats WHERE strftime('%Y-%m', stat_date) >= '2026-07' \
                 AND strftime('%Y-%m', stat_date) < '2026-10' AND '2026' = strftime('%Y', stat_date) \
                 AND strftime('%Y-%m-%d', stat_date) IN ('2026-08-01') \
                 AND strftime('%Y-%m', stat_date) BETWEEN '2026-07' AND '2026-09'"
            )
        );
        for sql in [
            "SELECT COUNT(*) FROM orders WHERE strftime('%Y-%m', ordered_at) = '2026-09'",
            "SELECT COUNT(*) FROM orders WHERE ordered_at >= '2026-09-01'",
            "SELECT COUNT(*) FROM orders WHERE strftime('%m', ordered_at) = '09'",
            "SELECT COUNT(*) FROM orders WHERE strftime('%Y-%m', ordered_at) = 'September'",
        ] {
            assert_eq!(periods_as_written(sql), None, "{sql}");
        }
    }

    #[test]
    fn literals_held_unknown_or_ambiguous_stay() {
        let catalog = catalog();
        for sql in [
            "SELECT COUNT(*) FROM pets WHERE PetType = 'dog'",
            // No value like it: the plausibility check's business.
            "SELECT COUNT(*) FROM pets WHERE PetType = 'hamster'",
            // Two values differ from it only in case.
            "SELECT COUNT(*) FROM grades WHERE grade = ' a' OR grade = 'B'",
            // LIKE ignores case already; a column without known values.
            "SELECT COUNT(*) FROM pets WHERE PetType LIKE 'Dog'",
            "SELECT COUNT(*) FROM pets WHERE PetID = 'Dog'",
        ] {
            assert_eq!(values_as_held(sql, &catalog), None, "{sql}");
        }
    }
}
