//! The validator: it turns untrusted SQL (`DraftSql`: LLM output, or SQL from a user or tool)
//! into a `ValidatedQuery`, the only form of SQL the executor accepts, or refuses with every
//! violation it found. It is pure — no IO — a function of (SQL text, catalog, policy,
//! principal).
//!
//! Stages, in order: size -> parse (SQLite dialect) -> depth (a bounded walk, before any
//! unbounded one) -> read-only and function checks (a walk of the whole tree) -> name
//! resolution with the policy (a scoped walk, as a database resolves tables and columns, that
//! also tracks which governed catalog columns each value derives from) -> rewriting (row
//! filters and masks, the row cap) -> rendering, where the statement to run is printed from the
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
    BinaryOperator, Cte, Distinct, Expr, Function, GroupByExpr, Ident, InTarget, JoinConstraint,
    JoinOperator, LimitClause, NamedWindowExpr, ObjectName, ObjectNamePart, OrderBy, OrderByExpr,
    OrderByKind, Query, Select, SelectItem, SelectItemQualifiedWildcardKind, SetExpr, SetOperator,
    SetQuantifier, Statement, TableAlias, TableFactor, TableWithJoins, UnaryOperator, Value, Values, Visit,
    VisitMut, Visitor, VisitorMut, WildcardAdditionalOptions,
};
use sqlparser::dialect::SQLiteDialect;
use sqlparser::parser::{Parser, ParserError};
use sqlparser::tokenizer::{Token, Tokenizer};

use crate::catalog::{closest, suggestion, Catalog};
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
    let cte_names = parse_with_recursion_limit(sql, 50)
        .ok()
        .and_then(|statements| match statements.into_iter().next() {
            Some(Statement::Query(query)) => Some(self::cte_names(&query)),
            _ => None,
        })
        .unwrap_or_default();
    ValidatedQuery {
        cte_names,
        sql: sql.to_string(),
        tables: tables.iter().map(|t| t.to_string()).collect(),
        warnings: Vec::new(),
        governance: Governance::default(),
        hidden_columns: hidden.iter().map(|(t, c)| (t.to_string(), c.to_string())).collect(),
    }
}

/// What the policy did to a query that passed, for the answer and the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
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
    check_size(text, limits)?;
    let statements = parse(text, limits)?;
    let mut query = single_query(statements, text)?;
    let _ = VisitMut::visit(&mut query, &mut InTableExpander);

    let mut safety = SafetyCheck::default();
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
    let sql = render(&query, limits)?;
    Ok(ValidatedQuery {
        cte_names: cte_names(&query),
        sql,
        hidden_columns: resolver.hidden_columns(),
        tables: resolver.tables.into_iter().collect(),
        warnings: deduplicated(resolver.warnings),
        governance,
    })
}

// --- size, parse, depth --------------------------------------------------------------------------

fn refuse(violation: Violation) -> Refusal {
    Refusal { violations: vec![violation] }
}

fn violation(
    code: ViolationCode,
    message: impl Into<String>,
    fragment: impl Into<String>,
    hint: impl Into<String>,
) -> Violation {
    Violation { code, message: message.into(), fragment: fragment.into(), hint: hint.into() }
}

fn check_size(text: &str, limits: &Limits) -> Result<(), Refusal> {
    if text.trim().is_empty() {
        return Err(refuse(violation(
            ViolationCode::Empty,
            "the SQL is empty",
            "",
            "write one SELECT query",
        )));
    }
    if text.len() > limits.max_sql_bytes {
        return Err(refuse(violation(
            ViolationCode::TooLarge,
            format!(
                "the SQL is {} bytes long, more than the {} allowed",
                text.len(),
                limits.max_sql_bytes
            ),
            excerpt(text, 60),
            "write a shorter query: select only the columns needed, use a CTE instead of repeating expressions",
        )));
    }
    Ok(())
}

fn too_deep(text: &str, limits: &Limits) -> Refusal {
    refuse(violation(
        ViolationCode::TooDeep,
        format!("the SQL nests more than {} levels deep", limits.max_depth),
        excerpt(text, 60),
        "flatten it: fewer nested parentheses and subqueries, a CTE (WITH ...) for each step",
    ))
}

/// Parses with the SQLite dialect, then measures depth with a walk that stops at the limit, so
/// that no later walk (or `Display`) recurses deeper than that.
fn parse(text: &str, limits: &Limits) -> Result<Vec<Statement>, Refusal> {
    let statements = match parse_with_recursion_limit(text, limits.max_depth) {
        Ok(statements) => statements,
        Err(ParserError::RecursionLimitExceeded) => return Err(too_deep(text, limits)),
        Err(ParserError::TokenizerError(message)) => return Err(parse_error(text, &message)),
        Err(ParserError::ParserError(message)) => {
            // sqlparser sometimes reports its recursion limit as a syntax error. Parsing again
            // with a limit no input can reach tells the two apart; the parser grows its stack on
            // the heap, and the tree it builds is taken apart without recursion.
            if let Ok(deep) = parse_with_recursion_limit(text, limits.max_sql_bytes) {
                dismantle(deep);
                return Err(too_deep(text, limits));
            }
            return Err(parse_error(text, &message));
        }
    };
    let mut probe = DepthProbe { depth: 0, max_depth: limits.max_depth, entered: Vec::new() };
    if statements.visit(&mut probe).is_break() {
        dismantle(statements);
        return Err(too_deep(text, limits));
    }
    Ok(statements)
}

fn parse_with_recursion_limit(text: &str, limit: usize) -> Result<Vec<Statement>, ParserError> {
    Parser::new(&SQLiteDialect {})
        .with_recursion_limit(limit)
        .try_with_sql(text)
        .and_then(|mut parser| parser.parse_statements())
}

/// Statements SQLite has besides queries; a draft starting with one is refused as a write even
/// when sqlparser cannot parse the rest.
const NOT_QUERY_KEYWORDS: &str = "\
    ALTER ANALYZE ATTACH BEGIN COMMIT CREATE DELETE DETACH DROP END INSERT PRAGMA REINDEX \
    RELEASE REPLACE ROLLBACK SAVEPOINT UPDATE UPSERT VACUUM";

fn parse_error(text: &str, message: &str) -> Refusal {
    let leading = leading_word(text);
    if NOT_QUERY_KEYWORDS.split_whitespace().any(|k| k == leading) {
        return refuse(violation(
            ViolationCode::NotReadOnly,
            format!("{leading} statements are not allowed: only SELECT queries may run"),
            excerpt(text, 60),
            "write a SELECT query; data, schema and settings cannot be changed here",
        ));
    }
    refuse(violation(
        ViolationCode::ParseError,
        format!("the SQL does not parse: {message}"),
        fragment_at_location(text, message),
        "write one SQLite SELECT statement; check commas, parentheses and quotes near the fragment",
    ))
}

/// The first word of the SQL after whitespace and comments, upper-cased.
fn leading_word(text: &str) -> String {
    let tokens = Tokenizer::new(&SQLiteDialect {}, text).tokenize().unwrap_or_default();
    tokens
        .into_iter()
        .find(|token| !matches!(token, Token::Whitespace(_)))
        .map(|token| match token {
            Token::Word(word) => word.value.to_ascii_uppercase(),
            _ => String::new(),
        })
        .unwrap_or_default()
}

/// Counts nesting on the way down and stops as soon as it passes the limit.
struct DepthProbe {
    depth: usize,
    max_depth: usize,
    entered: Vec<usize>,
}

impl DepthProbe {
    fn enter(&mut self, levels: usize) -> ControlFlow<()> {
        self.depth += levels;
        self.entered.push(levels);
        if self.depth > self.max_depth {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    }

    fn leave(&mut self) -> ControlFlow<()> {
        if let Some(levels) = self.entered.pop() {
            self.depth -= levels;
        }
        ControlFlow::Continue(())
    }
}

impl Visitor for DepthProbe {
    type Break = ();

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
        self.enter(1 + set_operation_depth(&query.body))
    }
    fn post_visit_query(&mut self, _: &Query) -> ControlFlow<()> {
        self.leave()
    }
    fn pre_visit_table_factor(&mut self, _: &TableFactor) -> ControlFlow<()> {
        self.enter(1)
    }
    fn post_visit_table_factor(&mut self, _: &TableFactor) -> ControlFlow<()> {
        self.leave()
    }
    fn pre_visit_expr(&mut self, _: &Expr) -> ControlFlow<()> {
        self.enter(1)
    }
    fn post_visit_expr(&mut self, _: &Expr) -> ControlFlow<()> {
        self.leave()
    }
    fn pre_visit_statement(&mut self, _: &Statement) -> ControlFlow<()> {
        self.enter(1)
    }
    fn post_visit_statement(&mut self, _: &Statement) -> ControlFlow<()> {
        self.leave()
    }
}

/// How deep a chain of UNION/EXCEPT/INTERSECT goes, counted without recursion.
fn set_operation_depth(body: &SetExpr) -> usize {
    let mut deepest = 0;
    let mut pending = vec![(body, 0)];
    while let Some((node, depth)) = pending.pop() {
        deepest = deepest.max(depth);
        if let SetExpr::SetOperation { left, right, .. } = node {
            pending.push((left, depth + 1));
            pending.push((right, depth + 1));
        }
    }
    deepest
}

/// Drops a tree too deep for the recursive `Drop` of the AST: each expression and each set
/// operation is moved out of its parent (children first) into a flat list, so that no drop
/// recurses. The walk itself grows its stack on the heap when needed (sqlparser's visitors do).
fn dismantle(mut statements: Vec<Statement>) {
    let mut parts = Dismantler { exprs: Vec::new(), set_exprs: Vec::new() };
    let _ = VisitMut::visit(&mut statements, &mut parts);
    drop(statements);
    drop(parts);
}

struct Dismantler {
    exprs: Vec<Expr>,
    set_exprs: Vec<SetExpr>,
}

fn empty_set_expr() -> SetExpr {
    SetExpr::Values(Values { explicit_row: false, value_keyword: false, rows: Vec::new() })
}

impl VisitorMut for Dismantler {
    type Break = ();

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        self.exprs.push(std::mem::replace(expr, Expr::value(Value::Null)));
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        let mut pending = vec![std::mem::replace(query.body.as_mut(), empty_set_expr())];
        while let Some(node) = pending.pop() {
            match node {
                SetExpr::SetOperation { mut left, mut right, .. } => {
                    pending.push(std::mem::replace(left.as_mut(), empty_set_expr()));
                    pending.push(std::mem::replace(right.as_mut(), empty_set_expr()));
                }
                leaf => self.set_exprs.push(leaf),
            }
        }
        ControlFlow::Continue(())
    }
}

fn single_query(statements: Vec<Statement>, text: &str) -> Result<Query, Refusal> {
    let mut violations = Vec::new();
    if statements.len() > 1 {
        violations.push(violation(
            ViolationCode::MultipleStatements,
            format!("the SQL holds {} statements; only one is allowed", statements.len()),
            excerpt(text, 60),
            "send a single SELECT statement, with no ';' between statements",
        ));
    }
    let mut queries = Vec::new();
    for statement in statements {
        match statement {
            Statement::Query(query) => queries.push(*query),
            other => {
                let rendered = other.to_string();
                violations.push(violation(
                    ViolationCode::NotReadOnly,
                    format!(
                        "{} statements are not allowed: only SELECT queries may run",
                        first_word(&rendered)
                    ),
                    excerpt(&rendered, 60),
                    "write a SELECT query; data, schema and settings cannot be changed here",
                ));
            }
        }
    }
    match (violations.is_empty(), queries.pop()) {
        (true, Some(query)) => Ok(query),
        (true, None) => Err(refuse(violation(
            ViolationCode::Empty,
            "the SQL contains no statement",
            excerpt(text, 60),
            "write one SELECT query",
        ))),
        (false, _) => Err(Refusal { violations }),
    }
}

/// Prints the checked tree, and makes sure the printed SQL means the same tree.
fn render(query: &Query, limits: &Limits) -> Result<String, Refusal> {
    let sql = query.to_string();
    match parse_with_recursion_limit(&sql, limits.max_sql_bytes).as_deref() {
        Ok([Statement::Query(again)]) if **again == *query => Ok(sql),
        _ => Err(refuse(unsupported(&sql))),
    }
}

fn unsupported(fragment: &str) -> Violation {
    violation(
        ViolationCode::ParseError,
        "the SQL uses syntax the validator cannot check",
        excerpt(fragment, 60),
        "write plain SQLite: SELECT with joins, subqueries, CTEs, GROUP BY, ORDER BY, LIMIT",
    )
}

// --- read-only and function checks ---------------------------------------------------------------

/// SQLite functions that only compute from their arguments (scalar, aggregate, window, date,
/// JSON, math).
const ALLOWED_FUNCTIONS: &str = "\
    -> ->> abs acos asin atan atan2 avg ceil ceiling char coalesce concat concat_ws cos count \
    cume_dist current_date current_time current_timestamp date datetime degrees dense_rank exp \
    first_value floor format glob group_concat hex ifnull iif instr json json_array \
    json_array_length json_extract json_group_array json_group_object json_object json_type \
    json_valid julianday lag last_value lead length like likelihood likely ln log log10 log2 \
    lower ltrim max min mod nth_value ntile nullif octet_length percent_rank pi pow power \
    printf quote radians random rank replace round row_number rtrim sign sin sqrt strftime \
    string_agg substr substring sum tan time timediff total trim trunc typeof unhex unicode \
    unixepoch unlikely upper";

/// Functions that touch files, load code, expose internals or allocate without bound.
const FORBIDDEN_FUNCTIONS: &str = "\
    load_extension readfile writefile edit fsdir lsmode zipfile sqlar_compress \
    sqlar_uncompress fts3_tokenizer randomblob zeroblob";

fn is_forbidden_function(name: &str) -> bool {
    FORBIDDEN_FUNCTIONS.split_whitespace().any(|f| f == name) || name.starts_with("sqlite_")
}

/// Whether a function may run, by name, case-insensitively: the allow-list the validator
/// enforces, for the executor's second wall (SQLite's authorizer sees every call, operators
/// such as LIKE, GLOB and -> included).
pub fn is_allowed_function(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    !is_forbidden_function(&lower) && ALLOWED_FUNCTIONS.split_whitespace().any(|f| f == lower)
}

