//! Read-only and function checks: a walk of the whole tree refusing what could write, escape or
//! stall (statements, pragmas, functions outside the allow-list).

use super::*;

/// SQLite functions that only compute from their arguments (scalar, aggregate, window, date,
/// JSON, math).
pub(in crate::validate) const ALLOWED_FUNCTIONS: &str = "\
    -> ->> abs acos asin atan atan2 avg ceil ceiling char coalesce concat concat_ws cos count \
    cume_dist current_date current_time current_timestamp date datetime degrees dense_rank exp \
    first_value floor format glob group_concat hex ifnull iif instr json json_array \
    json_array_length json_extract json_group_array json_group_object json_object json_type \
    json_valid julianday lag last_value lead length like likelihood likely ln log log10 log2 \
    lower ltrim max min mod nth_value ntile nullif octet_length percent_rank pi pow power \
    printf quote radians random rank replace round row_number rtrim sign sin sqrt strftime \
    string_agg substr substring sum tan time timediff total trim trunc typeof unhex unicode \
    unixepoch unlikely upper";

/// Functions that touch files, load code, expose internals or allocate without bound.
pub(in crate::validate) const FORBIDDEN_FUNCTIONS: &str = "\
    load_extension readfile writefile edit fsdir lsmode zipfile sqlar_compress \
    sqlar_uncompress fts3_tokenizer randomblob zeroblob";

pub(in crate::validate) fn is_forbidden_function(name: &str) -> bool {
    FORBIDDEN_FUNCTIONS.split_whitespace().any(|f| f == name) || name.starts_with("sqlite_")
}

/// Whether a function may run, by name, case-insensitively: the allow-list the validator
/// enforces, for the executor's second wall (SQLite's authorizer sees every call, operators
/// such as LIKE, GLOB and -> included).
pub fn is_allowed_function(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    !is_forbidden_function(&lower) && ALLOWED_FUNCTIONS.split_whitespace().any(|f| f == lower)
}

/// Walks the whole tree, whatever the clause: writes, locks and functions are refused wherever
/// they hide. Also counts table references, to prove the resolver saw each one.
#[derive(Default)]
pub(in crate::validate) struct SafetyCheck {
    pub(in crate::validate) violations: Vec<Violation>,
    pub(in crate::validate) relations_seen: usize,
}

impl SafetyCheck {
    pub(in crate::validate) fn not_read_only(&mut self, what: &str, fragment: String) {
        self.violations.push(violation(
            ViolationCode::NotReadOnly,
            format!("{what} would change the database; only reading is allowed"),
            excerpt(&fragment, 60),
            "remove it: write a plain SELECT query",
        ));
    }

    pub(in crate::validate) fn check_function(&mut self, function: &Function) {
        let parts = name_parts(&function.name);
        let [single] = parts.as_slice() else {
            self.violations.push(violation(
                ViolationCode::UnknownFunction,
                format!("'{}' is not a known function", function.name),
                excerpt(&function.to_string(), 60),
                "call built-in SQLite functions by their plain name",
            ));
            return;
        };
        let lower = single.value.to_ascii_lowercase();
        if is_forbidden_function(&lower) {
            self.violations.push(violation(
                ViolationCode::ForbiddenFunction,
                format!(
                    "function '{}' is forbidden: it can read files, load code, expose database \
                     internals or allocate without bound",
                    single.value
                ),
                excerpt(&function.to_string(), 60),
                "remove it; only functions that compute from their arguments are allowed",
            ));
        } else if !ALLOWED_FUNCTIONS.split_whitespace().any(|f| f == lower) {
            let named = ALLOWED_FUNCTIONS.split_whitespace().filter(|f| f.starts_with(char::is_alphabetic));
            let hint = match closest(&lower, named) {
                Some(near) => format!("did you mean '{near}'? Only common SQLite functions are allowed"),
                None => {
                    "use a built-in SQLite function (aggregate, string, date, math, window, JSON)".to_string()
                }
            };
            self.violations.push(violation(
                ViolationCode::UnknownFunction,
                format!("'{}' is not an allowed function", single.value),
                excerpt(&function.to_string(), 60),
                hint,
            ));
        }
    }

    pub(in crate::validate) fn table_function(&mut self, name: &str, fragment: String) {
        self.violations.push(violation(
            ViolationCode::ForbiddenFunction,
            format!("table-valued function '{name}' is not allowed"),
            excerpt(&fragment, 60),
            "read from catalog tables only (FROM table_name)",
        ));
    }
}

impl Visitor for SafetyCheck {
    type Break = ();

    fn pre_visit_statement(&mut self, statement: &Statement) -> ControlFlow<()> {
        let rendered = statement.to_string();
        let what = format!("a nested {} statement", first_word(&rendered));
        self.not_read_only(&what, rendered);
        ControlFlow::Continue(())
    }

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
        if !query.locks.is_empty() {
            self.not_read_only("a locking clause (FOR UPDATE/SHARE)", query.to_string());
        }
        let mut pending = vec![query.body.as_ref()];
        while let Some(body) = pending.pop() {
            match body {
                SetExpr::SetOperation { left, right, .. } => {
                    pending.push(left);
                    pending.push(right);
                }
                SetExpr::Table(table) => self.not_read_only("a TABLE statement", table.to_string()),
                _ => {}
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_select(&mut self, select: &Select) -> ControlFlow<()> {
        if let Some(into) = &select.into {
            self.not_read_only("SELECT ... INTO (it creates a table)", into.to_string());
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_relation(&mut self, _: &ObjectName) -> ControlFlow<()> {
        self.relations_seen += 1;
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<()> {
        match factor {
            TableFactor::Table { name, args: Some(_), .. } | TableFactor::Function { name, .. } => {
                self.table_function(&name.to_string(), factor.to_string());
            }
            TableFactor::TableFunction { .. }
            | TableFactor::UNNEST { .. }
            | TableFactor::JsonTable { .. }
            | TableFactor::OpenJsonTable { .. }
            | TableFactor::XmlTable { .. } => {
                let rendered = factor.to_string();
                self.table_function(first_word(&rendered), rendered.clone());
            }
            _ => {}
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
        match expr {
            Expr::Function(function) => self.check_function(function),
            Expr::In { target: InTarget::Table { name, args: Some(_) }, .. } => {
                self.table_function(&name.to_string(), expr.to_string());
            }
            Expr::Value(value) if matches!(value.value, Value::Placeholder(_)) => {
                self.violations.push(violation(
                    ViolationCode::ParseError,
                    format!("'{value}' is a parameter, and nothing binds parameters here"),
                    value.to_string(),
                    "write the value itself, e.g. 'DE' or 42",
                ));
            }
            _ => {}
        }
        ControlFlow::Continue(())
    }
}
