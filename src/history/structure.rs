//! The structure of a past query, read from its syntax tree: tables read, join edges
//! (`a.x = b.y`, normalised), filter columns with the kind of literal compared, GROUP BY
//! columns, aggregates, window use and CTE count; and the normalised form of the query
//! (literals replaced) that tells how often "the same" query ran.
//!
//! Columns are resolved against each SELECT's own FROM clause (aliases, or the one catalog
//! table that has the column); what cannot be resolved is left out rather than guessed.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::ControlFlow;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlparser::ast::{
    BinaryOperator, Expr, FunctionArg, FunctionArgExpr, FunctionArguments, GroupByExpr, Ident, InTarget,
    JoinConstraint, ObjectName, Query, Select, SelectItem, SetExpr, Statement, TableFactor, Value, Visit,
    VisitMut, Visitor, VisitorMut,
};
use sqlparser::dialect::SQLiteDialect;
use sqlparser::parser::Parser;

use crate::catalog::Catalog;

/// A column of a catalog table, as `table.column` (catalog spelling).
pub type ColumnRef = String;

/// An equality between columns of two tables, in a stable order (`a.x = b.y` with a < b).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct JoinEdge {
    pub left: ColumnRef,
    pub right: ColumnRef,
}

impl JoinEdge {
    fn new(a: ColumnRef, b: ColumnRef) -> JoinEdge {
        if a <= b {
            JoinEdge { left: a, right: b }
        } else {
            JoinEdge { left: b, right: a }
        }
    }
}

/// What a filter compares a column with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LiteralKind {
    Number,
    Text,
    /// A string that starts `YYYY-MM-DD`.
    Date,
    Null,
    /// `IN (...)` with literals.
    List,
    /// `BETWEEN` two literals.
    Range,
    /// A subquery or another expression.
    Other,
}

/// A filter on a column.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Filter {
    pub column: ColumnRef,
    pub kind: LiteralKind,
}

/// The structure of one query.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueryStructure {
    /// Catalog tables read, catalog spelling, sorted.
    pub tables: Vec<String>,
    pub joins: Vec<JoinEdge>,
    pub filters: Vec<Filter>,
    pub group_by: Vec<ColumnRef>,
    /// Aggregates as `sum(orders.total_amount)`, `count(*)`, `count(distinct users.user_id)`.
    pub aggregates: Vec<String>,
    pub window: bool,
    pub ctes: usize,
    /// SHA-256 of the query with literals replaced by `?` and identifiers lower-cased.
    pub normalized_hash: String,
}

pub(crate) const AGGREGATES: &[&str] =
    &["count", "sum", "avg", "min", "max", "total", "group_concat", "string_agg"];

/// The plain (unnamed, non-wildcard) arguments of a function call, in order.
pub(crate) fn plain_arguments(function: &sqlparser::ast::Function) -> Vec<&Expr> {
    let sqlparser::ast::FunctionArguments::List(list) = &function.args else { return Vec::new() };
    list.args
        .iter()
        .filter_map(|a| match a {
            sqlparser::ast::FunctionArg::Unnamed(sqlparser::ast::FunctionArgExpr::Expr(e)) => Some(e),
            _ => None,
        })
        .collect()
}

/// `=`, `<>`, `<`, `<=`, `>` or `>=`.
pub(crate) fn is_comparison(op: &BinaryOperator) -> bool {
    matches!(
        op,
        BinaryOperator::Eq
            | BinaryOperator::NotEq
            | BinaryOperator::Lt
            | BinaryOperator::LtEq
            | BinaryOperator::Gt
            | BinaryOperator::GtEq
    )
}

/// The one query `sql` holds (`None` for anything else: several statements, not a query, not
/// SQL).
pub(crate) fn parse_query(sql: &str) -> Option<Query> {
    let statements = Parser::new(&SQLiteDialect {})
        .with_recursion_limit(64)
        .try_with_sql(sql)
        .ok()?
        .parse_statements()
        .ok()?;
    match <[Statement; 1]>::try_from(statements) {
        Ok([Statement::Query(query)]) => Some(*query),
        _ => None,
    }
}