/// Walks the whole tree, whatever the clause: writes, locks and functions are refused wherever
/// they hide. Also counts table references, to prove the resolver saw each one.
#[derive(Default)]
struct SafetyCheck {
    violations: Vec<Violation>,
    relations_seen: usize,
}

impl SafetyCheck {
    fn not_read_only(&mut self, what: &str, fragment: String) {
        self.violations.push(violation(
            ViolationCode::NotReadOnly,
            format!("{what} would change the database; only reading is allowed"),
            excerpt(&fragment, 60),
            "remove it: write a plain SELECT query",
        ));
    }

    fn check_function(&mut self, function: &Function) {
        let parts = name_parts(&function.name);
        let [single] = parts.as_slice() else {
            self.violations.push(violation(
                ViolationCode::UnknownFunction,
                format!("'{}' is not a known function", function.name),
                excerpt(&function.to_string(), 60),
                "call built-in SQLite functions by their plain name",
            ));
            return;
        };
        let lower = single.value.to_ascii_lowercase();
        if is_forbidden_function(&lower) {
            self.violations.push(violation(
                ViolationCode::ForbiddenFunction,
                format!(
                    "function '{}' is forbidden: it can read files, load code, expose database \
                     internals or allocate without bound",
                    single.value
                ),
                excerpt(&function.to_string(), 60),
                "remove it; only functions that compute from their arguments are allowed",
            ));
        } else if !ALLOWED_FUNCTIONS.split_whitespace().any(|f| f == lower) {
            let named = ALLOWED_FUNCTIONS.split_whitespace().filter(|f| f.starts_with(char::is_alphabetic));
            let hint = match closest(&lower, named) {
                Some(near) => format!("did you mean '{near}'? Only common SQLite functions are allowed"),
                None => {
                    "use a built-in SQLite function (aggregate, string, date, math, window, JSON)".to_string()
                }
            };
            self.violations.push(violation(
                ViolationCode::UnknownFunction,
                format!("'{}' is not an allowed function", single.value),
                excerpt(&function.to_string(), 60),
                hint,
            ));
        }
    }

    fn table_function(&mut self, name: &str, fragment: String) {
        self.violations.push(violation(
            ViolationCode::ForbiddenFunction,
            format!("table-valued function '{name}' is not allowed"),
            excerpt(&fragment, 60),
            "read from catalog tables only (FROM table_name)",
        ));
    }
}

impl Visitor for SafetyCheck {
    type Break = ();

