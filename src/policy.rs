//! Policy: who is asking (`Principal`) and what their role may read (`Policy`), as configured in
//! `[policy.roles.<role>]` of `quarry.toml`.
//!
//! A role says which tiers and tables it may read, which column tags it may not read (refused
//! wherever such a column appears) or reads masked, what happens to deprecated tables, a row
//! cap, and row filters: a predicate per table, with `:principal.<attribute>` parameters.
//! This module owns reading and checking that configuration and answering questions about it;
//! it does not look at SQL (the validator applies a `Policy` to a query) and it does not
//! authenticate anyone (the caller says who the principal is).

use std::collections::{BTreeMap, BTreeSet};
use std::ops::ControlFlow;

use serde::{Deserialize, Serialize};
use sqlparser::ast::{AccessExpr, Expr, Query, Value, Visit, VisitMut, Visitor, VisitorMut};
use sqlparser::dialect::SQLiteDialect;
use sqlparser::parser::Parser;

use crate::catalog::governance::is_tag;
use crate::catalog::{suggestion, Catalog, Column, Table, Tier};

/// Who is asking: a name for the audit log, a role that selects a `Policy`, and attributes
/// that row filters read (`:principal.country`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Principal {
    pub name: String,
    pub role: String,
    pub attributes: BTreeMap<String, String>,
}

/// The role of local requests (the CLI without `--role`, and the HTTP API until API keys).
pub const LOCAL_ROLE: &str = "analyst";

impl Principal {
    pub fn new(name: impl Into<String>, role: impl Into<String>) -> Principal {
        Principal { name: name.into(), role: role.into(), attributes: BTreeMap::new() }
    }

    /// The local analyst: every request that does not say who it is.
    pub fn local() -> Principal {
        Principal::new("local-analyst", LOCAL_ROLE)
    }

    pub fn with_attribute(mut self, key: impl Into<String>, value: impl Into<String>) -> Principal {
        self.attributes.insert(key.into(), value.into());
        self
    }
}

/// What a principal may do through Quarry, beyond reading data. Each role lists its actions in
/// `actions`; without the key a role may ask, run SQL and read the catalog.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Ask questions in plain language.
    Ask,
    /// Run SQL (validated and governed like generated SQL).
    Sql,
    /// Browse and search the catalog and the query library.
    ReadCatalog,
    /// Edit table and column governance and the glossary (stewards).
    EditCatalog,
    /// Read the audit log.
    ReadAudit,
    /// Add query logs to the history.
    IngestHistory,
    /// Verify and revoke past queries: what is reused as an answer and taken into training.
    Verify,
    /// Lift a restriction through a catalog edit (remove a deny or mask tag, make a table
    /// readable by its tier, undo a deprecation a role refuses). Adding one needs only
    /// `edit_catalog`.
    EditPolicy,
}

impl Action {
    /// The actions of a role that does not list them.
    fn defaults() -> BTreeSet<Action> {
        BTreeSet::from([Action::Ask, Action::Sql, Action::ReadCatalog])
    }
}

/// What a role does with deprecated tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeprecatedRule {
    /// The query runs; the answer carries a warning naming the replacement.
    #[default]
    Warn,
    /// The query is refused with a `deprecated_table` violation naming the replacement.
    Refuse,
}

/// What a role may do with one column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ColumnRule {
    Read,
    /// Readable, but every read sees a masked constant; the tag that masks it.
    Mask(String),
    /// Not readable anywhere in a query; the tag that denies it.
    Deny(String),
}

/// A predicate a role's reads of one table are filtered by.
#[derive(Debug, Clone, PartialEq)]
pub struct RowFilter {
    table: String,
    /// Parameters are `Value::Placeholder(":principal.<attribute>")` nodes.
    predicate: Expr,
}

/// The value that replaces a masked column.
pub const MASK: &str = "***";

impl RowFilter {
    /// The filtered table, as configured.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// The predicate with its parameters, e.g. `country_code = :principal.country`.
    pub fn predicate(&self) -> &Expr {
        &self.predicate
    }

