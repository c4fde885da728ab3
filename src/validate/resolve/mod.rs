//! Name resolution with the policy: a scoped walk, as a database resolves tables and columns,
//! tracking which governed catalog columns each value derives from. `Resolver` and its scopes
//! here, with the policy's part (reads of tables, masks, row filters); queries, FROM and
//! columns in the files beside.

use super::*;

mod column;
mod from;
mod query;

/// The governed catalog columns (denied or masked for the role) a value derives from, as
/// indices into `Resolver::governed`. Empty for nearly every value, so cheap to carry.
pub(in crate::validate) type Sources = Vec<usize>;

pub(in crate::validate) fn add_sources(into: &mut Sources, more: &[usize]) {
    for source in more {
        if !into.contains(source) {
            into.push(*source);
        }
    }
}

/// A column of a relation or of a result: its name, and the governed columns its values
/// derive from.
#[derive(Debug, Clone)]
pub(in crate::validate) struct Col {
    pub(in crate::validate) name: String,
    pub(in crate::validate) sources: Sources,
}

impl Col {
    pub(in crate::validate) fn named(name: impl Into<String>) -> Col {
        Col { name: name.into(), sources: Vec::new() }
    }
}

pub(in crate::validate) fn find_col<'a>(columns: &'a [Col], name: &str) -> Option<&'a Col> {
    columns.iter().find(|c| c.name.eq_ignore_ascii_case(name))
}

pub(in crate::validate) fn col_names(columns: &[Col]) -> Vec<String> {
    columns.iter().map(|c| c.name.clone()).collect()
}

/// A relation visible in a FROM clause: a catalog table, a CTE or a subquery.
pub(in crate::validate) struct Relation {
    /// The name the query refers to it by: the alias, else the table or CTE name.
    pub(in crate::validate) name: Option<String>,
    /// The catalog table behind it, in catalog spelling.
    pub(in crate::validate) catalog_table: Option<String>,
    /// Whether an alias hides the table's own name.
    pub(in crate::validate) aliased: bool,
    /// Whether the role reads this table through a rewrite (row filter or masks): it then has
    /// no rowid and no schema-qualified column names.
    pub(in crate::validate) rewritten: bool,
    /// Its columns; `None` when they cannot be known, and then any column is accepted.
    pub(in crate::validate) columns: Option<Vec<Col>>,
    /// Columns merged into an earlier relation by USING or NATURAL: not found unqualified.
    pub(in crate::validate) merged: Vec<String>,
}

pub(in crate::validate) enum Lookup<'r> {
    Found(&'r Col),
    Missing,
    Unknown,
}

impl Relation {
    /// A relation that is not a catalog table (a CTE, a subquery), or not yet known to be one.
    pub(in crate::validate) fn new(name: Option<String>, columns: Option<Vec<Col>>) -> Self {
        Relation { name, catalog_table: None, aliased: false, rewritten: false, columns, merged: Vec::new() }
    }

    pub(in crate::validate) fn lookup(&self, column: &str, qualified: bool) -> Lookup<'_> {
        let Some(columns) = &self.columns else { return Lookup::Unknown };
        let merged = !qualified && contains(&self.merged, column);
        match find_col(columns, column) {
            Some(col) if !merged => Lookup::Found(col),
            _ => Lookup::Missing,
        }
    }

    pub(in crate::validate) fn label(&self) -> &str {
        self.name.as_deref().unwrap_or("(subquery)")
    }

    pub(in crate::validate) fn is_named(&self, name: &str) -> bool {
        self.name.as_deref().is_some_and(|n| n.eq_ignore_ascii_case(name))
    }
}

pub(in crate::validate) fn contains(names: &[String], name: &str) -> bool {
    names.iter().any(|n| n.eq_ignore_ascii_case(name))
}

/// The relations of one SELECT, and the aliases of its select list.
#[derive(Default)]
pub(in crate::validate) struct Scope {
    pub(in crate::validate) relations: Vec<Relation>,
    pub(in crate::validate) output_aliases: Vec<Col>,
    /// The names its select list gives (`expr AS name`), known while that list is resolved:
    /// SQLite reads none of them inside the list itself.
    pub(in crate::validate) list_aliases: Vec<String>,
    /// Where aliases may be used (WHERE, GROUP BY, HAVING, ORDER BY), when no column matches.
    pub(in crate::validate) aliases_visible: bool,
    /// Where aliases win over columns (ORDER BY).
    pub(in crate::validate) aliases_first: bool,
}

/// Where a CTE is in its definition. SQLite lets a CTE read every CTE of its WITH clause;
/// reading one defined later is refused, since its columns are not known yet.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(in crate::validate) enum CteState {
    Declared,
    Defining,
    Defined,
}

/// A CTE in scope; columns are `None` while its recursive body is being resolved.
pub(in crate::validate) struct CteDefinition {
    pub(in crate::validate) name: String,
    pub(in crate::validate) columns: Option<Vec<Col>>,
    pub(in crate::validate) state: CteState,
    /// Whether its body read it (recursion).
    pub(in crate::validate) recursive: bool,
}

