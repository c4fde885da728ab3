//! The validator: it turns untrusted SQL (`DraftSql`: LLM output, or SQL from a user or tool)
//! into a `ValidatedQuery`, the only form of SQL the executor accepts, or refuses with every
//! violation it found. It is pure — no IO — a function of (SQL text, catalog); policy (roles,
//! PII tags, row filters) will come as a further argument and a further stage, after names are
//! resolved, without changing the stages below.
//!
//! Stages, in order: size -> parse (SQLite dialect) -> depth (a bounded walk, before any
//! unbounded one) -> read-only and function checks (a walk of the whole tree) -> name
//! resolution (a scoped walk, as a database resolves tables and columns) -> rendering, where the
//! statement to run is printed from the checked tree and must parse back to the same tree.
//! It does not execute SQL, rank tables or decide what a principal may see.

use std::collections::BTreeSet;
use std::ops::ControlFlow;

use serde::Serialize;
use sqlparser::ast::{
    Cte, Expr, Function, GroupByExpr, Ident, InTarget, JoinConstraint, JoinOperator, LimitClause,
    NamedWindowExpr, ObjectName, ObjectNamePart, OrderBy, OrderByExpr, OrderByKind, Query, Select,
    SelectItem, SelectItemQualifiedWildcardKind, SetExpr, Statement, TableFactor, TableWithJoins, Value,
    Values, Visit, VisitMut, Visitor, VisitorMut, WildcardAdditionalOptions,
};
use sqlparser::dialect::SQLiteDialect;
use sqlparser::parser::{Parser, ParserError};
use sqlparser::tokenizer::{Token, Tokenizer};

use crate::catalog::{closest, suggestion, Catalog};

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
}

impl ValidatedQuery {
    /// The statement to execute, printed from the checked tree: what runs is what was checked.
    pub fn sql(&self) -> &str {
        &self.sql
    }

    /// Catalog tables the query reads, sorted, without duplicates, in catalog spelling.
    pub fn tables(&self) -> &[String] {
        &self.tables
    }

    /// Findings that do not block the query.
    pub fn warnings(&self) -> &[Violation] {
        &self.warnings
    }
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
        }
    }
}

/// The validator refused: every violation found, not just the first.
#[derive(Debug, Clone, thiserror::Error, Serialize)]
#[error("query refused: {}", list_messages(.violations))]
pub struct Refusal {
    pub violations: Vec<Violation>,
}

fn list_messages(violations: &[Violation]) -> String {
    let messages: Vec<&str> = violations.iter().map(|v| v.message.as_str()).collect();
    messages.join("; ")
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

/// Checks `draft` against `catalog` with the default limits.
pub fn validate(draft: &DraftSql, catalog: &Catalog) -> Result<ValidatedQuery, Refusal> {
    validate_with(draft, catalog, &Limits::default())
}

/// Checks `draft` against `catalog`: a `ValidatedQuery` to run, or every violation found.
pub fn validate_with(
    draft: &DraftSql,
    catalog: &Catalog,
    limits: &Limits,
) -> Result<ValidatedQuery, Refusal> {
    let text = draft.text();
    check_size(text, limits)?;
    let statements = parse(text, limits)?;
    let query = single_query(statements, text)?;

    let mut safety = SafetyCheck::default();
    let _ = query.visit(&mut safety);
    let mut resolver = Resolver::new(catalog);
    resolver.resolve_query(&query, None);

    let mut violations = safety.violations;
    violations.append(&mut resolver.violations);
    if violations.is_empty() && resolver.relations_resolved != safety.relations_seen {
        violations.push(unsupported(&query.to_string()));
    }
    if !violations.is_empty() {
        return Err(Refusal { violations: deduplicated(violations) });
    }
    let sql = render(&query, limits)?;
    Ok(ValidatedQuery { sql, tables: resolver.tables.into_iter().collect(), warnings: Vec::new() })
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
            _ => {}
        }
        ControlFlow::Continue(())
    }
}

// --- name resolution -----------------------------------------------------------------------------