    /// The attributes the predicate reads.
    pub fn parameters(&self) -> BTreeSet<String> {
        let mut names = BTreeSet::new();
        let _ = self.predicate.visit(&mut ParameterNames(&mut names));
        names
    }

    /// The predicate with each parameter replaced by the principal's attribute as a string
    /// literal node (never by splicing text); `Err` names the first attribute the principal
    /// lacks.
    pub fn bind(&self, principal: &Principal) -> Result<Expr, String> {
        let mut bound = self.predicate.clone();
        let mut binder = Binder { attributes: &principal.attributes, missing: None };
        let _ = VisitMut::visit(&mut bound, &mut binder);
        match binder.missing {
            Some(name) => Err(name),
            None => Ok(bound),
        }
    }
}

struct ParameterNames<'a>(&'a mut BTreeSet<String>);

impl Visitor for ParameterNames<'_> {
    type Break = ();
    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
        if let Some(name) = parameter_name(expr) {
            self.0.insert(name.to_string());
        }
        ControlFlow::Continue(())
    }
}

struct Binder<'a> {
    attributes: &'a BTreeMap<String, String>,
    missing: Option<String>,
}

impl VisitorMut for Binder<'_> {
    type Break = ();
    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        if let Some(name) = parameter_name(expr) {
            match self.attributes.get(name) {
                Some(value) => *expr = Expr::value(Value::SingleQuotedString(value.clone())),
                None => {
                    self.missing.get_or_insert_with(|| name.to_string());
                }
            }
        }
        ControlFlow::Continue(())
    }
}

const PARAMETER_PREFIX: &str = ":principal.";

fn parameter_name(expr: &Expr) -> Option<&str> {
    match expr {
        Expr::Value(value) => match &value.value {
            Value::Placeholder(p) => p.strip_prefix(PARAMETER_PREFIX),
            _ => None,
        },
        _ => None,
    }
}

/// What one role may read.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    role: String,
    /// Readable tiers; `None` reads every table, tiered or not.
    tiers: Option<BTreeSet<Tier>>,
    /// Lower-cased names of tables the role may not read whatever their tier.
    tables_denied: BTreeSet<String>,
    deny_tags: BTreeSet<String>,
    mask_tags: BTreeSet<String>,
    deprecated: DeprecatedRule,
    row_cap: Option<u64>,
    row_filters: Vec<RowFilter>,
    actions: BTreeSet<Action>,
}

/// Why a role may not read a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TableDenial {
    /// The table is listed in `tables_denied`.
    Listed,
    /// The table's tier (or lack of one) is not among the readable tiers.
    Tier(Option<Tier>),
}

impl Policy {
    /// Reads everything, masks nothing, warns on deprecated tables, no row cap, no filters.
    /// For trusted internal reads such as ingesting the query log.
    pub fn unrestricted() -> Policy {
        Policy {
            role: "unrestricted".to_string(),
            tiers: None,
            tables_denied: BTreeSet::new(),
            deny_tags: BTreeSet::new(),
            mask_tags: BTreeSet::new(),
            deprecated: DeprecatedRule::Warn,
            row_cap: None,
            row_filters: Vec::new(),
            actions: Action::defaults(),
        }
    }

    pub fn role(&self) -> &str {
        &self.role
    }

    /// Whether the role may do `action`.
    pub fn allows(&self, action: Action) -> bool {
        self.actions.contains(&action)
    }