    fn pre_visit_statement(&mut self, statement: &Statement) -> ControlFlow<()> {
        let rendered = statement.to_string();
        let what = format!("a nested {} statement", first_word(&rendered));
        self.not_read_only(&what, rendered);
        ControlFlow::Continue(())
    }

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
        if !query.locks.is_empty() {
            self.not_read_only("a locking clause (FOR UPDATE/SHARE)", query.to_string());
        }
        let mut pending = vec![query.body.as_ref()];
        while let Some(body) = pending.pop() {
            match body {
                SetExpr::SetOperation { left, right, .. } => {
                    pending.push(left);
                    pending.push(right);
                }
                SetExpr::Table(table) => self.not_read_only("a TABLE statement", table.to_string()),
                _ => {}
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_select(&mut self, select: &Select) -> ControlFlow<()> {
        if let Some(into) = &select.into {
            self.not_read_only("SELECT ... INTO (it creates a table)", into.to_string());
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_relation(&mut self, _: &ObjectName) -> ControlFlow<()> {
        self.relations_seen += 1;
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<()> {
        match factor {
            TableFactor::Table { name, args: Some(_), .. } | TableFactor::Function { name, .. } => {
                self.table_function(&name.to_string(), factor.to_string());
            }
            TableFactor::TableFunction { .. }
            | TableFactor::UNNEST { .. }
            | TableFactor::JsonTable { .. }
            | TableFactor::OpenJsonTable { .. }
            | TableFactor::XmlTable { .. } => {
                let rendered = factor.to_string();
                self.table_function(first_word(&rendered), rendered.clone());
            }
            _ => {}
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
        match expr {
            Expr::Function(function) => self.check_function(function),
            Expr::In { target: InTarget::Table { name, args: Some(_) }, .. } => {
                self.table_function(&name.to_string(), expr.to_string());
            }
            Expr::Value(value) if matches!(value.value, Value::Placeholder(_)) => {
                self.violations.push(violation(
                    ViolationCode::ParseError,
                    format!("'{value}' is a parameter, and nothing binds parameters here"),
                    value.to_string(),
                    "write the value itself, e.g. 'DE' or 42",
                ));
            }
            _ => {}
        }
        ControlFlow::Continue(())
    }
}

// --- name resolution -----------------------------------------------------------------------------

/// The governed catalog columns (denied or masked for the role) a value derives from, as
/// indices into `Resolver::governed`. Empty for nearly every value, so cheap to carry.
type Sources = Vec<usize>;

fn add_sources(into: &mut Sources, more: &[usize]) {
    for source in more {
        if !into.contains(source) {
            into.push(*source);
        }
    }
}

/// A column of a relation or of a result: its name, and the governed columns its values
/// derive from.
#[derive(Debug, Clone)]
struct Col {
    name: String,
    sources: Sources,
}

impl Col {
    fn named(name: impl Into<String>) -> Col {
        Col { name: name.into(), sources: Vec::new() }
    }
}

fn find_col<'a>(columns: &'a [Col], name: &str) -> Option<&'a Col> {
    columns.iter().find(|c| c.name.eq_ignore_ascii_case(name))
}

fn col_names(columns: &[Col]) -> Vec<String> {
    columns.iter().map(|c| c.name.clone()).collect()
}

/// A relation visible in a FROM clause: a catalog table, a CTE or a subquery.
struct Relation {
    /// The name the query refers to it by: the alias, else the table or CTE name.
    name: Option<String>,
    /// The catalog table behind it, in catalog spelling.
    catalog_table: Option<String>,
    /// Whether an alias hides the table's own name.
    aliased: bool,
    /// Whether the role reads this table through a rewrite (row filter or masks): it then has
    /// no rowid and no schema-qualified column names.
    rewritten: bool,
    /// Its columns; `None` when they cannot be known, and then any column is accepted.
    columns: Option<Vec<Col>>,
    /// Columns merged into an earlier relation by USING or NATURAL: not found unqualified.
    merged: Vec<String>,
}

enum Lookup<'r> {
    Found(&'r Col),
    Missing,
    Unknown,
}

impl Relation {
    /// A relation that is not a catalog table (a CTE, a subquery), or not yet known to be one.
    fn new(name: Option<String>, columns: Option<Vec<Col>>) -> Self {
        Relation { name, catalog_table: None, aliased: false, rewritten: false, columns, merged: Vec::new() }
    }

    fn lookup(&self, column: &str, qualified: bool) -> Lookup<'_> {
        let Some(columns) = &self.columns else { return Lookup::Unknown };
        let merged = !qualified && contains(&self.merged, column);
        match find_col(columns, column) {
            Some(col) if !merged => Lookup::Found(col),
            _ => Lookup::Missing,
        }
    }

    fn label(&self) -> &str {
        self.name.as_deref().unwrap_or("(subquery)")
    }

    fn is_named(&self, name: &str) -> bool {
        self.name.as_deref().is_some_and(|n| n.eq_ignore_ascii_case(name))
    }
}

fn contains(names: &[String], name: &str) -> bool {
    names.iter().any(|n| n.eq_ignore_ascii_case(name))
}

/// The relations of one SELECT, and the aliases of its select list.
#[derive(Default)]
struct Scope {
    relations: Vec<Relation>,
    output_aliases: Vec<Col>,
    /// Where aliases may be used (WHERE, GROUP BY, HAVING, ORDER BY), when no column matches.
    aliases_visible: bool,
    /// Where aliases win over columns (ORDER BY).
    aliases_first: bool,
}

/// Where a CTE is in its definition. SQLite lets a CTE read every CTE of its WITH clause;
/// reading one defined later is refused, since its columns are not known yet.
#[derive(Clone, Copy, PartialEq, Eq)]
enum CteState {
    Declared,
    Defining,
    Defined,
}

/// A CTE in scope; columns are `None` while its recursive body is being resolved.
struct CteDefinition {
    name: String,
    columns: Option<Vec<Col>>,
    state: CteState,
    /// Whether its body read it (recursion).
    recursive: bool,
}

/// A catalog column the role may not read or reads masked.
struct Governed {
    table: String,
    column: String,
    rule: ColumnRule,
}

/// How the role reads one catalog table.
struct TableRead {
    columns: Vec<Col>,
    /// Columns the role may not read.
    denied: Vec<String>,
    /// The derived table that replaces every read of it, if the role needs one.
    view: Option<View>,
}

/// What replaces `t [AS a]` for a role: `(SELECT <columns> FROM main.t WHERE <predicate>) AS a`.
struct View {
    table: String,
    /// The source the table lives in, which prefixes it inside the derived table.
    source: String,
    /// Every column in table order, and whether it is masked.
    columns: Vec<(String, bool)>,
    /// The role's row filters on the table, parameters bound, joined with AND.
    predicate: Option<Expr>,
}

struct Resolver<'c> {
    catalog: &'c Catalog,
    policy: &'c Policy,
    principal: &'c Principal,
    ctes: Vec<CteDefinition>,
    scopes: Vec<Scope>,
    tables: BTreeSet<String>,
    relations_resolved: usize,
    violations: Vec<Violation>,
    warnings: Vec<Violation>,
    governed: Vec<Governed>,
    /// Governed columns already reported (denied) or noted (masked), once per query.
    reported: BTreeSet<usize>,
    /// How each catalog table read is read, by lower-cased name.
    reads: BTreeMap<String, TableRead>,
    /// FROM items (by address in the checked tree) that read a table through a view.
    rewrite_sites: HashMap<usize, String>,
    /// The first reference whose columns could not be known.
    unknown_lookup: Option<String>,
    /// Re-resolutions of recursive CTE bodies still allowed for this query.
    recursion_rounds_left: usize,
}

/// Output columns of a query; `None` when they cannot be known.
type Outputs = Option<Vec<Col>>;

impl<'c> Resolver<'c> {
    fn new(catalog: &'c Catalog, policy: &'c Policy, principal: &'c Principal) -> Self {
        Resolver {
            catalog,
            policy,
            principal,
            ctes: Vec::new(),
            scopes: Vec::new(),
            tables: BTreeSet::new(),
            relations_resolved: 0,
            violations: Vec::new(),
            warnings: Vec::new(),
            governed: Vec::new(),
            reported: BTreeSet::new(),
            reads: BTreeMap::new(),
            rewrite_sites: HashMap::new(),
            unknown_lookup: None,
            recursion_rounds_left: 16,
        }
    }

    fn unsupported(&mut self, fragment: String) {
        self.violations.push(unsupported(&fragment));
    }

    fn unknown(&mut self, fragment: impl FnOnce() -> String) {
        if self.unknown_lookup.is_none() {
            self.unknown_lookup = Some(excerpt(&fragment(), 60));
        }
    }

    // --- policy ----------------------------------------------------------------------------------

    /// Values derived from `sources` are used at `fragment`: a denied column is refused, a
    /// masked one noted; each once per query.
    fn consume(&mut self, sources: &[usize], fragment: &str) {
        for &id in sources {
            if !self.reported.insert(id) {
                continue;
            }
            let governed = &self.governed[id];
            let role = self.policy.role();
            let column = format!("{}.{}", governed.table, governed.column);
            match &governed.rule {
                ColumnRule::Deny(tag) => self.violations.push(violation(
                    ViolationCode::ForbiddenColumn,
                    format!("{column} is tagged '{tag}': role '{role}' may not read it"),
                    excerpt(fragment, 60),
                    format!(
                        "leave {column} out of the query everywhere (select list, *, joins, filters, \
                         grouping, ordering); list the columns you need instead of *"
                    ),
                )),
                ColumnRule::Mask(tag) => self.warnings.push(violation(
                    ViolationCode::MaskedColumn,
                    format!("{column} is tagged '{tag}' and masked for role '{role}': it reads as '{MASK}'"),
                    excerpt(fragment, 60),
                    "filters, joins and functions on it see the mask, not the value",
                )),
                ColumnRule::Read => {}
            }
        }
    }

    /// Every value of `outputs` is used (the result, DISTINCT, a set operation, a subquery in an
    /// expression); `fragment` names where, else each column's name does.
    fn consume_outputs(&mut self, outputs: &Outputs, fragment: Option<&str>) {
        match outputs {
            Some(columns) => {
                for col in columns {
                    if !col.sources.is_empty() {
                        self.consume(&col.sources, fragment.unwrap_or(&col.name));
                    }
                }
            }
            None => self.unknown(|| fragment.unwrap_or("*").to_string()),
        }
    }

    /// How the role reads a catalog table; the first time, table-level rules are checked.
    fn read_table(&mut self, table_key: &str, written: &str) {
        if self.reads.contains_key(table_key) {
            return;
        }
        let Some(table) = self.catalog.table(table_key) else { return };
        let role = self.policy.role().to_string();
        match self.policy.table_denial(table) {
            None => {}
            Some(TableDenial::Listed) => self.violations.push(violation(
                ViolationCode::TableNotAllowed,
                format!("role '{role}' may not read table '{}'", table.name),
                written,
                "answer from other tables, or ask a data steward for access",
            )),
            Some(TableDenial::Tier(tier)) => {
                let tier = tier.map_or_else(|| "no tier".to_string(), |t| t.to_string());
                self.violations.push(violation(
                    ViolationCode::TableNotAllowed,
                    format!(
                        "role '{role}' may not read table '{}' ({tier}): it reads tiers {}",
                        table.name,
                        self.policy.tiers_label()
                    ),
                    written,
                    "use a certified table that holds the same data, or ask a data steward for access",
                ))
            }
        }
        if let Some(deprecation) = &table.deprecated {
            let message =
                format!("table '{}' is deprecated: use '{}' instead", table.name, deprecation.replacement);
            let hint = if deprecation.note.is_empty() {
                format!("read {} instead", deprecation.replacement)
            } else {
                format!("read {} instead. {}", deprecation.replacement, deprecation.note)
            };
            let finding = violation(ViolationCode::DeprecatedTable, message, written, hint);
            match self.policy.deprecated() {
                DeprecatedRule::Refuse => self.violations.push(finding),
                DeprecatedRule::Warn => self.warnings.push(finding),
            }
        }
        let mut columns = Vec::with_capacity(table.columns.len());
        let mut denied = Vec::new();
        let mut masked_any = false;
        let mut view_columns = Vec::with_capacity(table.columns.len());
        for column in &table.columns {
            let rule = self.policy.column_rule(column);
            let mut col = Col::named(column.name.clone());
            match &rule {
                ColumnRule::Read => {}
                ColumnRule::Deny(_) => denied.push(column.name.clone()),
                ColumnRule::Mask(_) => masked_any = true,
            }
            view_columns.push((column.name.clone(), matches!(rule, ColumnRule::Mask(_))));
            if rule != ColumnRule::Read {
                col.sources.push(self.governed.len());
                self.governed.push(Governed { table: table.name.clone(), column: column.name.clone(), rule });
            }
            columns.push(col);
        }
        let mut predicate: Option<Expr> = None;
        for filter in self.policy.row_filters_for(&table.name) {
            match filter.bind(self.principal) {
                Ok(bound) => {
                    predicate = Some(match predicate.take() {
                        None => bound,
                        Some(left) => Expr::BinaryOp {
                            left: Box::new(nested(left)),
                            op: BinaryOperator::And,
                            right: Box::new(nested(bound)),
                        },
                    });
                }
                Err(attribute) => self.violations.push(violation(
                    ViolationCode::TableNotAllowed,
                    format!(
                        "role '{role}' reads table '{}' filtered by :principal.{attribute}, and principal \
                         '{}' has no attribute '{attribute}'",
                        table.name, self.principal.name
                    ),
                    written,
                    format!("give the principal the attribute '{attribute}', or use another role"),
                )),
            }
        }
        let view = (masked_any || predicate.is_some()).then(|| View {
            table: table.name.clone(),
            source: table.source.clone(),
            columns: view_columns,
            predicate,
        });
        self.reads.insert(table_key.to_string(), TableRead { columns, denied, view });
    }

    /// Row filters applied to the tables read, as bound.
    fn applied_filters(&self) -> Vec<String> {
        self.reads
            .values()
            .filter_map(|read| read.view.as_ref())
            .filter_map(|view| view.predicate.as_ref().map(|p| format!("{}: {p}", view.table)))
            .collect()
    }

    fn hidden_columns(&self) -> Vec<(String, String)> {
        let mut hidden = Vec::new();
        for (key, read) in &self.reads {
            let table = self.catalog.table(key).map_or_else(|| key.clone(), |t| t.name.clone());
            hidden.extend(read.denied.iter().map(|c| (table.clone(), c.clone())));
        }
        hidden
    }

    // --- queries ---------------------------------------------------------------------------------

    /// Resolves a query; `fill_cte` names the CTE whose columns its first branch defines.
    fn resolve_query(&mut self, query: &Query, fill_cte: Option<usize>) -> Outputs {
        if query.fetch.is_some()
            || query.for_clause.is_some()
            || query.settings.is_some()
            || query.format_clause.is_some()
            || !query.pipe_operators.is_empty()
        {
            self.unsupported(query.to_string());
        }
        let ctes_before = self.ctes.len();
        if let Some(with) = &query.with {
            for cte in &with.cte_tables {
                let name = cte.alias.name.value.clone();
                if self.ctes[ctes_before..].iter().any(|c| c.name.eq_ignore_ascii_case(&name)) {
                    self.violations.push(violation(
                        ViolationCode::ParseError,
                        format!("the WITH clause defines '{name}' twice"),
                        name.clone(),
                        "give each CTE its own name",
                    ));
                }
                self.ctes.push(CteDefinition {
                    name,
                    columns: None,
                    state: CteState::Declared,
                    recursive: false,
                });
            }
            for (i, cte) in with.cte_tables.iter().enumerate() {
                self.define_cte(cte, ctes_before + i);
            }
        }
        let outputs = match query.body.as_ref() {
            SetExpr::Select(select) => {
                let outputs = self.resolve_select(select, query.order_by.as_ref());
                self.fill_cte_columns(fill_cte, &outputs);
                outputs
            }
            body => {
                let outputs = self.resolve_set_expr(body, fill_cte);
                if let Some(order_by) = &query.order_by {
                    self.resolve_compound_order_by(order_by, body, &outputs);
                }
                outputs
            }
        };
        match &query.limit_clause {
            Some(LimitClause::LimitOffset { limit, offset, limit_by }) => {
                if !limit_by.is_empty() {
                    self.unsupported(query.to_string());
                }
                self.walk(limit);
                if let Some(offset) = offset {
                    self.walk(&offset.value);
                }
            }
            Some(LimitClause::OffsetCommaLimit { offset, limit }) => {
                self.walk(offset);
                self.walk(limit);
            }
            None => {}
        }
        self.ctes.truncate(ctes_before);
        outputs
    }

    fn define_cte(&mut self, cte: &Cte, index: usize) {
        if cte.from.is_some() {
            self.unsupported(cte.to_string());
        }
        let explicit: Vec<String> = cte.alias.columns.iter().map(|c| c.name.value.clone()).collect();
        if let Some(definition) = self.ctes.get_mut(index) {
            definition.state = CteState::Defining;
            if !explicit.is_empty() {
                definition.columns = Some(explicit.iter().map(Col::named).collect());
            }
        }
        // Visible in its own body: SQLite reads a self-reference as recursion. A recursive body
        // is resolved again while its columns gain sources, so that a governed column that
        // enters through the recursive branch is seen wherever the recursion reads it.
        // Sources only grow, so this ends; a budget per query bounds the work of nested
        // recursive CTEs, and running out of it refuses the query (fail closed).
        let mut outputs = self.resolve_query(&cte.query, Some(index));
        loop {
            let before = self.cte_sources(index);
            self.set_cte_columns(index, &explicit, &outputs);
            let recursive = self.ctes.get(index).is_some_and(|d| d.recursive);
            if !recursive || self.cte_sources(index) == before {
                break;
            }
            if self.recursion_rounds_left == 0 {
                self.violations.push(violation(
                    ViolationCode::ParseError,
                    "the recursive CTEs are too intricate to trace which columns they carry",
                    excerpt(&cte.to_string(), 60),
                    "simplify the recursion: fewer nested recursive CTEs, explicit column lists",
                ));
                break;
            }
            self.recursion_rounds_left -= 1;
            let counted = self.relations_resolved;
            outputs = self.resolve_query(&cte.query, None);
            self.relations_resolved = counted;
        }
        if let Some(definition) = self.ctes.get_mut(index) {
            definition.state = CteState::Defined;
        }
    }

    fn cte_sources(&self, index: usize) -> Vec<Sources> {
        self.ctes
            .get(index)
            .and_then(|d| d.columns.as_ref())
            .map(|columns| columns.iter().map(|c| c.sources.clone()).collect())
            .unwrap_or_default()
    }

    /// The CTE's columns: explicit names (or its outputs' names), with the outputs' sources
    /// added to those it had.
    fn set_cte_columns(&mut self, index: usize, explicit: &[String], outputs: &Outputs) {
        let Some(definition) = self.ctes.get_mut(index) else { return };
        let Some(outputs) = outputs else {
            if explicit.is_empty() {
                definition.columns = None;
            }
            return;
        };
        let names: Vec<String> = if explicit.is_empty() { col_names(outputs) } else { explicit.to_vec() };
        let previous = definition.columns.take().unwrap_or_default();
        let columns = names
            .into_iter()
            .enumerate()
            .map(|(i, name)| {
                let mut sources = previous.get(i).map(|c| c.sources.clone()).unwrap_or_default();
                if let Some(output) = outputs.get(i) {
                    add_sources(&mut sources, &output.sources);
                }
                Col { name, sources }
            })
            .collect();
        definition.columns = Some(columns);
    }

    fn fill_cte_columns(&mut self, fill_cte: Option<usize>, outputs: &Outputs) {
        let Some(index) = fill_cte else { return };
        let explicit: Vec<String> = match self.ctes.get(index) {
            Some(CteDefinition { columns: Some(columns), .. }) => col_names(columns),
            Some(_) => Vec::new(),
            None => return,
        };
        self.set_cte_columns(index, &explicit, outputs);
    }

    fn resolve_set_expr(&mut self, body: &SetExpr, fill_cte: Option<usize>) -> Outputs {
        let outputs = match body {
            SetExpr::Select(select) => self.resolve_select(select, None),
            SetExpr::Query(query) => return self.resolve_query(query, fill_cte),
            SetExpr::SetOperation { left, right, op, set_quantifier } => {
                let mut outputs = self.resolve_set_expr(left, fill_cte);
                let right_outputs = self.resolve_set_expr(right, None);
                // Every operation but UNION ALL compares whole rows.
                let compares =
                    !(matches!(op, SetOperator::Union) && matches!(set_quantifier, SetQuantifier::All));
                if compares {
                    let fragment = format!("{op} {set_quantifier}");
                    self.consume_outputs(&outputs, Some(fragment.trim()));
                    self.consume_outputs(&right_outputs, Some(fragment.trim()));
                }
                match (&mut outputs, &right_outputs) {
                    (Some(left_columns), Some(right_columns)) => {
                        for (left, right) in left_columns.iter_mut().zip(right_columns) {
                            add_sources(&mut left.sources, &right.sources);
                        }
                    }
                    (Some(_), None) => outputs = None,
                    _ => {}
                }
                return outputs;
            }
            SetExpr::Values(values) => {
                let width = values.rows.first().map_or(0, |row| row.content.len());
                let mut columns: Vec<Col> = (1..=width).map(|i| Col::named(format!("column{i}"))).collect();
                for row in &values.rows {
                    for (i, expr) in row.content.iter().enumerate() {
                        let sources = self.walk(expr);
                        if let Some(col) = columns.get_mut(i) {
                            add_sources(&mut col.sources, &sources);
                        }
                    }
                }
                Some(columns)
            }
            // Refused by the read-only check.
            SetExpr::Insert(_)
            | SetExpr::Update(_)
            | SetExpr::Delete(_)
            | SetExpr::Merge(_)
            | SetExpr::Table(_) => None,
        };
        self.fill_cte_columns(fill_cte, &outputs);
        outputs
    }

    fn resolve_select(&mut self, select: &Select, order_by: Option<&OrderBy>) -> Outputs {
        let exotic = select.top.is_some()
            || select.exclude.is_some()
            || !select.lateral_views.is_empty()
            || select.prewhere.is_some()
            || !select.connect_by.is_empty()
            || !select.cluster_by.is_empty()
            || !select.distribute_by.is_empty()
            || !select.sort_by.is_empty()
            || select.qualify.is_some()
            || select.value_table_mode.is_some()
            || !matches!(select.flavor, sqlparser::ast::SelectFlavor::Standard)
            || matches!(select.distinct, Some(Distinct::On(_)));
        if exotic {
            self.unsupported(select.to_string());
        }
        self.scopes.push(Scope::default());
        for table in &select.from {
            self.add_table_with_joins(table);
        }
        let outputs = self.resolve_projection(&select.projection);
        if matches!(select.distinct, Some(Distinct::Distinct)) {
            self.consume_outputs(&outputs, Some("DISTINCT"));
        }
        if let Some(scope) = self.scopes.last_mut() {
            scope.output_aliases = select
                .projection
                .iter()
                .zip(outputs.iter().flatten())
                .filter_map(|(item, col)| match item {
                    SelectItem::ExprWithAlias { .. } => Some(col.clone()),
                    _ => None,
                })
                .collect();
            scope.aliases_visible = true;
        }
        self.walk(&select.selection);
        match &select.group_by {
            GroupByExpr::Expressions(exprs, modifiers) => {
                if !modifiers.is_empty() {
                    self.unsupported(select.group_by.to_string());
                }
                for expr in exprs {
                    self.resolve_position_or_expr(expr, &outputs, "GROUP BY");
                }
            }
            GroupByExpr::All(_) => self.unsupported(select.group_by.to_string()),
        }
        self.walk(&select.having);
        for definition in &select.named_window {
            if let NamedWindowExpr::WindowSpec(spec) = &definition.1 {
                self.walk(spec);
            }
        }
        if let Some(order_by) = order_by {
            if let Some(scope) = self.scopes.last_mut() {
                scope.aliases_first = true;
            }
            for item in self.order_by_items(order_by) {
                self.resolve_position_or_expr(&item.expr, &outputs, "ORDER BY");
            }
        }
        self.scopes.pop();
        outputs
    }

    fn order_by_items<'q>(&mut self, order_by: &'q OrderBy) -> &'q [OrderByExpr] {
        if order_by.interpolate.is_some() {
            self.unsupported(order_by.to_string());
        }
        match &order_by.kind {
            OrderByKind::Expressions(items) => {
                if items.iter().any(|item| item.with_fill.is_some()) {
                    self.unsupported(order_by.to_string());
                }
                items
            }
            OrderByKind::All(_) => {
                self.unsupported(order_by.to_string());
                &[]
            }
        }
    }

    /// `ORDER BY 2` / `GROUP BY 1` name a result column by position (its values are used);
    /// anything else is an expression.
    fn resolve_position_or_expr(&mut self, expr: &Expr, outputs: &Outputs, clause: &str) {
        if let Some(position) = position(expr) {
            match outputs {
                Some(columns) if position == 0 || position > columns.len() => {
                    let count = columns.len();
                    self.violations.push(violation(
                        ViolationCode::UnknownColumn,
                        format!(
                            "{clause} {position} is out of range: the query has {count} result column(s)"
                        ),
                        expr.to_string(),
                        format!("use a position between 1 and {count}, or name the column"),
                    ));
                }
                Some(columns) => {
                    let sources = columns[position - 1].sources.clone();
                    self.consume(&sources, &format!("{clause} {position}"));
                }
                None => self.unknown(|| format!("{clause} {position}")),
            }
            return;
        }
        self.walk(expr);
    }

    fn resolve_projection(&mut self, projection: &[SelectItem]) -> Outputs {
        let mut outputs = Some(Vec::new());
        for item in projection {
            let columns: Outputs = match item {
                SelectItem::UnnamedExpr(expr) => {
                    let sources = self.walk(expr);
                    Some(vec![Col { name: output_name(expr), sources }])
                }
                SelectItem::ExprWithAlias { expr, alias } => {
                    let sources = self.walk(expr);
                    Some(vec![Col { name: alias.value.clone(), sources }])
                }
                SelectItem::Wildcard(options) => {
                    self.check_wildcard_options(options);
                    self.star_columns(item)
                }
                SelectItem::QualifiedWildcard(kind, options) => {
                    self.check_wildcard_options(options);
                    match kind {
                        SelectItemQualifiedWildcardKind::ObjectName(name) => {
                            self.qualified_star_columns(name)
                        }
                        SelectItemQualifiedWildcardKind::Expr(_) => {
                            self.unsupported(item.to_string());
                            None
                        }
                    }
                }
                SelectItem::ExprWithAliases { .. } => {
                    self.unsupported(item.to_string());
                    None
                }
            };
            outputs = match (outputs, columns) {
                (Some(mut all), Some(columns)) => {
                    all.extend(columns);
                    Some(all)
                }
                _ => None,
            };
        }
        outputs
    }

