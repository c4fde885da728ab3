//! The validator's unit tests.

use super::*;
use crate::catalog::{Column, Table};

fn table(name: &str, columns: &[&str]) -> Table {
    Table::new(name, columns.iter().map(|c| Column::new(*c, "TEXT")).collect())
}

fn shop() -> Catalog {
    Catalog::from_tables(vec![
        table("users", &["user_id", "email", "country_code", "signup_date"]),
        table("orders", &["order_id", "user_id", "total_amount", "country_code"]),
        table("countries", &["country_code", "country_name"]),
    ])
}

fn anyone() -> Principal {
    Principal::new("test", "unrestricted")
}

fn codes(sql: &str) -> Vec<&'static str> {
    match validate(&DraftSql::new(sql), &shop(), &Policy::unrestricted(), &anyone()) {
        Ok(_) => Vec::new(),
        Err(refusal) => refusal.violations.iter().map(|v| v.code.as_str()).collect(),
    }
}

fn refusal(sql: &str) -> Vec<Violation> {
    match validate(&DraftSql::new(sql), &shop(), &Policy::unrestricted(), &anyone()) {
        Ok(query) => panic!("expected a refusal for {sql}, got {}", query.sql()),
        Err(refusal) => refusal.violations,
    }
}

fn check_all(cases: &[(&str, &[&str])]) {
    let failures: Vec<String> = cases
        .iter()
        .filter(|(sql, expected)| codes(sql) != *expected)
        .map(|(sql, expected)| {
            let got = validate(&DraftSql::new(*sql), &shop(), &Policy::unrestricted(), &anyone())
                .map(|q| q.sql().to_string());
            format!("{sql}\n   expected {expected:?}, got {got:#?}")
        })
        .collect();
    assert!(failures.is_empty(), "{} case(s) failed:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn benign_queries_pass() {
    check_all(&[
        ("SELECT * FROM users", &[]),
        ("select EMAIL from USERS where Country_Code = 'FR';", &[]),
        ("SELECT u.email, o.total_amount FROM users AS u JOIN orders o ON u.user_id = o.user_id", &[]),
        ("SELECT * FROM users, orders WHERE users.user_id = orders.user_id", &[]),
        ("SELECT o.*, u.email FROM orders o LEFT JOIN users u ON u.user_id = o.user_id", &[]),
        ("SELECT country_code, count(*) AS n FROM users GROUP BY country_code HAVING count(*) > 1 ORDER BY n DESC LIMIT 5", &[]),
        ("SELECT email, row_number() OVER (PARTITION BY country_code ORDER BY signup_date) AS rn FROM users", &[]),
        ("SELECT email, rank() OVER w FROM users WINDOW w AS (ORDER BY signup_date)", &[]),
        ("SELECT CASE WHEN total_amount > 100 THEN 'big' ELSE 'small' END AS size FROM orders", &[]),
        ("SELECT count(DISTINCT country_code), sum(total_amount), total(total_amount) FROM orders", &[]),
        // subqueries, correlated or not
        ("SELECT email FROM users WHERE user_id IN (SELECT user_id FROM orders WHERE total_amount > 10)", &[]),
        ("SELECT email FROM users u WHERE EXISTS (SELECT 1 FROM orders o WHERE o.user_id = u.user_id)", &[]),
        ("SELECT email FROM users WHERE (SELECT count(*) FROM orders o WHERE o.user_id = users.user_id) > 2", &[]),
        ("SELECT email FROM users WHERE EXISTS (SELECT 1 FROM countries WHERE country_name = email)", &[]),
        ("SELECT email, (SELECT max(total_amount) FROM orders o WHERE o.user_id = u.user_id) AS best FROM users u", &[]),
        // set operations
        ("SELECT country_code FROM users UNION SELECT country_code FROM orders ORDER BY country_code", &[]),
        ("SELECT user_id FROM users INTERSECT SELECT user_id FROM orders EXCEPT SELECT 1 ORDER BY 1", &[]),
        // derived tables
        ("SELECT d.n FROM (SELECT count(*) AS n FROM orders) AS d", &[]),
        ("SELECT n, user_id FROM (SELECT user_id, count(*) AS n FROM orders GROUP BY user_id)", &[]),
        ("SELECT d.* FROM (SELECT * FROM users JOIN orders USING (user_id)) d WHERE d.total_amount > 1", &[]),
        ("SELECT column1 FROM (VALUES (1, 2), (3, 4))", &[]),
        // CTEs
        ("WITH big AS (SELECT user_id, total_amount FROM orders WHERE total_amount > 100) SELECT u.email, b.total_amount FROM users u JOIN big b ON b.user_id = u.user_id", &[]),
        ("WITH c(code, name) AS (SELECT country_code, country_name FROM countries) SELECT name FROM c WHERE code = 'FR'", &[]),
        ("WITH a AS (SELECT user_id FROM users), b AS (SELECT user_id FROM a) SELECT * FROM b", &[]),
        ("WITH fr AS (SELECT user_id FROM users WHERE country_code = 'FR') SELECT total_amount FROM orders WHERE user_id IN (SELECT user_id FROM fr)", &[]),
        ("WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < 10) SELECT n FROM seq", &[]),
        ("WITH RECURSIVE seq AS (SELECT 1 AS n UNION ALL SELECT n + 1 FROM seq WHERE n < 10) SELECT n FROM seq", &[]),
        ("WITH users AS (SELECT 1 AS x) SELECT x FROM users", &[]),
        // USING and NATURAL
        ("SELECT user_id, country_code, email, total_amount FROM users JOIN orders USING (user_id, country_code)", &[]),
        ("SELECT country_code, country_name, users.country_code FROM users NATURAL JOIN countries", &[]),
        // aliases and positions
        ("SELECT email AS e, signup_date FROM users ORDER BY e, 2", &[]),
        ("SELECT total_amount * 2 AS twice FROM orders WHERE twice > 10 GROUP BY twice HAVING twice < 100", &[]),
        ("SELECT u.country_code AS country_code FROM users u JOIN orders o ON o.user_id = u.user_id ORDER BY country_code", &[]),
        // quoting and literals
        ("SELECT country_code FROM countries WHERE country_name = \"France\"", &[]),
        ("SELECT \"email\" FROM \"Users\" WHERE [user_id] = 1 AND `country_code` = 'FR'", &[]),
        ("SELECT 'email', 'no_such_column' FROM users", &[]),
        // schemas and rowid
        ("SELECT main.users.email, users.user_id FROM main.users", &[]),
        ("SELECT rowid, oid, _rowid_ FROM users", &[]),
        ("SELECT u.rowid FROM users u JOIN orders o ON o.user_id = u.user_id", &[]),
        // functions and expressions
        ("SELECT upper(email), strftime('%Y', signup_date), round(avg(total_amount), 2), coalesce(NULL, 1), CAST(total_amount AS INTEGER) FROM users JOIN orders USING (user_id) GROUP BY 1, 2", &[]),
        ("SELECT date('now'), current_timestamp, random(), abs(-1), iif(1, 2, 3), substr('abc', 1, 2)", &[]),
        ("SELECT email FROM users WHERE email LIKE '%@x.com' AND signup_date BETWEEN '2024-01-01' AND '2024-12-31' AND country_code IN ('FR', 'DE') AND email GLOB '*a*' AND email IS NOT NULL", &[]),
        ("SELECT email FROM users LIMIT 10 OFFSET 5", &[]),
        ("SELECT email FROM users LIMIT 5, 10", &[]),
        ("-- top users\nSELECT email FROM users /* all of them */", &[]),
    ]);
}

#[test]
fn each_violation_code() {
    check_all(&[
        ("", &["empty"]),
        ("  \n\t ", &["empty"]),
        ("-- only a comment", &["empty"]),
        ("SELECT FROM WHERE", &["parse_error"]),
        ("SELEKT * FROM users", &["parse_error"]),
        ("SELECT 'unterminated FROM users", &["parse_error"]),
        ("SELECT 1; SELECT 2", &["multiple_statements"]),
        ("SELECT 1; DROP TABLE users", &["multiple_statements", "not_read_only"]),
        ("DELETE FROM users", &["not_read_only"]),
        ("INSERT INTO users (email) VALUES ('a')", &["not_read_only"]),
        ("REPLACE INTO users (email) VALUES ('a')", &["not_read_only"]),
        ("UPDATE users SET email = 'x'", &["not_read_only"]),
        ("DROP TABLE users", &["not_read_only"]),
        ("CREATE TABLE x (a INTEGER)", &["not_read_only"]),
        ("ALTER TABLE users ADD COLUMN x TEXT", &["not_read_only"]),
        ("ATTACH DATABASE '/tmp/x.db' AS x", &["not_read_only"]),
        ("DETACH DATABASE x", &["not_read_only"]),
        ("PRAGMA table_info(users)", &["not_read_only"]),
        ("PRAGMA writable_schema = 1", &["not_read_only"]),
        ("VACUUM", &["not_read_only"]),
        ("BEGIN", &["not_read_only"]),
        ("COMMIT", &["not_read_only"]),
        ("EXPLAIN SELECT 1", &["not_read_only"]),
        ("WITH x AS (SELECT 1) DELETE FROM users", &["not_read_only"]),
        ("WITH x AS (SELECT 1) INSERT INTO users (email) SELECT 'a'", &["not_read_only"]),
        ("SELECT * INTO backup FROM users", &["not_read_only"]),
        ("SELECT load_extension('/tmp/evil.so')", &["forbidden_function"]),
        ("SELECT readfile('/etc/passwd')", &["forbidden_function"]),
        ("SELECT writefile('/tmp/x', email) FROM users", &["forbidden_function"]),
        ("SELECT sqlite_version()", &["forbidden_function"]),
        ("SELECT randomblob(1000000000)", &["forbidden_function"]),
        ("SELECT email FROM users WHERE length(zeroblob(999999999)) > 0", &["forbidden_function"]),
        ("SELECT * FROM pragma_table_info('users')", &["forbidden_function"]),
        ("SELECT value FROM json_each('[1, 2]')", &["forbidden_function"]),
        ("SELECT lenght(email) FROM users", &["unknown_function"]),
        ("SELECT median(total_amount) FROM orders", &["unknown_function"]),
        ("SELECT main.abs(1)", &["unknown_function"]),
        ("SELECT * FROM user", &["unknown_table"]),
        ("SELECT * FROM sqlite_master", &["unknown_table"]),
        ("SELECT name FROM sqlite_schema", &["unknown_table"]),
        ("SELECT * FROM temp.users", &["unknown_table"]),
        ("SELECT * FROM other.users", &["unknown_table"]),
        ("WITH a AS (SELECT 1 AS x) SELECT * FROM b", &["unknown_table"]),
        ("SELECT * FROM (WITH a AS (SELECT 1 AS x) SELECT x FROM a) AS d JOIN a ON 1", &["unknown_table"]),
        ("SELECT x.email FROM users u", &["unknown_table"]),
        ("SELECT users.email FROM users u", &["unknown_table"]),
        ("SELECT * FROM users u, (SELECT u.email) d", &["unknown_table"]),
        ("SELECT emial FROM users", &["unknown_column"]),
        ("SELECT u.emial FROM users u", &["unknown_column"]),
        ("SELECT email FROM users WHERE 'France' = country_name", &["unknown_column"]),
        ("SELECT email FROM users ORDER BY 3", &["unknown_column"]),
        ("SELECT email FROM users GROUP BY 0", &["unknown_column"]),
        ("SELECT d.email FROM (SELECT user_id FROM users) d", &["unknown_column"]),
        ("SELECT rowid FROM users JOIN orders USING (user_id)", &["unknown_column"]),
        ("SELECT * FROM users JOIN orders USING (email)", &["unknown_column"]),
        ("SELECT email AS e, e || 'x' FROM users", &["alias_in_its_list"]),
        ("SELECT email FROM users LIMIT total_amount", &["unknown_column"]),
        ("SELECT user_id FROM users UNION SELECT user_id FROM orders ORDER BY email", &["unknown_column"]),
        ("SELECT country_code FROM users JOIN orders ON users.user_id = orders.user_id", &["ambiguous_column"]),
        ("SELECT email FROM users JOIN orders USING (user_id) JOIN countries ON countries.country_code = country_code", &["ambiguous_column"]),
        // every violation, not just the first; no cascade from the unknown table
        ("SELECT emial, lenght(x) FROM userz", &["unknown_function", "unknown_table"]),
        ("SELECT emial, total FROM users; DELETE FROM users", &["multiple_statements", "not_read_only"]),
    ]);
}

#[test]
fn hints_say_what_was_meant() {
    let column = refusal("SELECT emial FROM users");
    assert_eq!(column[0].fragment, "emial");
    assert!(column[0].hint.contains("'email'"), "{column:?}");
    let table = refusal("SELECT * FROM user");
    assert!(table[0].message.contains("did you mean 'users'"), "{table:?}");
    let qualified = refusal("SELECT u.emial FROM users u");
    assert!(qualified[0].hint.contains("u.email"), "{qualified:?}");
    let ambiguous = refusal("SELECT country_code FROM users JOIN orders USING (user_id)");
    assert_eq!(ambiguous[0].code, ViolationCode::AmbiguousColumn);
    assert!(ambiguous[0].hint.contains("users.country_code"), "{ambiguous:?}");
    assert!(ambiguous[0].hint.contains("orders.country_code"), "{ambiguous:?}");
    let function = refusal("SELECT lenght(email) FROM users");
    assert!(function[0].hint.contains("'length'"), "{function:?}");
    let aliased = refusal("SELECT users.email FROM users u");
    assert!(aliased[0].hint.contains("aliased as 'u'"), "{aliased:?}");
    // A name the select list gives, read in that same list: SQLite refuses it too.
    let same_list = refusal(
        "SELECT signup_date AS month, COUNT(*) AS n, SUM(n) OVER (ORDER BY signup_date) FROM users GROUP BY month",
    );
    assert_eq!(same_list.len(), 1, "{same_list:?}");
    assert_eq!(same_list[0].code, ViolationCode::AliasInItsList);
    assert_eq!(same_list[0].fragment, "n");
    assert!(same_list[0].hint.contains("subquery or CTE"), "{same_list:?}");
    // The same name after the list (GROUP BY, ORDER BY, HAVING) is read, as SQLite reads it.
    assert!(codes("SELECT signup_date AS d, COUNT(*) AS n FROM users GROUP BY d HAVING n > 1 ORDER BY n")
        .is_empty());
    let parse = refusal("SELECT email,\n  FROM users");
    assert!(parse[0].fragment.starts_with("FROM users"), "{parse:?}");
    for v in refusal("SELECT emial, lenght(x) FROM userz; DROP TABLE users") {
        assert!(!v.message.is_empty() && !v.hint.is_empty(), "{v:?}");
    }
}

#[test]
fn size_limit() {
    let limits = Limits { max_sql_bytes: 30, max_depth: 40 };
    let long = "SELECT email FROM users WHERE email = 'a very long literal'";
    let refused = validate_with(&DraftSql::new(long), &shop(), &Policy::unrestricted(), &anyone(), &limits);
    let codes: Vec<_> = refused.err().into_iter().flat_map(|r| r.violations).map(|v| v.code).collect();
    assert_eq!(codes, [ViolationCode::TooLarge]);
    assert!(validate_with(&DraftSql::new("SELECT 1"), &shop(), &Policy::unrestricted(), &anyone(), &limits)
        .is_ok());
}

/// Valid SQL up to the size limit that nests far deeper than the depth limit.
fn deep_inputs() -> Vec<String> {
    let max = Limits::default().max_sql_bytes;
    // head, then `open` n times, then middle, then `close` n times, as long as it fits.
    let nest = |head: &str, open: &str, middle: &str, close: &str| {
        let count = (max - head.len() - middle.len()) / (open.len() + close.len());
        format!("{head}{}{middle}{}", open.repeat(count), close.repeat(count))
    };
    vec![
        nest("SELECT 1", "", "", "+1"),
        nest("SELECT 1", "", "", " || 1"),
        nest("SELECT * FROM users WHERE 1=1", "", "", " AND 1=1"),
        nest("SELECT 1", "", "", " IS NULL"),
        nest("SELECT 1", "", "", " BETWEEN 1 AND 1"),
        nest("SELECT 1", "", "", " IN (1)"),
        nest("SELECT 1", "", "", " UNION SELECT 1"),
        nest("SELECT ", "NOT ", "1", ""),
        nest("SELECT ", "- ", "1", ""),
        nest("SELECT ", "(", "1", ")"),
        nest("SELECT ", "abs(", "1", ")"),
        nest("SELECT ", "CAST(", "1", " AS INT)"),
        nest("SELECT ", "CASE WHEN 1 THEN ", "1", " END"),
        nest("SELECT * FROM ", "(", "users", ")"),
        nest("SELECT * FROM ", "(SELECT * FROM ", "users", ")"),
        nest(
            "SELECT 1 FROM users WHERE user_id IN ",
            "(SELECT user_id FROM users WHERE user_id IN ",
            "(1)",
            ")",
        ),
        nest("SELECT ", "(SELECT ", "1", ")"),
        format!("SELECT {}1", "NOT ".repeat(45)),
        format!("SELECT 1{}", " + 1".repeat(45)),
    ]
}

#[test]
fn deep_nesting_is_refused_without_overflow() {
    for sql in deep_inputs() {
        assert!(sql.len() <= Limits::default().max_sql_bytes);
        let got = codes(&sql);
        assert_eq!(got, ["too_deep"], "{}...", &sql[..60]);
    }
}

#[test]
fn deep_nesting_on_a_small_stack() {
    let worker = std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(|| deep_inputs().iter().map(|sql| codes(sql)).collect::<Vec<_>>());
    let results = worker.and_then(|w| w.join().map_err(|_| std::io::Error::other("panicked")));
    let results = results.unwrap_or_else(|e| panic!("validator thread failed: {e}"));
    assert!(results.iter().all(|c| c == &["too_deep"]), "{results:?}");
}

#[test]
fn tables_are_catalog_names_sorted_without_ctes() {
    let cases: &[(&str, &[&str])] = &[
        ("SELECT u.email FROM USERS u JOIN orders o ON o.user_id = u.user_id JOIN Orders o2 ON o2.order_id = o.order_id", &["orders", "users"]),
        ("WITH big AS (SELECT * FROM orders) SELECT * FROM big", &["orders"]),
        ("SELECT 1", &[]),
        ("SELECT email FROM main.users WHERE country_code IN (SELECT country_code FROM countries)", &["countries", "users"]),
    ];
    for (sql, expected) in cases {
        let query = validate(&DraftSql::new(*sql), &shop(), &Policy::unrestricted(), &anyone())
            .unwrap_or_else(|r| panic!("{sql}: {r}"));
        assert_eq!(query.tables(), *expected, "{sql}");
        assert!(query.warnings().is_empty());
    }
}

#[test]
fn rendered_sql_round_trips() {
    let sql = "with b as (select user_id, total_amount from orders where total_amount > 1) \
               select u.email, \"France\", 'it''s', b.total_amount from users u \
               join b using (user_id) where u.email like '%x%' order by 2 desc limit 3";
    let query = validate(&DraftSql::new(sql), &shop(), &Policy::unrestricted(), &anyone())
        .unwrap_or_else(|r| panic!("{r}"));
    let again = validate(&DraftSql::new(query.sql()), &shop(), &Policy::unrestricted(), &anyone())
        .unwrap_or_else(|r| panic!("{r}"));
    assert_eq!(again.sql(), query.sql());
    let original = Parser::parse_sql(&SQLiteDialect {}, sql).ok();
    let rendered = Parser::parse_sql(&SQLiteDialect {}, query.sql()).ok();
    assert!(original.is_some() && original == rendered, "{}", query.sql());
}

#[test]
fn codes_serialize_as_their_stable_names() {
    let all = [
        ViolationCode::Empty,
        ViolationCode::TooLarge,
        ViolationCode::TooDeep,
        ViolationCode::ParseError,
        ViolationCode::MultipleStatements,
        ViolationCode::NotReadOnly,
        ViolationCode::ForbiddenFunction,
        ViolationCode::UnknownFunction,
        ViolationCode::UnknownTable,
        ViolationCode::UnknownColumn,
        ViolationCode::AliasInItsList,
        ViolationCode::AmbiguousColumn,
    ];
    for code in all {
        let json = serde_json::to_string(&code).unwrap_or_default();
        assert_eq!(json, format!("\"{}\"", code.as_str()));
    }
    let refusal = Refusal { violations: refusal("SELECT emial FROM users") };
    assert!(refusal.to_string().contains("emial"), "{refusal}");
}

// --- Spider dev: every gold query is valid SQLite and must pass --------------------------

#[test]
fn spider_dev_gold_queries_pass() {
    let dir = crate::config::spider_dir(std::path::Path::new(env!("CARGO_MANIFEST_DIR")));
    if !dir.join("dev.json").is_file() {
        // Said past the harness's capture; CI has the data and must run this.
        assert!(std::env::var("CI").map_or(true, |v| v != "true"), "no Spider data at {}", dir.display());
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED validate::tests::spider_dev_gold_queries_pass: no Spider data at {}; set QUARRY_SPIDER",
            dir.display()
        );
        return;
    }
    let dir = dir.display().to_string();
    let catalogs = crate::catalog::spider::load_catalogs(std::path::Path::new(&format!("{dir}/tables.json")))
        .unwrap_or_else(|e| panic!("{e}; run scripts/fetch-assets.sh"));
    let text = std::fs::read_to_string(format!("{dir}/dev.json")).unwrap_or_else(|e| {
        panic!("Spider dev set missing at {dir}/dev.json ({e}); run scripts/fetch-assets.sh")
    });
    let examples: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("dev.json: {e}"));
    let examples = examples.as_array().cloned().unwrap_or_default();
    let mut failures = Vec::new();
    for example in &examples {
        let db = example["db_id"].as_str().unwrap_or_default();
        let sql = example["query"].as_str().unwrap_or_default();
        let Some(catalog) = catalogs.get(db) else {
            failures.push(format!("[{db}] no schema"));
            continue;
        };
        if let Err(refusal) = validate(&DraftSql::new(sql), catalog, &Policy::unrestricted(), &anyone()) {
            failures.push(format!("[{db}] {sql}\n    {refusal}"));
        }
    }
    let passed = examples.len() - failures.len();
    println!("Spider dev gold: {passed} of {} pass", examples.len());
    for failure in &failures {
        println!("{failure}");
    }
    assert_eq!(examples.len(), 1034, "dev.json should hold 1,034 examples");
    assert!(
        passed * 100 >= examples.len() * 99,
        "{passed} of {} pass:\n{}",
        examples.len(),
        failures.join("\n")
    );
}