    /// What the role may do, for messages and the API.
    pub fn actions(&self) -> impl Iterator<Item = Action> + '_ {
        self.actions.iter().copied()
    }

    pub fn deprecated(&self) -> DeprecatedRule {
        self.deprecated
    }

    /// Most rows a query may return; the validator lowers the outermost LIMIT to it.
    pub fn row_cap(&self) -> Option<u64> {
        self.row_cap
    }

    pub fn row_filters(&self) -> &[RowFilter] {
        &self.row_filters
    }

    /// The row filters on `table` (case-insensitive).
    pub fn row_filters_for<'p>(&'p self, table: &'p str) -> impl Iterator<Item = &'p RowFilter> + 'p {
        self.row_filters.iter().filter(move |f| f.table.eq_ignore_ascii_case(table))
    }

    /// Whether the role may read `table`, by name and tier.
    pub fn table_denial(&self, table: &Table) -> Option<TableDenial> {
        if self.tables_denied.contains(&table.name.to_lowercase()) {
            return Some(TableDenial::Listed);
        }
        match &self.tiers {
            Some(tiers) if !table.tier.is_some_and(|t| tiers.contains(&t)) => {
                Some(TableDenial::Tier(table.tier))
            }
            _ => None,
        }
    }

    /// Readable tiers, for messages: "1, 2".
    pub fn tiers_label(&self) -> String {
        match &self.tiers {
            None => "all".to_string(),
            Some(tiers) => tiers.iter().map(|t| t.number().to_string()).collect::<Vec<_>>().join(", "),
        }
    }

    /// What the role may do with `column`: a deny tag wins over a mask tag.
    pub fn column_rule(&self, column: &Column) -> ColumnRule {
        if let Some(tag) = column.tags.iter().find(|t| self.deny_tags.contains(*t)) {
            return ColumnRule::Deny(tag.clone());
        }
        if let Some(tag) = column.tags.iter().find(|t| self.mask_tags.contains(*t)) {
            return ColumnRule::Mask(tag.clone());
        }
        ColumnRule::Read
    }

    /// Whether any column or row rule can apply (false for `unrestricted`).
    pub fn restricts_columns(&self) -> bool {
        !self.deny_tags.is_empty() || !self.mask_tags.is_empty()
    }

    /// Whether the role may see values of `column` outside a query's result — its sample
    /// values and allowed values in the catalog, in prompts, in search — the one decision every
    /// surface asks: only for a column it reads unmasked, of a table it reads without a row
    /// filter (values gathered across all rows would show rows the filter hides).
    pub fn sees_values(&self, table: &Table, column: &Column) -> bool {
        self.sees_totals(table) && self.column_rule(column) == ColumnRule::Read
    }

    /// Whether the role may see a table's totals — its row count and latest date: only for a
    /// table it reads without a row filter.
    pub fn sees_totals(&self, table: &Table) -> bool {
        self.table_denial(table).is_none() && self.row_filters_for(&table.name).next().is_none()
    }

    /// The table as the role may browse it: every column listed with its tags (so that a
    /// refusal can be understood), values only where `sees_values`, totals only where
    /// `sees_totals`; None when the role may not read the table.
    pub fn browsable(&self, table: &Table) -> Option<Table> {
        if self.table_denial(table).is_some() {
            return None;
        }
        let mut seen = table.clone();
        for column in &mut seen.columns {
            if !self.sees_values(table, column) {
                column.sample_values.clear();
                column.allowed_values.clear();
            }
        }
        if !self.sees_totals(table) {
            seen.row_count = None;
            seen.last_change = None;
        }
        Some(seen)
    }

    /// The catalog as this role may see it: tables it may not read (or that are deprecated and
    /// refused) and columns it may not read are left out, and values and totals as `browsable`
    /// shows them. What the model is shown.
    pub fn visible_catalog(&self, catalog: &Catalog) -> Catalog {
        catalog.restricted(|table| {
            let refused = self.deprecated == DeprecatedRule::Refuse && table.deprecated.is_some();
            if refused {
                return None;
            }
            let mut visible = self.browsable(table)?;
            visible.columns.retain(|c| !matches!(self.column_rule(c), ColumnRule::Deny(_)));
            let kept = |name: &str| visible.columns.iter().any(|c| c.name.eq_ignore_ascii_case(name));
            let foreign_keys = visible.foreign_keys.iter().filter(|fk| kept(&fk.column)).cloned().collect();
            visible.foreign_keys = foreign_keys;
            Some(visible)
        })
    }
}

