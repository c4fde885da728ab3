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
use crate::catalog::{Catalog, Column, Table, Tier};

mod roles;

pub use roles::{PolicySection, RoleConfig, RowFilterConfig};

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

    /// Tables this role may not read, as configured.
    pub fn tables_denied(&self) -> impl Iterator<Item = &String> {
        self.tables_denied.iter()
    }

    /// Column tags this role may not read, then those it reads masked.
    pub fn column_tags(&self) -> impl Iterator<Item = &String> {
        self.deny_tags.iter().chain(&self.mask_tags)
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
    /// `validate::check_roles`, once it is loaded.
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

    /// Whether the roles come from a `[policy]` section (false: the built-in default).
    pub fn is_configured(&self) -> bool {
        self.configured
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
}