// --- policy ----------------------------------------------------------------------------------

/// The shop with governance: users.email is pii, countries is tier 2, legacy_users is
/// deprecated tier 3.
fn governed_shop() -> Catalog {
    let mut users = table("users", &["user_id", "email", "country_code", "signup_date"]);
    users.tier = Some(crate::catalog::Tier::Certified);
    users.columns[1].tags = vec!["pii".to_string()];
    let mut orders = table("orders", &["order_id", "user_id", "total_amount", "country_code"]);
    orders.tier = Some(crate::catalog::Tier::Certified);
    let mut countries = table("countries", &["country_code", "country_name"]);
    countries.tier = Some(crate::catalog::Tier::Team);
    let mut legacy = table("legacy_users", &["id", "mail"]);
    legacy.tier = Some(crate::catalog::Tier::Staging);
    legacy.deprecated =
        Some(crate::catalog::Deprecation { replacement: "users".to_string(), note: String::new() });
    Catalog::from_tables(vec![users, orders, countries, legacy])
}

fn roles() -> crate::policy::PolicySet {
    let text = r#"
        [roles.analyst]
        deny_tags = ["pii"]
        row_cap = 100
        [roles.steward]
        mask_tags = ["pii"]
        [roles.regional]
        tiers = [1]
        deprecated = "refuse"
        [[roles.regional.row_filters]]
        table = "orders"
        predicate = "country_code = :principal.country"
    "#;
    let section = toml::from_str(text).unwrap_or_else(|e| panic!("{e}"));
    crate::policy::PolicySet::from_config(section).unwrap_or_else(|e| panic!("{e}"))
}

