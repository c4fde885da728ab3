//! Resolving columns: unqualified and qualified references, rowid, hints for unknown names,
//! and the expression walker that carries lineage.

use super::*;

impl<'c> Resolver<'c> {
    /// Resolves every column reference and subquery of an expression (or any node holding
    /// expressions) in the current scopes; returns the governed columns its value derives from.
    pub(in crate::validate) fn walk<T: Visit>(&mut self, node: &T) -> Sources {
        let mut walker = ExpressionWalker {
            resolver: self,
            queries_entered: 0,
            sources: Vec::new(),
            exists_pending: false,
        };
        let _ = node.visit(&mut walker);
        walker.sources
    }

    pub(in crate::validate) fn resolve_column(&mut self, idents: &[Ident]) -> Sources {
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

    pub(in crate::validate) fn rowid_unavailable(&mut self, table: &str, fragment: String) {
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

    pub(in crate::validate) fn resolve_unqualified(&mut self, ident: &Ident) -> Sources {
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
        if let Some(hint) = self.alias_of_same_list(column) {
            self.violations.push(violation(
                ViolationCode::AliasInItsList,
                format!("'{column}' is a name this SELECT list gives, read in that same list, where SQLite does not know it"),
                ident.value.clone(),
                hint,
            ));
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

    pub(in crate::validate) fn resolve_qualified(
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

    /// The fix for a name that the select list being resolved gives to one of its own
    /// expressions (`COUNT(*) AS posts, SUM(posts) OVER …`): SQLite does not read it there.
    fn alias_of_same_list(&self, column: &str) -> Option<String> {
        let scope = self.scopes.last()?;
        (!scope.aliases_visible && contains(&scope.list_aliases, column)).then(|| {
            format!(
                "SQLite reads a select-list name only in WHERE, GROUP BY, HAVING and ORDER BY, not in the list that gives it: repeat its expression, or compute '{column}' in a subquery or CTE (WITH t AS (SELECT ... AS {column} ...) SELECT ... FROM t) and use it in the outer SELECT"
            )
        })
    }

    /// Where a column the query reached for does exist: in another relation of the query, or
    /// in a catalog table the query could join.
    pub(in crate::validate) fn found_elsewhere(&self, column: &str) -> Option<String> {
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
    pub(in crate::validate) fn unknown_relation(&mut self, qualifier: &str, fragment: String) {
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
    pub(in crate::validate) fn visible_columns(&self) -> Vec<(String, String)> {
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
    pub(in crate::validate) fn resolve_in_table(&mut self, name: &ObjectName, has_args: bool) {
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
pub(in crate::validate) struct ExpressionWalker<'r, 'c> {
    pub(in crate::validate) resolver: &'r mut Resolver<'c>,
    pub(in crate::validate) queries_entered: usize,
    pub(in crate::validate) sources: Sources,
    /// The next query is the subquery of EXISTS, whose result columns are never read.
    pub(in crate::validate) exists_pending: bool,
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
