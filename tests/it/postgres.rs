//! PostgreSQL as the warehouse, on a throwaway cluster: `make test` runs the suite inside
//! `scripts/with-postgres.sh`, which starts one and hands its superuser's URL over as
//! `QUARRY_TEST_POSTGRES`. Each test makes a database of its own, copies the demo warehouse
//! into it (`warehouse::copy_sqlite`) and answers as a role that may only read.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use postgres::NoTls;
use quarry::catalog::Engine;
use quarry::config::WarehouseLocation;
use quarry::eval::{run_cases, Case, GoldSource};
use quarry::llm::{Llm, ScriptedLlm};
use quarry::pipeline::{load_default_llm, AskError, OpenError, Quarry};
use quarry::policy::Principal;
use quarry::validate::{validate, DraftSql};
use quarry::warehouse::{
    copy_sqlite, ExecuteError, ExecutionLimits, PostgresError, PostgresUrl, PostgresWarehouse, Warehouse,
    WarehouseError,
};

use crate::adversarial::{check, corpus, Codes, World};
use crate::support::{
    admin_or_skip, config_for, demo_policy, embedder, metadata_database, real_model_turn, scripted,
    shared_workspace, TestDatabase, SCRIPT,
};

/// A database of one test holding the demo warehouse in schema `public`, and a login that may
/// only read it. Dropped with the test.
struct DemoDatabase {
    database: TestDatabase,
    /// The database, as its owner (the cluster's superuser).
    owner_url: String,
    /// The database, as the role that may only read.
    reader_url: String,
}

fn demo_database(admin: &str, test: &str) -> DemoDatabase {
    let mut database = TestDatabase::create(admin, test);
    let name = database.name.clone();
    let reader_url = database.login("reader", "reader-pw");
    let reader = format!("{name}_reader");
    let owner_url = database.url.clone();
    let sqlite = config_for(shared_workspace()).warehouse.sqlite_path().expect("a SQLite demo").to_path_buf();
    let copied =
        copy_sqlite(&sqlite, &PostgresUrl::parse(&owner_url).expect("url"), "public").expect("copy the demo");
    assert_eq!(copied.tables, 18, "every demo table is copied");
    let mut db = postgres::Client::connect(&owner_url, NoTls).expect("connect to the test database");
    db.batch_execute(&format!(
        "GRANT CONNECT ON DATABASE {name} TO {reader}; GRANT USAGE ON SCHEMA public TO {reader};
         GRANT SELECT ON ALL TABLES IN SCHEMA public TO {reader};
         COMMENT ON TABLE orders IS 'One row per order, placed by a user';
         COMMENT ON COLUMN orders.total_amount IS 'Order value in EUR, after discounts';"
    ))
    .expect("grants and comments");
    DemoDatabase { database, owner_url, reader_url }
}

/// Quarry on the warehouse at `url` (schema `public`), with no query log and `governance` as
/// its governance folder.
fn open_on(url: &str, governance: &Path, llm: Arc<dyn Llm>) -> Result<Quarry, OpenError> {
    let dir = tempfile::tempdir().expect("temp dir").keep();
    let mut config = config_for(&dir);
    config.warehouse = location(url);
    config.governance = governance.to_path_buf();
    config.demo = false;
    Quarry::open(config, embedder(), Some(llm))
}

/// The scripted workspace — the demo's governance, query log and script — all on PostgreSQL:
/// the warehouse a copy of the demo read by a role that may only read, the metadata store a
/// database of its own. For the suites that run on both backends (`http`); None, after a
/// SKIPPED line, without a cluster. Made once per test run, on a thread of its own (async tests
/// call it; the synchronous client may not run on their threads); its databases go with the
/// throwaway cluster.
pub fn scripted_on_postgres(test: &str) -> Option<Arc<Quarry>> {
    static QUARRY: std::sync::OnceLock<Arc<Quarry>> = std::sync::OnceLock::new();
    let admin = admin_or_skip(test)?;
    let quarry = QUARRY.get_or_init(|| {
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let warehouse = demo_database(&admin, "shared");
                    let (metadata, metadata_url) = metadata_database(&admin);
                    let dir = tempfile::tempdir().expect("temp dir").keep();
                    let mut config = config_for(&dir);
                    config.warehouse = location(&warehouse.reader_url);
                    config.metadata_url = Some(PostgresUrl::parse(&metadata_url).expect("url"));
                    config.governance = demo_governance().to_path_buf();
                    config.history = shared_workspace().join("history.jsonl");
                    config.demo = false;
                    std::mem::forget((warehouse, metadata));
                    let quarry = Quarry::open(config, embedder(), Some(scripted_llm()));
                    Arc::new(quarry.expect("open the scripted workspace on PostgreSQL"))
                })
                .join()
                .expect("opened")
        })
    });
    Some(quarry.clone())
}