    fn check_wildcard_options(&mut self, options: &WildcardAdditionalOptions) {
        if options.opt_ilike.is_some()
            || options.opt_exclude.is_some()
            || options.opt_except.is_some()
            || options.opt_replace.is_some()
            || options.opt_rename.is_some()
            || options.opt_alias.is_some()
        {
            self.unsupported(options.to_string());
        }
    }

    /// The columns `*` stands for: every column of the FROM clause, merged ones once.
    fn star_columns(&mut self, item: &SelectItem) -> Outputs {
        let scope = self.scopes.last()?;
        if scope.relations.is_empty() {
            self.violations.push(violation(
                ViolationCode::UnknownColumn,
                "'*' needs a FROM clause",
                item.to_string(),
                "add FROM with a table, or list the values to select",
            ));
            return None;
        }
        let mut columns = Vec::new();
        for relation in &scope.relations {
            let Some(known) = relation.columns.as_ref() else {
                self.unknown(|| item.to_string());
                return None;
            };
            columns.extend(known.iter().filter(|c| !contains(&relation.merged, &c.name)).cloned());
        }
        Some(columns)
    }

    /// The columns `t.*` stands for; `t` must be in this SELECT's FROM clause.
    fn qualified_star_columns(&mut self, name: &ObjectName) -> Outputs {
        let parts = name_parts(name);
        let found = match parts.as_slice() {
            [table] => self
                .scopes
                .last()
                .and_then(|scope| scope.relations.iter().find(|r| r.is_named(&table.value)))
                .map(|relation| relation.columns.clone()),
            _ => None,
        };
        match found {
            Some(Some(columns)) => Some(columns),
            Some(None) => {
                self.unknown(|| format!("{name}.*"));
                None
            }
            None => {
                let fragment = format!("{name}.*");
                self.unknown_relation(&name.to_string(), fragment);
                None
            }
        }
    }

