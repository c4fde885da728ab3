//! The demo workspace: its size and shape, its determinism, and that its governance files,
//! query log and gold questions all agree with the warehouse.

use std::collections::BTreeSet;

use quarry::catalog::{Catalog, Tier};
use quarry::history::History;
use quarry::pipeline::Principal;

use crate::support::{config_for, scripted, shared_workspace};

fn catalog() -> Catalog {
    let config = config_for(shared_workspace());
    quarry::warehouse::load_catalog(
        config.warehouse.sqlite_path().expect("a SQLite warehouse"),
        &config.governance,
    )
    .expect("catalog")
}

#[test]
fn warehouse_is_big_enough_and_governed() {
    let catalog = catalog();
    let tables: Vec<_> = catalog.tables().collect();
    assert!(tables.len() >= 15, "{} tables", tables.len());
    let domains: BTreeSet<_> = tables.iter().filter_map(|t| t.domain.clone()).collect();
    assert!(domains.len() >= 3, "{domains:?}");
    let rows: u64 = tables.iter().filter_map(|t| t.row_count).sum();
    assert!(rows >= 50_000, "{rows} rows");
    for table in &tables {
        assert!(!table.description.is_empty(), "{} has no description", table.name);
        assert!(table.tier.is_some(), "{} has no tier", table.name);
        for column in &table.columns {
            assert!(!column.description.is_empty(), "{}.{} has no description", table.name, column.name);
        }
    }
    let deprecated: Vec<_> = tables.iter().filter(|t| t.deprecated.is_some()).collect();
    assert!(!deprecated.is_empty(), "no deprecated table");
    assert!(tables.iter().any(|t| t.tier == Some(Tier::Staging)), "no tier 3 look-alike");
    let pii: Vec<String> = tables
        .iter()
        .flat_map(|t| {
            t.columns
                .iter()
                .filter(|c| c.tags.iter().any(|g| g == "pii"))
                .map(move |c| format!("{}.{}", t.name, c.name))
        })
        .collect();
    for expected in ["users.email", "users.full_name", "user_sessions.ip_address"] {
        assert!(pii.iter().any(|p| p == expected), "{expected} not tagged pii: {pii:?}");
    }
}

#[test]
fn generator_is_deterministic() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (a, b) = (dir.path().join("a.sqlite"), dir.path().join("b.sqlite"));
    let history = dir.path().join("history.jsonl");
    quarry::demo::create(&a, &history, 7).expect("demo a");
    quarry::demo::create(&b, &history, 7).expect("demo b");
    let fingerprint = |path: &std::path::Path| {
        let conn = rusqlite::Connection::open(path).expect("open");
        let mut stmt = conn
            .prepare("SELECT group_concat(order_id || ':' || total_amount) FROM orders")
            .expect("prepare");
        stmt.query_row([], |r| r.get::<_, String>(0)).expect("row")
    };
    assert_eq!(fingerprint(&a), fingerprint(&b));
}

#[test]
fn every_logged_query_is_valid_and_runs() {
    let catalog = catalog();
    let history = History::load(&config_for(shared_workspace()).history, &catalog).expect("history");
    assert!(history.skipped.is_empty(), "skipped lines: {:?}", history.skipped);
    assert!(history.queries.len() >= 100, "{} queries", history.queries.len());
    let quarry = scripted();
    // The log holds CRM exports with personal data: run it as a role that may read them.
    let admin = Principal::new("test-admin", "admin");
    for query in &history.queries {
        let result = quarry.run_sql(&query.logged.sql, &admin);
        assert!(result.is_ok(), "line {}: {:?}", query.line, result.err());
    }
}

#[test]
fn malformed_log_lines_are_reported_with_line_numbers_and_skipped() {
    let catalog = catalog();
    let text = concat!(
        "{\"sql\": \"SELECT COUNT(*) FROM users\", \"author\": \"a\", \"timestamp\": \"2026-10-01T00:00:00Z\"}\n",
        "not json\n",
        "\n",
        "{\"sql\": \"DELETE FROM users\", \"author\": \"a\", \"timestamp\": \"2026-10-01T00:00:00Z\"}\n",
        "{\"sql\": \"SELECT 1\"}\n",
    );
    let history = History::parse(text, &catalog);
    assert_eq!(history.queries.len(), 1);
    let lines: Vec<usize> = history.skipped.iter().map(|s| s.line).collect();
    assert_eq!(lines, vec![2, 4, 5]);
}

#[test]
fn gold_answers_of_the_demo_questions_run_and_are_not_empty() {
    let cases = quarry::eval::parse_cases(quarry::eval::DEMO_QUESTIONS).expect("cases");
    assert!(cases.len() >= 20);
    let quarry = scripted();
    for case in &cases {
        let answer = quarry
            .run_sql(&case.gold, &Principal::local())
            .unwrap_or_else(|e| panic!("{}: {e}", case.question));
        assert!(!answer.result.rows.is_empty(), "{} returns no rows", case.question);
    }
}