fn governed(sql: &str, role: &str) -> Result<ValidatedQuery, Refusal> {
    let roles = roles();
    let policy = roles.get(role).unwrap_or_else(|| panic!("no role {role}"));
    let principal = Principal::new("test", role).with_attribute("country", "FR");
    validate(&DraftSql::new(sql), &governed_shop(), policy, &principal)
}

fn governed_sql(sql: &str, role: &str) -> String {
    governed(sql, role).map(|q| q.sql().to_string()).unwrap_or_else(|r| panic!("{sql}: {r}"))
}

#[test]
fn row_filters_wrap_every_read_of_the_table() {
    assert_eq!(
        governed_sql("SELECT count(*) FROM orders o JOIN orders ON o.user_id = orders.user_id", "regional"),
        "SELECT count(*) FROM (SELECT * FROM main.\"orders\" WHERE country_code = 'FR') AS o \
         JOIN (SELECT * FROM main.\"orders\" WHERE country_code = 'FR') AS orders ON o.user_id = orders.user_id"
    );
    assert_eq!(
        governed_sql(
            "WITH a AS (SELECT user_id FROM orders) SELECT 1 WHERE 2 IN (SELECT user_id FROM a) AND 3 IN orders",
            "regional"
        ),
        "WITH a AS (SELECT user_id FROM (SELECT * FROM main.\"orders\" WHERE country_code = 'FR') AS orders) \
         SELECT 1 WHERE 2 IN (SELECT user_id FROM a) \
         AND 3 IN (SELECT * FROM (SELECT * FROM main.\"orders\" WHERE country_code = 'FR') AS orders)"
    );
    let query = governed("SELECT count(*) FROM orders", "regional").unwrap_or_else(|r| panic!("{r}"));
    assert_eq!(query.governance().row_filters, ["orders: country_code = 'FR'"]);
    // A CTE named like the table is not the table.
    assert_eq!(
        governed_sql("WITH orders AS (SELECT 1 AS x) SELECT x FROM orders", "regional"),
        "WITH orders AS (SELECT 1 AS x) SELECT x FROM orders"
    );
}