/// Errors in the `[policy]` configuration.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// A role is malformed: bad name, tier, tag, row cap or row filter.
    #[error("[policy.roles.{role}]: {message}")]
    Invalid { role: String, message: String },
    /// A role names a table, column or tag the catalog does not have.
    #[error("[policy.roles.{role}]: {message}")]
    Unknown { role: String, message: String },
    /// A required role is not defined.
    #[error("[policy.roles]: {0}")]
    MissingRole(String),
}

/// Every configured role.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicySet {
    roles: BTreeMap<String, Policy>,
    /// False for the built-in default, whose tags need not exist in every catalog.
    configured: bool,
}

impl Default for PolicySet {
    /// Without a `[policy]` section: one role, `analyst`, that reads every table, may not read
    /// columns tagged `pii`, is warned about deprecated tables, and has no row cap or filters.
    fn default() -> Self {
        let mut analyst = Policy::unrestricted();
        analyst.role = LOCAL_ROLE.to_string();
        analyst.deny_tags.insert("pii".to_string());
        PolicySet { roles: BTreeMap::from([(LOCAL_ROLE.to_string(), analyst)]), configured: false }
    }
}

impl PolicySet {
    /// Checks the `[policy]` section's syntax: role names, tiers, tags, row caps, and that each
    /// row filter's predicate parses as an expression whose only parameters are
    /// `:principal.<attribute>`. Tables, columns and tags are checked against the catalog by
    /// `check_catalog`, once it is loaded.
    pub fn from_config(section: PolicySection) -> Result<PolicySet, PolicyError> {
        let mut roles = BTreeMap::new();
        for (role, config) in section.roles {
            let policy = Policy::from_config(&role, config)?;
            roles.insert(role, policy);
        }
        if !roles.contains_key(LOCAL_ROLE) {
            return Err(PolicyError::MissingRole(format!(
                "role '{LOCAL_ROLE}' is not defined; it is the role of local requests (CLI without --role, the HTTP API), add [policy.roles.{LOCAL_ROLE}]"
            )));
        }
        Ok(PolicySet { roles, configured: true })
    }

    /// The policy of `role`, if configured.
    pub fn get(&self, role: &str) -> Option<&Policy> {
        self.roles.get(role)
    }

    pub fn roles(&self) -> impl Iterator<Item = &Policy> {
        self.roles.values()
    }

    /// What a change of one table from `before` to `after` would let some role read that it
    /// could not: a table made readable (by its tier), a deny or mask tag removed, a
    /// deprecation undone for a role that refuses deprecated tables. Each in words; empty when
    /// the change lifts nothing (adding a restriction lifts nothing).
    pub fn lifted(&self, before: &Table, after: &Table) -> Vec<String> {
        let strictness = |rule: &ColumnRule| match rule {
            ColumnRule::Read => 0,
            ColumnRule::Mask(_) => 1,
            ColumnRule::Deny(_) => 2,
        };
        let mut lifted = Vec::new();
        for policy in self.roles.values() {
            let role = &policy.role;
            if policy.table_denial(before).is_some() && policy.table_denial(after).is_none() {
                lifted.push(format!("role '{role}' could read table {} (by its tier)", after.name));
            }
            if policy.deprecated == DeprecatedRule::Refuse
                && before.deprecated.is_some()
                && after.deprecated.is_none()
            {
                lifted.push(format!("role '{role}' could read {}, no longer deprecated", after.name));
            }
            for column in &after.columns {
                let Some(old) = before.columns.iter().find(|c| c.name.eq_ignore_ascii_case(&column.name))
                else {
                    continue;
                };
                let (was, now) = (policy.column_rule(old), policy.column_rule(column));
                if strictness(&now) < strictness(&was) {
                    let now = match now {
                        ColumnRule::Read => "unmasked".to_string(),
                        ColumnRule::Mask(tag) => format!("masked by '{tag}'"),
                        ColumnRule::Deny(tag) => format!("denied by '{tag}'"),
                    };
                    let was = match was {
                        ColumnRule::Deny(tag) => format!("denied by '{tag}'"),
                        ColumnRule::Mask(tag) => format!("masked by '{tag}'"),
                        ColumnRule::Read => "readable".to_string(),
                    };
                    lifted.push(format!(
                        "role '{role}' could read {}.{} {now} (was {was})",
                        after.name, column.name
                    ));
                }
            }
        }
        lifted
    }