/// A relation visible in a FROM clause: a catalog table, a CTE or a subquery.
struct Relation {
    /// The name the query refers to it by: the alias, else the table or CTE name.
    name: Option<String>,
    /// The catalog table behind it, in catalog spelling.
    catalog_table: Option<String>,
    /// Whether an alias hides the table's own name.
    aliased: bool,
    /// Its column names; `None` when they cannot be known, and then any column is accepted.
    columns: Option<Vec<String>>,
    /// Columns merged into an earlier relation by USING or NATURAL: not found unqualified.
    merged: Vec<String>,
}

enum Lookup {
    Found,
    Missing,
    Unknown,
}

impl Relation {
    /// A relation that is not a catalog table (a CTE, a subquery), or not yet known to be one.
    fn new(name: Option<String>, columns: Option<Vec<String>>) -> Self {
        Relation { name, catalog_table: None, aliased: false, columns, merged: Vec::new() }
    }

    fn lookup(&self, column: &str, qualified: bool) -> Lookup {
        let Some(columns) = &self.columns else { return Lookup::Unknown };
        let merged = !qualified && contains(&self.merged, column);
        if contains(columns, column) && !merged {
            Lookup::Found
        } else {
            Lookup::Missing
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
    output_aliases: Vec<String>,
    /// Where aliases may be used (WHERE, GROUP BY, HAVING, ORDER BY), when no column matches.
    aliases_visible: bool,
    /// Where aliases win over columns (ORDER BY).
    aliases_first: bool,
}

/// A CTE in scope; columns are `None` while its recursive body is being resolved.
struct CteDefinition {
    name: String,
    columns: Option<Vec<String>>,
}

struct Resolver<'c> {
    catalog: &'c Catalog,
    ctes: Vec<CteDefinition>,
    scopes: Vec<Scope>,
    tables: BTreeSet<String>,
    relations_resolved: usize,
    violations: Vec<Violation>,
}

/// Output column names of a query; `None` when they cannot be known.
type Outputs = Option<Vec<String>>;

impl<'c> Resolver<'c> {
    fn new(catalog: &'c Catalog) -> Self {
        Resolver {
            catalog,
            ctes: Vec::new(),
            scopes: Vec::new(),
            tables: BTreeSet::new(),
            relations_resolved: 0,
            violations: Vec::new(),
        }
    }

    fn unsupported(&mut self, fragment: String) {
        self.violations.push(unsupported(&fragment));
    }

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
                self.define_cte(cte);
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

    fn define_cte(&mut self, cte: &Cte) {
        if cte.from.is_some() {
            self.unsupported(cte.to_string());
        }
        let explicit: Vec<String> = cte.alias.columns.iter().map(|c| c.name.value.clone()).collect();
        let pending = explicit.is_empty();
        let columns = if pending { None } else { Some(explicit) };
        self.ctes.push(CteDefinition { name: cte.alias.name.value.clone(), columns });
        let index = self.ctes.len() - 1;
        // Visible in its own body: SQLite reads a self-reference as recursion.
        let outputs = self.resolve_query(&cte.query, pending.then_some(index));
        if pending {
            if let Some(definition) = self.ctes.get_mut(index) {
                definition.columns = outputs;
            }
        }
    }

    fn fill_cte_columns(&mut self, fill_cte: Option<usize>, outputs: &Outputs) {
        if let Some(definition) = fill_cte.and_then(|index| self.ctes.get_mut(index)) {
            if definition.columns.is_none() {
                definition.columns = outputs.clone();
            }
        }
    }