#[test]
fn masks_replace_the_column_where_the_table_is_read() {
    let query = governed("SELECT u.email, user_id FROM users u WHERE email LIKE '%x'", "steward")
        .unwrap_or_else(|r| panic!("{r}"));
    assert_eq!(
        query.sql(),
        "SELECT u.email, user_id FROM (SELECT \"user_id\", '***' AS \"email\", \"country_code\", \
         \"signup_date\" FROM main.\"users\") AS u WHERE email LIKE '%x'"
    );
    assert_eq!(query.governance().masked_columns, ["email"]);
    let codes: Vec<&str> = query.warnings().iter().map(|w| w.code.as_str()).collect();
    assert_eq!(codes, ["masked_column"]);
    assert_eq!(query.hidden_columns(), &[] as &[(String, String)]);
    let analyst = governed("SELECT user_id FROM users", "analyst").unwrap_or_else(|r| panic!("{r}"));
    assert_eq!(analyst.hidden_columns(), [("users".to_string(), "email".to_string())]);
}

#[test]
fn the_row_cap_lowers_the_outermost_limit_and_never_raises_it() {
    for (sql, expected) in [
        ("SELECT user_id FROM users", "SELECT user_id FROM users LIMIT 100"),
        ("SELECT user_id FROM users LIMIT 5", "SELECT user_id FROM users LIMIT 5"),
        ("SELECT user_id FROM users LIMIT 5000", "SELECT user_id FROM users LIMIT 100"),
        ("SELECT user_id FROM users LIMIT -1", "SELECT user_id FROM users LIMIT 100"),
        ("SELECT user_id FROM users LIMIT 5 OFFSET 10", "SELECT user_id FROM users LIMIT 5 OFFSET 10"),
        ("SELECT user_id FROM users LIMIT 10, 5000", "SELECT user_id FROM users LIMIT 10, 100"),
        (
            "SELECT user_id FROM users UNION SELECT user_id FROM orders ORDER BY 1",
            "SELECT user_id FROM users UNION SELECT user_id FROM orders ORDER BY 1 LIMIT 100",
        ),
        (
            "SELECT user_id FROM (SELECT user_id FROM users LIMIT 5000) LIMIT 7",
            "SELECT user_id FROM (SELECT user_id FROM users LIMIT 5000) LIMIT 7",
        ),
        (
            "SELECT user_id FROM users LIMIT (SELECT 5000)",
            "SELECT * FROM (SELECT user_id FROM users LIMIT (SELECT 5000)) LIMIT 100",
        ),
    ] {
        assert_eq!(governed_sql(sql, "analyst"), expected, "{sql}");
    }
    let query = governed("SELECT 1", "analyst").unwrap_or_else(|r| panic!("{r}"));
    assert_eq!(query.governance().row_cap, Some(100));
}