/// Reads the structure of `sql` (one SELECT statement; anything else gives `None`).
pub fn analyze(sql: &str, catalog: &Catalog) -> Option<QueryStructure> {
    let query = parse_query(sql)?;
    let query = &query;
    let mut collector = Collector { catalog, out: Found::default() };
    let _ = query.visit(&mut collector);
    let found = collector.out;
    Some(QueryStructure {
        tables: found.tables.into_iter().collect(),
        joins: found.joins.into_iter().collect(),
        filters: found.filters.into_iter().collect(),
        group_by: found.group_by.into_iter().collect(),
        aggregates: found.aggregates.into_iter().collect(),
        window: found.window,
        ctes: found.ctes,
        normalized_hash: normalized_hash(query),
    })
}

/// The hash of a query with every literal replaced by a placeholder and case folded, so that
/// the same query with other dates or IDs counts as the same.
fn normalized_hash(query: &Query) -> String {
    struct Blank;
    impl VisitorMut for Blank {
        type Break = ();
        fn post_visit_value(&mut self, value: &mut sqlparser::ast::ValueWithSpan) -> ControlFlow<()> {
            value.value = Value::Placeholder("?".into());
            ControlFlow::Continue(())
        }
    }
    let mut query = query.clone();
    let _ = VisitMut::visit(&mut query, &mut Blank);
    let text = query.to_string().to_lowercase();
    let text: Vec<&str> = text.split_whitespace().collect();
    format!("{:x}", Sha256::digest(text.join(" ").as_bytes()))
}

#[derive(Default)]
struct Found {
    tables: BTreeSet<String>,
    joins: BTreeSet<JoinEdge>,
    filters: BTreeSet<Filter>,
    group_by: BTreeSet<ColumnRef>,
    aggregates: BTreeSet<String>,
    window: bool,
    ctes: usize,
}

struct Collector<'c> {
    catalog: &'c Catalog,
    out: Found,
}

impl Visitor for Collector<'_> {
    type Break = ();

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
        if let Some(with) = &query.with {
            self.out.ctes += with.cte_tables.len();
        }
        self.selects(&query.body);
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
        if let Expr::Function(f) = expr {
            if f.over.is_some() {
                self.out.window = true;
            }
        }
        ControlFlow::Continue(())
    }
}

/// The SELECTs of a query body, across set operations (nested queries are visited on their
/// own).
pub(crate) fn selects_of(body: &SetExpr) -> Vec<&Select> {
    match body {
        SetExpr::Select(select) => vec![select],
        SetExpr::SetOperation { left, right, .. } => {
            let mut all = selects_of(left);
            all.extend(selects_of(right));
            all
        }
        _ => Vec::new(),
    }
}

