//! The validator: it turns untrusted SQL (`DraftSql`: LLM output, or SQL from a user or tool)
//! into a `ValidatedQuery`, the only form of SQL the executor accepts, or refuses with every
//! violation it found. It is pure — no IO — a function of (SQL text, catalog, policy,
//! principal).
//!
//! Stages, in order: size -> parse (the dialect of the catalog's `Engine`) -> depth (a bounded walk, before any
//! unbounded one) -> read-only and function checks (a walk of the whole tree) -> name
//! resolution with the policy (a scoped walk, as a database resolves tables and columns, that
//! also tracks which governed catalog columns each value derives from) -> rewriting (row
//! filters and masks, the row cap; on PostgreSQL, names for derived tables and `ROUND` in
//! `numeric`) -> rendering, where the statement to run is printed from the
//! checked and rewritten tree and must parse back to the same tree.
//!
//! Policy, per role (see `policy`):
//! - a table the role may not read (tier, `tables_denied`) is refused as `table_not_allowed`;
//!   a deprecated table is refused (`deprecated_table`) or warned about, naming its replacement;
//! - a column with a deny tag is refused (`forbidden_column`) wherever its values are used: a
//!   reference in any clause, or a `*` that carries it into the result, into a comparison
//!   (DISTINCT, UNION/INTERSECT/EXCEPT, USING, NATURAL, IN, scalar subqueries) or into ORDER
//!   BY / GROUP BY by position. Lineage is tracked through CTEs, derived tables and set
//!   operations, so a column renamed by a CTE is still the column it came from. A `*` whose
//!   values are never used (`WITH c AS (SELECT * FROM users) SELECT user_id FROM c`) passes;
//!   the executor reads denied columns as NULL anyway;
//! - a table with row filters or masked columns is read, at every place it is read, through
//!   `(SELECT ... FROM main.t WHERE <predicate>) AS <alias>`: masked columns are the constant
//!   `'***'` there, so every clause (WHERE and JOIN included) sees the mask, never the value;
//!   predicate parameters are string-literal nodes, never spliced text;
//! - the outermost LIMIT is lowered to the row cap, or added.
//!
//! It does not execute SQL, rank tables or authenticate anyone.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::ControlFlow;
use std::sync::OnceLock;

use serde::Serialize;
use sqlparser::ast::{
    BinaryOperator, Cte, DataType, Distinct, Expr, Function, GroupByExpr, Ident, InTarget, JoinConstraint,
    JoinOperator, LimitClause, NamedWindowExpr, ObjectName, ObjectNamePart, Offset, OffsetRows, OrderBy,
    OrderByExpr, OrderByKind, Query, Select, SelectItem, SelectItemQualifiedWildcardKind, SetExpr,
    SetOperator, SetQuantifier, Statement, TableAlias, TableFactor, TableWithJoins, TypedString,
    UnaryOperator, Value, Values, Visit, VisitMut, Visitor, VisitorMut, WildcardAdditionalOptions,
};
use sqlparser::dialect::{Dialect, PostgreSqlDialect, SQLiteDialect};
use sqlparser::parser::{Parser, ParserError};
use sqlparser::tokenizer::{Token, Tokenizer};

use crate::catalog::{closest, suggestion, Catalog, Engine};
use crate::policy::{ColumnRule, DeprecatedRule, Policy, Principal, TableDenial, MASK};

/// SQL text nobody has checked yet: LLM output, or SQL from a user or tool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DraftSql(String);

impl DraftSql {
    pub fn new(text: impl Into<String>) -> Self {
        DraftSql(text.into())
    }

    pub fn text(&self) -> &str {
        &self.0
    }
}

/// SQL that passed validation. Only this module can construct it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidatedQuery {
    engine: Engine,
    sql: String,
    tables: Vec<String>,
    warnings: Vec<Violation>,
    governance: Governance,
    hidden_columns: Vec<(String, String)>,
    cte_names: Vec<String>,
}

