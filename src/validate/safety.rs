//! Read-only and function checks: a walk of the whole tree refusing what could write, escape or
//! stall (statements, pragmas, functions outside the allow-list).

use super::*;

/// SQLite functions that only compute from their arguments (scalar, aggregate, window, date,
/// JSON, math).
const SQLITE_FUNCTIONS: &str = "\
    -> ->> abs acos asin atan atan2 avg ceil ceiling char coalesce concat concat_ws cos count \
    cume_dist current_date current_time current_timestamp date datetime degrees dense_rank exp \
    first_value floor format glob group_concat hex ifnull iif instr json json_array \
    json_array_length json_extract json_group_array json_group_object json_object json_type \
    json_valid julianday lag last_value lead length like likelihood likely ln log log10 log2 \
    lower ltrim max min mod nth_value ntile nullif octet_length percent_rank pi pow power \
    printf quote radians random rank replace round row_number rtrim sign sin sqrt strftime \
    string_agg substr substring sum tan time timediff total trim trunc typeof unhex unicode \
    unixepoch unlikely upper";

/// SQLite functions that touch files, load code, expose internals or allocate without bound.
const SQLITE_FORBIDDEN: &str = "\
    load_extension readfile writefile edit fsdir lsmode zipfile sqlar_compress \
    sqlar_uncompress fts3_tokenizer randomblob zeroblob";

/// PostgreSQL functions that only compute from their arguments (aggregate, window, string,
/// date, math). Left out on purpose: padding and repetition (`lpad`, `repeat`, `format`
/// widths allocate at will), regular expressions, set-returning functions, sequences.
const POSTGRES_FUNCTIONS: &str = "\
    abs acos age asin atan atan2 avg bool_and bool_or btrim cbrt ceil ceiling char_length \
    character_length chr coalesce concat concat_ws corr cos count covar_pop covar_samp \
    cume_dist current_date current_time current_timestamp date date_bin date_part date_trunc \
    degrees dense_rank div every exp first_value floor greatest initcap isfinite \
    justify_days justify_hours justify_interval lag last_value lead least left length ln \
    localtime localtimestamp log log10 lower ltrim make_date make_interval make_time \
    make_timestamp max md5 min mod now nth_value ntile nullif percent_rank percentile_cont \
    percentile_disc pi position power radians random rank replace reverse right round \
    row_number rtrim sign sin split_part sqrt starts_with stddev stddev_pop stddev_samp \
    string_agg strpos substr substring sum tan to_char to_date to_number to_timestamp \
    translate trim trunc upper var_pop var_samp variance";

/// PostgreSQL functions that read or write files and settings, reach other servers, sleep,
/// write sequences or expose the server (every `pg_`, `lo_` and `dblink` function besides).
const POSTGRES_FORBIDDEN: &str = "\
    current_setting set_config query_to_xml query_to_xml_and_xmlschema table_to_xml \
    cursor_to_xml database_to_xml schema_to_xml xpath generate_series repeat nextval setval \
    currval lastval txid_current version inet_server_addr inet_client_addr has_table_privilege";

fn allowed_functions(engine: Engine) -> &'static str {
    match engine {
        Engine::Sqlite => SQLITE_FUNCTIONS,
        Engine::Postgres => POSTGRES_FUNCTIONS,
    }
}

pub(in crate::validate) fn is_forbidden_function(engine: Engine, name: &str) -> bool {
    match engine {
        Engine::Sqlite => {
            SQLITE_FORBIDDEN.split_whitespace().any(|f| f == name) || name.starts_with("sqlite_")
        }
        Engine::Postgres => {
            POSTGRES_FORBIDDEN.split_whitespace().any(|f| f == name)
                || ["pg_", "lo_", "dblink"].iter().any(|prefix| name.starts_with(prefix))
        }
    }
}

/// Whether a function may run on `engine`, by name, case-insensitively: the allow-list the
/// validator enforces, for the executor's second wall (SQLite's authorizer sees every call,
/// operators such as LIKE, GLOB and -> included).
pub fn is_allowed_function(engine: Engine, name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    !is_forbidden_function(engine, &lower) && allowed_functions(engine).split_whitespace().any(|f| f == lower)
}

/// Types a PostgreSQL cast may name: values, never the `reg*` types that look up objects by
/// name, nor documents.
const POSTGRES_CAST_TYPES: &str = "\
    bigint bool boolean char character date decimal double float float4 float8 int int2 int4 \
    int8 integer interval numeric real smallint text time timestamp timestamptz varchar";

/// Walks the whole tree, whatever the clause: writes, locks and functions are refused wherever
/// they hide. Also counts table references, to prove the resolver saw each one.
pub(in crate::validate) struct SafetyCheck {
    engine: Engine,
    pub(in crate::validate) violations: Vec<Violation>,
    pub(in crate::validate) relations_seen: usize,
}

impl SafetyCheck {
    pub(in crate::validate) fn new(engine: Engine) -> SafetyCheck {
        SafetyCheck { engine, violations: Vec::new(), relations_seen: 0 }
    }

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
                format!("call built-in {} functions by their plain name", self.engine.name()),
            ));
            return;
        };
        let lower = single.value.to_ascii_lowercase();
        let allowed = allowed_functions(self.engine);
        if is_forbidden_function(self.engine, &lower) {
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
        } else if !allowed.split_whitespace().any(|f| f == lower) {
            let named = allowed.split_whitespace().filter(|f| f.starts_with(char::is_alphabetic));
            let engine = self.engine.name();
            let hint = match closest(&lower, named) {
                Some(near) => format!("did you mean '{near}'? Only common {engine} functions are allowed"),
                None => format!("use a built-in {engine} function (aggregate, string, date, math, window)"),
            };
            self.violations.push(violation(
                ViolationCode::UnknownFunction,
                format!("'{}' is not an allowed function", single.value),
                excerpt(&function.to_string(), 60),
                hint,
            ));
        }
    }

    /// PostgreSQL casts name value types only: `'pg_authid'::regclass` and friends look up
    /// server objects by name.
    fn check_cast_type(&mut self, data_type: &DataType, expr: &Expr) {
        let rendered = data_type.to_string().to_ascii_lowercase();
        let word: String = rendered.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
        if !POSTGRES_CAST_TYPES.split_whitespace().any(|t| t == word) {
            self.violations.push(violation(
                ViolationCode::ForbiddenFunction,
                format!("a cast to '{rendered}' is not allowed"),
                excerpt(&expr.to_string(), 60),
                "cast only to value types: numeric, integer, bigint, double precision, text, date, timestamp, interval, boolean",
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
            Expr::Cast { data_type, .. } | Expr::TypedString(TypedString { data_type, .. })
                if self.engine == Engine::Postgres =>
            {
                self.check_cast_type(data_type, expr);
            }
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