    /// Row filters that stop at their table: for each role, each table it reads unfiltered
    /// that references (by foreign key) a table the role's reads are filtered on, so that
    /// counts and sums over it cover rows the filter hides. Each warning names the tables and
    /// the fix.
    pub fn unfiltered_children(&self, catalog: &Catalog) -> Vec<String> {
        let mut warnings = Vec::new();
        for policy in self.roles.values() {
            for child in catalog.tables() {
                if policy.table_denial(child).is_some()
                    || policy.row_filters_for(&child.name).next().is_some()
                {
                    continue;
                }
                for fk in &child.foreign_keys {
                    let filtered = policy.row_filters_for(&fk.ref_table).next().is_some();
                    if filtered
                        && catalog.table(&fk.ref_table).is_some_and(|t| policy.table_denial(t).is_none())
                    {
                        warnings.push(format!(
                            "role '{}' reads {} unfiltered, but its rows belong to {} ({}.{} -> {}.{}), which the role's row filter narrows: \
                             figures over {} alone cover rows the filter hides. Add {} to tables_denied of [policy.roles.{}], \
                             or give it a column the filter can use and a row filter of its own",
                            policy.role, child.name, fk.ref_table, child.name, fk.column, fk.ref_table, fk.ref_column,
                            child.name, child.name, policy.role
                        ));
                    }
                }
            }
        }
        warnings
    }

    /// Checks every role against the catalog: denied and filtered tables exist, row-filter
    /// predicates read only columns of their table and allowed functions, and (for a configured
    /// policy) every deny or mask tag is on at least one column, so that a typo cannot silently
    /// leave a column readable.
    pub fn check_catalog(&self, catalog: &Catalog) -> Result<(), PolicyError> {
        let table_names: Vec<&str> = catalog.tables().map(|t| t.name.as_str()).collect();
        let tags: BTreeSet<&str> = catalog
            .tables()
            .flat_map(|t| t.columns.iter().flat_map(|c| c.tags.iter().map(String::as_str)))
            .collect();
        for policy in self.roles.values() {
            let unknown = |message: String| PolicyError::Unknown { role: policy.role.clone(), message };
            let known_table = |name: &str, what: &str| {
                if catalog.table(name).is_some() {
                    Ok(())
                } else {
                    Err(unknown(format!(
                        "{what} '{name}' is not in the catalog{}",
                        suggestion(name, table_names.iter().copied())
                    )))
                }
            };
            for table in &policy.tables_denied {
                known_table(table, "tables_denied names table")?;
            }
            for filter in &policy.row_filters {
                known_table(&filter.table, "a row filter names table")?;
                let mut probe = Principal::new("policy-check", policy.role.clone());
                for parameter in filter.parameters() {
                    probe.attributes.insert(parameter, String::new());
                }
                let bound = filter.bind(&probe).map_err(|attribute| PolicyError::Invalid {
                    role: policy.role.clone(),
                    message: format!("row filter on '{}': cannot bind '{attribute}'", filter.table),
                })?;
                let problems = crate::validate::check_row_filter(catalog, &filter.table, &bound);
                if let Some(problem) = problems.first() {
                    return Err(PolicyError::Invalid {
                        role: policy.role.clone(),
                        message: format!(
                            "row filter on '{}' ({}): {}; {}",
                            filter.table, filter.predicate, problem.message, problem.hint
                        ),
                    });
                }
            }
            if self.configured {
                for tag in policy.deny_tags.iter().chain(&policy.mask_tags) {
                    if !tags.contains(tag.as_str()) {
                        return Err(unknown(format!(
                            "tag '{tag}' is on no column of the catalog{}; a misspelt tag would leave columns readable",
                            suggestion(tag, tags.iter().copied())
                        )));
                    }
                }
            }
        }
        Ok(())
    }
}

