//! The roles as configured: `[policy.roles.<role>]` read into a `Policy` with every name,
//! tier, tag, action and row filter checked (`PolicySection`, `RoleConfig` as written). Once
//! the catalog is loaded, `validate::check_roles` checks every role against it.

use super::*;

impl Policy {
    pub(super) fn from_config(role: &str, config: RoleConfig) -> Result<Policy, PolicyError> {
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