    /// Output names and expressions of every branch of a compound select: what its ORDER BY may
    /// name.
    fn resolve_compound_order_by(&mut self, order_by: &OrderBy, body: &SetExpr, outputs: &Outputs) {
        let mut names: Vec<String> = outputs.as_deref().map(col_names).unwrap_or_default();
        let mut expressions: Vec<String> = Vec::new();
        let mut pending = vec![body];
        while let Some(node) = pending.pop() {
            match node {
                SetExpr::SetOperation { left, right, .. } => {
                    pending.push(left);
                    pending.push(right);
                }
                SetExpr::Select(select) => {
                    for item in &select.projection {
                        match item {
                            SelectItem::UnnamedExpr(expr) => {
                                names.push(output_name(expr));
                                expressions.push(expr.to_string());
                            }
                            SelectItem::ExprWithAlias { expr, alias } => {
                                names.push(alias.value.clone());
                                expressions.push(expr.to_string());
                            }
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        let columns = outputs.clone().map(|mut columns| {
            columns.extend(names.iter().skip(columns.len()).map(Col::named));
            columns
        });
        self.scopes.push(Scope { relations: vec![Relation::new(None, columns)], ..Scope::default() });
        for item in self.order_by_items(order_by) {
            let matched_name = match &item.expr {
                Expr::Identifier(ident) => Some(ident.value.as_str()),
                Expr::CompoundIdentifier(idents) => idents.last().map(|ident| ident.value.as_str()),
                _ => None,
            };
            let matches_output = match matched_name {
                Some(name) => contains(&names, name),
                None => expressions.contains(&item.expr.to_string()),
            };
            if matches_output {
                // Sorting reads the values of the column it names.
                let sources = match (matched_name, outputs) {
                    (Some(name), Some(columns)) => match find_col(columns, name) {
                        Some(col) => col.sources.clone(),
                        None => columns.iter().flat_map(|c| c.sources.iter().copied()).collect(),
                    },
                    _ => Vec::new(),
                };
                self.consume(&sources, &item.expr.to_string());
            } else {
                self.resolve_position_or_expr(&item.expr, outputs, "ORDER BY");
            }
        }
        self.scopes.pop();
    }

    // --- FROM ------------------------------------------------------------------------------------

    fn current_relations(&self) -> usize {
        self.scopes.last().map_or(0, |scope| scope.relations.len())
    }

    fn add_relation(&mut self, relation: Relation) {
        if let Some(scope) = self.scopes.last_mut() {
            scope.relations.push(relation);
        }
    }

    fn add_table_with_joins(&mut self, table: &TableWithJoins) {
        self.add_table_factor(&table.relation);
        for join in &table.joins {
            let earlier = self.current_relations();
            self.add_table_factor(&join.relation);
            let Some(constraint) = join_constraint(&join.join_operator) else {
                self.unsupported(join.to_string());
                continue;
            };
            match constraint {
                JoinConstraint::On(expr) => {
                    self.walk(expr);
                }
                JoinConstraint::Using(columns) => {
                    let names: Vec<String> = columns
                        .iter()
                        .filter_map(|name| name_parts(name).last().map(|i| i.value.clone()))
                        .collect();
                    self.merge_join_columns(earlier, &names, &join.to_string());
                }
                JoinConstraint::Natural => {
                    let shared = self.shared_columns(earlier);
                    self.merge_join_columns(earlier, &shared, &join.to_string());
                }
                JoinConstraint::None => {}
                JoinConstraint::UsingAlias(..) => self.unsupported(join.to_string()),
            }
        }
    }

    /// Columns of the relations from `earlier` on that relations before it also have.
    fn shared_columns(&self, earlier: usize) -> Vec<String> {
        let Some(scope) = self.scopes.last() else { return Vec::new() };
        let (left, right) = scope.relations.split_at(earlier.min(scope.relations.len()));
        let mut shared = Vec::new();
        for relation in right {
            for column in relation.columns.iter().flatten() {
                if left.iter().any(|l| matches!(l.lookup(&column.name, false), Lookup::Found(_)))
                    && !contains(&shared, &column.name)
                {
                    shared.push(column.name.clone());
                }
            }
        }
        shared
    }

    /// USING / NATURAL: each column must be on both sides, and both sides' values are compared;
    /// the right side's copy is merged away.
    fn merge_join_columns(&mut self, earlier: usize, columns: &[String], fragment: &str) {
        let Some(scope) = self.scopes.last_mut() else { return };
        let split = earlier.min(scope.relations.len());
        let mut missing = Vec::new();
        let mut compared = Vec::new();
        {
            let (left, right) = scope.relations.split_at(split);
            for column in columns {
                let mut has = |side: &[Relation]| {
                    let mut found = false;
                    for relation in side {
                        match relation.lookup(column, false) {
                            Lookup::Found(col) => {
                                add_sources(&mut compared, &col.sources);
                                found = true;
                            }
                            Lookup::Unknown => found = true,
                            Lookup::Missing => {}
                        }
                    }
                    found
                };
                let on_left = has(left);
                let on_right = has(right);
                if !on_left || !on_right {
                    missing.push(column.clone());
                }
            }
        }
        for relation in &mut scope.relations[split..] {
            relation.merged.extend(columns.iter().cloned());
        }
        self.consume(&compared, fragment);
        for column in missing {
            self.violations.push(violation(
                ViolationCode::UnknownColumn,
                format!("cannot join USING '{column}': it is not a column of both sides"),
                excerpt(fragment, 60),
                "join ON the matching columns, e.g. a.x = b.y",
            ));
        }
    }

    fn add_table_factor(&mut self, factor: &TableFactor) {
        match factor {
            TableFactor::Table {
                name,
                alias,
                args,
                with_hints,
                version,
                with_ordinality,
                partitions,
                json_path,
                sample,
                index_directives: _,
                inheritance,
            } => {
                let exotic = !with_hints.is_empty()
                    || version.is_some()
                    || *with_ordinality
                    || !partitions.is_empty()
                    || json_path.is_some()
                    || sample.is_some()
                    || inheritance.is_some()
                    || alias.as_ref().is_some_and(|a| !a.columns.is_empty() || a.at.is_some());
                if exotic {
                    self.unsupported(factor.to_string());
                }
                let alias_name = alias.as_ref().map(|a| a.name.value.clone());
                let mut relation = if args.is_some() {
                    // A table-valued function, refused by the function check.
                    self.relations_resolved += 1;
                    Relation::new(Some(name.to_string()), None)
                } else {
                    self.resolve_relation_name(name)
                };
                if relation.rewritten {
                    let table = relation.catalog_table.as_deref().unwrap_or_default().to_lowercase();
                    self.rewrite_sites.insert(factor as *const TableFactor as usize, table);
                }
                if let Some(alias_name) = alias_name {
                    relation.name = Some(alias_name);
                    relation.aliased = true;
                }
                self.add_relation(relation);
            }
            TableFactor::Derived { lateral, subquery, alias, sample } => {
                if *lateral || sample.is_some() || alias.as_ref().is_some_and(|a| a.at.is_some()) {
                    self.unsupported(factor.to_string());
                }
                // A subquery in FROM does not see its sibling tables, only enclosing queries.
                let siblings = self.scopes.pop();
                let outputs = self.resolve_query(subquery, None);
                self.scopes.extend(siblings);
                let columns = match alias.as_ref().filter(|a| !a.columns.is_empty()) {
                    Some(a) => Some(
                        a.columns
                            .iter()
                            .enumerate()
                            .map(|(i, c)| Col {
                                name: c.name.value.clone(),
                                sources: outputs
                                    .as_ref()
                                    .and_then(|o| o.get(i))
                                    .map(|o| o.sources.clone())
                                    .unwrap_or_default(),
                            })
                            .collect(),
                    ),
                    None => outputs,
                };
                let mut relation = Relation::new(alias.as_ref().map(|a| a.name.value.clone()), columns);
                relation.aliased = alias.is_some();
                self.add_relation(relation);
            }
            TableFactor::NestedJoin { table_with_joins, alias } => {
                if alias.is_some() {
                    self.unsupported(factor.to_string());
                }
                self.add_table_with_joins(table_with_joins);
            }
            _ => self.unsupported(factor.to_string()),
        }
    }

    /// A table name: a CTE in scope, else a catalog table of the main schema.
    fn resolve_relation_name(&mut self, name: &ObjectName) -> Relation {
        self.relations_resolved += 1;
        let parts = name_parts(name);
        let mut relation = Relation::new(parts.last().map(|i| i.value.clone()), None);
        let table_name = match parts.as_slice() {
            [table] => {
                let cte = self.ctes.iter_mut().rev().find(|c| c.name.eq_ignore_ascii_case(&table.value));
                if let Some(cte) = cte {
                    match cte.state {
                        CteState::Declared => {
                            let cte_name = cte.name.clone();
                            self.violations.push(violation(
                                ViolationCode::UnknownTable,
                                format!("CTE '{cte_name}' is read before the WITH clause defines it"),
                                name.to_string(),
                                format!("define '{cte_name}' before the CTEs that read it"),
                            ));
                        }
                        CteState::Defining => {
                            cte.recursive = true;
                            relation.columns = cte.columns.clone();
                        }
                        CteState::Defined => relation.columns = cte.columns.clone(),
                    }
                    return relation;
                }
                table
            }
            [schema, table] if self.in_source(schema, table) => table,
            [_, table] => {
                let hint = match self.catalog.table(&table.value) {
                    Some(t) => format!(
                        "'{}' is in source '{}': write {}.{} or drop the prefix",
                        t.name, t.source, t.source, t.name
                    ),
                    None => "drop the schema prefix and use a catalog table".to_string(),
                };
                self.violations.push(violation(
                    ViolationCode::UnknownTable,
                    format!("'{name}' is not a table: the sources are {}", self.catalog.sources().join(", ")),
                    name.to_string(),
                    hint,
                ));
                return relation;
            }
            _ => {
                self.unknown_table(name, &name.to_string());
                return relation;
            }
        };
        if table_name.value.to_ascii_lowercase().starts_with("sqlite_") {
            self.violations.push(violation(
                ViolationCode::UnknownTable,
                format!("'{}' is an SQLite system table, which is not exposed", table_name.value),
                name.to_string(),
                "query the catalog tables; the schema is described to you, not read from the database",
            ));
            return relation;
        }
        match self.catalog.table(&table_name.value) {
            Some(table) => {
                let key = table.name.to_lowercase();
                self.tables.insert(table.name.clone());
                relation.catalog_table = Some(table.name.clone());
                self.read_table(&key, &name.to_string());
                if let Some(read) = self.reads.get(&key) {
                    relation.columns = Some(read.columns.clone());
                    relation.rewritten = read.view.is_some();
                }
            }
            None => self.unknown_table(name, &table_name.value),
        }
        relation
    }

    /// Whether `schema.table` names a catalog table of that source (`main` for the main
    /// warehouse); an unknown table under `main` is reported as unknown, not as a bad schema.
    fn in_source(&self, schema: &Ident, table: &Ident) -> bool {
        match self.catalog.table(&table.value) {
            Some(t) => t.source.eq_ignore_ascii_case(&schema.value),
            None => schema.value.eq_ignore_ascii_case(crate::catalog::MAIN_SOURCE),
        }
    }

    fn unknown_table(&mut self, name: &ObjectName, table: &str) {
        let mut candidates: Vec<&str> = self.catalog.tables().map(|t| t.name.as_str()).collect();
        candidates.extend(self.ctes.iter().map(|c| c.name.as_str()));
        let known: Vec<String> = candidates.iter().map(|c| c.to_string()).collect();
        self.violations.push(violation(
            ViolationCode::UnknownTable,
            format!("table '{name}' does not exist{}", suggestion(table, candidates.into_iter())),
            name.to_string(),
            format!("use a catalog table: {}", list_names(&known)),
        ));
    }

    // --- columns ---------------------------------------------------------------------------------

    /// Resolves every column reference and subquery of an expression (or any node holding
    /// expressions) in the current scopes; returns the governed columns its value derives from.
    fn walk<T: Visit>(&mut self, node: &T) -> Sources {
        let mut walker = ExpressionWalker {
            resolver: self,
            queries_entered: 0,
            sources: Vec::new(),
            exists_pending: false,
        };
        let _ = node.visit(&mut walker);
        walker.sources
    }

    fn resolve_column(&mut self, idents: &[Ident]) -> Sources {
        match idents {
            [column] => self.resolve_unqualified(column),
            [table, column] => self.resolve_qualified(None, table, column, idents),
            [schema, table, column] => self.resolve_qualified(Some(schema), table, column, idents),
            _ => {
                self.violations.push(violation(
                    ViolationCode::UnknownColumn,
                    format!("'{}' has too many parts for a column", join_idents(idents)),
                    join_idents(idents),
                    "write column or table.column",
                ));
                Vec::new()
            }
        }
    }

    fn rowid_unavailable(&mut self, table: &str, fragment: String) {
        self.violations.push(violation(
            ViolationCode::UnknownColumn,
            format!(
                "rowid is not available on '{table}' for role '{}', which reads it through a row filter or masks",
                self.policy.role()
            ),
            fragment,
            "use the table's primary key instead of rowid",
        ));
    }

    fn resolve_unqualified(&mut self, ident: &Ident) -> Sources {
        let column = ident.value.as_str();
        let innermost = self.scopes.len().saturating_sub(1);
        let mut resolved: Option<Sources> = None;
        let mut rowid_on: Option<String> = None;
        let mut ambiguous: Option<Vec<String>> = None;
        for (depth, scope) in self.scopes.iter().enumerate().rev() {
            let aliases_here = depth == innermost && scope.aliases_visible;
            if aliases_here && scope.aliases_first {
                if let Some(alias) = find_col(&scope.output_aliases, column) {
                    return alias.sources.clone();
                }
            }
            let mut found: Vec<(&Relation, &Col)> = Vec::new();
            let mut unknown = false;
            for relation in &scope.relations {
                match relation.lookup(column, false) {
                    Lookup::Found(col) => found.push((relation, col)),
                    Lookup::Unknown => unknown = true,
                    Lookup::Missing => {}
                }
            }
            if found.len() > 1 {
                ambiguous = Some(found.iter().map(|(r, _)| r.label().to_string()).collect());
                break;
            }
            if let Some((_, col)) = found.first() {
                resolved = Some(col.sources.clone());
                break;
            }
            if unknown {
                resolved = Some(Vec::new());
                self.unknown_lookup.get_or_insert_with(|| ident.to_string());
                break;
            }
            let rowid_tables: Vec<&Relation> =
                scope.relations.iter().filter(|r| r.catalog_table.is_some()).collect();
            if is_rowid(column) && rowid_tables.len() == 1 {
                if rowid_tables[0].rewritten {
                    rowid_on = rowid_tables[0].catalog_table.clone();
                }
                resolved = Some(Vec::new());
                break;
            }
            if aliases_here {
                if let Some(alias) = find_col(&scope.output_aliases, column) {
                    resolved = Some(alias.sources.clone());
                    break;
                }
            }
        }
        if let Some(names) = ambiguous {
            let qualified: Vec<String> = names.iter().map(|n| format!("{n}.{column}")).collect();
            self.violations.push(violation(
                ViolationCode::AmbiguousColumn,
                format!("column '{column}' is ambiguous: it is in {}", names.join(" and ")),
                ident.to_string(),
                format!("qualify it: {}", qualified.join(" or ")),
            ));
            return Vec::new();
        }
        if let Some(table) = rowid_on {
            self.rowid_unavailable(&table, ident.to_string());
        }
        if let Some(sources) = resolved {
            self.consume(&sources, &ident.to_string());
            return sources;
        }
        if ident.quote_style == Some('"') {
            // SQLite reads a double-quoted word that names no column as a string literal.
            return Vec::new();
        }
        let visible = self.visible_columns();
        let hint = match closest(column, visible.iter().map(|(_, c)| c.as_str())) {
            Some(near) => {
                let owners: Vec<&str> =
                    visible.iter().filter(|(_, c)| c == near).map(|(r, _)| r.as_str()).collect();
                format!("did you mean '{near}' (in {})?", owners.join(", "))
            }
            None => columns_hint(&visible),
        };
        let hint = match self.found_elsewhere(column) {
            Some(elsewhere) => format!("{hint} {elsewhere}"),
            None => hint,
        };
        self.violations.push(violation(
            ViolationCode::UnknownColumn,
            format!("no table in scope has a column '{column}'"),
            ident.to_string(),
            hint,
        ));
        Vec::new()
    }

    fn resolve_qualified(
        &mut self,
        schema: Option<&Ident>,
        table: &Ident,
        column: &Ident,
        idents: &[Ident],
    ) -> Sources {
        let fragment = join_idents(idents);
        if let Some(schema) = schema {
            if !self.catalog.sources().iter().any(|s| s.eq_ignore_ascii_case(&schema.value)) {
                self.violations.push(violation(
                    ViolationCode::UnknownTable,
                    format!(
                        "schema '{}' is not available: the sources are {}",
                        schema.value,
                        self.catalog.sources().join(", ")
                    ),
                    fragment,
                    "drop the schema prefix",
                ));
                return Vec::new();
            }
        }
        let catalog = self.catalog;
        let relation = self.scopes.iter().rev().find_map(|scope| {
            scope.relations.iter().find(|r| {
                r.is_named(&table.value)
                    && (schema.is_none()
                        || (!r.aliased
                            && r.catalog_table.as_deref().and_then(|t| catalog.table(t)).is_some_and(|t| {
                                schema.is_some_and(|s| t.source.eq_ignore_ascii_case(&s.value))
                            })))
            })
        });
        let Some(relation) = relation else {
            self.unknown_relation(&table.value, fragment);
            return Vec::new();
        };
        let rewritten = relation.rewritten.then(|| relation.label().to_string());
        let outcome = match relation.lookup(&column.value, true) {
            Lookup::Found(col) => Ok(col.sources.clone()),
            Lookup::Unknown => Err(true),
            Lookup::Missing if is_rowid(&column.value) && relation.catalog_table.is_some() => Ok(Vec::new()),
            Lookup::Missing => Err(false),
        };
        let label = relation.label().to_string();
        let columns = relation.columns.as_deref().map(col_names).unwrap_or_default();
        match outcome {
            Ok(sources) => {
                if let Some(table) = rewritten {
                    if schema.is_some() {
                        self.violations.push(violation(
                            ViolationCode::UnknownColumn,
                            format!(
                                "'{fragment}': role '{}' reads '{table}' through a row filter or masks, \
                                 where a schema-qualified column name does not resolve",
                                self.policy.role()
                            ),
                            fragment.clone(),
                            format!("write {table}.{}", column.value),
                        ));
                    } else if is_rowid(&column.value) && !contains(&columns, &column.value) {
                        self.rowid_unavailable(&table, fragment.clone());
                    }
                }
                self.consume(&sources, &fragment);
                sources
            }
            Err(true) => {
                self.unknown_lookup.get_or_insert_with(|| fragment.clone());
                Vec::new()
            }
            Err(false) => {
                let hint = match (
                    closest(&column.value, columns.iter().map(String::as_str)),
                    self.found_elsewhere(&column.value),
                ) {
                    (_, Some(elsewhere)) => elsewhere,
                    (Some(near), None) => format!("did you mean '{label}.{near}'?"),
                    (None, None) => format!("columns of {label}: {}", list_names(&columns)),
                };
                self.violations.push(violation(
                    ViolationCode::UnknownColumn,
                    format!("{label} has no column '{}'", column.value),
                    fragment,
                    hint,
                ));
                Vec::new()
            }
        }
    }

    /// Where a column the query reached for does exist: in another relation of the query, or
    /// in a catalog table the query could join.
    fn found_elsewhere(&self, column: &str) -> Option<String> {
        let in_query: Vec<String> = self
            .scopes
            .iter()
            .rev()
            .flat_map(|s| s.relations.iter())
            .filter(|r| !matches!(r.lookup(column, true), Lookup::Missing))
            .map(|r| r.label().to_string())
            .collect();
        if let Some(label) = in_query.first() {
            return Some(format!("'{column}' is a column of {label}: write {label}.{column}"));
        }
        let tables: Vec<&str> = self
            .catalog
            .tables()
            .filter(|t| t.column(column).is_some())
            .map(|t| t.name.as_str())
            .take(3)
            .collect();
        (!tables.is_empty())
            .then(|| format!("'{column}' is a column of {}: join it to read it", tables.join(", ")))
    }

    /// A qualifier (`x.col`, `x.*`) that names no table or alias of the query.
    fn unknown_relation(&mut self, qualifier: &str, fragment: String) {
        let visible: Vec<&Relation> = self.scopes.iter().rev().flat_map(|s| s.relations.iter()).collect();
        let names: Vec<&str> = visible.iter().filter_map(|r| r.name.as_deref()).collect();
        let aliased_as = visible.iter().find(|r| {
            r.aliased && r.catalog_table.as_deref().is_some_and(|t| t.eq_ignore_ascii_case(qualifier))
        });
        let hint = if let Some(relation) = aliased_as {
            format!(
                "'{qualifier}' is aliased as '{}' here: write {}.column",
                relation.label(),
                relation.label()
            )
        } else if let Some(near) = closest(qualifier, names.iter().copied()) {
            format!("did you mean '{near}'?")
        } else if names.is_empty() {
            "add the table to the FROM clause".to_string()
        } else {
            format!("tables and aliases in scope: {}; or add the table to FROM", names.join(", "))
        };
        self.violations.push(violation(
            ViolationCode::UnknownTable,
            format!("'{qualifier}' is not a table or alias in this query"),
            fragment,
            hint,
        ));
    }

    /// (relation, column) pairs visible from the current scope, inner first.
    fn visible_columns(&self) -> Vec<(String, String)> {
        let mut visible = Vec::new();
        for scope in self.scopes.iter().rev() {
            for relation in &scope.relations {
                for column in relation.columns.iter().flatten() {
                    visible.push((relation.label().to_string(), column.name.clone()));
                }
            }
        }
        visible
    }

    /// `x IN table(args)`: a table-valued function, refused by the function check. (`x IN
    /// table` was rewritten to `x IN (SELECT * FROM table)` before resolution.)
    fn resolve_in_table(&mut self, name: &ObjectName, has_args: bool) {
        if has_args {
            self.relations_resolved += 1;
        } else {
            let _ = self.resolve_relation_name(name);
        }
    }
}

/// Walks expressions for the resolver: column references are resolved in its scopes; a nested
/// query is handed back to it whole, so that it gets its own scope. Collects the governed
/// columns the expression's value derives from.
struct ExpressionWalker<'r, 'c> {
    resolver: &'r mut Resolver<'c>,
    queries_entered: usize,
    sources: Sources,
    /// The next query is the subquery of EXISTS, whose result columns are never read.
    exists_pending: bool,
}

impl Visitor for ExpressionWalker<'_, '_> {
    type Break = ();

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
        if self.queries_entered == 0 {
            let outputs = self.resolver.resolve_query(query, None);
            if !std::mem::take(&mut self.exists_pending) {
                // A scalar, IN, ANY or row-value subquery: its values are used.
                let fragment = excerpt(&query.to_string(), 60);
                self.resolver.consume_outputs(&outputs, Some(&fragment));
                for col in outputs.iter().flatten() {
                    add_sources(&mut self.sources, &col.sources);
                }
            }
        }
        self.queries_entered += 1;
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, _: &Query) -> ControlFlow<()> {
        self.queries_entered = self.queries_entered.saturating_sub(1);
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
        if self.queries_entered > 0 {
            return ControlFlow::Continue(());
        }
        match expr {
            Expr::Identifier(ident) => {
                let sources = self.resolver.resolve_column(std::slice::from_ref(ident));
                add_sources(&mut self.sources, &sources);
            }
            Expr::CompoundIdentifier(idents) => {
                let sources = self.resolver.resolve_column(idents);
                add_sources(&mut self.sources, &sources);
            }
            Expr::In { target: InTarget::Table { name, args }, .. } => {
                self.resolver.resolve_in_table(name, args.is_some());
            }
            Expr::Exists { .. } => self.exists_pending = true,
            _ => {}
        }
        ControlFlow::Continue(())
    }
}

// --- rewriting: row filters, masks, row cap ------------------------------------------------------

/// A query parsed once from constant text, as a template for AST surgery: no SQL text is ever
/// assembled from parts.
fn template(sql: &'static str, cell: &'static OnceLock<Option<Query>>) -> Option<Query> {
    cell.get_or_init(|| match Parser::parse_sql(&SQLiteDialect {}, sql) {
        Ok(mut statements) => match statements.pop() {
            Some(Statement::Query(query)) => Some(*query),
            _ => None,
        },
        Err(_) => None,
    })
    .clone()
}

/// `SELECT * FROM t`, with `t` and the select list to replace.
fn select_star_template() -> Option<Query> {
    static CELL: OnceLock<Option<Query>> = OnceLock::new();
    template("SELECT * FROM t", &CELL)
}

fn template_select(query: &mut Query) -> Option<&mut Select> {
    match query.body.as_mut() {
        SetExpr::Select(select) => Some(select),
        _ => None,
    }
}

/// `x IN t` reads as `x IN (SELECT * FROM t)` in SQLite; written that way, the table read is a
/// FROM item like any other (row filters and masks apply to it).
struct InTableExpander;

impl VisitorMut for InTableExpander {
    type Break = ();

    fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        if let Expr::In { target, .. } = expr {
            if let InTarget::Table { name, args: None } = target {
                if let Some(mut query) = select_star_template() {
                    if let Some(TableFactor::Table { name: from, .. }) =
                        template_select(&mut query).and_then(|s| s.from.first_mut()).map(|f| &mut f.relation)
                    {
                        *from = name.clone();
                        *target = InTarget::Subquery(Box::new(query));
                    }
                }
            }
        }
        ControlFlow::Continue(())
    }
}

/// Lists the FROM-item tables of a tree in visiting order, by address.
struct FactorLister {
    addresses: Vec<usize>,
}

impl Visitor for FactorLister {
    type Break = ();
    fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<()> {
        if matches!(factor, TableFactor::Table { .. }) {
            self.addresses.push(factor as *const TableFactor as usize);
        }
        ControlFlow::Continue(())
    }
}

/// Replaces, after visiting it, each planned FROM-item table by its view; the new subtree is not
/// visited, so the numbering of the original tables holds.
struct ViewRewriter<'v> {
    plan: Vec<Option<&'v View>>,
    next: usize,
    open: Vec<usize>,
}

impl VisitorMut for ViewRewriter<'_> {
    type Break = ();

    fn pre_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
        if matches!(factor, TableFactor::Table { .. }) {
            self.open.push(self.next);
            self.next += 1;
        }
        ControlFlow::Continue(())
    }