impl Policy {
    fn from_config(role: &str, config: RoleConfig) -> Result<Policy, PolicyError> {
        let invalid = |message: String| PolicyError::Invalid { role: role.to_string(), message };
        if !is_name(role) {
            return Err(invalid("a role name is letters, digits, '_' and '-'".to_string()));
        }
        let tiers = match config.tiers {
            None => None,
            Some(numbers) if numbers.is_empty() => return Err(invalid(
                "tiers = [] reads no table; list tiers, e.g. [1, 2], or remove the key to read every table"
                    .into(),
            )),
            Some(numbers) => Some(
                numbers
                    .iter()
                    .map(|&n| {
                        Tier::from_number(n)
                            .ok_or_else(|| invalid(format!("tier must be 1, 2 or 3, not {n}")))
                    })
                    .collect::<Result<BTreeSet<Tier>, _>>()?,
            ),
        };
        for tag in config.deny_tags.iter().chain(&config.mask_tags) {
            if !is_tag(tag) {
                return Err(invalid(format!(
                    "tag '{tag}' is not a tag: use letters, digits and '_', '-', ':', '.', e.g. \"pii\" or \"pii:email\""
                )));
            }
        }
        if config.row_cap == Some(0) {
            return Err(invalid("row_cap = 0 returns no rows; use a positive number or remove it".into()));
        }
        let mut row_filters = Vec::new();
        for filter in config.row_filters {
            let predicate = parse_predicate(&filter.predicate).map_err(|message| {
                invalid(format!("row filter on '{}' ({}): {message}", filter.table, filter.predicate))
            })?;
            row_filters.push(RowFilter { table: filter.table, predicate });
        }
        Ok(Policy {
            role: role.to_string(),
            tiers,
            tables_denied: config.tables_denied.iter().map(|t| t.to_lowercase()).collect(),
            deny_tags: config.deny_tags.into_iter().collect(),
            mask_tags: config.mask_tags.into_iter().collect(),
            deprecated: config.deprecated.unwrap_or_default(),
            row_cap: config.row_cap,
            row_filters,
            actions: config.actions.map(|a| a.into_iter().collect()).unwrap_or_else(Action::defaults),
        })
    }
}