#[test]
fn policy_verdicts() {
    let codes = |sql: &str, role: &str| -> Vec<&'static str> {
        match governed(sql, role) {
            Ok(_) => Vec::new(),
            Err(refusal) => refusal.violations.iter().map(|v| v.code.as_str()).collect(),
        }
    };
    assert_eq!(codes("SELECT email FROM users", "analyst"), ["forbidden_column"]);
    assert_eq!(codes("SELECT email, email AS e FROM users", "analyst"), ["forbidden_column"]);
    assert_eq!(codes("SELECT email FROM users", "steward"), Vec::<&str>::new());
    assert_eq!(codes("SELECT * FROM countries", "regional"), ["table_not_allowed"]);
    assert_eq!(codes("SELECT id FROM legacy_users", "regional"), ["table_not_allowed", "deprecated_table"]);
    assert_eq!(codes("SELECT id FROM legacy_users", "analyst"), Vec::<&str>::new());
    let warned = governed("SELECT id FROM legacy_users", "analyst").unwrap_or_else(|r| panic!("{r}"));
    assert_eq!(warned.warnings()[0].code, ViolationCode::DeprecatedTable);
    assert!(warned.warnings()[0].message.contains("use 'users'"), "{:?}", warned.warnings());
    let refusal = governed("SELECT u.email FROM users u", "analyst").err().map(|r| r.violations);
    let first = refusal.as_deref().and_then(|v| v.first()).cloned();
    let first = first.unwrap_or_else(|| panic!("expected a refusal"));
    assert_eq!(first.fragment, "u.email");
    assert!(first.message.contains("users.email") && first.message.contains("'pii'"), "{first:?}");
    assert!(ViolationCode::ForbiddenColumn.is_policy() && !ViolationCode::UnknownColumn.is_policy());
    // Without the attribute its filter reads, the table cannot be read.
    let roles = roles();
    let regional = roles.get("regional").unwrap_or_else(|| panic!("no role"));
    let nobody = Principal::new("test", "regional");
    let refused = validate(&DraftSql::new("SELECT 1 FROM orders"), &governed_shop(), regional, &nobody);
    let refused = refused.err().map(|r| r.violations).unwrap_or_default();
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0].code, ViolationCode::TableNotAllowed);
    assert!(refused[0].message.contains("no attribute 'country'"), "{refused:?}");
}