fn location(url: &str) -> WarehouseLocation {
    WarehouseLocation::Postgres { url: PostgresUrl::parse(url).expect("url"), schema: "public".into() }
}

fn scripted_llm() -> Arc<dyn Llm> {
    Arc::new(ScriptedLlm::new(SCRIPT.iter().copied()))
}

fn demo_governance() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/schemas/demo"))
}

#[test]
fn the_catalog_is_read_from_postgres_with_keys_comments_and_estimates() {
    let Some(admin) = admin_or_skip("the_catalog_is_read_from_postgres_with_keys_comments_and_estimates")
    else {
        return;
    };
    let db = demo_database(&admin, "catalog");
    let empty = tempfile::tempdir().expect("temp dir");
    let warehouse = Warehouse::open(&location(&db.reader_url), &[]).expect("reach the warehouse");
    let catalog = warehouse.load_catalog(empty.path()).expect("catalog");
    assert_eq!(catalog.engine(), Engine::Postgres);
    assert_eq!(catalog.tables().count(), 18);
    let orders = catalog.table("orders").expect("orders");
    assert_eq!(orders.description, "One row per order, placed by a user");
    let amount = orders.column("total_amount").expect("total_amount");
    assert_eq!(amount.description, "Order value in EUR, after discounts");
    assert_eq!(amount.data_type, "double precision");
    assert_eq!(orders.column("ordered_at").expect("ordered_at").data_type, "timestamp without time zone");
    assert_eq!(orders.primary_key, vec!["order_id".to_string()]);
    assert!(
        orders.foreign_keys.iter().any(|k| k.column == "user_id" && k.ref_table == "users" && !k.inferred),
        "declared keys are read: {:?}",
        orders.foreign_keys
    );
    assert!(orders.row_count.is_some_and(|n| n > 100), "estimated rows: {:?}", orders.row_count);
    let status = orders.column("status").expect("status");
    assert!(
        status.sample_values.contains(&"refunded".to_string()),
        "common values: {:?}",
        status.sample_values
    );
    assert!(orders.last_change.is_some(), "the latest date is read from a timestamp column");
}

/// Portable SQL gives the same rows on the PostgreSQL copy as on the SQLite demo, under every
/// demo role's policy (row filters and masks are rewrites of the tree on both).
#[test]
fn sql_on_postgres_returns_what_sqlite_returns_under_every_role() {
    let Some(admin) = admin_or_skip("sql_on_postgres_returns_what_sqlite_returns_under_every_role") else {
        return;
    };
    let db = demo_database(&admin, "sql");
    let on_postgres = open_on(&db.reader_url, demo_governance(), scripted_llm()).expect("open on PostgreSQL");
    let on_sqlite = scripted();
    let queries = [
        "SELECT plan, COUNT(*) AS users FROM users WHERE signup_date BETWEEN '2026-01-01' AND '2026-12-31' GROUP BY plan",
        "SELECT c.country_name, COUNT(DISTINCT d.user_id) AS active FROM daily_active_users d \
         JOIN countries c ON c.country_code = d.country_code \
         WHERE d.activity_date BETWEEN '2026-10-01' AND '2026-10-31' GROUP BY c.country_name ORDER BY active DESC, c.country_name LIMIT 5",
        "SELECT status, COUNT(*) AS n, ROUND(SUM(total_amount)) AS total FROM orders \
         WHERE ordered_at >= '2026-09-01' AND ordered_at < '2026-10-01' GROUP BY status",
        "SELECT p.category, SUM(i.quantity) AS units FROM order_items i JOIN products p ON p.product_id = i.product_id GROUP BY p.category",
        // ROUND to places on a double precision sum: SQLite's call, run in numeric on PostgreSQL.
        "SELECT p.category, ROUND(SUM(i.quantity * i.unit_price), 2) AS revenue FROM order_items i \
         JOIN products p ON p.product_id = i.product_id GROUP BY p.category",
        "SELECT user_id, country_code FROM users WHERE user_id <= 40",
        "WITH big AS (SELECT user_id, COUNT(*) AS n FROM orders GROUP BY user_id) SELECT COUNT(*) FROM big WHERE n > 3",
    ];
    let mut regional = Principal::new("regional", "regional_analyst");
    regional.attributes.insert("country".into(), "DE".into());
    let roles = [Principal::new("analyst", "analyst"), Principal::new("admin", "admin"), regional];
    let mut compared = 0;
    for principal in &roles {
        for sql in queries {
            let want = on_sqlite.run_sql(sql, principal);
            let got = on_postgres.run_sql(sql, principal);
            match (want, got) {
                (Ok(want), Ok(got)) => {
                    let ordered = sql.contains("ORDER BY");
                    assert!(
                        quarry::eval::same_result(&want.result, &got.result, ordered),
                        "{} ({}): SQLite {:?}\nPostgreSQL {:?}",
                        sql,
                        principal.role,
                        &want.result.rows[..want.result.rows.len().min(5)],
                        &got.result.rows[..got.result.rows.len().min(5)]
                    );
                    assert_eq!(want.governance.row_filters, got.governance.row_filters, "{sql}");
                    compared += 1;
                }
                (
                    Err(AskError::Refused { refusal: want, .. }),
                    Err(AskError::Refused { refusal: got, .. }),
                ) => {
                    let codes = |r: &quarry::validate::Refusal| {
                        r.violations.iter().map(|v| v.code).collect::<Vec<_>>()
                    };
                    assert_eq!(codes(&want), codes(&got), "{sql} ({}): refused alike", principal.role);
                }
                (want, got) => panic!("{sql} ({}): SQLite {want:?}, PostgreSQL {got:?}", principal.role),
            }
        }
    }
    assert!(compared >= 14, "most queries ran on both: {compared}");
}