impl ValidatedQuery {
    /// The statement to execute, printed from the checked and rewritten tree: what runs is what
    /// was checked, with the role's row filters, masks and row cap applied.
    pub fn sql(&self) -> &str {
        &self.sql
    }

    /// The engine whose dialect and functions it was checked for: only that engine's executor
    /// runs it.
    pub fn engine(&self) -> Engine {
        self.engine
    }

    /// Catalog tables the query reads, sorted, without duplicates, in catalog spelling.
    pub fn tables(&self) -> &[String] {
        &self.tables
    }

    /// Findings that do not block the query (a deprecated table, a masked column).
    pub fn warnings(&self) -> &[Violation] {
        &self.warnings
    }

    /// How the role's policy shaped the query.
    pub fn governance(&self) -> &Governance {
        &self.governance
    }

    /// (table, column) pairs of the tables read that the role may not read: the executor has
    /// SQLite read them as NULL, a second wall behind the validator.
    pub fn hidden_columns(&self) -> &[(String, String)] {
        &self.hidden_columns
    }

    /// Lower-cased names of the CTEs the query defines: SQLite reports a read of one like a
    /// read of a table, so the executor's wall needs them to tell the two apart.
    pub fn cte_names(&self) -> &[String] {
        &self.cte_names
    }
}

/// The lower-cased names of every CTE a statement defines, at any depth.
fn cte_names(query: &Query) -> Vec<String> {
    struct Names(BTreeSet<String>);
    impl Visitor for Names {
        type Break = ();
        fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
            for cte in query.with.iter().flat_map(|w| &w.cte_tables) {
                self.0.insert(cte.alias.name.value.to_lowercase());
            }
            ControlFlow::Continue(())
        }
    }
    let mut names = Names(BTreeSet::new());
    let _ = query.visit(&mut names);
    names.0.into_iter().collect()
}

/// A `ValidatedQuery` that nothing checked, for the executor's tests of its own walls.
#[cfg(test)]
pub(crate) fn unchecked_for_tests(sql: &str, tables: &[&str], hidden: &[(&str, &str)]) -> ValidatedQuery {
    let cte_names = parse_with_recursion_limit(sql, 50, Engine::Sqlite)
        .ok()
        .and_then(|statements| match statements.into_iter().next() {
            Some(Statement::Query(query)) => Some(self::cte_names(&query)),
            _ => None,
        })
        .unwrap_or_default();
    ValidatedQuery {
        engine: Engine::Sqlite,
        cte_names,
        sql: sql.to_string(),
        tables: tables.iter().map(|t| t.to_string()).collect(),
        warnings: Vec::new(),
        governance: Governance::default(),
        hidden_columns: hidden.iter().map(|(t, c)| (t.to_string(), c.to_string())).collect(),
    }
}

/// What the policy did to a query that passed, for the answer and the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, utoipa::ToSchema)]
pub struct Governance {
    /// The role whose policy was applied.
    pub role: String,
    /// Result columns whose values derive from a masked column (they hold `'***'`, or a value
    /// computed from it).
    pub masked_columns: Vec<String>,
    /// Row filters applied, with bound values: `orders: country_code = 'DE'`.
    pub row_filters: Vec<String>,
    /// The row cap applied to the outermost LIMIT.
    pub row_cap: Option<u64>,
}

/// One thing wrong with a draft, said so that a person (or the LLM) can fix it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Violation {
    pub code: ViolationCode,
    /// What is wrong.
    pub message: String,
    /// The offending part of the SQL, as written or as printed back.
    pub fragment: String,
    /// How to fix it.
    pub hint: String,
}