#[test]
fn row_filter_predicates_are_checked_against_the_catalog() {
    let filter = |predicate: &str| {
        let expr = Parser::new(&SQLiteDialect {})
            .try_with_sql(predicate)
            .and_then(|mut p| p.parse_expr())
            .unwrap_or_else(|e| panic!("{e}"));
        check_row_filter(&governed_shop(), "orders", &expr)
            .iter()
            .map(|v| v.code.as_str())
            .collect::<Vec<_>>()
    };
    assert_eq!(filter("country_code = 'FR' AND total_amount > 0"), Vec::<&str>::new());
    assert_eq!(filter("orders.country_code = 'FR'"), Vec::<&str>::new());
    assert_eq!(filter("country = 'FR'"), ["unknown_column"]);
    assert_eq!(filter("users.country_code = 'FR'"), ["unknown_table"]);
    assert_eq!(filter("load_extension('x') = 1"), ["forbidden_function"]);
}

// --- PostgreSQL ---------------------------------------------------------------------------

fn on_postgres(sql: &str) -> Result<ValidatedQuery, Refusal> {
    let catalog = shop().on_engine(Engine::Postgres).in_schema("public");
    validate(&DraftSql::new(sql), &catalog, &Policy::unrestricted(), &anyone())
}

fn postgres_codes(sql: &str) -> Vec<&'static str> {
    match on_postgres(sql) {
        Ok(_) => Vec::new(),
        Err(refusal) => refusal.violations.iter().map(|v| v.code.as_str()).collect(),
    }
}

