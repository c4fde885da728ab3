//! The first stages: size, parse (in the dialect of the catalog's engine), depth, one statement,
//! and rendering the checked tree back to the text to run.

use super::*;

pub(in crate::validate) fn refuse(violation: Violation) -> Refusal {
    Refusal { violations: vec![violation] }
}

pub(in crate::validate) fn violation(
    code: ViolationCode,
    message: impl Into<String>,
    fragment: impl Into<String>,
    hint: impl Into<String>,
) -> Violation {
    Violation { code, message: message.into(), fragment: fragment.into(), hint: hint.into() }
}

pub(in crate::validate) fn check_size(text: &str, limits: &Limits) -> Result<(), Refusal> {
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

pub(in crate::validate) fn too_deep(text: &str, limits: &Limits) -> Refusal {
    refuse(violation(
        ViolationCode::TooDeep,
        format!("the SQL nests more than {} levels deep", limits.max_depth),
        excerpt(text, 60),
        "flatten it: fewer nested parentheses and subqueries, a CTE (WITH ...) for each step",
    ))
}

/// Parses in the engine's dialect, then measures depth with a walk that stops at the limit, so
/// that no later walk (or `Display`) recurses deeper than that.
pub(in crate::validate) fn parse(
    text: &str,
    limits: &Limits,
    engine: Engine,
) -> Result<Vec<Statement>, Refusal> {
    let statements = match parse_with_recursion_limit(text, limits.max_depth, engine) {
        Ok(statements) => statements,
        Err(ParserError::RecursionLimitExceeded) => return Err(too_deep(text, limits)),
        Err(ParserError::TokenizerError(message)) => return Err(parse_error(text, &message, engine)),
        Err(ParserError::ParserError(message)) => {
            // sqlparser sometimes reports its recursion limit as a syntax error. Parsing again
            // with a limit no input can reach tells the two apart; the parser grows its stack on
            // the heap, and the tree it builds is taken apart without recursion.
            if let Ok(deep) = parse_with_recursion_limit(text, limits.max_sql_bytes, engine) {
                dismantle(deep);
                return Err(too_deep(text, limits));
            }
            return Err(parse_error(text, &message, engine));
        }
    };
    let mut probe = DepthProbe { depth: 0, max_depth: limits.max_depth, entered: Vec::new() };
    if statements.visit(&mut probe).is_break() {
        dismantle(statements);
        return Err(too_deep(text, limits));
    }
    Ok(statements)
}

pub(in crate::validate) fn parse_with_recursion_limit(
    text: &str,
    limit: usize,
    engine: Engine,
) -> Result<Vec<Statement>, ParserError> {
    Parser::new(dialect(engine))
        .with_recursion_limit(limit)
        .try_with_sql(text)
        .and_then(|mut parser| parser.parse_statements())
}

/// The sqlparser dialect of an engine.
pub(in crate::validate) fn dialect(engine: Engine) -> &'static dyn Dialect {
    static SQLITE: SQLiteDialect = SQLiteDialect {};
    static POSTGRES: PostgreSqlDialect = PostgreSqlDialect {};
    match engine {
        Engine::Sqlite => &SQLITE,
        Engine::Postgres => &POSTGRES,
    }
}

/// Statements SQLite and PostgreSQL have besides queries; a draft starting with one is refused
/// as a write even when sqlparser cannot parse the rest.
pub(in crate::validate) const NOT_QUERY_KEYWORDS: &str = "\
    ALTER ANALYZE ATTACH BEGIN CALL CHECKPOINT CLUSTER COMMENT COMMIT COPY CREATE DEALLOCATE \
    DECLARE DELETE DETACH DISCARD DO DROP END EXECUTE GRANT IMPORT INSERT LISTEN LOAD LOCK MERGE \
    MOVE NOTIFY PRAGMA PREPARE REASSIGN REFRESH REINDEX RELEASE REPLACE RESET REVOKE ROLLBACK \
    SAVEPOINT SET START TRUNCATE UNLISTEN UPDATE UPSERT VACUUM";

pub(in crate::validate) fn parse_error(text: &str, message: &str, engine: Engine) -> Refusal {
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
        format!(
            "write one {} SELECT statement; check commas, parentheses and quotes near the fragment",
            engine.name()
        ),
    ))
}

/// The first word of the SQL after whitespace and comments, upper-cased.
pub(in crate::validate) fn leading_word(text: &str) -> String {
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
pub(in crate::validate) struct DepthProbe {
    pub(in crate::validate) depth: usize,
    pub(in crate::validate) max_depth: usize,
    pub(in crate::validate) entered: Vec<usize>,
}

impl DepthProbe {
    pub(in crate::validate) fn enter(&mut self, levels: usize) -> ControlFlow<()> {
        self.depth += levels;
        self.entered.push(levels);
        if self.depth > self.max_depth {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    }

    pub(in crate::validate) fn leave(&mut self) -> ControlFlow<()> {
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
pub(in crate::validate) fn set_operation_depth(body: &SetExpr) -> usize {
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
pub(in crate::validate) fn dismantle(mut statements: Vec<Statement>) {
    let mut parts = Dismantler { exprs: Vec::new(), set_exprs: Vec::new() };
    let _ = VisitMut::visit(&mut statements, &mut parts);
    drop(statements);
    drop(parts);
}

pub(in crate::validate) struct Dismantler {
    pub(in crate::validate) exprs: Vec<Expr>,
    pub(in crate::validate) set_exprs: Vec<SetExpr>,
}

pub(in crate::validate) fn empty_set_expr() -> SetExpr {
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

pub(in crate::validate) fn single_query(statements: Vec<Statement>, text: &str) -> Result<Query, Refusal> {
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
pub(in crate::validate) fn render(query: &Query, limits: &Limits, engine: Engine) -> Result<String, Refusal> {
    let sql = query.to_string();
    match parse_with_recursion_limit(&sql, limits.max_sql_bytes, engine).as_deref() {
        Ok([Statement::Query(again)]) if **again == *query => Ok(sql),
        _ => Err(refuse(unsupported(&sql))),
    }
}

pub(in crate::validate) fn unsupported(fragment: &str) -> Violation {
    violation(
        ViolationCode::ParseError,
        "the SQL uses syntax the validator cannot check",
        excerpt(fragment, 60),
        "write a plain SELECT: joins, subqueries, CTEs, GROUP BY, ORDER BY, LIMIT",
    )
}
