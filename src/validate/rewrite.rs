//! Rewriting a checked query: row filters and masks (a governed table read through a filtered
//! subquery), views, IN-table expansion, and the row cap — AST surgery on parsed templates.

use super::*;
use sqlparser::ast::{CastKind, ExactNumberInfo, FunctionArg, FunctionArgExpr, FunctionArguments};

/// A query parsed once from constant text, as a template for AST surgery: no SQL text is ever
/// assembled from parts.
pub(in crate::validate) fn template(
    sql: &'static str,
    cell: &'static OnceLock<Option<Query>>,
) -> Option<Query> {
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
pub(in crate::validate) fn select_star_template() -> Option<Query> {
    static CELL: OnceLock<Option<Query>> = OnceLock::new();
    template("SELECT * FROM t", &CELL)
}

pub(in crate::validate) fn template_select(query: &mut Query) -> Option<&mut Select> {
    match query.body.as_mut() {
        SetExpr::Select(select) => Some(select),
        _ => None,
    }
}

/// `x IN t` reads as `x IN (SELECT * FROM t)` in SQLite; written that way, the table read is a
/// FROM item like any other (row filters and masks apply to it).
pub(in crate::validate) struct InTableExpander;

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
pub(in crate::validate) struct FactorLister {
    pub(in crate::validate) addresses: Vec<usize>,
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
pub(in crate::validate) struct ViewRewriter<'v> {
    pub(in crate::validate) plan: Vec<Option<&'v View>>,
    pub(in crate::validate) next: usize,
    pub(in crate::validate) open: Vec<usize>,
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
pub(in crate::validate) fn rewrite_views(
    query: &mut Query,
    sites: &HashMap<usize, String>,
    reads: &BTreeMap<String, TableRead>,
) {
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

pub(in crate::validate) fn quoted(name: &str) -> Ident {
    Ident::with_quote('"', name)
}

pub(in crate::validate) fn nested(expr: Expr) -> Expr {
    Expr::Nested(Box::new(expr))
}

impl View {
    /// `(SELECT <columns> FROM main."t" WHERE <predicate>) AS <alias or t>` for the FROM item
    /// `t [AS alias]`.
    pub(in crate::validate) fn derived_table(&self, original: &TableFactor) -> Option<TableFactor> {
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
        if self.fenced {
            query.limit_clause = Some(LimitClause::LimitOffset {
                limit: None,
                offset: Some(Offset {
                    value: Expr::value(Value::Number("0".into(), false)),
                    rows: OffsetRows::None,
                }),
                limit_by: Vec::new(),
            });
        }
        Some(TableFactor::Derived {
            lateral: false,
            subquery: Box::new(query),
            alias: Some(TableAlias { explicit: true, name: alias_name, columns: Vec::new(), at: None }),
            sample: None,
        })
    }
}

/// The value of an integer literal (`5`, `-1`, `(5)`), if it is one.
pub(in crate::validate) fn integer_literal(expr: &Expr) -> Option<i128> {
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
pub(in crate::validate) fn apply_row_cap(query: &mut Query, cap: u64) {
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

pub(in crate::validate) fn empty_query() -> Query {
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
    let mut safety = SafetyCheck::new(catalog.engine());
    let _ = query.visit(&mut safety);
    let policy = Policy::unrestricted();
    let principal = Principal::new("policy-check", policy.role());
    let mut resolver = Resolver::new(catalog, &policy, &principal);
    resolver.resolve_query(&query, None);
    let mut violations = safety.violations;
    violations.append(&mut resolver.violations);
    violations
}

/// Names every derived table that has no alias (`FROM (SELECT …)`): PostgreSQL before 16
/// requires one. The names (`derived_1`, …) are new to the query.
pub(in crate::validate) fn name_derived_tables(query: &mut Query) {
    struct Namer {
        taken: BTreeSet<String>,
        next: usize,
    }
    impl VisitorMut for Namer {
        type Break = ();
        fn pre_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
            if let TableFactor::Derived { alias: alias @ None, .. } = factor {
                let name = loop {
                    self.next += 1;
                    let name = format!("derived_{}", self.next);
                    if !self.taken.contains(&name) {
                        break name;
                    }
                };
                *alias = Some(TableAlias {
                    explicit: true,
                    name: Ident::new(name),
                    columns: Vec::new(),
                    at: None,
                });
            }
            ControlFlow::Continue(())
        }
    }
    struct Names(BTreeSet<String>);
    impl Visitor for Names {
        type Break = ();
        fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<()> {
            let alias = match factor {
                TableFactor::Derived { alias, .. } | TableFactor::Table { alias, .. } => alias.as_ref(),
                _ => None,
            };
            if let Some(alias) = alias {
                self.0.insert(alias.name.value.to_lowercase());
            }
            ControlFlow::Continue(())
        }
    }
    let mut names = Names(BTreeSet::new());
    let _ = Visit::visit(&*query, &mut names);
    let mut namer = Namer { taken: names.0, next: 0 };
    let _ = VisitMut::visit(query, &mut namer);
}

/// `ROUND(x, n)` as `ROUND(CAST(x AS NUMERIC), n)`: PostgreSQL rounds to a number of places
/// only in `numeric` (there is no `round(double precision, integer)`), while the same call on
/// SQLite, which models and analysts write, rounds any number. A `numeric` argument is cast to
/// itself, so a call that already ran gives the same value.
pub(in crate::validate) fn round_in_numeric(query: &mut Query) {
    struct Rounder;
    impl VisitorMut for Rounder {
        type Break = ();
        fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
            let Expr::Function(Function { name, args: FunctionArguments::List(list), .. }) = expr else {
                return ControlFlow::Continue(());
            };
            if !name.to_string().eq_ignore_ascii_case("round") || list.args.len() != 2 {
                return ControlFlow::Continue(());
            }
            if let Some(FunctionArg::Unnamed(FunctionArgExpr::Expr(value))) = list.args.first_mut() {
                let numeric = DataType::Numeric(ExactNumberInfo::None);
                let already = matches!(value, Expr::Cast { data_type, .. } if *data_type == numeric);
                if !already {
                    let inner = std::mem::replace(value, Expr::Value(Value::Null.into()));
                    *value = Expr::Cast {
                        kind: CastKind::Cast,
                        expr: Box::new(inner),
                        data_type: numeric,
                        format: None,
                    };
                }
            }
            ControlFlow::Continue(())
        }
    }
    let _ = VisitMut::visit(query, &mut Rounder);
}