    fn post_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
        if matches!(factor, TableFactor::Table { .. }) {
            let index = self.open.pop().unwrap_or(usize::MAX);
            if let Some(Some(view)) = self.plan.get(index) {
                if let Some(derived) = view.derived_table(factor) {
                    *factor = derived;
                }
            }
        }
        ControlFlow::Continue(())
    }
}

/// Rewrites every FROM item the resolver marked (by address in this same, unchanged tree).
fn rewrite_views(query: &mut Query, sites: &HashMap<usize, String>, reads: &BTreeMap<String, TableRead>) {
    if sites.is_empty() {
        return;
    }
    let mut lister = FactorLister { addresses: Vec::new() };
    let _ = Visit::visit(&*query, &mut lister);
    let plan = lister
        .addresses
        .iter()
        .map(|address| sites.get(address).and_then(|table| reads.get(table)).and_then(|r| r.view.as_ref()))
        .collect();
    let mut rewriter = ViewRewriter { plan, next: 0, open: Vec::new() };
    let _ = VisitMut::visit(query, &mut rewriter);
}

fn quoted(name: &str) -> Ident {
    Ident::with_quote('"', name)
}

fn nested(expr: Expr) -> Expr {
    Expr::Nested(Box::new(expr))
}

impl View {
    /// `(SELECT <columns> FROM main."t" WHERE <predicate>) AS <alias or t>` for the FROM item
    /// `t [AS alias]`.
    fn derived_table(&self, original: &TableFactor) -> Option<TableFactor> {
        let TableFactor::Table { name, alias, .. } = original else { return None };
        let alias_name = match alias {
            Some(alias) => alias.name.clone(),
            None => name_parts(name).pop()?,
        };
        let mut inner = original.clone();
        if let TableFactor::Table { name, alias, .. } = &mut inner {
            *name = ObjectName::from(vec![Ident::new(&self.source), quoted(&self.table)]);
            *alias = None;
        }
        let mut query = select_star_template()?;
        let select = template_select(&mut query)?;
        select.from.first_mut()?.relation = inner;
        if self.columns.iter().any(|(_, masked)| *masked) {
            select.projection = self
                .columns
                .iter()
                .map(|(column, masked)| {
                    if *masked {
                        SelectItem::ExprWithAlias {
                            expr: Expr::value(Value::SingleQuotedString(MASK.to_string())),
                            alias: quoted(column),
                        }
                    } else {
                        SelectItem::UnnamedExpr(Expr::Identifier(quoted(column)))
                    }
                })
                .collect();
        }
        select.selection = self.predicate.clone();
        Some(TableFactor::Derived {
            lateral: false,
            subquery: Box::new(query),
            alias: Some(TableAlias { explicit: true, name: alias_name, columns: Vec::new(), at: None }),
            sample: None,
        })
    }
}

/// The value of an integer literal (`5`, `-1`, `(5)`), if it is one.
fn integer_literal(expr: &Expr) -> Option<i128> {
    match expr {
        Expr::Value(value) => match &value.value {
            Value::Number(digits, _) => digits.parse().ok(),
            _ => None,
        },
        Expr::UnaryOp { op: UnaryOperator::Minus, expr } => integer_literal(expr).map(|n| -n),
        Expr::UnaryOp { op: UnaryOperator::Plus, expr } => integer_literal(expr),
        Expr::Nested(inner) => integer_literal(inner),
        _ => None,
    }
}

/// Lowers the outermost LIMIT to `cap` (a negative LIMIT means none in SQLite), or adds it.
/// A LIMIT that is not an integer literal stays, and the query is wrapped in
/// `SELECT * FROM (...) LIMIT cap`, so that the smaller of the two applies.
fn apply_row_cap(query: &mut Query, cap: u64) {
    let cap_expr = || Expr::value(Value::Number(cap.to_string(), false));
    let within = |expr: &Expr| integer_literal(expr).map(|n| n >= 0 && n <= i128::from(cap));
    let limit = match &mut query.limit_clause {
        None => {
            query.limit_clause = Some(LimitClause::LimitOffset {
                limit: Some(cap_expr()),
                offset: None,
                limit_by: Vec::new(),
            });
            return;
        }
        Some(LimitClause::LimitOffset { limit: None, .. }) => {
            if let Some(LimitClause::LimitOffset { limit, .. }) = &mut query.limit_clause {
                *limit = Some(cap_expr());
            }
            return;
        }
        Some(LimitClause::LimitOffset { limit: Some(limit), .. }) => limit,
        Some(LimitClause::OffsetCommaLimit { limit, .. }) => limit,
    };
    match within(limit) {
        Some(true) => {}
        Some(false) => *limit = cap_expr(),
        None => {
            let Some(mut outer) = select_star_template() else { return };
            let Some(select) = template_select(&mut outer) else { return };
            let Some(from) = select.from.first_mut() else { return };
            let inner = std::mem::replace(query, empty_query());
            from.relation =
                TableFactor::Derived { lateral: false, subquery: Box::new(inner), alias: None, sample: None };
            outer.limit_clause = Some(LimitClause::LimitOffset {
                limit: Some(cap_expr()),
                offset: None,
                limit_by: Vec::new(),
            });
            *query = outer;
        }
    }
}

fn empty_query() -> Query {
    Query {
        with: None,
        body: Box::new(empty_set_expr()),
        order_by: None,
        limit_clause: None,
        fetch: None,
        locks: Vec::new(),
        for_clause: None,
        settings: None,
        format_clause: None,
        pipe_operators: Vec::new(),
    }
}

/// Problems with a row-filter predicate on `table`, its parameters bound: it must read only
/// columns of that table and allowed functions. Used when the policy is loaded.
pub(crate) fn check_row_filter(catalog: &Catalog, table: &str, predicate: &Expr) -> Vec<Violation> {
    let Some(mut query) = select_star_template() else { return Vec::new() };
    if let Some(select) = template_select(&mut query) {
        if let Some(TableFactor::Table { name, .. }) = select.from.first_mut().map(|f| &mut f.relation) {
            *name = ObjectName::from(vec![quoted(table)]);
        }
        select.selection = Some(predicate.clone());
    }
    let mut safety = SafetyCheck::default();
    let _ = query.visit(&mut safety);
    let policy = Policy::unrestricted();
    let principal = Principal::new("policy-check", policy.role());
    let mut resolver = Resolver::new(catalog, &policy, &principal);
    resolver.resolve_query(&query, None);
    let mut violations = safety.violations;
    violations.append(&mut resolver.violations);
    violations
}

// --- small helpers -------------------------------------------------------------------------------

/// The constraint of a join SQLite supports (inner, outer and cross joins); `None` for the
/// others (semi, anti, apply, as-of joins), which the validator refuses.
pub fn join_constraint(operator: &JoinOperator) -> Option<&JoinConstraint> {
    match operator {
        JoinOperator::Join(c)
        | JoinOperator::Inner(c)
        | JoinOperator::Left(c)
        | JoinOperator::LeftOuter(c)
        | JoinOperator::Right(c)
        | JoinOperator::RightOuter(c)
        | JoinOperator::FullOuter(c)
        | JoinOperator::CrossJoin(c) => Some(c),
        _ => None,
    }
}

fn name_parts(name: &ObjectName) -> Vec<Ident> {
    name.0
        .iter()
        .map(|part| match part {
            ObjectNamePart::Identifier(ident) => ident.clone(),
            other => Ident::new(other.to_string()),
        })
        .collect()
}

fn join_idents(idents: &[Ident]) -> String {
    let parts: Vec<String> = idents.iter().map(Ident::to_string).collect();
    parts.join(".")
}

fn is_rowid(column: &str) -> bool {
    ["rowid", "oid", "_rowid_"].iter().any(|r| r.eq_ignore_ascii_case(column))
}

/// The name SQLite gives a result column without alias.
fn output_name(expr: &Expr) -> String {
    match expr {
        Expr::Identifier(ident) => ident.value.clone(),
        Expr::CompoundIdentifier(idents) => idents.last().map(|i| i.value.clone()).unwrap_or_default(),
        other => other.to_string(),
    }
}

/// A result-column position: a bare integer literal.
fn position(expr: &Expr) -> Option<usize> {
    match expr {
        Expr::Value(value) => match &value.value {
            Value::Number(digits, _) => digits.parse().ok(),
            _ => None,
        },
        _ => None,
    }
}

fn list_names(names: &[String]) -> String {
    const SHOWN: usize = 15;
    let mut listed: Vec<&str> = names.iter().take(SHOWN).map(String::as_str).collect();
    if names.len() > SHOWN {
        listed.push("...");
    }
    listed.join(", ")
}

fn columns_hint(visible: &[(String, String)]) -> String {
    if visible.is_empty() {
        return "add the table that has it to FROM".to_string();
    }
    let qualified: Vec<String> = visible.iter().map(|(r, c)| format!("{r}.{c}")).collect();
    format!("columns in scope: {}", list_names(&qualified))
}

fn first_word(text: &str) -> &str {
    text.split_whitespace().next().unwrap_or("this")
}

/// At most `max_chars` characters of `text`, with "..." when cut.
fn excerpt(text: &str, max_chars: usize) -> String {
    let text = text.trim();
    match text.char_indices().nth(max_chars) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_string(),
    }
}

/// The SQL where a parser message ("found: X at Line: L, Column: C") points, or its start.
fn fragment_at_location(text: &str, message: &str) -> String {
    let number_after = |label: &str| -> Option<usize> {
        let start = message.rfind(label)? + label.len();
        let digits: String = message[start..].chars().take_while(char::is_ascii_digit).collect();
        digits.parse().ok()
    };
    let (Some(line), Some(column)) = (number_after("Line: "), number_after("Column: ")) else {
        return excerpt(text, 40);
    };
    let line_start: usize = text.split('\n').take(line.saturating_sub(1)).map(|l| l.len() + 1).sum();
    let line_text = text.get(line_start..).unwrap_or("").split('\n').next().unwrap_or("");
    let column_at =
        line_text.char_indices().nth(column.saturating_sub(1)).map_or(line_text.len(), |(i, _)| i);
    // The column can point past the token; the token named after "found: " is the better anchor.
    let found = message
        .rfind("found: ")
        .and_then(|start| message[start + 7..].split(" at Line: ").next())
        .unwrap_or("");
    let limit = line_text.len().min(column_at + found.len());
    let start = match line_text.get(..limit).and_then(|head| head.rfind(found)) {
        Some(index) if !found.is_empty() => index,
        _ => column_at,
    };
    let rest = line_text.get(start..).unwrap_or("");
    if rest.trim().is_empty() {
        "(end of input)".to_string()
    } else {
        excerpt(rest, 40)
    }
}