/// Attacks peculiar to PostgreSQL, through `quarry sql` as the most privileged demo role: each
/// is refused before it reaches the server.
#[test]
fn postgres_attacks_are_refused() {
    let Some(admin) = admin_or_skip("postgres_attacks_are_refused") else { return };
    let db = demo_database(&admin, "attacks");
    let quarry = open_on(&db.reader_url, demo_governance(), scripted_llm()).expect("open on PostgreSQL");
    let principal = Principal::new("attacker", "admin");
    let attacks = [
        "SELECT pg_read_file('/etc/passwd')",
        "SELECT pg_ls_dir('.')",
        "COPY users TO PROGRAM 'id'",
        "COPY (SELECT * FROM users) TO '/tmp/users.csv'",
        "SET ROLE quarry_admin",
        "RESET ROLE",
        "SELECT set_config('statement_timeout', '0', false)",
        "SELECT current_setting('data_directory')",
        "SELECT 1; DROP TABLE users",
        "SELECT 1 FROM users; SELECT pg_sleep(10)",
        "SELECT pg_sleep(10)",
        "SELECT * FROM pg_catalog.pg_authid",
        "SELECT usename, passwd FROM pg_shadow",
        "SELECT lo_import('/etc/passwd')",
        "SELECT dblink('host=10.0.0.1', 'SELECT 1')",
        "SELECT 'pg_authid'::regclass",
        "SELECT CAST('pg_authid' AS regclass)",
        "SELECT * INTO stolen FROM users",
        "SELECT * FROM users FOR UPDATE",
        "CREATE TABLE t (a int)",
        "DO $$BEGIN PERFORM pg_sleep(10); END$$",
        "SELECT * FROM generate_series(1, 1000000000)",
        "SELECT repeat('x', 100000000)",
        "SELECT query_to_xml('select * from users', true, true, '')",
        "SELECT nextval('orders_seq')",
        "VACUUM users",
        "LISTEN quarry",
        "PREPARE p AS SELECT 1",
        "BEGIN",
        "SELECT txid_current()",
        "SELECT version()",
        "SELECT * FROM information_schema.tables",
    ];
    let mut passed = Vec::new();
    for sql in attacks {
        match quarry.run_sql(sql, &principal) {
            Err(AskError::Refused { .. }) => {}
            other => passed.push(format!("{sql}: {other:?}")),
        }
    }
    assert!(passed.is_empty(), "not refused by the validator:\n{}", passed.join("\n"));
    // A `;` inside dollar quotes is text, not a second statement: it comes back as a value.
    let quoted = quarry.run_sql("SELECT $$;DROP TABLE users;$$ AS s", &principal).expect("a string literal");
    assert_eq!(quoted.result.rows, vec![vec![serde_json::json!(";DROP TABLE users;")]]);
    assert!(quarry.run_sql("SELECT COUNT(*) FROM users", &principal).is_ok(), "users is still there");
}