/// Stable kinds of violation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ViolationCode {
    /// The draft contains no statement.
    Empty,
    /// The draft is longer than `Limits::max_sql_bytes`.
    TooLarge,
    /// The draft nests deeper than `Limits::max_depth`.
    TooDeep,
    /// The draft is not SQL the SQLite dialect accepts, or uses syntax the validator cannot check.
    ParseError,
    /// The draft holds more than one statement.
    MultipleStatements,
    /// The draft would write, change settings, or lock: only reading is allowed.
    NotReadOnly,
    /// A function that reads files, loads code, exposes internals or allocates without bound.
    ForbiddenFunction,
    /// A function that is not on the allow-list.
    UnknownFunction,
    /// A table that is neither in the catalog nor a CTE in scope.
    UnknownTable,
    /// A column that no table in scope has.
    UnknownColumn,
    /// A name the select list gives (`expr AS name`), read inside that same list, where SQLite
    /// does not resolve it; Quarry writes the named expression out in its place.
    AliasInItsList,
    /// A column that several tables in scope have.
    AmbiguousColumn,
    /// Policy: a table the role may not read (tier, denied table, or a row filter whose
    /// attribute the principal lacks).
    TableNotAllowed,
    /// Policy: a column with a tag the role may not read.
    ForbiddenColumn,
    /// Policy: a deprecated table; a refusal or, when the role is only warned, a warning.
    DeprecatedTable,
    /// Policy (warning only): a column the role reads masked.
    MaskedColumn,
    /// A table outside the ones the analyst picked for this question (repairable: the model is
    /// asked again with the picks).
    TableNotPicked,
}

impl ViolationCode {
    /// The stable snake_case code, as serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            ViolationCode::Empty => "empty",
            ViolationCode::TooLarge => "too_large",
            ViolationCode::TooDeep => "too_deep",
            ViolationCode::ParseError => "parse_error",
            ViolationCode::MultipleStatements => "multiple_statements",
            ViolationCode::NotReadOnly => "not_read_only",
            ViolationCode::ForbiddenFunction => "forbidden_function",
            ViolationCode::UnknownFunction => "unknown_function",
            ViolationCode::UnknownTable => "unknown_table",
            ViolationCode::UnknownColumn => "unknown_column",
            ViolationCode::AliasInItsList => "alias_in_its_list",
            ViolationCode::AmbiguousColumn => "ambiguous_column",
            ViolationCode::TableNotAllowed => "table_not_allowed",
            ViolationCode::ForbiddenColumn => "forbidden_column",
            ViolationCode::DeprecatedTable => "deprecated_table",
            ViolationCode::MaskedColumn => "masked_column",
            ViolationCode::TableNotPicked => "table_not_picked",
        }
    }

    /// Whether the code is a policy decision: a refusal with it is final, never repaired
    /// (a repair would be a search for a way around the policy).
    pub fn is_policy(self) -> bool {
        matches!(
            self,
            ViolationCode::TableNotAllowed
                | ViolationCode::ForbiddenColumn
                | ViolationCode::DeprecatedTable
                | ViolationCode::MaskedColumn
        )
    }
}

/// The validator refused: every violation found, not just the first.
#[derive(Debug, Clone, thiserror::Error, Serialize)]
#[error("query refused: {}", list_messages(.violations))]
pub struct Refusal {
    pub violations: Vec<Violation>,
}

impl Refusal {
    /// Whether any violation is a policy decision (see `ViolationCode::is_policy`).
    pub fn is_policy(&self) -> bool {
        self.violations.iter().any(|v| v.code.is_policy())
    }

    /// The names a select list gives and reads in that same list (`AliasInItsList`).
    pub fn aliases_read_in_their_list(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .violations
            .iter()
            .filter(|v| v.code == ViolationCode::AliasInItsList)
            .map(|v| v.fragment.clone())
            .collect();
        names.sort();
        names.dedup();
        names
    }
}

fn list_messages(violations: &[Violation]) -> String {
    let messages: Vec<&str> = violations.iter().map(|v| v.message.as_str()).collect();
    messages.join("; ")
}

/// The refusal of a validated query that reads tables outside `picked` (the tables an analyst
/// chose for the question), or None when it reads only those.
pub fn outside_picks(query: &ValidatedQuery, picked: &[String]) -> Option<Refusal> {
    let violations: Vec<Violation> = query
        .tables()
        .iter()
        .filter(|t| !picked.iter().any(|p| p.eq_ignore_ascii_case(t)))
        .map(|t| {
            violation(
                ViolationCode::TableNotPicked,
                format!("'{t}' is not among the tables picked for this question"),
                t.clone(),
                format!("use only {}", picked.join(", ")),
            )
        })
        .collect();
    (!violations.is_empty()).then_some(Refusal { violations })
}

