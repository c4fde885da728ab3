//! The policy's own SQL, checked against the catalog once it is loaded: every role's denied
//! and filtered tables exist, row-filter predicates read only their table's columns and
//! allowed functions, and a configured policy's tags are on columns. Here rather than in
//! `policy`, so that the validator depends on the policy and not the other way round.

use std::collections::BTreeSet;

use super::check_row_filter;
use crate::catalog::{suggestion, Catalog};
use crate::policy::{PolicyError, PolicySet, Principal};

/// Checks every role against the catalog: denied and filtered tables exist, row-filter
/// predicates read only columns of their table and allowed functions, and (for a configured
/// policy) every deny or mask tag is on at least one column, so that a typo cannot silently
/// leave a column readable.
pub fn check_roles(roles: &PolicySet, catalog: &Catalog) -> Result<(), PolicyError> {
    let table_names: Vec<&str> = catalog.tables().map(|t| t.name.as_str()).collect();
    let tags: BTreeSet<&str> = catalog
        .tables()
        .flat_map(|t| t.columns.iter().flat_map(|c| c.tags.iter().map(String::as_str)))
        .collect();
    for policy in roles.roles() {
        let unknown = |message: String| PolicyError::Unknown { role: policy.role().to_string(), message };
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
        for table in policy.tables_denied() {
            known_table(table, "tables_denied names table")?;
        }
        for filter in policy.row_filters() {
            known_table(filter.table(), "a row filter names table")?;
            let mut probe = Principal::new("policy-check", policy.role().to_string());
            for parameter in filter.parameters() {
                probe.attributes.insert(parameter, String::new());
            }
            let bound = filter.bind(&probe).map_err(|attribute| PolicyError::Invalid {
                role: policy.role().to_string(),
                message: format!("row filter on '{}': cannot bind '{attribute}'", filter.table()),
            })?;
            let problems = check_row_filter(catalog, filter.table(), &bound);
            if let Some(problem) = problems.first() {
                return Err(PolicyError::Invalid {
                    role: policy.role().to_string(),
                    message: format!(
                        "row filter on '{}' ({}): {}; {}",
                        filter.table(),
                        filter.predicate(),
                        problem.message,
                        problem.hint
                    ),
                });
            }
        }
        if roles.is_configured() {
            for tag in policy.column_tags() {
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