/// Keeps the first of violations with the same code and fragment.
fn deduplicated(violations: Vec<Violation>) -> Vec<Violation> {
    let mut seen = BTreeSet::new();
    violations
        .into_iter()
        .filter(|v| seen.insert((v.code.as_str(), v.fragment.clone(), v.message.clone())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{Column, Table};

    fn table(name: &str, columns: &[&str]) -> Table {
        Table::new(name, columns.iter().map(|c| Column::new(*c, "TEXT")).collect())
    }

    fn shop() -> Catalog {
        Catalog::from_tables(vec![
            table("users", &["user_id", "email", "country_code", "signup_date"]),
            table("orders", &["order_id", "user_id", "total_amount", "country_code"]),
            table("countries", &["country_code", "country_name"]),
        ])
    }

    fn anyone() -> Principal {
        Principal::new("test", "unrestricted")
    }

    fn codes(sql: &str) -> Vec<&'static str> {
        match validate(&DraftSql::new(sql), &shop(), &Policy::unrestricted(), &anyone()) {
            Ok(_) => Vec::new(),
            Err(refusal) => refusal.violations.iter().map(|v| v.code.as_str()).collect(),
        }
    }

    fn refusal(sql: &str) -> Vec<Violation> {
        match validate(&DraftSql::new(sql), &shop(), &Policy::unrestricted(), &anyone()) {
            Ok(query) => panic!("expected a refusal for {sql}, got {}", query.sql()),
            Err(refusal) => refusal.violations,
        }
    }

    fn check_all(cases: &[(&str, &[&str])]) {
        let failures: Vec<String> = cases
            .iter()
            .filter(|(sql, expected)| codes(sql) != *expected)
            .map(|(sql, expected)| {
                let got = validate(&DraftSql::new(*sql), &shop(), &Policy::unrestricted(), &anyone())
                    .map(|q| q.sql().to_string());
                format!("{sql}\n   expected {expected:?}, got {got:#?}")
            })
            .collect();
        assert!(failures.is_empty(), "{} case(s) failed:\n{}", failures.len(), failures.join("\n"));
    }

    #[test]
    fn benign_queries_pass() {
        check_all(&[
            ("SELECT * FROM users", &[]),
            ("select EMAIL from USERS where Country_Code = 'FR';", &[]),
            ("SELECT u.email, o.total_amount FROM users AS u JOIN orders o ON u.user_id = o.user_id", &[]),
            ("SELECT * FROM users, orders WHERE users.user_id = orders.user_id", &[]),
            ("SELECT o.*, u.email FROM orders o LEFT JOIN users u ON u.user_id = o.user_id", &[]),
            ("SELECT country_code, count(*) AS n FROM users GROUP BY country_code HAVING count(*) > 1 ORDER BY n DESC LIMIT 5", &[]),
            ("SELECT email, row_number() OVER (PARTITION BY country_code ORDER BY signup_date) AS rn FROM users", &[]),
            ("SELECT email, rank() OVER w FROM users WINDOW w AS (ORDER BY signup_date)", &[]),
            ("SELECT CASE WHEN total_amount > 100 THEN 'big' ELSE 'small' END AS size FROM orders", &[]),
            ("SELECT count(DISTINCT country_code), sum(total_amount), total(total_amount) FROM orders", &[]),
            // subqueries, correlated or not
            ("SELECT email FROM users WHERE user_id IN (SELECT user_id FROM orders WHERE total_amount > 10)", &[]),
            ("SELECT email FROM users u WHERE EXISTS (SELECT 1 FROM orders o WHERE o.user_id = u.user_id)", &[]),
            ("SELECT email FROM users WHERE (SELECT count(*) FROM orders o WHERE o.user_id = users.user_id) > 2", &[]),
            ("SELECT email FROM users WHERE EXISTS (SELECT 1 FROM countries WHERE country_name = email)", &[]),
            ("SELECT email, (SELECT max(total_amount) FROM orders o WHERE o.user_id = u.user_id) AS best FROM users u", &[]),
            // set operations
            ("SELECT country_code FROM users UNION SELECT country_code FROM orders ORDER BY country_code", &[]),
            ("SELECT user_id FROM users INTERSECT SELECT user_id FROM orders EXCEPT SELECT 1 ORDER BY 1", &[]),
            // derived tables
            ("SELECT d.n FROM (SELECT count(*) AS n FROM orders) AS d", &[]),
            ("SELECT n, user_id FROM (SELECT user_id, count(*) AS n FROM orders GROUP BY user_id)", &[]),
            ("SELECT d.* FROM (SELECT * FROM users JOIN orders USING (user_id)) d WHERE d.total_amount > 1", &[]),
            ("SELECT column1 FROM (VALUES (1, 2), (3, 4))", &[]),
            // CTEs
            ("WITH big AS (SELECT user_id, total_amount FROM orders WHERE total_amount > 100) SELECT u.email, b.total_amount FROM users u JOIN big b ON b.user_id = u.user_id", &[]),
            ("WITH c(code, name) AS (SELECT country_code, country_name FROM countries) SELECT name FROM c WHERE code = 'FR'", &[]),
            ("WITH a AS (SELECT user_id FROM users), b AS (SELECT user_id FROM a) SELECT * FROM b", &[]),
            ("WITH fr AS (SELECT user_id FROM users WHERE country_code = 'FR') SELECT total_amount FROM orders WHERE user_id IN (SELECT user_id FROM fr)", &[]),
            ("WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < 10) SELECT n FROM seq", &[]),
            ("WITH RECURSIVE seq AS (SELECT 1 AS n UNION ALL SELECT n + 1 FROM seq WHERE n < 10) SELECT n FROM seq", &[]),
            ("WITH users AS (SELECT 1 AS x) SELECT x FROM users", &[]),
            // USING and NATURAL
            ("SELECT user_id, country_code, email, total_amount FROM users JOIN orders USING (user_id, country_code)", &[]),
            ("SELECT country_code, country_name, users.country_code FROM users NATURAL JOIN countries", &[]),
            // aliases and positions
            ("SELECT email AS e, signup_date FROM users ORDER BY e, 2", &[]),
            ("SELECT total_amount * 2 AS twice FROM orders WHERE twice > 10 GROUP BY twice HAVING twice < 100", &[]),
            ("SELECT u.country_code AS country_code FROM users u JOIN orders o ON o.user_id = u.user_id ORDER BY country_code", &[]),
            // quoting and literals
            ("SELECT country_code FROM countries WHERE country_name = \"France\"", &[]),
            ("SELECT \"email\" FROM \"Users\" WHERE [user_id] = 1 AND `country_code` = 'FR'", &[]),
            ("SELECT 'email', 'no_such_column' FROM users", &[]),
            // schemas and rowid
            ("SELECT main.users.email, users.user_id FROM main.users", &[]),
            ("SELECT rowid, oid, _rowid_ FROM users", &[]),
            ("SELECT u.rowid FROM users u JOIN orders o ON o.user_id = u.user_id", &[]),
            // functions and expressions
            ("SELECT upper(email), strftime('%Y', signup_date), round(avg(total_amount), 2), coalesce(NULL, 1), CAST(total_amount AS INTEGER) FROM users JOIN orders USING (user_id) GROUP BY 1, 2", &[]),
            ("SELECT date('now'), current_timestamp, random(), abs(-1), iif(1, 2, 3), substr('abc', 1, 2)", &[]),
            ("SELECT email FROM users WHERE email LIKE '%@x.com' AND signup_date BETWEEN '2024-01-01' AND '2024-12-31' AND country_code IN ('FR', 'DE') AND email GLOB '*a*' AND email IS NOT NULL", &[]),
            ("SELECT email FROM users LIMIT 10 OFFSET 5", &[]),
            ("SELECT email FROM users LIMIT 5, 10", &[]),
            ("-- top users\nSELECT email FROM users /* all of them */", &[]),
        ]);
    }

    #[test]
    fn each_violation_code() {
        check_all(&[
            ("", &["empty"]),
            ("  \n\t ", &["empty"]),
            ("-- only a comment", &["empty"]),
            ("SELECT FROM WHERE", &["parse_error"]),
            ("SELEKT * FROM users", &["parse_error"]),
            ("SELECT 'unterminated FROM users", &["parse_error"]),
            ("SELECT 1; SELECT 2", &["multiple_statements"]),
            ("SELECT 1; DROP TABLE users", &["multiple_statements", "not_read_only"]),
            ("DELETE FROM users", &["not_read_only"]),
            ("INSERT INTO users (email) VALUES ('a')", &["not_read_only"]),
            ("REPLACE INTO users (email) VALUES ('a')", &["not_read_only"]),
            ("UPDATE users SET email = 'x'", &["not_read_only"]),
            ("DROP TABLE users", &["not_read_only"]),
            ("CREATE TABLE x (a INTEGER)", &["not_read_only"]),
            ("ALTER TABLE users ADD COLUMN x TEXT", &["not_read_only"]),
            ("ATTACH DATABASE '/tmp/x.db' AS x", &["not_read_only"]),
            ("DETACH DATABASE x", &["not_read_only"]),
            ("PRAGMA table_info(users)", &["not_read_only"]),
            ("PRAGMA writable_schema = 1", &["not_read_only"]),
            ("VACUUM", &["not_read_only"]),
            ("BEGIN", &["not_read_only"]),
            ("COMMIT", &["not_read_only"]),
            ("EXPLAIN SELECT 1", &["not_read_only"]),
            ("WITH x AS (SELECT 1) DELETE FROM users", &["not_read_only"]),
            ("WITH x AS (SELECT 1) INSERT INTO users (email) SELECT 'a'", &["not_read_only"]),
            ("SELECT * INTO backup FROM users", &["not_read_only"]),
            ("SELECT load_extension('/tmp/evil.so')", &["forbidden_function"]),
            ("SELECT readfile('/etc/passwd')", &["forbidden_function"]),
            ("SELECT writefile('/tmp/x', email) FROM users", &["forbidden_function"]),
            ("SELECT sqlite_version()", &["forbidden_function"]),
            ("SELECT randomblob(1000000000)", &["forbidden_function"]),
            ("SELECT email FROM users WHERE length(zeroblob(999999999)) > 0", &["forbidden_function"]),
            ("SELECT * FROM pragma_table_info('users')", &["forbidden_function"]),
            ("SELECT value FROM json_each('[1, 2]')", &["forbidden_function"]),
            ("SELECT lenght(email) FROM users", &["unknown_function"]),
            ("SELECT median(total_amount) FROM orders", &["unknown_function"]),
            ("SELECT main.abs(1)", &["unknown_function"]),
            ("SELECT * FROM user", &["unknown_table"]),
            ("SELECT * FROM sqlite_master", &["unknown_table"]),
            ("SELECT name FROM sqlite_schema", &["unknown_table"]),
            ("SELECT * FROM temp.users", &["unknown_table"]),
            ("SELECT * FROM other.users", &["unknown_table"]),
            ("WITH a AS (SELECT 1 AS x) SELECT * FROM b", &["unknown_table"]),
            ("SELECT * FROM (WITH a AS (SELECT 1 AS x) SELECT x FROM a) AS d JOIN a ON 1", &["unknown_table"]),
            ("SELECT x.email FROM users u", &["unknown_table"]),
            ("SELECT users.email FROM users u", &["unknown_table"]),
            ("SELECT * FROM users u, (SELECT u.email) d", &["unknown_table"]),
            ("SELECT emial FROM users", &["unknown_column"]),
            ("SELECT u.emial FROM users u", &["unknown_column"]),
            ("SELECT email FROM users WHERE 'France' = country_name", &["unknown_column"]),
            ("SELECT email FROM users ORDER BY 3", &["unknown_column"]),
            ("SELECT email FROM users GROUP BY 0", &["unknown_column"]),
            ("SELECT d.email FROM (SELECT user_id FROM users) d", &["unknown_column"]),
            ("SELECT rowid FROM users JOIN orders USING (user_id)", &["unknown_column"]),
            ("SELECT * FROM users JOIN orders USING (email)", &["unknown_column"]),
            ("SELECT email AS e, e || 'x' FROM users", &["unknown_column"]),
            ("SELECT email FROM users LIMIT total_amount", &["unknown_column"]),
            ("SELECT user_id FROM users UNION SELECT user_id FROM orders ORDER BY email", &["unknown_column"]),
            ("SELECT country_code FROM users JOIN orders ON users.user_id = orders.user_id", &["ambiguous_column"]),
            ("SELECT email FROM users JOIN orders USING (user_id) JOIN countries ON countries.country_code = country_code", &["ambiguous_column"]),
            // every violation, not just the first; no cascade from the unknown table
            ("SELECT emial, lenght(x) FROM userz", &["unknown_function", "unknown_table"]),
            ("SELECT emial, total FROM users; DELETE FROM users", &["multiple_statements", "not_read_only"]),
        ]);
    }

    #[test]
    fn hints_say_what_was_meant() {
        let column = refusal("SELECT emial FROM users");
        assert_eq!(column[0].fragment, "emial");
        assert!(column[0].hint.contains("'email'"), "{column:?}");
        let table = refusal("SELECT * FROM user");
        assert!(table[0].message.contains("did you mean 'users'"), "{table:?}");
        let qualified = refusal("SELECT u.emial FROM users u");
        assert!(qualified[0].hint.contains("u.email"), "{qualified:?}");
        let ambiguous = refusal("SELECT country_code FROM users JOIN orders USING (user_id)");
        assert_eq!(ambiguous[0].code, ViolationCode::AmbiguousColumn);
        assert!(ambiguous[0].hint.contains("users.country_code"), "{ambiguous:?}");
        assert!(ambiguous[0].hint.contains("orders.country_code"), "{ambiguous:?}");
        let function = refusal("SELECT lenght(email) FROM users");
        assert!(function[0].hint.contains("'length'"), "{function:?}");
        let aliased = refusal("SELECT users.email FROM users u");
        assert!(aliased[0].hint.contains("aliased as 'u'"), "{aliased:?}");
        let parse = refusal("SELECT email,\n  FROM users");
        assert!(parse[0].fragment.starts_with("FROM users"), "{parse:?}");
        for v in refusal("SELECT emial, lenght(x) FROM userz; DROP TABLE users") {
            assert!(!v.message.is_empty() && !v.hint.is_empty(), "{v:?}");
        }
    }

    #[test]
    fn size_limit() {
        let limits = Limits { max_sql_bytes: 30, max_depth: 40 };
        let long = "SELECT email FROM users WHERE email = 'a very long literal'";
        let refused =
            validate_with(&DraftSql::new(long), &shop(), &Policy::unrestricted(), &anyone(), &limits);
        let codes: Vec<_> = refused.err().into_iter().flat_map(|r| r.violations).map(|v| v.code).collect();
        assert_eq!(codes, [ViolationCode::TooLarge]);
        assert!(validate_with(
            &DraftSql::new("SELECT 1"),
            &shop(),
            &Policy::unrestricted(),
            &anyone(),
            &limits
        )
        .is_ok());
    }

    /// Valid SQL up to the size limit that nests far deeper than the depth limit.
    fn deep_inputs() -> Vec<String> {
        let max = Limits::default().max_sql_bytes;
        // head, then `open` n times, then middle, then `close` n times, as long as it fits.
        let nest = |head: &str, open: &str, middle: &str, close: &str| {
            let count = (max - head.len() - middle.len()) / (open.len() + close.len());
            format!("{head}{}{middle}{}", open.repeat(count), close.repeat(count))
        };
        vec![
            nest("SELECT 1", "", "", "+1"),
            nest("SELECT 1", "", "", " || 1"),
            nest("SELECT * FROM users WHERE 1=1", "", "", " AND 1=1"),
            nest("SELECT 1", "", "", " IS NULL"),
            nest("SELECT 1", "", "", " BETWEEN 1 AND 1"),
            nest("SELECT 1", "", "", " IN (1)"),
            nest("SELECT 1", "", "", " UNION SELECT 1"),
            nest("SELECT ", "NOT ", "1", ""),
            nest("SELECT ", "- ", "1", ""),
            nest("SELECT ", "(", "1", ")"),
            nest("SELECT ", "abs(", "1", ")"),
            nest("SELECT ", "CAST(", "1", " AS INT)"),
            nest("SELECT ", "CASE WHEN 1 THEN ", "1", " END"),
            nest("SELECT * FROM ", "(", "users", ")"),
            nest("SELECT * FROM ", "(SELECT * FROM ", "users", ")"),
            nest(
                "SELECT 1 FROM users WHERE user_id IN ",
                "(SELECT user_id FROM users WHERE user_id IN ",
                "(1)",
                ")",
            ),
            nest("SELECT ", "(SELECT ", "1", ")"),
            format!("SELECT {}1", "NOT ".repeat(45)),
            format!("SELECT 1{}", " + 1".repeat(45)),
        ]
    }

    #[test]
    fn deep_nesting_is_refused_without_overflow() {
        for sql in deep_inputs() {
            assert!(sql.len() <= Limits::default().max_sql_bytes);
            let got = codes(&sql);
            assert_eq!(got, ["too_deep"], "{}...", &sql[..60]);
        }
    }

    #[test]
    fn deep_nesting_on_a_small_stack() {
        let worker = std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(|| deep_inputs().iter().map(|sql| codes(sql)).collect::<Vec<_>>());
        let results = worker.and_then(|w| w.join().map_err(|_| std::io::Error::other("panicked")));
        let results = results.unwrap_or_else(|e| panic!("validator thread failed: {e}"));
        assert!(results.iter().all(|c| c == &["too_deep"]), "{results:?}");
    }

    #[test]
    fn tables_are_catalog_names_sorted_without_ctes() {
        let cases: &[(&str, &[&str])] = &[
            ("SELECT u.email FROM USERS u JOIN orders o ON o.user_id = u.user_id JOIN Orders o2 ON o2.order_id = o.order_id", &["orders", "users"]),
            ("WITH big AS (SELECT * FROM orders) SELECT * FROM big", &["orders"]),
            ("SELECT 1", &[]),
            ("SELECT email FROM main.users WHERE country_code IN (SELECT country_code FROM countries)", &["countries", "users"]),
        ];
        for (sql, expected) in cases {
            let query = validate(&DraftSql::new(*sql), &shop(), &Policy::unrestricted(), &anyone())
                .unwrap_or_else(|r| panic!("{sql}: {r}"));
            assert_eq!(query.tables(), *expected, "{sql}");
            assert!(query.warnings().is_empty());
        }
    }

    #[test]
    fn rendered_sql_round_trips() {
        let sql = "with b as (select user_id, total_amount from orders where total_amount > 1) \
                   select u.email, \"France\", 'it''s', b.total_amount from users u \
                   join b using (user_id) where u.email like '%x%' order by 2 desc limit 3";
        let query = validate(&DraftSql::new(sql), &shop(), &Policy::unrestricted(), &anyone())
            .unwrap_or_else(|r| panic!("{r}"));
        let again = validate(&DraftSql::new(query.sql()), &shop(), &Policy::unrestricted(), &anyone())
            .unwrap_or_else(|r| panic!("{r}"));
        assert_eq!(again.sql(), query.sql());
        let original = Parser::parse_sql(&SQLiteDialect {}, sql).ok();
        let rendered = Parser::parse_sql(&SQLiteDialect {}, query.sql()).ok();
        assert!(original.is_some() && original == rendered, "{}", query.sql());
    }

    #[test]
    fn codes_serialize_as_their_stable_names() {
        let all = [
            ViolationCode::Empty,
            ViolationCode::TooLarge,
            ViolationCode::TooDeep,
            ViolationCode::ParseError,
            ViolationCode::MultipleStatements,
            ViolationCode::NotReadOnly,
            ViolationCode::ForbiddenFunction,
            ViolationCode::UnknownFunction,
            ViolationCode::UnknownTable,
            ViolationCode::UnknownColumn,
            ViolationCode::AmbiguousColumn,
        ];
        for code in all {
            let json = serde_json::to_string(&code).unwrap_or_default();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
        }
        let refusal = Refusal { violations: refusal("SELECT emial FROM users") };
        assert!(refusal.to_string().contains("emial"), "{refusal}");
    }

    // --- Spider dev: every gold query is valid SQLite and must pass --------------------------

    #[test]
    fn spider_dev_gold_queries_pass() {
        let dir = crate::config::spider_dir(std::path::Path::new(env!("CARGO_MANIFEST_DIR")));
        if !dir.join("dev.json").is_file() {
            // Said past the harness's capture; CI has the data and must run this.
            assert!(std::env::var("CI").map_or(true, |v| v != "true"), "no Spider data at {}", dir.display());
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED validate::tests::spider_dev_gold_queries_pass: no Spider data at {}; set QUARRY_SPIDER",
                dir.display()
            );
            return;
        }
        let dir = dir.display().to_string();
        let catalogs =
            crate::catalog::spider::load_catalogs(std::path::Path::new(&format!("{dir}/tables.json")))
                .unwrap_or_else(|e| panic!("{e}; run scripts/fetch-assets.sh"));
        let text = std::fs::read_to_string(format!("{dir}/dev.json")).unwrap_or_else(|e| {
            panic!("Spider dev set missing at {dir}/dev.json ({e}); run scripts/fetch-assets.sh")
        });
        let examples: serde_json::Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("dev.json: {e}"));
        let examples = examples.as_array().cloned().unwrap_or_default();
        let mut failures = Vec::new();
        for example in &examples {
            let db = example["db_id"].as_str().unwrap_or_default();
            let sql = example["query"].as_str().unwrap_or_default();
            let Some(catalog) = catalogs.get(db) else {
                failures.push(format!("[{db}] no schema"));
                continue;
            };
            if let Err(refusal) = validate(&DraftSql::new(sql), catalog, &Policy::unrestricted(), &anyone()) {
                failures.push(format!("[{db}] {sql}\n    {refusal}"));
            }
        }
        let passed = examples.len() - failures.len();
        println!("Spider dev gold: {passed} of {} pass", examples.len());
        for failure in &failures {
            println!("{failure}");
        }
        assert_eq!(examples.len(), 1034, "dev.json should hold 1,034 examples");
        assert!(
            passed * 100 >= examples.len() * 99,
            "{passed} of {} pass:\n{}",
            examples.len(),
            failures.join("\n")
        );
    }

    // --- policy ----------------------------------------------------------------------------------

    /// The shop with governance: users.email is pii, countries is tier 2, legacy_users is
    /// deprecated tier 3.
    fn governed_shop() -> Catalog {
        let mut users = table("users", &["user_id", "email", "country_code", "signup_date"]);
        users.tier = Some(crate::catalog::Tier::Certified);
        users.columns[1].tags = vec!["pii".to_string()];
        let mut orders = table("orders", &["order_id", "user_id", "total_amount", "country_code"]);
        orders.tier = Some(crate::catalog::Tier::Certified);
        let mut countries = table("countries", &["country_code", "country_name"]);
        countries.tier = Some(crate::catalog::Tier::Team);
        let mut legacy = table("legacy_users", &["id", "mail"]);
        legacy.tier = Some(crate::catalog::Tier::Staging);
        legacy.deprecated =
            Some(crate::catalog::Deprecation { replacement: "users".to_string(), note: String::new() });
        Catalog::from_tables(vec![users, orders, countries, legacy])
    }

    fn roles() -> crate::policy::PolicySet {
        let text = r#"
            [roles.analyst]
            deny_tags = ["pii"]
            row_cap = 100
            [roles.steward]
            mask_tags = ["pii"]
            [roles.regional]
            tiers = [1]
            deprecated = "refuse"
            [[roles.regional.row_filters]]
            table = "orders"
            predicate = "country_code = :principal.country"
        "#;
        let section = toml::from_str(text).unwrap_or_else(|e| panic!("{e}"));
        crate::policy::PolicySet::from_config(section).unwrap_or_else(|e| panic!("{e}"))
    }

    fn governed(sql: &str, role: &str) -> Result<ValidatedQuery, Refusal> {
        let roles = roles();
        let policy = roles.get(role).unwrap_or_else(|| panic!("no role {role}"));
        let principal = Principal::new("test", role).with_attribute("country", "FR");
        validate(&DraftSql::new(sql), &governed_shop(), policy, &principal)
    }

    fn governed_sql(sql: &str, role: &str) -> String {
        governed(sql, role).map(|q| q.sql().to_string()).unwrap_or_else(|r| panic!("{sql}: {r}"))
    }

    #[test]
    fn row_filters_wrap_every_read_of_the_table() {
        assert_eq!(
            governed_sql("SELECT count(*) FROM orders o JOIN orders ON o.user_id = orders.user_id", "regional"),
            "SELECT count(*) FROM (SELECT * FROM main.\"orders\" WHERE country_code = 'FR') AS o \
             JOIN (SELECT * FROM main.\"orders\" WHERE country_code = 'FR') AS orders ON o.user_id = orders.user_id"
        );
        assert_eq!(
            governed_sql(
                "WITH a AS (SELECT user_id FROM orders) SELECT 1 WHERE 2 IN (SELECT user_id FROM a) AND 3 IN orders",
                "regional"
            ),
            "WITH a AS (SELECT user_id FROM (SELECT * FROM main.\"orders\" WHERE country_code = 'FR') AS orders) \
             SELECT 1 WHERE 2 IN (SELECT user_id FROM a) \
             AND 3 IN (SELECT * FROM (SELECT * FROM main.\"orders\" WHERE country_code = 'FR') AS orders)"
        );
        let query = governed("SELECT count(*) FROM orders", "regional").unwrap_or_else(|r| panic!("{r}"));
        assert_eq!(query.governance().row_filters, ["orders: country_code = 'FR'"]);
        // A CTE named like the table is not the table.
        assert_eq!(
            governed_sql("WITH orders AS (SELECT 1 AS x) SELECT x FROM orders", "regional"),
            "WITH orders AS (SELECT 1 AS x) SELECT x FROM orders"
        );
    }

    #[test]
    fn masks_replace_the_column_where_the_table_is_read() {
        let query = governed("SELECT u.email, user_id FROM users u WHERE email LIKE '%x'", "steward")
            .unwrap_or_else(|r| panic!("{r}"));
        assert_eq!(
            query.sql(),
            "SELECT u.email, user_id FROM (SELECT \"user_id\", '***' AS \"email\", \"country_code\", \
             \"signup_date\" FROM main.\"users\") AS u WHERE email LIKE '%x'"
        );
        assert_eq!(query.governance().masked_columns, ["email"]);
        let codes: Vec<&str> = query.warnings().iter().map(|w| w.code.as_str()).collect();
        assert_eq!(codes, ["masked_column"]);
        assert_eq!(query.hidden_columns(), &[] as &[(String, String)]);
        let analyst = governed("SELECT user_id FROM users", "analyst").unwrap_or_else(|r| panic!("{r}"));
        assert_eq!(analyst.hidden_columns(), [("users".to_string(), "email".to_string())]);
    }

    #[test]
    fn the_row_cap_lowers_the_outermost_limit_and_never_raises_it() {
        for (sql, expected) in [
            ("SELECT user_id FROM users", "SELECT user_id FROM users LIMIT 100"),
            ("SELECT user_id FROM users LIMIT 5", "SELECT user_id FROM users LIMIT 5"),
            ("SELECT user_id FROM users LIMIT 5000", "SELECT user_id FROM users LIMIT 100"),
            ("SELECT user_id FROM users LIMIT -1", "SELECT user_id FROM users LIMIT 100"),
            ("SELECT user_id FROM users LIMIT 5 OFFSET 10", "SELECT user_id FROM users LIMIT 5 OFFSET 10"),
            ("SELECT user_id FROM users LIMIT 10, 5000", "SELECT user_id FROM users LIMIT 10, 100"),
            (
                "SELECT user_id FROM users UNION SELECT user_id FROM orders ORDER BY 1",
                "SELECT user_id FROM users UNION SELECT user_id FROM orders ORDER BY 1 LIMIT 100",
            ),
            (
                "SELECT user_id FROM (SELECT user_id FROM users LIMIT 5000) LIMIT 7",
                "SELECT user_id FROM (SELECT user_id FROM users LIMIT 5000) LIMIT 7",
            ),
            (
                "SELECT user_id FROM users LIMIT (SELECT 5000)",
                "SELECT * FROM (SELECT user_id FROM users LIMIT (SELECT 5000)) LIMIT 100",
            ),
        ] {
            assert_eq!(governed_sql(sql, "analyst"), expected, "{sql}");
        }
        let query = governed("SELECT 1", "analyst").unwrap_or_else(|r| panic!("{r}"));
        assert_eq!(query.governance().row_cap, Some(100));
    }

    #[test]
    fn policy_verdicts() {
        let codes = |sql: &str, role: &str| -> Vec<&'static str> {
            match governed(sql, role) {
                Ok(_) => Vec::new(),
                Err(refusal) => refusal.violations.iter().map(|v| v.code.as_str()).collect(),
            }
        };
        assert_eq!(codes("SELECT email FROM users", "analyst"), ["forbidden_column"]);
        assert_eq!(codes("SELECT email, email AS e FROM users", "analyst"), ["forbidden_column"]);
        assert_eq!(codes("SELECT email FROM users", "steward"), Vec::<&str>::new());
        assert_eq!(codes("SELECT * FROM countries", "regional"), ["table_not_allowed"]);
        assert_eq!(
            codes("SELECT id FROM legacy_users", "regional"),
            ["table_not_allowed", "deprecated_table"]
        );
        assert_eq!(codes("SELECT id FROM legacy_users", "analyst"), Vec::<&str>::new());
        let warned = governed("SELECT id FROM legacy_users", "analyst").unwrap_or_else(|r| panic!("{r}"));
        assert_eq!(warned.warnings()[0].code, ViolationCode::DeprecatedTable);
        assert!(warned.warnings()[0].message.contains("use 'users'"), "{:?}", warned.warnings());
        let refusal = governed("SELECT u.email FROM users u", "analyst").err().map(|r| r.violations);
        let first = refusal.as_deref().and_then(|v| v.first()).cloned();
        let first = first.unwrap_or_else(|| panic!("expected a refusal"));
        assert_eq!(first.fragment, "u.email");
        assert!(first.message.contains("users.email") && first.message.contains("'pii'"), "{first:?}");
        assert!(ViolationCode::ForbiddenColumn.is_policy() && !ViolationCode::UnknownColumn.is_policy());
        // Without the attribute its filter reads, the table cannot be read.
        let roles = roles();
        let regional = roles.get("regional").unwrap_or_else(|| panic!("no role"));
        let nobody = Principal::new("test", "regional");
        let refused = validate(&DraftSql::new("SELECT 1 FROM orders"), &governed_shop(), regional, &nobody);
        let refused = refused.err().map(|r| r.violations).unwrap_or_default();
        assert_eq!(refused.len(), 1);
        assert_eq!(refused[0].code, ViolationCode::TableNotAllowed);
        assert!(refused[0].message.contains("no attribute 'country'"), "{refused:?}");
    }

    #[test]
    fn row_filter_predicates_are_checked_against_the_catalog() {
        let filter = |predicate: &str| {
            let expr = Parser::new(&SQLiteDialect {})
                .try_with_sql(predicate)
                .and_then(|mut p| p.parse_expr())
                .unwrap_or_else(|e| panic!("{e}"));
            check_row_filter(&governed_shop(), "orders", &expr)
                .iter()
                .map(|v| v.code.as_str())
                .collect::<Vec<_>>()
        };
        assert_eq!(filter("country_code = 'FR' AND total_amount > 0"), Vec::<&str>::new());
        assert_eq!(filter("orders.country_code = 'FR'"), Vec::<&str>::new());
        assert_eq!(filter("country = 'FR'"), ["unknown_column"]);
        assert_eq!(filter("users.country_code = 'FR'"), ["unknown_table"]);
        assert_eq!(filter("load_extension('x') = 1"), ["forbidden_function"]);
    }
}
