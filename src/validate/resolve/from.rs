//! Resolving FROM: tables, joins and their columns, derived tables, table functions.

use super::*;

impl<'c> Resolver<'c> {
    pub(in crate::validate) fn current_relations(&self) -> usize {
        self.scopes.last().map_or(0, |scope| scope.relations.len())
    }

    pub(in crate::validate) fn add_relation(&mut self, relation: Relation) {
        if let Some(scope) = self.scopes.last_mut() {
            scope.relations.push(relation);
        }
    }

    pub(in crate::validate) fn add_table_with_joins(&mut self, table: &TableWithJoins) {
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
    pub(in crate::validate) fn shared_columns(&self, earlier: usize) -> Vec<String> {
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
    pub(in crate::validate) fn merge_join_columns(
        &mut self,
        earlier: usize,
        columns: &[String],
        fragment: &str,
    ) {
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

    pub(in crate::validate) fn add_table_factor(&mut self, factor: &TableFactor) {
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
    pub(in crate::validate) fn resolve_relation_name(&mut self, name: &ObjectName) -> Relation {
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
        if let Some(table) = self.catalog.table(&table_name.value) {
            if self.catalog.engine() == Engine::Postgres {
                // PostgreSQL folds unquoted names to lower case and keeps quoted ones as written.
                let folded = match table_name.quote_style {
                    Some(_) => table_name.value.clone(),
                    None => table_name.value.to_lowercase(),
                };
                if folded != table.name {
                    let spelled = if table.name == table.name.to_lowercase() {
                        table.name.clone()
                    } else {
                        format!("\"{}\"", table.name)
                    };
                    self.violations.push(violation(
                        ViolationCode::UnknownTable,
                        format!("PostgreSQL reads '{table_name}' as '{folded}', which is not a table"),
                        name.to_string(),
                        format!("write {spelled}"),
                    ));
                    return relation;
                }
            }
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
    pub(in crate::validate) fn in_source(&self, schema: &Ident, table: &Ident) -> bool {
        let main = self.catalog.main_qualifier();
        match self.catalog.table(&table.value) {
            Some(t) if t.source == crate::catalog::MAIN_SOURCE => schema.value.eq_ignore_ascii_case(main),
            Some(t) => t.source.eq_ignore_ascii_case(&schema.value),
            None => schema.value.eq_ignore_ascii_case(main),
        }
    }

    pub(in crate::validate) fn unknown_table(&mut self, name: &ObjectName, table: &str) {
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
}