fn is_name(text: &str) -> bool {
    !text.is_empty() && text.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn is_attribute(text: &str) -> bool {
    text.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && text.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Parses a row-filter predicate: one SQLite expression, no subquery, parameters only as
/// `:principal.<attribute>` (rewritten to one placeholder node each).
fn parse_predicate(text: &str) -> Result<Expr, String> {
    let mut parser = Parser::new(&SQLiteDialect {})
        .with_recursion_limit(20)
        .try_with_sql(text)
        .map_err(|e| format!("does not parse: {e}"))?;
    let mut expr = parser.parse_expr().map_err(|e| format!("is not an SQL expression: {e}"))?;
    if parser.peek_token().token != sqlparser::tokenizer::Token::EOF {
        return Err(format!("has text after the expression: '{}'", parser.peek_token()));
    }
    let mut normalizer = ParameterNormalizer { problem: None };
    let _ = VisitMut::visit(&mut expr, &mut normalizer);
    let mut checker = PredicateChecker { problem: normalizer.problem };
    let _ = expr.visit(&mut checker);
    match checker.problem {
        Some(problem) => Err(problem),
        None => Ok(expr),
    }
}

/// `:principal.country` parses as a field access on the placeholder `:principal`; this turns it
/// into the single placeholder `:principal.country`.
struct ParameterNormalizer {
    problem: Option<String>,
}

impl VisitorMut for ParameterNormalizer {
    type Break = ();
    fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        if let Expr::CompoundFieldAccess { root, access_chain } = expr {
            let is_principal =
                matches!(root.as_ref(), Expr::Value(v) if v.value == Value::Placeholder(":principal".into()));
            match (is_principal, access_chain.as_slice()) {
                (true, [AccessExpr::Dot(Expr::Identifier(attribute))]) if is_attribute(&attribute.value) => {
                    let placeholder = format!("{PARAMETER_PREFIX}{}", attribute.value);
                    *expr = Expr::value(Value::Placeholder(placeholder));
                }
                _ => {
                    self.problem.get_or_insert_with(|| {
                        format!("'{expr}' is not a parameter: write :principal.<attribute>, e.g. :principal.country")
                    });
                }
            }
        }
        ControlFlow::Continue(())
    }
}

struct PredicateChecker {
    problem: Option<String>,
}

impl Visitor for PredicateChecker {
    type Break = ();
    fn pre_visit_query(&mut self, _: &Query) -> ControlFlow<()> {
        self.problem.get_or_insert_with(|| "a row filter cannot contain a subquery".to_string());
        ControlFlow::Continue(())
    }
    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
        if let Expr::Value(value) = expr {
            if let Value::Placeholder(p) = &value.value {
                if !p.strip_prefix(PARAMETER_PREFIX).is_some_and(is_attribute) {
                    self.problem.get_or_insert_with(|| {
                        format!("parameter '{p}' is not allowed: write :principal.<attribute>, e.g. :principal.country")
                    });
                }
            }
        }
        ControlFlow::Continue(())
    }
}

// --- configuration format ------------------------------------------------------------------------

/// The `[policy]` section of `quarry.toml`, as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicySection {
    #[serde(default)]
    pub roles: BTreeMap<String, RoleConfig>,
}

/// One `[policy.roles.<role>]` table, as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleConfig {
    /// Readable tiers, e.g. `[1, 2]`; absent: every table, tiered or not.
    pub tiers: Option<Vec<i64>>,
    #[serde(default)]
    pub tables_denied: Vec<String>,
    #[serde(default)]
    pub deny_tags: Vec<String>,
    #[serde(default)]
    pub mask_tags: Vec<String>,
    pub deprecated: Option<DeprecatedRule>,
    pub row_cap: Option<u64>,
    #[serde(default)]
    pub row_filters: Vec<RowFilterConfig>,
    /// What the role may do (`ask`, `sql`, `read_catalog`, `edit_catalog`, `read_audit`);
    /// absent: ask, sql and read_catalog.
    pub actions: Option<Vec<Action>>,
}