    fn resolve_set_expr(&mut self, body: &SetExpr, fill_cte: Option<usize>) -> Outputs {
        let outputs = match body {
            SetExpr::Select(select) => self.resolve_select(select, None),
            SetExpr::Query(query) => return self.resolve_query(query, fill_cte),
            SetExpr::SetOperation { left, right, .. } => {
                let outputs = self.resolve_set_expr(left, fill_cte);
                self.resolve_set_expr(right, None);
                return outputs;
            }
            SetExpr::Values(values) => {
                let width = values.rows.first().map_or(0, |row| row.content.len());
                for row in &values.rows {
                    self.walk(&row.content);
                }
                Some((1..=width).map(|i| format!("column{i}")).collect())
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
            || matches!(select.distinct, Some(sqlparser::ast::Distinct::On(_)));
        if exotic {
            self.unsupported(select.to_string());
        }
        self.scopes.push(Scope::default());
        for table in &select.from {
            self.add_table_with_joins(table);
        }
        let outputs = self.resolve_projection(&select.projection);
        let output_count = outputs.as_ref().map(Vec::len);
        if let Some(scope) = self.scopes.last_mut() {
            scope.output_aliases = select
                .projection
                .iter()
                .filter_map(|item| match item {
                    SelectItem::ExprWithAlias { alias, .. } => Some(alias.value.clone()),
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
                    self.resolve_position_or_expr(expr, output_count, "GROUP BY");
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
                self.resolve_position_or_expr(&item.expr, output_count, "ORDER BY");
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

    /// `ORDER BY 2` / `GROUP BY 1` name a result column by position; anything else is an
    /// expression.
    fn resolve_position_or_expr(&mut self, expr: &Expr, output_count: Option<usize>, clause: &str) {
        if let Some(position) = position(expr) {
            if output_count.is_some_and(|count| position == 0 || position > count) {
                let count = output_count.unwrap_or_default();
                self.violations.push(violation(
                    ViolationCode::UnknownColumn,
                    format!("{clause} {position} is out of range: the query has {count} result column(s)"),
                    expr.to_string(),
                    format!("use a position between 1 and {count}, or name the column"),
                ));
            }
            return;
        }
        self.walk(expr);
    }

    fn resolve_projection(&mut self, projection: &[SelectItem]) -> Outputs {
        let mut outputs = Some(Vec::new());
        for item in projection {
            let names: Outputs = match item {
                SelectItem::UnnamedExpr(expr) => {
                    self.walk(expr);
                    Some(vec![output_name(expr)])
                }
                SelectItem::ExprWithAlias { expr, alias } => {
                    self.walk(expr);
                    Some(vec![alias.value.clone()])
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
            outputs = match (outputs, names) {
                (Some(mut all), Some(names)) => {
                    all.extend(names);
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
            let known = relation.columns.as_ref()?;
            columns.extend(known.iter().filter(|c| !contains(&relation.merged, c)).cloned());
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
            Some(columns) => columns,
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
        let mut names: Vec<String> = outputs.clone().unwrap_or_default();
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
        let output_count = outputs.as_ref().map(Vec::len);
        let columns = if outputs.is_some() { Some(names.clone()) } else { None };
        self.scopes.push(Scope { relations: vec![Relation::new(None, columns)], ..Scope::default() });
        for item in self.order_by_items(order_by) {
            let matches_output = match &item.expr {
                Expr::Identifier(ident) => contains(&names, &ident.value),
                Expr::CompoundIdentifier(idents) => {
                    idents.last().is_some_and(|ident| contains(&names, &ident.value))
                }
                other => expressions.contains(&other.to_string()),
            };
            if !matches_output {
                self.resolve_position_or_expr(&item.expr, output_count, "ORDER BY");
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
            let constraint = match &join.join_operator {
                JoinOperator::Join(c)
                | JoinOperator::Inner(c)
                | JoinOperator::Left(c)
                | JoinOperator::LeftOuter(c)
                | JoinOperator::Right(c)
                | JoinOperator::RightOuter(c)
                | JoinOperator::FullOuter(c)
                | JoinOperator::CrossJoin(c) => c,
                _ => {
                    self.unsupported(join.to_string());
                    continue;
                }
            };
            match constraint {
                JoinConstraint::On(expr) => self.walk(expr),
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
                if left.iter().any(|l| matches!(l.lookup(column, false), Lookup::Found))
                    && !contains(&shared, column)
                {
                    shared.push(column.clone());
                }
            }
        }
        shared
    }

    /// USING / NATURAL: each column must be on both sides; the right side's copy is merged away.
    fn merge_join_columns(&mut self, earlier: usize, columns: &[String], fragment: &str) {
        let Some(scope) = self.scopes.last_mut() else { return };
        let split = earlier.min(scope.relations.len());
        let mut missing = Vec::new();
        {
            let (left, right) = scope.relations.split_at(split);
            for column in columns {
                let has = |side: &[Relation]| {
                    side.iter().any(|r| !matches!(r.lookup(column, false), Lookup::Missing))
                };
                if !has(left) || !has(right) {
                    missing.push(column.clone());
                }
            }
        }
        for relation in &mut scope.relations[split..] {
            relation.merged.extend(columns.iter().cloned());
        }
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
                    || alias.as_ref().is_some_and(|a| !a.columns.is_empty());
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
                if let Some(alias_name) = alias_name {
                    relation.name = Some(alias_name);
                    relation.aliased = true;
                }
                self.add_relation(relation);
            }
            TableFactor::Derived { lateral, subquery, alias, sample } => {
                if *lateral || sample.is_some() {
                    self.unsupported(factor.to_string());
                }
                // A subquery in FROM does not see its sibling tables, only enclosing queries.
                let siblings = self.scopes.pop();
                let outputs = self.resolve_query(subquery, None);
                self.scopes.extend(siblings);
                let columns = match alias.as_ref().filter(|a| !a.columns.is_empty()) {
                    Some(a) => Some(a.columns.iter().map(|c| c.name.value.clone()).collect()),
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
                let cte = self.ctes.iter().rev().find(|c| c.name.eq_ignore_ascii_case(&table.value));
                if let Some(cte) = cte {
                    relation.columns = cte.columns.clone();
                    return relation;
                }
                table
            }
            [schema, table] if schema.value.eq_ignore_ascii_case("main") => table,
            [schema, _] => {
                self.violations.push(violation(
                    ViolationCode::UnknownTable,
                    format!("schema '{}' is not available: only the main schema can be read", schema.value),
                    name.to_string(),
                    "drop the schema prefix and use a catalog table",
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
                self.tables.insert(table.name.clone());
                relation.catalog_table = Some(table.name.clone());
                relation.columns = Some(table.columns.iter().map(|c| c.name.clone()).collect());
            }
            None => self.unknown_table(name, &table_name.value),
        }
        relation
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
    /// expressions) in the current scopes.
    fn walk<T: Visit>(&mut self, node: &T) {
        let mut walker = ExpressionWalker { resolver: self, queries_entered: 0 };
        let _ = node.visit(&mut walker);
    }

    fn resolve_column(&mut self, idents: &[Ident]) {
        match idents {
            [column] => self.resolve_unqualified(column),
            [table, column] => self.resolve_qualified(None, table, column, idents),
            [schema, table, column] => self.resolve_qualified(Some(schema), table, column, idents),
            _ => self.violations.push(violation(
                ViolationCode::UnknownColumn,
                format!("'{}' has too many parts for a column", join_idents(idents)),
                join_idents(idents),
                "write column or table.column",
            )),
        }
    }

    fn resolve_unqualified(&mut self, ident: &Ident) {
        let column = ident.value.as_str();
        let innermost = self.scopes.len().saturating_sub(1);
        for (depth, scope) in self.scopes.iter().enumerate().rev() {
            let aliases_here = depth == innermost && scope.aliases_visible;
            if aliases_here && scope.aliases_first && contains(&scope.output_aliases, column) {
                return;
            }
            let mut found: Vec<&Relation> = Vec::new();
            let mut unknown = false;
            for relation in &scope.relations {
                match relation.lookup(column, false) {
                    Lookup::Found => found.push(relation),
                    Lookup::Unknown => unknown = true,
                    Lookup::Missing => {}
                }
            }
            if found.len() > 1 {
                let names: Vec<&str> = found.iter().map(|r| r.label()).collect();
                let qualified: Vec<String> = names.iter().map(|n| format!("{n}.{column}")).collect();
                self.violations.push(violation(
                    ViolationCode::AmbiguousColumn,
                    format!("column '{column}' is ambiguous: it is in {}", names.join(" and ")),
                    ident.to_string(),
                    format!("qualify it: {}", qualified.join(" or ")),
                ));
                return;
            }
            if found.len() == 1 || unknown {
                return;
            }
            let rowid_tables = scope.relations.iter().filter(|r| r.catalog_table.is_some()).count();
            if is_rowid(column) && rowid_tables == 1 {
                return;
            }
            if aliases_here && contains(&scope.output_aliases, column) {
                return;
            }
        }
        if ident.quote_style == Some('"') {
            // SQLite reads a double-quoted word that names no column as a string literal.
            return;
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
    }

    fn resolve_qualified(&mut self, schema: Option<&Ident>, table: &Ident, column: &Ident, idents: &[Ident]) {
        let fragment = join_idents(idents);
        if let Some(schema) = schema {
            if !schema.value.eq_ignore_ascii_case("main") {
                self.violations.push(violation(
                    ViolationCode::UnknownTable,
                    format!("schema '{}' is not available: only the main schema can be read", schema.value),
                    fragment,
                    "drop the schema prefix",
                ));
                return;
            }
        }
        let relation = self.scopes.iter().rev().find_map(|scope| {
            scope.relations.iter().find(|r| {
                r.is_named(&table.value) && (schema.is_none() || (r.catalog_table.is_some() && !r.aliased))
            })
        });
        let Some(relation) = relation else {
            self.unknown_relation(&table.value, fragment);
            return;
        };
        if !matches!(relation.lookup(&column.value, true), Lookup::Missing)
            || (is_rowid(&column.value) && relation.catalog_table.is_some())
        {
            return;
        }
        let label = relation.label().to_string();
        let columns = relation.columns.clone().unwrap_or_default();
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
                    visible.push((relation.label().to_string(), column.clone()));
                }
            }
        }
        visible
    }

    /// `x IN table`: SQLite reads it as `x IN (SELECT * FROM table)`.
    fn resolve_in_table(&mut self, name: &ObjectName, has_args: bool) {
        if has_args {
            self.relations_resolved += 1;
        } else {
            let _ = self.resolve_relation_name(name);
        }
    }
}

/// Walks expressions for the resolver: column references are resolved in its scopes; a nested
/// query is handed back to it whole, so that it gets its own scope.
struct ExpressionWalker<'r, 'c> {
    resolver: &'r mut Resolver<'c>,
    queries_entered: usize,
}

impl Visitor for ExpressionWalker<'_, '_> {
    type Break = ();

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
        if self.queries_entered == 0 {
            self.resolver.resolve_query(query, None);
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
            Expr::Identifier(ident) => self.resolver.resolve_column(std::slice::from_ref(ident)),
            Expr::CompoundIdentifier(idents) => self.resolver.resolve_column(idents),
            Expr::In { target: InTarget::Table { name, args }, .. } => {
                self.resolver.resolve_in_table(name, args.is_some());
            }
            _ => {}
        }
        ControlFlow::Continue(())
    }
}

// --- small helpers -------------------------------------------------------------------------------

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
        Table {
            name: name.to_string(),
            description: String::new(),
            tier: None,
            owner: None,
            domain: None,
            freshness: None,
            deprecated: None,
            columns: columns
                .iter()
                .map(|c| Column {
                    name: c.to_string(),
                    data_type: "TEXT".to_string(),
                    description: String::new(),
                    tags: Vec::new(),
                    sample_values: Vec::new(),
                })
                .collect(),
            primary_key: Vec::new(),
            foreign_keys: Vec::new(),
            row_count: 0,
        }
    }

    fn shop() -> Catalog {
        Catalog::from_tables(vec![
            table("users", &["user_id", "email", "country_code", "signup_date"]),
            table("orders", &["order_id", "user_id", "total_amount", "country_code"]),
            table("countries", &["country_code", "country_name"]),
        ])
    }

    fn codes(sql: &str) -> Vec<&'static str> {
        match validate(&DraftSql::new(sql), &shop()) {
            Ok(_) => Vec::new(),
            Err(refusal) => refusal.violations.iter().map(|v| v.code.as_str()).collect(),
        }
    }

    fn refusal(sql: &str) -> Vec<Violation> {
        match validate(&DraftSql::new(sql), &shop()) {
            Ok(query) => panic!("expected a refusal for {sql}, got {}", query.sql()),
            Err(refusal) => refusal.violations,
        }
    }

    fn check_all(cases: &[(&str, &[&str])]) {
        let failures: Vec<String> = cases
            .iter()
            .filter(|(sql, expected)| codes(sql) != *expected)
            .map(|(sql, expected)| {
                let got = validate(&DraftSql::new(*sql), &shop()).map(|q| q.sql().to_string());
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
        let refused = validate_with(&DraftSql::new(long), &shop(), &limits);
        let codes: Vec<_> = refused.err().into_iter().flat_map(|r| r.violations).map(|v| v.code).collect();
        assert_eq!(codes, [ViolationCode::TooLarge]);
        assert!(validate_with(&DraftSql::new("SELECT 1"), &shop(), &limits).is_ok());
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
            let query = validate(&DraftSql::new(*sql), &shop()).unwrap_or_else(|r| panic!("{sql}: {r}"));
            assert_eq!(query.tables(), *expected, "{sql}");
            assert!(query.warnings().is_empty());
        }
    }

    #[test]
    fn rendered_sql_round_trips() {
        let sql = "with b as (select user_id, total_amount from orders where total_amount > 1) \
                   select u.email, \"France\", 'it''s', b.total_amount from users u \
                   join b using (user_id) where u.email like '%x%' order by 2 desc limit 3";
        let query = validate(&DraftSql::new(sql), &shop()).unwrap_or_else(|r| panic!("{r}"));
        let again = validate(&DraftSql::new(query.sql()), &shop()).unwrap_or_else(|r| panic!("{r}"));
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

    fn spider_catalogs(dir: &str) -> std::collections::HashMap<String, Catalog> {
        let text = std::fs::read_to_string(format!("{dir}/tables.json")).unwrap_or_else(|e| {
            panic!("Spider schemas missing at {dir}/tables.json ({e}); run scripts/fetch-assets.sh")
        });
        let databases: serde_json::Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("tables.json: {e}"));
        let mut catalogs = std::collections::HashMap::new();
        for db in databases.as_array().into_iter().flatten() {
            let names: Vec<&str> = db["table_names_original"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|n| n.as_str())
                .collect();
            let mut tables: Vec<Table> = names.iter().map(|n| table(n, &[])).collect();
            let types = db["column_types"].as_array().cloned().unwrap_or_default();
            for (i, column) in db["column_names_original"].as_array().into_iter().flatten().enumerate() {
                let (Some(index), Some(name)) = (column[0].as_i64(), column[1].as_str()) else { continue };
                let Some(table) = usize::try_from(index).ok().and_then(|i| tables.get_mut(i)) else {
                    continue;
                };
                let mut column = table_column(name);
                column.data_type = types.get(i).and_then(|t| t.as_str()).unwrap_or("text").to_string();
                table.columns.push(column);
            }
            let id = db["db_id"].as_str().unwrap_or_default().to_string();
            catalogs.insert(id, Catalog::from_tables(tables));
        }
        catalogs
    }

    fn table_column(name: &str) -> Column {
        Column {
            name: name.to_string(),
            data_type: String::new(),
            description: String::new(),
            tags: Vec::new(),
            sample_values: Vec::new(),
        }
    }

    #[test]
    fn spider_dev_gold_queries_pass() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/spider");
        let catalogs = spider_catalogs(dir);
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
            if let Err(refusal) = validate(&DraftSql::new(sql), catalog) {
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
}