#[test]
fn postgres_idioms_pass_on_a_postgres_catalog() {
    let idioms = [
        "SELECT date_trunc('month', signup_date::date) AS month, count(*) FROM users GROUP BY 1",
        "SELECT EXTRACT(YEAR FROM CAST(signup_date AS date)) AS y FROM users",
        "SELECT email FROM users WHERE email ILIKE '%@example.com'",
        "SELECT signup_date::date + INTERVAL '1 day' FROM users",
        "SELECT to_char(signup_date::date, 'YYYY-MM') AS month FROM public.users",
        "SELECT country_code, 1.0 * count(*) / sum(count(*)) OVER () AS share FROM users GROUP BY country_code",
        "SELECT DATE '2026-10-01' AS d",
        "SELECT $$it's text$$ AS s",
        "SELECT count(*) FROM USERS",
        "SELECT count(*) FROM \"users\"",
    ];
    let refused: Vec<String> =
        idioms.iter().filter_map(|sql| on_postgres(sql).err().map(|r| format!("{sql}: {r}"))).collect();
    assert!(refused.is_empty(), "refused:\n{}", refused.join("\n"));
    let checked = on_postgres("SELECT email FROM users").unwrap_or_else(|r| panic!("{r}"));
    assert_eq!(checked.engine(), Engine::Postgres, "only PostgreSQL's executor takes it");
}