/// The adversarial corpus (`tests/data/adversarial`) on the PostgreSQL copy: every case the
/// validator refuses on SQLite is refused here too (the codes may differ with the dialect), and
/// the row filters return the oracle's rows. Cases written in SQLite's own syntax that
/// PostgreSQL's parser refuses are counted and shown.
#[test]
fn the_adversarial_corpus_is_refused_on_postgres() {
    let Some(admin) = admin_or_skip("the_adversarial_corpus_is_refused_on_postgres") else { return };
    let db = demo_database(&admin, "corpus");
    let warehouse = Warehouse::open(&location(&db.reader_url), &[]).expect("reach the warehouse");
    let world = World {
        catalog: warehouse.load_catalog(demo_governance()).expect("catalog"),
        policy: demo_policy(),
        executor: warehouse.executor(ExecutionLimits::new(Duration::from_secs(20), 1000)),
        impatient: warehouse.executor(ExecutionLimits::new(Duration::from_millis(300), 1000)),
    };
    let (mut total, mut dialect) = (0, Vec::new());
    let mut failures = Vec::new();
    for (category, cases) in corpus() {
        for case in &cases {
            total += 1;
            match check(&world, case, Codes::RefusedAlike) {
                Ok(false) => {}
                Ok(true) => dialect.push(format!("[{category}] {}", case.sql)),
                Err(problem) => {
                    failures.push(format!("[{category}] ({}) {}\n      {problem}", case.role, case.sql))
                }
            }
        }
    }
    println!(
        "adversarial corpus on PostgreSQL: {total} cases, {} refused only for SQLite syntax:",
        dialect.len()
    );
    for line in &dialect {
        println!("  {line}");
    }
    assert!(failures.is_empty(), "{} of {total} case(s) differ:\n{}", failures.len(), failures.join("\n"));
}

/// An error PostgreSQL raises on a value (a failed cast) comes from rows the role may read
/// only: the row filter is evaluated before any condition of the query.
#[test]
fn errors_under_a_row_filter_show_only_rows_the_role_may_read() {
    let Some(admin) = admin_or_skip("errors_under_a_row_filter_show_only_rows_the_role_may_read") else {
        return;
    };
    let db = demo_database(&admin, "leak");
    let quarry = open_on(&db.reader_url, demo_governance(), scripted_llm()).expect("open on PostgreSQL");
    let mut regional = Principal::new("regional", "regional_analyst");
    regional.attributes.insert("country".into(), "DE".into());
    for sql in [
        "SELECT count(*) FROM orders WHERE CAST(country_code AS integer) = 0",
        "SELECT count(*) FROM orders o JOIN users u ON u.user_id = o.user_id WHERE CAST(u.country_code AS integer) = 0",
    ] {
        match quarry.run_sql(sql, &regional) {
            Err(AskError::Execution { source, .. }) => {
                let message = source.to_string();
                assert!(message.contains("\"DE\""), "{sql}: {message}");
            }
            other => panic!("{sql}: expected the cast to fail, got {other:?}"),
        }
    }
}

