//! Resolving queries: WITH, set operations, SELECT lists, ORDER BY.

use super::*;

impl<'c> Resolver<'c> {
    /// Resolves a query; `fill_cte` names the CTE whose columns its first branch defines.
    pub(in crate::validate) fn resolve_query(&mut self, query: &Query, fill_cte: Option<usize>) -> Outputs {
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
                let name = cte.alias.name.value.clone();
                if self.ctes[ctes_before..].iter().any(|c| c.name.eq_ignore_ascii_case(&name)) {
                    self.violations.push(violation(
                        ViolationCode::ParseError,
                        format!("the WITH clause defines '{name}' twice"),
                        name.clone(),
                        "give each CTE its own name",
                    ));
                }
                self.ctes.push(CteDefinition {
                    name,
                    columns: None,
                    state: CteState::Declared,
                    recursive: false,
                });
            }
            for (i, cte) in with.cte_tables.iter().enumerate() {
                self.define_cte(cte, ctes_before + i);
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

    pub(in crate::validate) fn define_cte(&mut self, cte: &Cte, index: usize) {
        if cte.from.is_some() {
            self.unsupported(cte.to_string());
        }
        let explicit: Vec<String> = cte.alias.columns.iter().map(|c| c.name.value.clone()).collect();
        if let Some(definition) = self.ctes.get_mut(index) {
            definition.state = CteState::Defining;
            if !explicit.is_empty() {
                definition.columns = Some(explicit.iter().map(Col::named).collect());
            }
        }
        // Visible in its own body: SQLite reads a self-reference as recursion. A recursive body
        // is resolved again while its columns gain sources, so that a governed column that
        // enters through the recursive branch is seen wherever the recursion reads it.
        // Sources only grow, so this ends; a budget per query bounds the work of nested
        // recursive CTEs, and running out of it refuses the query (fail closed).
        let mut outputs = self.resolve_query(&cte.query, Some(index));
        loop {
            let before = self.cte_sources(index);
            self.set_cte_columns(index, &explicit, &outputs);
            let recursive = self.ctes.get(index).is_some_and(|d| d.recursive);
            if !recursive || self.cte_sources(index) == before {
                break;
            }
            if self.recursion_rounds_left == 0 {
                self.violations.push(violation(
                    ViolationCode::ParseError,
                    "the recursive CTEs are too intricate to trace which columns they carry",
                    excerpt(&cte.to_string(), 60),
                    "simplify the recursion: fewer nested recursive CTEs, explicit column lists",
                ));
                break;
            }
            self.recursion_rounds_left -= 1;
            let counted = self.relations_resolved;
            outputs = self.resolve_query(&cte.query, None);
            self.relations_resolved = counted;
        }
        if let Some(definition) = self.ctes.get_mut(index) {
            definition.state = CteState::Defined;
        }
    }

    pub(in crate::validate) fn cte_sources(&self, index: usize) -> Vec<Sources> {
        self.ctes
            .get(index)
            .and_then(|d| d.columns.as_ref())
            .map(|columns| columns.iter().map(|c| c.sources.clone()).collect())
            .unwrap_or_default()
    }

    /// The CTE's columns: explicit names (or its outputs' names), with the outputs' sources
    /// added to those it had.
    pub(in crate::validate) fn set_cte_columns(
        &mut self,
        index: usize,
        explicit: &[String],
        outputs: &Outputs,
    ) {
        let Some(definition) = self.ctes.get_mut(index) else { return };
        let Some(outputs) = outputs else {
            if explicit.is_empty() {
                definition.columns = None;
            }
            return;
        };
        let names: Vec<String> = if explicit.is_empty() { col_names(outputs) } else { explicit.to_vec() };
        let previous = definition.columns.take().unwrap_or_default();
        let columns = names
            .into_iter()
            .enumerate()
            .map(|(i, name)| {
                let mut sources = previous.get(i).map(|c| c.sources.clone()).unwrap_or_default();
                if let Some(output) = outputs.get(i) {
                    add_sources(&mut sources, &output.sources);
                }
                Col { name, sources }
            })
            .collect();
        definition.columns = Some(columns);
    }

    pub(in crate::validate) fn fill_cte_columns(&mut self, fill_cte: Option<usize>, outputs: &Outputs) {
        let Some(index) = fill_cte else { return };
        let explicit: Vec<String> = match self.ctes.get(index) {
            Some(CteDefinition { columns: Some(columns), .. }) => col_names(columns),
            Some(_) => Vec::new(),
            None => return,
        };
        self.set_cte_columns(index, &explicit, outputs);
    }

    pub(in crate::validate) fn resolve_set_expr(
        &mut self,
        body: &SetExpr,
        fill_cte: Option<usize>,
    ) -> Outputs {
        let outputs = match body {
            SetExpr::Select(select) => self.resolve_select(select, None),
            SetExpr::Query(query) => return self.resolve_query(query, fill_cte),
            SetExpr::SetOperation { left, right, op, set_quantifier } => {
                let mut outputs = self.resolve_set_expr(left, fill_cte);
                let right_outputs = self.resolve_set_expr(right, None);
                // Every operation but UNION ALL compares whole rows.
                let compares =
                    !(matches!(op, SetOperator::Union) && matches!(set_quantifier, SetQuantifier::All));
                if compares {
                    let fragment = format!("{op} {set_quantifier}");
                    self.consume_outputs(&outputs, Some(fragment.trim()));
                    self.consume_outputs(&right_outputs, Some(fragment.trim()));
                }
                match (&mut outputs, &right_outputs) {
                    (Some(left_columns), Some(right_columns)) => {
                        for (left, right) in left_columns.iter_mut().zip(right_columns) {
                            add_sources(&mut left.sources, &right.sources);
                        }
                    }
                    (Some(_), None) => outputs = None,
                    _ => {}
                }
                return outputs;
            }
            SetExpr::Values(values) => {
                let width = values.rows.first().map_or(0, |row| row.content.len());
                let mut columns: Vec<Col> = (1..=width).map(|i| Col::named(format!("column{i}"))).collect();
                for row in &values.rows {
                    for (i, expr) in row.content.iter().enumerate() {
                        let sources = self.walk(expr);
                        if let Some(col) = columns.get_mut(i) {
                            add_sources(&mut col.sources, &sources);
                        }
                    }
                }
                Some(columns)
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

    pub(in crate::validate) fn resolve_select(
        &mut self,
        select: &Select,
        order_by: Option<&OrderBy>,
    ) -> Outputs {
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
            || matches!(select.distinct, Some(Distinct::On(_)));
        if exotic {
            self.unsupported(select.to_string());
        }
        let list_aliases = select
            .projection
            .iter()
            .filter_map(|item| match item {
                SelectItem::ExprWithAlias { alias, .. } => Some(alias.value.clone()),
                _ => None,
            })
            .collect();
        self.scopes.push(Scope { list_aliases, ..Scope::default() });
        for table in &select.from {
            self.add_table_with_joins(table);
        }
        let outputs = self.resolve_projection(&select.projection);
        if matches!(select.distinct, Some(Distinct::Distinct)) {
            self.consume_outputs(&outputs, Some("DISTINCT"));
        }
        if let Some(scope) = self.scopes.last_mut() {
            scope.output_aliases = select
                .projection
                .iter()
                .zip(outputs.iter().flatten())
                .filter_map(|(item, col)| match item {
                    SelectItem::ExprWithAlias { .. } => Some(col.clone()),
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
                    self.resolve_position_or_expr(expr, &outputs, "GROUP BY");
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
                self.resolve_position_or_expr(&item.expr, &outputs, "ORDER BY");
            }
        }
        self.scopes.pop();
        outputs
    }

    pub(in crate::validate) fn order_by_items<'q>(&mut self, order_by: &'q OrderBy) -> &'q [OrderByExpr] {
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

    /// `ORDER BY 2` / `GROUP BY 1` name a result column by position (its values are used);
    /// anything else is an expression.
    pub(in crate::validate) fn resolve_position_or_expr(
        &mut self,
        expr: &Expr,
        outputs: &Outputs,
        clause: &str,
    ) {
        if let Some(position) = position(expr) {
            match outputs {
                Some(columns) if position == 0 || position > columns.len() => {
                    let count = columns.len();
                    self.violations.push(violation(
                        ViolationCode::UnknownColumn,
                        format!(
                            "{clause} {position} is out of range: the query has {count} result column(s)"
                        ),
                        expr.to_string(),
                        format!("use a position between 1 and {count}, or name the column"),
                    ));
                }
                Some(columns) => {
                    let sources = columns[position - 1].sources.clone();
                    self.consume(&sources, &format!("{clause} {position}"));
                }
                None => self.unknown(|| format!("{clause} {position}")),
            }
            return;
        }
        self.walk(expr);
    }

    pub(in crate::validate) fn resolve_projection(&mut self, projection: &[SelectItem]) -> Outputs {
        let mut outputs = Some(Vec::new());
        for item in projection {
            let columns: Outputs = match item {
                SelectItem::UnnamedExpr(expr) => {
                    let sources = self.walk(expr);
                    Some(vec![Col { name: output_name(expr), sources }])
                }
                SelectItem::ExprWithAlias { expr, alias } => {
                    let sources = self.walk(expr);
                    Some(vec![Col { name: alias.value.clone(), sources }])
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
            outputs = match (outputs, columns) {
                (Some(mut all), Some(columns)) => {
                    all.extend(columns);
                    Some(all)
                }
                _ => None,
            };
        }
        outputs
    }

    pub(in crate::validate) fn check_wildcard_options(&mut self, options: &WildcardAdditionalOptions) {
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
    pub(in crate::validate) fn star_columns(&mut self, item: &SelectItem) -> Outputs {
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
            let Some(known) = relation.columns.as_ref() else {
                self.unknown(|| item.to_string());
                return None;
            };
            columns.extend(known.iter().filter(|c| !contains(&relation.merged, &c.name)).cloned());
        }
        Some(columns)
    }

    /// The columns `t.*` stands for; `t` must be in this SELECT's FROM clause.
    pub(in crate::validate) fn qualified_star_columns(&mut self, name: &ObjectName) -> Outputs {
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
            Some(Some(columns)) => Some(columns),
            Some(None) => {
                self.unknown(|| format!("{name}.*"));
                None
            }
            None => {
                let fragment = format!("{name}.*");
                self.unknown_relation(&name.to_string(), fragment);
                None
            }
        }
    }

    /// Output names and expressions of every branch of a compound select: what its ORDER BY may
    /// name.
    pub(in crate::validate) fn resolve_compound_order_by(
        &mut self,
        order_by: &OrderBy,
        body: &SetExpr,
        outputs: &Outputs,
    ) {
        let mut names: Vec<String> = outputs.as_deref().map(col_names).unwrap_or_default();
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
        let columns = outputs.clone().map(|mut columns| {
            columns.extend(names.iter().skip(columns.len()).map(Col::named));
            columns
        });
        self.scopes.push(Scope { relations: vec![Relation::new(None, columns)], ..Scope::default() });
        for item in self.order_by_items(order_by) {
            let matched_name = match &item.expr {
                Expr::Identifier(ident) => Some(ident.value.as_str()),
                Expr::CompoundIdentifier(idents) => idents.last().map(|ident| ident.value.as_str()),
                _ => None,
            };
            let matches_output = match matched_name {
                Some(name) => contains(&names, name),
                None => expressions.contains(&item.expr.to_string()),
            };
            if matches_output {
                // Sorting reads the values of the column it names.
                let sources = match (matched_name, outputs) {
                    (Some(name), Some(columns)) => match find_col(columns, name) {
                        Some(col) => col.sources.clone(),
                        None => columns.iter().flat_map(|c| c.sources.iter().copied()).collect(),
                    },
                    _ => Vec::new(),
                };
                self.consume(&sources, &item.expr.to_string());
            } else {
                self.resolve_position_or_expr(&item.expr, outputs, "ORDER BY");
            }
        }
        self.scopes.pop();
    }
}