/// One `[[policy.roles.<role>.row_filters]]` entry, as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RowFilterConfig {
    pub table: String,
    pub predicate: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn role(toml_text: &str) -> Result<Policy, PolicyError> {
        let config: RoleConfig = toml::from_str(toml_text)
            .map_err(|e| PolicyError::Invalid { role: "r".into(), message: e.to_string() })?;
        Policy::from_config("r", config)
    }

    fn error(toml_text: &str) -> String {
        match role(toml_text) {
            Ok(policy) => panic!("expected an error for {toml_text}, got {policy:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn bad_roles_are_named_with_the_fix() {
        for (text, needle) in [
            ("tiers = [4]", "tier must be 1, 2 or 3"),
            ("tiers = []", "reads no table"),
            ("deny_tags = [\"p i i\"]", "is not a tag"),
            ("row_cap = 0", "row_cap = 0"),
            ("deprecated = \"ignore\"", "unknown variant"),
            ("tables = [\"x\"]", "unknown field"),
            ("row_filters = [{ table = \"orders\", predicate = \"country_code = \" }]", "is not an SQL expression"),
            ("row_filters = [{ table = \"orders\", predicate = \"a = 1; DROP TABLE x\" }]", "text after the expression"),
            ("row_filters = [{ table = \"orders\", predicate = \"country_code = ?\" }]", "parameter '?'"),
            ("row_filters = [{ table = \"orders\", predicate = \"country_code = :country\" }]", "parameter ':country'"),
            ("row_filters = [{ table = \"orders\", predicate = \"country_code = :principal.a.b\" }]", "is not a parameter"),
            ("row_filters = [{ table = \"orders\", predicate = \"country_code = :principal\" }]", "parameter ':principal'"),
            ("row_filters = [{ table = \"orders\", predicate = \"user_id IN (SELECT user_id FROM users)\" }]", "subquery"),
        ] {
            let message = error(text);
            assert!(message.contains(needle) && message.contains("[policy.roles.r]"), "{text}: {message}");
        }
    }

    #[test]
    fn parameters_are_bound_as_string_literal_nodes() {
        let policy = role("row_filters = [{ table = \"orders\", predicate = \"country_code = :principal.country OR :principal.country = 'ALL'\" }]")
            .unwrap_or_else(|e| panic!("{e}"));
        let filter = &policy.row_filters()[0];
        assert_eq!(filter.parameters(), BTreeSet::from(["country".to_string()]));
        let principal = Principal::local().with_attribute("country", "x' OR '1'='1");
        let bound = filter.bind(&principal).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(bound.to_string(), "country_code = 'x'' OR ''1''=''1' OR 'x'' OR ''1''=''1' = 'ALL'");
        assert_eq!(filter.bind(&Principal::local()), Err("country".to_string()));
    }

    #[test]
    fn keys_never_lead_to_what_the_role_may_not_read() {
        use crate::catalog::{Catalog, ForeignKey, Table};
        let key = |column: &str, table: &str, inferred| ForeignKey {
            column: column.into(),
            ref_table: table.into(),
            ref_column: column.into(),
            inferred,
        };
        let mut orders =
            Table::new("orders", vec![Column::new("user_id", "INTEGER"), Column::new("agent_id", "INTEGER")]);
        orders.foreign_keys = vec![key("user_id", "users", false), key("agent_id", "agents", true)];
        let users = Table::new("users", vec![Column::new("user_id", "INTEGER")]);
        let agents = Table::new(
            "agents",
            vec![Column { tags: vec!["sensitive".into()], ..Column::new("agent_id", "INTEGER") }],
        );
        let mut tables = vec![orders, users, agents];
        for table in &mut tables {
            table.tier = crate::catalog::Tier::from_number(1);
        }
        let catalog = Catalog::from_tables(tables);
        let keys = |policy: &Policy| -> Vec<String> {
            let visible = policy.visible_catalog(&catalog);
            visible
                .table("orders")
                .map(|t| t.foreign_keys.iter().map(|k| k.ref_table.clone()).collect())
                .unwrap_or_default()
        };
        let open = role("tiers = [1, 2, 3]").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(keys(&open), ["users", "agents"]);
        // A denied table, and a denied column of a table the role reads.
        let narrow = role("tables_denied = [\"users\"]\ndeny_tags = [\"sensitive\"]")
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(keys(&narrow).is_empty(), "{:?}", keys(&narrow));
    }

    #[test]
    fn deny_wins_over_mask() {
        let policy =
            role("deny_tags = [\"sensitive\"]\nmask_tags = [\"pii\"]").unwrap_or_else(|e| panic!("{e}"));
        let column = |tags: &[&str]| Column {
            tags: tags.iter().map(|t| t.to_string()).collect(),
            ..Column::new("c", "TEXT")
        };
        assert_eq!(policy.column_rule(&column(&["pii", "sensitive"])), ColumnRule::Deny("sensitive".into()));
        assert_eq!(policy.column_rule(&column(&["pii"])), ColumnRule::Mask("pii".into()));
        assert_eq!(policy.column_rule(&column(&[])), ColumnRule::Read);
    }

    #[test]
    fn the_local_role_must_exist() {
        let section: PolicySection = toml::from_str("[roles.admin]\n").unwrap_or_else(|e| panic!("{e}"));
        let message = PolicySet::from_config(section).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(message.contains("'analyst' is not defined"), "{message}");
    }
}