#[test]
fn postgres_attacks_are_refused_by_the_validator() {
    let cases: &[(&str, &str)] = &[
        ("SELECT pg_read_file('/etc/passwd')", "forbidden_function"),
        ("SELECT pg_sleep(10)", "forbidden_function"),
        ("SELECT set_config('statement_timeout', '0', false)", "forbidden_function"),
        ("SELECT current_setting('data_directory')", "forbidden_function"),
        ("SELECT lo_import('/etc/passwd')", "forbidden_function"),
        ("SELECT dblink('host=x', 'SELECT 1')", "forbidden_function"),
        ("SELECT * FROM generate_series(1, 10)", "forbidden_function"),
        ("SELECT repeat('x', 100000000)", "forbidden_function"),
        ("SELECT 'pg_authid'::regclass", "forbidden_function"),
        ("SELECT CAST('users' AS regclass)", "forbidden_function"),
        ("SELECT strftime('%Y', signup_date) FROM users", "unknown_function"),
        ("COPY users TO PROGRAM 'id'", "not_read_only"),
        ("SET ROLE postgres", "not_read_only"),
        ("SELECT * INTO stolen FROM users", "not_read_only"),
        ("SELECT * FROM users FOR UPDATE", "not_read_only"),
        ("DO $$BEGIN END$$", "not_read_only"),
        ("SELECT 1; DROP TABLE users", "multiple_statements"),
        ("SELECT * FROM pg_catalog.pg_authid", "unknown_table"),
        ("SELECT * FROM main.users", "unknown_table"),
        ("SELECT count(*) FROM \"USERS\"", "unknown_table"),
    ];
    let failures: Vec<String> = cases
        .iter()
        .filter(|(sql, code)| !postgres_codes(sql).contains(code))
        .map(|(sql, code)| format!("{sql}: expected {code}, got {:?}", postgres_codes(sql)))
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // SQLite's own functions stay allowed on SQLite, and PostgreSQL's are unknown there.
    assert!(codes("SELECT strftime('%Y', signup_date) FROM users").is_empty());
    assert_eq!(codes("SELECT date_trunc('month', signup_date) FROM users"), vec!["unknown_function"]);
}

#[test]
fn round_to_places_is_computed_in_numeric_on_postgres() {
    let rounded = |sql: &str| on_postgres(sql).unwrap_or_else(|r| panic!("{r}")).sql().to_string();
    let sql = rounded("SELECT ROUND(SUM(total_amount) / COUNT(*), 2) AS avg_amount FROM orders");
    assert!(
        sql.starts_with("SELECT ROUND(CAST(SUM(total_amount) / COUNT(*) AS NUMERIC), 2) AS avg_amount"),
        "{sql}"
    );
    let nested = rounded("SELECT ROUND(100.0 * (SELECT ROUND(AVG(total_amount), 1) FROM orders) / 3, 2)");
    assert_eq!(nested.matches("CAST(").count(), 2, "every call, at any depth: {nested}");
    let unchanged = [
        "SELECT ROUND(SUM(total_amount)) FROM orders",
        "SELECT ROUND(CAST(SUM(total_amount) AS NUMERIC), 2) FROM orders",
    ];
    for sql in unchanged {
        assert!(!rounded(sql).contains("CAST(CAST"), "no second cast: {}", rounded(sql));
        assert_eq!(rounded(sql).matches("CAST(").count(), sql.matches("CAST(").count(), "{sql}");
    }
    let on_sqlite = validate(
        &DraftSql::new("SELECT ROUND(SUM(total_amount), 2) FROM orders"),
        &shop(),
        &Policy::unrestricted(),
        &anyone(),
    )
    .unwrap_or_else(|r| panic!("{r}"));
    assert!(!on_sqlite.sql().contains("CAST"), "SQLite rounds any number as written: {}", on_sqlite.sql());
}

#[test]
fn derived_tables_are_named_on_postgres() {
    let roles = roles();
    let analyst = roles.get("analyst").unwrap_or_else(|| panic!("no analyst"));
    let catalog = governed_shop().on_engine(Engine::Postgres).in_schema("public");
    let principal = Principal::new("test", "analyst");
    let sql = "SELECT order_id FROM orders LIMIT (SELECT 5)";
    let query =
        validate(&DraftSql::new(sql), &catalog, analyst, &principal).unwrap_or_else(|r| panic!("{r}"));
    assert!(query.sql().ends_with(") AS derived_1 LIMIT 100"), "{}", query.sql());
    let nested = on_postgres("SELECT count(*) FROM (SELECT * FROM (SELECT user_id FROM users) AS derived_1)")
        .unwrap_or_else(|r| panic!("{r}"));
    assert!(
        nested.sql().ends_with("AS derived_1) AS derived_2"),
        "every derived table named, uniquely: {}",
        nested.sql()
    );
    let regional = roles.get("regional").unwrap_or_else(|| panic!("no regional"));
    let principal = Principal::new("test", "regional").with_attribute("country", "FR");
    let query = validate(&DraftSql::new("SELECT order_id FROM orders"), &catalog, regional, &principal)
        .unwrap_or_else(|r| panic!("{r}"));
    assert!(
        query.sql().contains("FROM public.\"orders\""),
        "a row filter reads the schema's table: {}",
        query.sql()
    );
    assert!(
        query.sql().contains("WHERE country_code = 'FR' OFFSET 0) AS orders"),
        "the filtered table is a fence the planner does not see through: {}",
        query.sql()
    );
}