/// A catalog column the role may not read or reads masked.
pub(in crate::validate) struct Governed {
    pub(in crate::validate) table: String,
    pub(in crate::validate) column: String,
    pub(in crate::validate) rule: ColumnRule,
}

/// How the role reads one catalog table.
pub(in crate::validate) struct TableRead {
    pub(in crate::validate) columns: Vec<Col>,
    /// Columns the role may not read.
    pub(in crate::validate) denied: Vec<String>,
    /// The derived table that replaces every read of it, if the role needs one.
    pub(in crate::validate) view: Option<View>,
}

/// What replaces `t [AS a]` for a role: `(SELECT <columns> FROM main.t WHERE <predicate>) AS a`.
pub(in crate::validate) struct View {
    pub(in crate::validate) table: String,
    /// The source the table lives in, which prefixes it inside the derived table.
    pub(in crate::validate) source: String,
    /// Every column in table order, and whether it is masked.
    pub(in crate::validate) columns: Vec<(String, bool)>,
    /// The role's row filters on the table, parameters bound, joined with AND.
    pub(in crate::validate) predicate: Option<Expr>,
    /// Whether the derived table must be a fence the planner does not see through
    /// (PostgreSQL: `OFFSET 0`), so that no condition of the query is evaluated on rows the
    /// filter removes — an error message could otherwise show their values.
    pub(in crate::validate) fenced: bool,
}

pub(in crate::validate) struct Resolver<'c> {
    pub(in crate::validate) catalog: &'c Catalog,
    pub(in crate::validate) policy: &'c Policy,
    pub(in crate::validate) principal: &'c Principal,
    pub(in crate::validate) ctes: Vec<CteDefinition>,
    pub(in crate::validate) scopes: Vec<Scope>,
    pub(in crate::validate) tables: BTreeSet<String>,
    pub(in crate::validate) relations_resolved: usize,
    pub(in crate::validate) violations: Vec<Violation>,
    pub(in crate::validate) warnings: Vec<Violation>,
    pub(in crate::validate) governed: Vec<Governed>,
    /// Governed columns already reported (denied) or noted (masked), once per query.
    pub(in crate::validate) reported: BTreeSet<usize>,
    /// How each catalog table read is read, by lower-cased name.
    pub(in crate::validate) reads: BTreeMap<String, TableRead>,
    /// FROM items (by address in the checked tree) that read a table through a view.
    pub(in crate::validate) rewrite_sites: HashMap<usize, String>,
    /// The first reference whose columns could not be known.
    pub(in crate::validate) unknown_lookup: Option<String>,
    /// Re-resolutions of recursive CTE bodies still allowed for this query.
    pub(in crate::validate) recursion_rounds_left: usize,
}

/// Output columns of a query; `None` when they cannot be known.
pub(in crate::validate) type Outputs = Option<Vec<Col>>;

impl<'c> Resolver<'c> {
    pub(in crate::validate) fn new(
        catalog: &'c Catalog,
        policy: &'c Policy,
        principal: &'c Principal,
    ) -> Self {
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

    pub(in crate::validate) fn unsupported(&mut self, fragment: String) {
        self.violations.push(unsupported(&fragment));
    }

    pub(in crate::validate) fn unknown(&mut self, fragment: impl FnOnce() -> String) {
        if self.unknown_lookup.is_none() {
            self.unknown_lookup = Some(excerpt(&fragment(), 60));
        }
    }

    // --- policy ----------------------------------------------------------------------------------

    /// Values derived from `sources` are used at `fragment`: a denied column is refused, a
    /// masked one noted; each once per query.
    pub(in crate::validate) fn consume(&mut self, sources: &[usize], fragment: &str) {
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
    pub(in crate::validate) fn consume_outputs(&mut self, outputs: &Outputs, fragment: Option<&str>) {
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
    pub(in crate::validate) fn read_table(&mut self, table_key: &str, written: &str) {
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
            source: if table.source == crate::catalog::MAIN_SOURCE {
                self.catalog.main_qualifier().to_string()
            } else {
                table.source.clone()
            },
            columns: view_columns,
            predicate,
            fenced: self.catalog.engine() == Engine::Postgres,
        });
        self.reads.insert(table_key.to_string(), TableRead { columns, denied, view });
    }

    /// Row filters applied to the tables read, as bound.
    pub(in crate::validate) fn applied_filters(&self) -> Vec<String> {
        self.reads
            .values()
            .filter_map(|read| read.view.as_ref())
            .filter_map(|view| view.predicate.as_ref().map(|p| format!("{}: {p}", view.table)))
            .collect()
    }

    pub(in crate::validate) fn hidden_columns(&self) -> Vec<(String, String)> {
        let mut hidden = Vec::new();
        for (key, read) in &self.reads {
            let table = self.catalog.table(key).map_or_else(|| key.clone(), |t| t.name.clone());
            hidden.extend(read.denied.iter().map(|c| (table.clone(), c.clone())));
        }
        hidden
    }
}