/// Bounds on what the validator accepts, so that no input can exhaust it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest SQL text accepted, in bytes.
    pub max_sql_bytes: usize,
    /// Deepest nesting of expressions, queries and set operations accepted.
    pub max_depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_sql_bytes: 20_000, max_depth: 40 }
    }
}

/// Checks `draft` for `principal` under `policy`, with the default limits.
pub fn validate(
    draft: &DraftSql,
    catalog: &Catalog,
    policy: &Policy,
    principal: &Principal,
) -> Result<ValidatedQuery, Refusal> {
    validate_with(draft, catalog, policy, principal, &Limits::default())
}

/// Checks `draft` against `catalog` for `principal` under `policy`: a `ValidatedQuery` to run
/// (rewritten for the policy), or every violation found.
pub fn validate_with(
    draft: &DraftSql,
    catalog: &Catalog,
    policy: &Policy,
    principal: &Principal,
    limits: &Limits,
) -> Result<ValidatedQuery, Refusal> {
    let text = draft.text();
    let engine = catalog.engine();
    check_size(text, limits)?;
    let statements = parse(text, limits, engine)?;
    let mut query = single_query(statements, text)?;
    let _ = VisitMut::visit(&mut query, &mut InTableExpander);

    let mut safety = SafetyCheck::new(engine);
    let _ = query.visit(&mut safety);
    let mut resolver = Resolver::new(catalog, policy, principal);
    let outputs = resolver.resolve_query(&query, None);
    resolver.consume_outputs(&outputs, None);

    let mut violations = safety.violations;
    violations.append(&mut resolver.violations);
    if violations.is_empty() && resolver.relations_resolved != safety.relations_seen {
        violations.push(unsupported(&query.to_string()));
    }
    if violations.is_empty() && policy.restricts_columns() {
        if let Some(fragment) = resolver.unknown_lookup.take() {
            violations.push(violation(
                ViolationCode::ParseError,
                format!(
                    "the validator cannot tell which columns '{fragment}' reads, so it cannot apply \
                     the column rules of role '{}'",
                    policy.role()
                ),
                fragment,
                "name the columns of CTEs and subqueries explicitly; avoid * over recursive CTEs",
            ));
        }
    }
    if !violations.is_empty() {
        return Err(Refusal { violations: deduplicated(violations) });
    }
    let masked_columns = outputs
        .iter()
        .flatten()
        .filter(|col| col.sources.iter().any(|&s| matches!(resolver.governed[s].rule, ColumnRule::Mask(_))))
        .map(|col| col.name.clone())
        .collect();
    let mut governance = Governance {
        role: policy.role().to_string(),
        masked_columns,
        row_filters: resolver.applied_filters(),
        row_cap: None,
    };
    rewrite_views(&mut query, &resolver.rewrite_sites, &resolver.reads);
    if let Some(cap) = policy.row_cap() {
        apply_row_cap(&mut query, cap);
        governance.row_cap = Some(cap);
    }
    if engine == Engine::Postgres {
        name_derived_tables(&mut query);
        round_in_numeric(&mut query);
    }
    let sql = render(&query, limits, engine)?;
    Ok(ValidatedQuery {
        engine,
        cte_names: cte_names(&query),
        sql,
        hidden_columns: resolver.hidden_columns(),
        tables: resolver.tables.into_iter().collect(),
        warnings: deduplicated(resolver.warnings),
        governance,
    })
}

mod ast;
mod parse;
mod resolve;
mod rewrite;
mod roles;
mod safety;
#[cfg(test)]
mod tests;

use ast::*;
use parse::*;
use resolve::*;
use rewrite::*;
use safety::*;

pub use ast::join_constraint;
use rewrite::check_row_filter;
pub use roles::check_roles;
pub use safety::is_allowed_function;