#[test]
fn a_role_that_may_write_is_refused_with_the_grants_that_fix_it() {
    let Some(admin) = admin_or_skip("a_role_that_may_write_is_refused_with_the_grants_that_fix_it") else {
        return;
    };
    let db = demo_database(&admin, "writer");
    let error = match open_on(&db.owner_url, demo_governance(), scripted_llm()) {
        Ok(_) => panic!("the superuser was accepted as the warehouse role"),
        Err(error) => error,
    };
    assert!(
        matches!(&error, OpenError::Warehouse(WarehouseError::Postgres(PostgresError::CanWrite { .. }))),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(message.contains("superuser"), "{message}");
    assert!(message.contains("GRANT SELECT ON ALL TABLES IN SCHEMA \"public\""), "{message}");
    assert!(!message.contains("quarry-test"), "the password is not shown: {message}");
}

#[test]
fn an_unreachable_server_and_a_wrong_password_are_named() {
    let Some(admin) = admin_or_skip("an_unreachable_server_and_a_wrong_password_are_named") else { return };
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    let port = closed.local_addr().expect("addr").port();
    drop(closed);
    let nowhere = PostgresUrl::parse(&format!("postgres://reader:pw@127.0.0.1:{port}/shop")).expect("url");
    let message = PostgresWarehouse::connect(&nowhere, "public", 2).expect_err("nothing listens").to_string();
    assert!(message.contains("cannot connect to the warehouse postgres://reader:***@127.0.0.1"), "{message}");
    assert!(message.contains("Check that the server runs"), "{message}");

    let db = demo_database(&admin, "password");
    let wrong = db.reader_url.replace("reader-pw", "not-the-password");
    let message = PostgresWarehouse::connect(&PostgresUrl::parse(&wrong).expect("url"), "public", 2)
        .expect_err("wrong password")
        .to_string();
    assert!(message.contains("password authentication failed"), "{message}");
    assert!(!message.contains("not-the-password"), "the password is not shown: {message}");
}

/// A query past its deadline is cancelled on the server; a connection killed in the middle of
/// a query is an error naming the warehouse, and the next query gets a sound connection.
#[test]
fn deadlines_and_dropped_connections_are_errors_not_hangs() {
    let Some(admin) = admin_or_skip("deadlines_and_dropped_connections_are_errors_not_hangs") else { return };
    let db = demo_database(&admin, "faults");
    let warehouse = Warehouse::open(&location(&db.reader_url), &[]).expect("reach the warehouse");
    let catalog = warehouse.load_catalog(demo_governance()).expect("catalog");
    let policy = quarry::policy::Policy::unrestricted();
    let principal = Principal::new("oracle", policy.role());
    let slow = validate(
        &DraftSql::new("SELECT COUNT(*) FROM order_items a, order_items b, order_items c"),
        &catalog,
        &policy,
        &principal,
    )
    .expect("a slow but valid query");
    let impatient = warehouse.executor(ExecutionLimits::new(Duration::from_millis(300), 100));
    let started = Instant::now();
    let outcome = impatient.run(&slow);
    assert!(matches!(outcome, Err(ExecuteError::Timeout(_))), "{outcome:?}");
    assert!(started.elapsed() < Duration::from_secs(10), "stopped promptly: {:?}", started.elapsed());

    let patient = warehouse.executor(ExecutionLimits::new(Duration::from_secs(60), 100));
    let killer = {
        let admin = db.owner_url.clone();
        let reader = format!("{}_reader", db.database.name);
        std::thread::spawn(move || {
            let mut client = postgres::Client::connect(&admin, NoTls).expect("admin");
            for _ in 0..100 {
                std::thread::sleep(Duration::from_millis(100));
                let killed: i64 = client
                    .query_one(
                        "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity \
                         WHERE usename = $1 AND state = 'active'",
                        &[&reader],
                    )
                    .expect("terminate")
                    .get(0);
                if killed > 0 {
                    return;
                }
            }
        })
    };
    let outcome = patient.run(&slow);
    let _ = killer.join();
    assert!(
        matches!(&outcome, Err(ExecuteError::Connect { .. }) | Err(ExecuteError::Database(_))),
        "{outcome:?}"
    );
    let count = validate(&DraftSql::new("SELECT COUNT(*) FROM orders"), &catalog, &policy, &principal)
        .expect("valid");
    let rows = patient.run(&count).expect("the pool replaces the broken connection").rows;
    assert_eq!(rows.len(), 1);
}

/// The real model answers on the PostgreSQL warehouse with PostgreSQL's prompt, and its answer
/// has the rows of the gold SQL run on the SQLite demo.
#[test]
fn real_model_answers_a_demo_question_on_postgres() {
    let Some(_turn) = real_model_turn() else { return };
    let Some(admin) = admin_or_skip("real_model_answers_a_demo_question_on_postgres") else { return };
    let db = demo_database(&admin, "real");
    let llm = load_default_llm(&config_for(shared_workspace())).expect("model assets: run `make assets`");
    let quarry = open_on(&db.reader_url, demo_governance(), llm).expect("open on PostgreSQL");
    let analyst = Principal::new("analyst", "analyst");
    let answer =
        quarry.ask("How many distinct users were active on 2026-10-15?", &analyst).expect("an answer");
    let gold = scripted()
        .run_sql(
            "SELECT COUNT(DISTINCT user_id) FROM daily_active_users WHERE activity_date = '2026-10-15'",
            &analyst,
        )
        .expect("gold on SQLite");
    assert!(
        quarry::eval::same_result(&gold.result, &answer.result, false),
        "{}: {:?} against {:?}",
        answer.sql,
        answer.result.rows,
        gold.result.rows
    );
}

/// The demo's golds are SQLite SQL: on a PostgreSQL copy of the demo, each answer (PostgreSQL
/// SQL, run there) is scored against its gold run on the SQLite original.
#[test]
fn answers_on_postgres_are_scored_against_golds_run_on_the_sqlite_original() {
    let Some(admin) =
        admin_or_skip("answers_on_postgres_are_scored_against_golds_run_on_the_sqlite_original")
    else {
        return;
    };
    let db = demo_database(&admin, "gold");
    // The first key found in the prompt answers: the longer one first.
    let llm: Arc<dyn Llm> = Arc::new(ScriptedLlm::new([
        (
            "not refunded in September 2026",
            "SELECT COUNT(*) AS refunded FROM orders WHERE status = 'refunded' \
             AND ordered_at >= DATE '2026-09-01' AND ordered_at < DATE '2026-11-01'",
        ),
        (
            "refunded in September 2026",
            "SELECT COUNT(*) AS refunded FROM orders WHERE status = 'refunded' \
             AND date_trunc('month', ordered_at) = DATE '2026-09-01'",
        ),
    ]));
    let quarry = open_on(&db.reader_url, demo_governance(), llm).expect("open on PostgreSQL");
    let original =
        config_for(shared_workspace()).warehouse.sqlite_path().expect("a SQLite demo").to_path_buf();
    let gold = GoldSource::sqlite_copy(quarry.config(), &original).expect("the SQLite original opens");
    // strftime is SQLite's: these golds run only where the gold source sends them.
    let case = |question: &str, not: &str| {
        Case {
        question: question.into(),
        gold: format!(
            "SELECT COUNT(*) FROM orders WHERE status {not}= 'refunded' AND strftime('%Y-%m', ordered_at) = '2026-09'"
        ),
        today: None,
    }
    };
    let cases = [
        case("How many orders were refunded in September 2026?", ""),
        case("How many orders were not refunded in September 2026?", "!"),
    ];
    let (results, summary) = run_cases(&quarry, &cases, &gold, 1, |_, _| {}).expect("the golds run");
    assert!(results[0].correct, "the same count on both engines: {:?}", results[0]);
    assert!(!results[1].correct, "another count is wrong: {:?}", results[1]);
    assert_eq!(summary.correct, 1);
    let on_postgres = run_cases(&quarry, &cases[..1], &GoldSource::Workspace, 1, |_, _| {});
    assert!(
        matches!(on_postgres, Err(quarry::eval::EvalError::Gold { .. })),
        "the SQLite gold does not run on PostgreSQL itself"
    );
    let missing = GoldSource::sqlite_copy(quarry.config(), Path::new("/nonexistent/warehouse.sqlite"));
    assert!(
        matches!(&missing, Err(e) if e.to_string().contains("quarry demo --postgres")),
        "a missing original names the command that makes it"
    );
}

/// SQLite keeps what a row holds whatever the declared type; the copy follows the data and
/// says where it did: a column typed by its values, a key the rows break left out — and every
/// row arrives.
#[test]
fn a_copy_follows_the_data_and_notes_where_it_differs_from_the_declared_schema() {
    let Some(admin) =
        admin_or_skip("a_copy_follows_the_data_and_notes_where_it_differs_from_the_declared_schema")
    else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let sqlite = dir.path().join("messy.sqlite");
    messy_database(&sqlite);
    let database = TestDatabase::create(&admin, "messy");
    let report =
        copy_sqlite(&sqlite, &PostgresUrl::parse(&database.url).expect("url"), "messy").expect("copy");
    assert_eq!((report.tables, report.rows), (4, 10), "{report:?}");
    let noted = |needle: &str| report.notes.iter().any(|n| n.contains(needle));
    assert!(noted("Shop.Budget: declared INTEGER") && noted("copied as text"), "{:?}", report.notes);
    assert!(
        noted("Sale.day: declared DATE but holds values that are not date: copied as text"),
        "{:?}",
        report.notes
    );
    assert!(noted("primary key of Sale (sale_code) left out"), "{:?}", report.notes);
    assert!(noted("Region.Logo: 1 binary (BLOB) value(s) not copied"), "{:?}", report.notes);
    assert!(noted("foreign key Sale.shop_id -> Shop.shop_id left out"), "{:?}", report.notes);
    assert!(
        noted(
            "Shop.region_code (bigint) and Region.code (text), joined by a foreign key: both copied as text"
        ) && noted(
            "Stock.shop_id (text) and Shop.shop_id (bigint), joined by a foreign key: both copied as bigint"
        ),
        "{:?}",
        report.notes
    );
    assert!(
        !noted("Shop.shop_id:") && !noted("Shop.Name") && !noted("primary key of Shop"),
        "what fits is not noted: {:?}",
        report.notes
    );
    let mut client = postgres::Client::connect(&database.url, NoTls).expect("connect");
    let mut kind = |table: &str, column: &str| -> String {
        client
            .query_one(
                "SELECT data_type FROM information_schema.columns WHERE table_schema = 'messy' \
                 AND table_name = $1 AND column_name = $2",
                &[&table, &column],
            )
            .map(|row| row.get(0))
            .unwrap_or_else(|e| panic!("{table}.{column}: {e}"))
    };
    // Names in lower case, as PostgreSQL folds unquoted ones.
    assert_eq!(kind("shop", "shop_id"), "bigint");
    assert_eq!(kind("shop", "budget"), "text", "INTEGER with a word in it");
    assert_eq!(kind("sale", "amount"), "double precision", "INTEGER with a fraction in it");
    assert_eq!(kind("sale", "day"), "text", "a date column with a day that does not exist");
    assert_eq!(
        (kind("stock", "shop_id"), kind("shop", "shop_id")),
        ("bigint".to_string(), "bigint".to_string()),
        "a key declared TEXT on one side that holds whole numbers joins as numbers"
    );
    assert_eq!(
        (kind("shop", "region_code"), kind("region", "code")),
        ("text".to_string(), "text".to_string()),
        "a key's two sides join as in SQLite"
    );
}

/// A SQLite database as real files have them (Spider's do): a mixed-case table, text in an
/// INTEGER column, a fraction in another, a day that does not exist, a NULL in a primary key
/// (SQLite allows one outside INTEGER PRIMARY KEY), a foreign key that points nowhere, one
/// whose sides hold an integer and a word, and one declared TEXT on one side only.
fn messy_database(path: &Path) {
    rusqlite::Connection::open(path)
        .and_then(|c| {
            c.execute_batch(
                "PRAGMA foreign_keys = OFF;
                 CREATE TABLE Region (code INT, name TEXT, Logo BLOB, PRIMARY KEY (code));
                 INSERT INTO Region VALUES (1, 'Nord', x'89504e47'), ('n/a', 'none', NULL);
                 CREATE TABLE Shop (shop_id INTEGER PRIMARY KEY, Name TEXT, Budget INTEGER,
                                    region_code INTEGER REFERENCES Region(code));
                 INSERT INTO Shop VALUES (1, 'North', 100, 1), (2, 'South', 'unknown', 1), (3, 'East', 50, NULL);
                 CREATE TABLE Stock (shop_id TEXT REFERENCES Shop(shop_id), units INTEGER);
                 INSERT INTO Stock VALUES ('1', 5), ('3', 2);
                 CREATE TABLE Sale (sale_code TEXT, shop_id INTEGER REFERENCES Shop(shop_id),
                                    amount INTEGER, day DATE, PRIMARY KEY (sale_code));
                 INSERT INTO Sale VALUES ('a', 1, 10, '2026-01-05'), (NULL, 2, 2.5, '2026-02-30'),
                                         ('c', 9, 7, '2026-03-01');",
            )
        })
        .expect("the messy database");
}

/// A set in Spider's layout answered on PostgreSQL copies (`quarry eval --postgres`): each
/// database is copied into a schema of its own and read by a role that may only read; the
/// model's PostgreSQL SQL is scored against the golds run on the SQLite file.
#[test]
fn a_spider_layout_set_is_answered_on_postgres_copies() {
    let Some(admin) = admin_or_skip("a_spider_layout_set_is_answered_on_postgres_copies") else { return };
    let data = tempfile::tempdir().expect("temp dir");
    let db_dir = data.path().join("database/messy");
    std::fs::create_dir_all(&db_dir).expect("folder");
    messy_database(&db_dir.join("messy.sqlite"));
    let questions = serde_json::json!([
        { "db_id": "messy", "question": "How many sales did each shop make?",
          "query": "SELECT s.Name, COUNT(*) FROM Shop s JOIN Sale x ON x.shop_id = s.shop_id GROUP BY s.Name" },
        { "db_id": "messy", "question": "What is the total amount sold?", "query": "SELECT SUM(amount) FROM Sale" },
        { "db_id": "messy", "question": "Which region is each shop in?",
          "query": "SELECT s.Name, r.name FROM Shop s JOIN Region r ON s.region_code = r.code" },
        { "db_id": "messy", "question": "Which shops were there in the first month?",
          "query": "SELECT Name FROM Shop WHERE strftime('%m', '2026-01-05') = '01'" },
    ]);
    std::fs::write(data.path().join("dev.json"), questions.to_string()).expect("dev.json");
    std::fs::write(data.path().join("tables.json"), "[]").expect("tables.json");
    // PostgreSQL's dialect (a cast with ::, to_char), names as the model writes them: the
    // copy's names are in lower case, as PostgreSQL folds them. One count is wrong.
    let llm: Arc<dyn Llm> = Arc::new(ScriptedLlm::new([
        (
            "How many sales did each shop make?",
            "SELECT s.Name, COUNT(*)::int AS sales FROM Shop s JOIN Sale x ON x.shop_id = s.shop_id GROUP BY s.Name",
        ),
        ("What is the total amount sold?", "SELECT SUM(amount) + 1 FROM Sale"),
        ("Which region is each shop in?", "SELECT s.name, r.name FROM shop s JOIN region r ON r.code = s.region_code"),
        ("Which shops were there in the first month?", "SELECT Name FROM Shop WHERE to_char(DATE '2026-01-05', 'MM') = '01'"),
    ]));
    let mut database = TestDatabase::create(&admin, "spider");
    let reader = database.login("reader", "reader-pw");
    let dir = tempfile::tempdir().expect("temp dir");
    let config = config_for(dir.path());
    let options = quarry::eval::spider::Options {
        data: data.path().to_path_buf(),
        mode: quarry::eval::spider::Mode::Cold,
        limit: None,
        seed: 7,
        workdir: dir.path().join("eval"),
        done: Vec::new(),
        samples: 1,
        jobs: 2,
        category: None,
        postgres: Some(quarry::eval::spider::OnPostgres {
            owner: PostgresUrl::parse(&database.url).expect("url"),
            reader: PostgresUrl::parse(&reader).expect("url"),
        }),
    };
    let (results, _) =
        quarry::eval::spider::run(&options, &config, embedder(), &|| Ok(llm.clone()), &mut |_, _, _| Ok(()))
            .expect("evaluation on PostgreSQL");
    let outcome = |q: &str| {
        let r = results.iter().find(|r| r.question == q).unwrap_or_else(|| panic!("{q}: no result"));
        (r.outcome.clone(), r.predicted.clone().unwrap_or_default())
    };
    let (sales, sql) = outcome("How many sales did each shop make?");
    assert_eq!(sales, "correct", "{results:?}");
    assert!(sql.contains("::") || sql.contains("CAST"), "PostgreSQL SQL ran on the copy: {sql}");
    assert_eq!(outcome("What is the total amount sold?").0, "wrong_result", "{results:?}");
    assert_eq!(outcome("Which region is each shop in?").0, "correct", "a key typed apart joins: {results:?}");
    assert_eq!(
        outcome("Which shops were there in the first month?").0,
        "correct",
        "a gold in SQLite's dialect runs on the SQLite file: {results:?}"
    );
    // A role that may not create schemas cannot make the copies: the error names the fix.
    let mut as_reader_only = options.clone();
    as_reader_only.postgres = Some(quarry::eval::spider::OnPostgres {
        owner: PostgresUrl::parse(&reader).expect("url"),
        reader: PostgresUrl::parse(&reader).expect("url"),
    });
    as_reader_only.workdir = dir.path().join("eval-2");
    let refused = quarry::eval::spider::run(
        &as_reader_only,
        &config,
        embedder(),
        &|| Ok(llm.clone()),
        &mut |_, _, _| Ok(()),
    );
    let message = refused.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(message.contains("--postgres must name a role that may create schemas"), "{message}");
    // The copy was read as the reader, which may not write to it.
    let mut as_reader = postgres::Client::connect(&reader, NoTls).expect("the reader logs in");
    assert!(as_reader.batch_execute("DELETE FROM messy.shop").is_err(), "the reader may only read");
    assert_eq!(
        as_reader.query_one("SELECT COUNT(*) FROM messy.shop", &[]).map(|r| r.get::<_, i64>(0)).ok(),
        Some(3)
    );
}

/// Every database of Spider dev copies to PostgreSQL row for row, whatever its files hold
/// (`quarry eval --postgres` copies them so).
#[test]
fn every_spider_dev_database_copies_to_postgres_row_for_row() {
    let Some(admin) = admin_or_skip("every_spider_dev_database_copies_to_postgres_row_for_row") else {
        return;
    };
    let Some(data) =
        crate::support::spider_or_skip("every_spider_dev_database_copies_to_postgres_row_for_row")
    else {
        return;
    };
    let questions = quarry::eval::spider::read_questions(&data.join("dev.json")).expect("dev.json");
    let databases: std::collections::BTreeSet<&str> = questions.iter().map(|q| q.db_id.as_str()).collect();
    let database = TestDatabase::create(&admin, "spider_dev");
    let url = PostgresUrl::parse(&database.url).expect("url");
    let mut client = postgres::Client::connect(&database.url, NoTls).expect("connect");
    let mut copied = 0;
    for db in databases {
        let path = quarry::eval::spider::database_path(&data, db);
        if !path.is_file() {
            continue;
        }
        let report = copy_sqlite(&path, &url, db).unwrap_or_else(|e| panic!("{db}: {e}"));
        let sqlite = rusqlite::Connection::open(&path).expect("open");
        let catalog = quarry::warehouse::introspect(&path).expect("introspect");
        let mut rows = 0;
        for table in catalog.tables() {
            let want: i64 = sqlite
                .query_row(&format!("SELECT COUNT(*) FROM \"{}\"", table.name), [], |r| r.get(0))
                .expect("count");
            let got: i64 = client
                .query_one(&format!("SELECT COUNT(*) FROM \"{db}\".\"{}\"", table.name.to_lowercase()), &[])
                .map(|r| r.get(0))
                .unwrap_or_else(|e| panic!("{db}.{}: {e}", table.name));
            assert_eq!(got, want, "{db}.{}", table.name);
            rows += want;
        }
        assert_eq!(report.rows as i64, rows, "{db}");
        copied += 1;
    }
    // wta_1 has no file in Spider's release (its 62 questions are skipped by every run).
    assert_eq!(copied, 19, "every Spider dev database with a file");
}