impl Collector<'_> {
    fn selects(&mut self, body: &SetExpr) {
        for select in selects_of(body) {
            self.select(select);
        }
    }

    fn select(&mut self, select: &Select) {
        let scope = Scope::of(select, self.catalog);
        self.out.tables.extend(scope.aliases.values().cloned());
        let mut conditions = Vec::new();
        if let Some(selection) = &select.selection {
            conjuncts(selection, &mut conditions);
        }
        for table in &select.from {
            for join in &table.joins {
                match crate::validate::join_constraint(&join.join_operator) {
                    Some(JoinConstraint::On(on)) => conjuncts(on, &mut conditions),
                    Some(JoinConstraint::Using(columns)) => {
                        if let (Some(right), Some(column)) =
                            (factor_table(&join.relation, self.catalog), columns.first())
                        {
                            let name = column.to_string();
                            let left = scope.aliases.values().find(|t| {
                                **t != right
                                    && self.catalog.table(t).is_some_and(|t| t.column(&name).is_some())
                            });
                            if let Some(left) = left {
                                self.out.joins.insert(JoinEdge::new(
                                    column_ref(self.catalog, left, &name),
                                    column_ref(self.catalog, &right, &name),
                                ));
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
        for condition in conditions {
            self.condition(condition, &scope);
        }
        if let GroupByExpr::Expressions(exprs, _) = &select.group_by {
            for expr in exprs {
                if let Some(column) = scope.column(expr, self.catalog) {
                    self.out.group_by.insert(column);
                }
            }
        }
        for item in &select.projection {
            if let SelectItem::UnnamedExpr(expr) | SelectItem::ExprWithAlias { expr, .. } = item {
                self.aggregates(expr, &scope);
            }
        }
        if let Some(having) = &select.having {
            self.aggregates(having, &scope);
        }
    }

    fn condition(&mut self, expr: &Expr, scope: &Scope) {
        let kind = |e: &Expr| literal_kind(e);
        match expr {
            Expr::BinaryOp { left, op, right } => {
                if !is_comparison(op) {
                    return;
                }
                match (scope.column(left, self.catalog), scope.column(right, self.catalog)) {
                    (Some(a), Some(b)) if *op == BinaryOperator::Eq && table_of(&a) != table_of(&b) => {
                        self.out.joins.insert(JoinEdge::new(a, b));
                    }
                    // A column against a column of a derived table or CTE is a join to it, not a filter.
                    (Some(a), None) if !is_column(right) => {
                        self.out.filters.insert(Filter { column: a, kind: kind(right) });
                    }
                    (None, Some(b)) if !is_column(left) => {
                        self.out.filters.insert(Filter { column: b, kind: kind(left) });
                    }
                    _ => {}
                }
            }
            Expr::Like { expr, .. } | Expr::ILike { expr, .. } => {
                if let Some(column) = scope.column(expr, self.catalog) {
                    self.out.filters.insert(Filter { column, kind: LiteralKind::Text });
                }
            }
            Expr::In { expr, target, .. } => {
                if let Some(column) = scope.column(expr, self.catalog) {
                    let kind = match target {
                        InTarget::List(_) => LiteralKind::List,
                        _ => LiteralKind::Other,
                    };
                    self.out.filters.insert(Filter { column, kind });
                }
            }
            Expr::Between { expr, low, .. } => {
                if let Some(column) = scope.column(expr, self.catalog) {
                    let kind = match literal_kind(low) {
                        LiteralKind::Date => LiteralKind::Date,
                        _ => LiteralKind::Range,
                    };
                    self.out.filters.insert(Filter { column, kind });
                }
            }
            Expr::IsNull(e) | Expr::IsNotNull(e) => {
                if let Some(column) = scope.column(e, self.catalog) {
                    self.out.filters.insert(Filter { column, kind: LiteralKind::Null });
                }
            }
            Expr::Nested(inner) => self.condition(inner, scope),
            _ => {}
        }
    }

    /// Aggregate calls in `expr`, with their argument resolved to a catalog column.
    fn aggregates(&mut self, expr: &Expr, scope: &Scope) {
        let catalog = self.catalog;
        let mut found = Vec::new();
        let _ = sqlparser::ast::visit_expressions(expr, |e| {
            if let Expr::Function(f) = e {
                let name = f.name.to_string().to_lowercase();
                if AGGREGATES.contains(&name.as_str()) && f.over.is_none() {
                    let (distinct, argument) = match &f.args {
                        FunctionArguments::List(list) => (
                            list.duplicate_treatment
                                .is_some_and(|d| d == sqlparser::ast::DuplicateTreatment::Distinct),
                            list.args.first().map(|a| match a {
                                FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => {
                                    scope.column(e, catalog).unwrap_or_else(|| "expr".to_string())
                                }
                                _ => "*".to_string(),
                            }),
                        ),
                        _ => (false, None),
                    };
                    let distinct = if distinct { "distinct " } else { "" };
                    found.push(format!("{name}({distinct}{})", argument.unwrap_or_default()));
                }
            }
            ControlFlow::<()>::Continue(())
        });
        self.out.aggregates.extend(found);
    }
}

/// The FROM clause of one SELECT: alias (lower-cased) -> catalog table.
pub(crate) struct Scope {
    pub(crate) aliases: BTreeMap<String, String>,
}

impl Scope {
    pub(crate) fn of(select: &Select, catalog: &Catalog) -> Scope {
        let mut aliases = BTreeMap::new();
        let mut add = |factor: &TableFactor| {
            if let TableFactor::Table { name, alias, .. } = factor {
                if let Some(table) = catalog_table(name, catalog) {
                    let key = alias.as_ref().map(|a| a.name.value.clone()).unwrap_or_else(|| table.clone());
                    aliases.insert(key.to_lowercase(), table);
                }
            }
        };
        for table in &select.from {
            add(&table.relation);
            for join in &table.joins {
                add(&join.relation);
            }
        }
        Scope { aliases }
    }

    /// `table.column` for a column reference, if it resolves in this scope.
    pub(crate) fn column(&self, expr: &Expr, catalog: &Catalog) -> Option<ColumnRef> {
        match expr {
            Expr::Identifier(ident) => {
                let mut owners = self
                    .aliases
                    .values()
                    .filter(|t| catalog.table(t).is_some_and(|t| t.column(&ident.value).is_some()));
                let owner = owners.next()?;
                if owners.any(|other| other != owner) {
                    return None;
                }
                Some(column_ref(catalog, owner, &ident.value))
            }
            Expr::CompoundIdentifier(parts) => {
                let [.., table, column] = parts.as_slice() else { return None };
                let owner = self.aliases.get(&table.value.to_lowercase())?;
                catalog.table(owner)?.column(&column.value)?;
                Some(column_ref(catalog, owner, &column.value))
            }
            Expr::Nested(inner) => self.column(inner, catalog),
            _ => None,
        }
    }
}

fn catalog_table(name: &ObjectName, catalog: &Catalog) -> Option<String> {
    let parts: Vec<&Ident> = name.0.iter().filter_map(|p| p.as_ident()).collect();
    let last = parts.last()?;
    catalog.table(&last.value).map(|t| t.name.clone())
}

fn factor_table(factor: &TableFactor, catalog: &Catalog) -> Option<String> {
    match factor {
        TableFactor::Table { name, .. } => catalog_table(name, catalog),
        _ => None,
    }
}

/// `table.column` in catalog spelling.
fn column_ref(catalog: &Catalog, table: &str, column: &str) -> ColumnRef {
    let column = catalog
        .table(table)
        .and_then(|t| t.column(column))
        .map(|c| c.name.clone())
        .unwrap_or_else(|| column.to_string());
    format!("{table}.{column}")
}

fn is_column(expr: &Expr) -> bool {
    matches!(expr, Expr::Identifier(_) | Expr::CompoundIdentifier(_))
}

fn table_of(column: &str) -> &str {
    column.split_once('.').map(|(t, _)| t).unwrap_or(column)
}

/// Splits `a AND b AND c` into its parts.
pub(crate) fn conjuncts<'e>(expr: &'e Expr, out: &mut Vec<&'e Expr>) {
    match expr {
        Expr::BinaryOp { left, op: BinaryOperator::And, right } => {
            conjuncts(left, out);
            conjuncts(right, out);
        }
        Expr::Nested(inner) => conjuncts(inner, out),
        other => out.push(other),
    }
}

fn literal_kind(expr: &Expr) -> LiteralKind {
    match expr {
        Expr::Value(v) => match &v.value {
            Value::Number(..) => LiteralKind::Number,
            Value::Null => LiteralKind::Null,
            Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => {
                if crate::calendar::day_number(s.get(..10).unwrap_or(s)).is_some() {
                    LiteralKind::Date
                } else {
                    LiteralKind::Text
                }
            }
            _ => LiteralKind::Other,
        },
        Expr::UnaryOp { expr, .. } | Expr::Nested(expr) => literal_kind(expr),
        Expr::Function(f)
            if ["date", "datetime", "strftime"].contains(&f.name.to_string().to_lowercase().as_str()) =>
        {
            LiteralKind::Date
        }
        _ => LiteralKind::Other,
    }
}
