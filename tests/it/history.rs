//! The query history: structure extraction on a data-driven corpus (`tests/data/structure`).

use quarry::catalog::Catalog;
use quarry::history::structure::{analyze, QueryStructure};
use serde::Deserialize;

use crate::support::{repo_root, shared_workspace};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    sql: String,
    #[serde(default)]
    tables: Vec<String>,
    #[serde(default)]
    joins: Vec<String>,
    #[serde(default)]
    filters: Vec<String>,
    #[serde(default)]
    group_by: Vec<String>,
    #[serde(default)]
    aggregates: Vec<String>,
    #[serde(default)]
    window: bool,
    #[serde(default)]
    ctes: usize,
}

#[derive(Deserialize)]
struct Corpus {
    case: Vec<Case>,
}

fn catalog() -> Catalog {
    quarry::warehouse::introspect(&shared_workspace().join("warehouse.sqlite")).expect("introspect")
}

/// The parts of a structure the corpus states, in the corpus's notation.
#[derive(Debug, PartialEq)]
struct Stated {
    tables: Vec<String>,
    joins: Vec<String>,
    filters: Vec<String>,
    group_by: Vec<String>,
    aggregates: Vec<String>,
    window: bool,
    ctes: usize,
}

fn described(s: &QueryStructure) -> Stated {
    let kind =
        |k| serde_json::to_value(k).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default();
    Stated {
        tables: s.tables.clone(),
        joins: s.joins.iter().map(|j| format!("{} = {}", j.left, j.right)).collect(),
        filters: s.filters.iter().map(|f| format!("{}:{}", f.column, kind(f.kind))).collect(),
        group_by: s.group_by.clone(),
        aggregates: s.aggregates.clone(),
        window: s.window,
        ctes: s.ctes,
    }
}

#[test]
fn structure_extraction_matches_the_corpus() {
    let text = std::fs::read_to_string(repo_root().join("tests/data/structure/cases.toml")).expect("corpus");
    let corpus: Corpus = toml::from_str(&text).expect("corpus parses");
    assert!(corpus.case.len() >= 15);
    let catalog = catalog();
    let mut failures = Vec::new();
    for case in &corpus.case {
        let Some(found) = analyze(&case.sql, &catalog) else {
            failures.push(format!("{}: not analysed", case.name));
            continue;
        };
        let expected = Stated {
            tables: case.tables.clone(),
            joins: case.joins.clone(),
            filters: case.filters.clone(),
            group_by: case.group_by.clone(),
            aggregates: case.aggregates.clone(),
            window: case.window,
            ctes: case.ctes,
        };
        let got = described(&found);
        if got != expected {
            failures.push(format!("{}:\n  expected {expected:?}\n  got      {got:?}", case.name));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_same_query_with_other_literals_normalises_alike() {
    let catalog = catalog();
    let hash = |sql: &str| analyze(sql, &catalog).map(|s| s.normalized_hash).unwrap_or_default();
    let a = hash("SELECT COUNT(*) FROM orders WHERE ordered_at >= '2026-10-01' AND status = 'completed'");
    let b = hash("select count(*)\n from   ORDERS where ordered_at >= '2026-09-01' and status = 'refunded'");
    let c = hash("SELECT COUNT(*) FROM orders WHERE ordered_at >= '2026-10-01'");
    assert_eq!(a, b);
    assert_ne!(a, c);
    assert!(analyze("DELETE FROM orders", &catalog).is_none());
    assert!(analyze("SELECT 1; SELECT 2", &catalog).is_none());
}

const LOG: &str = r#"{"sql": "SELECT status, COUNT(*) FROM orders GROUP BY status", "author": "ana", "timestamp": "2026-10-01T09:00:00Z", "title": "Orders by status"}
this is not json
{"sql": "", "author": "ana", "timestamp": "2026-10-01T09:05:00Z"}
{"sql": "SELECT COUNT(*) FROM users", "author": "bo", "timestamp": "last tuesday"}
{"sql": "SELECT * FROM nonexistent_table", "author": "bo", "timestamp": "2026-10-02T10:00:00Z"}
{"sql": "SELECT COUNT(*) FROM users", "author": "bo", "timestamp": "2026-10-02T11:00:00Z", "unknown_field": 1}
{"sql": "SELECT c.country_name, SUM(o.total_amount) FROM orders o JOIN countries c ON c.country_code = o.country_code GROUP BY c.country_name", "author": "bo", "timestamp": "2026-10-03T08:00:00Z", "duration_ms": 120, "rows": 12, "success": true}
{"sql": "SELECT COUNT(*) FROM refunds", "author": "cy", "timestamp": "2026-10-04T08:00:00Z", "success": false}
"#;

fn steward() -> quarry::pipeline::Principal {
    quarry::pipeline::Principal::new("sam", "steward")
}

#[test]
fn ingest_reports_bad_lines_and_is_idempotent_and_incremental() {
    let dir = crate::support::private_workspace();
    let quarry = crate::support::open_private(dir.path());
    let before = quarry.history().history.queries.len();
    let ingest = |text: &str, format| {
        quarry.ingest_history(&steward(), text, format, false, &mut |_, _| {}).expect("ingest")
    };
    let report = ingest(LOG, quarry::history::LogFormat::Jsonl);
    let skipped: Vec<(usize, &str)> = report.skipped.iter().map(|s| (s.line, s.reason.as_str())).collect();
    assert_eq!(skipped.iter().map(|s| s.0).collect::<Vec<_>>(), [2, 3, 4, 5, 6], "{skipped:?}");
    assert!(skipped[0].1.contains("not a valid log entry"), "{skipped:?}");
    assert!(skipped[1].1.contains("sql field is empty"), "{skipped:?}");
    assert!(skipped[2].1.contains("not ISO 8601"), "{skipped:?}");
    assert!(skipped[3].1.contains("nonexistent_table"), "{skipped:?}");
    assert!(skipped[4].1.contains("unknown field"), "{skipped:?}");
    assert_eq!((report.read, report.new, report.duplicates), (4, 3, 0), "{report:?}");
    let history = quarry.history();
    assert_eq!(history.history.queries.len(), before + 3);
    // The failed query is stored (a usage signal) but not searchable.
    assert_eq!(history.history.usable().count(), before + 2);
    // Per-table statistics from the structures: join keys, filters, metrics.
    let orders = quarry.table_detail(&steward(), "orders").expect("detail").signals.usage;
    let has = |list: &[quarry::stewardship::Counted], what: &str| list.iter().any(|c| c.what == what);
    assert!(has(&orders.joins, "countries.country_code = orders.country_code"), "{orders:?}");
    assert!(has(&orders.metrics, "sum(orders.total_amount)"), "{orders:?}");
    assert!(orders.filters.iter().any(|c| c.what.starts_with("orders.")), "{orders:?}");

    let again = ingest(LOG, quarry::history::LogFormat::Jsonl);
    assert_eq!((again.new, again.duplicates), (0, 3), "{again:?}");
    let more = format!(
        "{LOG}{}\n",
        r#"{"sql": "SELECT COUNT(*) FROM products", "author": "dee", "timestamp": "2026-10-05T08:00:00Z"}"#
    );
    let third = ingest(&more, quarry::history::LogFormat::Jsonl);
    assert_eq!((third.new, third.duplicates), (1, 3), "{third:?}");

    let csv = "sql,author,timestamp,title\n\"SELECT topic_name,\n  category FROM topics\",eve,2026-10-06T08:00:00Z,\"Topics, with category\"\nSELECT 1,eve\n";
    let report = ingest(csv, quarry::history::LogFormat::Csv);
    assert_eq!(report.new, 1, "{report:?}");
    assert_eq!(report.skipped.len(), 1, "{report:?}");
    assert_eq!(report.skipped[0].line, 4, "{report:?}");
    let topics =
        quarry.history().history.queries.iter().find(|q| q.logged.author == "eve").cloned().expect("stored");
    assert_eq!(topics.line, 2);
    assert!(topics.intent.starts_with("Topics, with category."), "{}", topics.intent);
    assert_eq!(topics.intent_source, quarry::history::IntentSource::Structure);

    // Stored across restarts, and searchable.
    drop(quarry);
    let quarry = crate::support::open_private(dir.path());
    assert_eq!(quarry.history().history.queries.len(), before + 5);
    let found = quarry
        .search_queries(&quarry::pipeline::Principal::local(), "topics with their category", 3)
        .expect("search");
    assert!(found.iter().any(|e| e.author == "eve"), "{found:?}");
}

#[tokio::test]
async fn history_over_http_needs_the_ingest_action() {
    use crate::support::{request, As};
    let dir = crate::support::private_workspace();
    let quarry = crate::support::open_private(dir.path());
    let log = r#"{"sql": "SELECT COUNT(*) FROM refunds WHERE reason = 'damaged'", "author": "ana", "timestamp": "2026-10-07T08:00:00Z", "question": "How many refunds were for damaged goods?"}"#;
    let send = |role: &'static str| {
        let quarry = quarry.clone();
        async move {
            let key = crate::support::api_key(&quarry, role);
            let request = axum::http::Request::post("/api/v1/history")
                .header("authorization", format!("Bearer {key}"))
                .header("content-type", "application/x-ndjson")
                .body(axum::body::Body::from(log))
                .expect("request");
            let response =
                tower::ServiceExt::oneshot(quarry::http::app(quarry), request).await.expect("response");
            let status = response.status();
            let bytes =
                http_body_util::BodyExt::collect(response.into_body()).await.expect("body").to_bytes();
            (status, serde_json::from_slice::<serde_json::Value>(&bytes).unwrap_or_default())
        }
    };
    let (status, answer) = send("analyst").await;
    assert_eq!(status, axum::http::StatusCode::FORBIDDEN, "{answer}");
    let (status, answer) = send("steward").await;
    assert_eq!(status, axum::http::StatusCode::OK, "{answer}");
    assert_eq!(answer["new"], 1, "{answer}");
    let (status, answer) = request(
        quarry.clone(),
        As::Role("analyst"),
        "GET",
        "/api/v1/search/queries?q=refunds+for+damaged+goods&limit=3",
        None,
    )
    .await;
    assert_eq!(status, axum::http::StatusCode::OK);
    assert_eq!(answer["queries"][0]["label"], "How many refunds were for damaged goods?", "{answer}");
}

/// Retrieval ranks certified tables above their stale or deprecated look-alikes, and never
/// offers a table (or a past query reading one) that the principal may not read.
#[test]
fn ranking_respects_governance_and_excluded_tables_never_appear() {
    let quarry = crate::support::scripted();
    let analyst = quarry::pipeline::Principal::local();
    let rank = |q: &str, principal: &quarry::pipeline::Principal| -> Vec<String> {
        quarry.search_tables(principal, q, 10).expect("search").into_iter().map(|t| t.name).collect()
    };
    let position = |list: &[String], name: &str| list.iter().position(|t| t == name).unwrap_or(usize::MAX);
    let dau = rank("daily active users per day", &analyst);
    assert!(position(&dau, "daily_active_users") < position(&dau, "dau_snapshot_legacy"), "{dau:?}");
    let gmv = rank("gross merchandise value of orders by month", &analyst);
    assert!(position(&gmv, "orders") < position(&gmv, "orders_staging"), "{gmv:?}");
    let profiles = rank("user profiles with their e-mail and country", &analyst);
    assert!(position(&profiles, "users") < position(&profiles, "user_profiles_v1"), "{profiles:?}");

    let regional =
        quarry::pipeline::Principal::new("rita", "regional_analyst").with_attribute("country", "DE");
    let denied = ["advertisers", "ad_campaigns", "ad_daily_stats", "ad_conversions", "user_sessions"];
    for q in [
        "advertiser contact e-mails",
        "ad spend and clicks per campaign",
        "sessions per device",
        "tier 3 staging orders",
    ] {
        let tables = rank(q, &regional);
        assert!(tables.iter().all(|t| !denied.contains(&t.as_str())), "{q}: {tables:?}");
        assert!(
            !tables.iter().any(|t| t == "orders_staging" || t == "dau_snapshot_legacy"),
            "tier 3: {tables:?}"
        );
        let queries = quarry.search_queries(&regional, q, 10).expect("queries");
        for example in &queries {
            assert!(example.tables.iter().all(|t| !denied.contains(&t.as_str())), "{q}: {example:?}");
        }
    }
}

/// The real model writes intent texts for ingested queries (`--llm-intents`).
#[test]
fn the_real_model_writes_intents() {
    let Some(_turn) = crate::support::real_model_turn() else { return };
    let dir = crate::support::private_workspace();
    let mut config = crate::support::config_for(dir.path());
    config.governance = dir.path().join("schemas");
    let llm = quarry::pipeline::load_default_llm(&config).expect("model assets");
    let quarry = quarry::pipeline::Quarry::open(config, crate::support::embedder(), Some(llm)).expect("open");
    let log = r#"{"sql": "SELECT p.category, SUM(oi.quantity * oi.unit_price) AS revenue FROM order_items oi JOIN products p ON p.product_id = oi.product_id JOIN orders o ON o.order_id = oi.order_id WHERE o.ordered_at >= '2026-09-01' AND o.ordered_at < '2026-10-01' GROUP BY p.category", "author": "zed", "timestamp": "2026-10-08T08:00:00Z"}"#;
    let report = quarry
        .ingest_history(&steward(), log, quarry::history::LogFormat::Jsonl, true, &mut |_, _| {})
        .expect("ingest");
    assert_eq!((report.new, report.llm_intents), (1, 1), "{report:?}");
    let stored =
        quarry.history().history.queries.iter().find(|q| q.logged.author == "zed").cloned().expect("stored");
    assert_eq!(stored.intent_source, quarry::history::IntentSource::Llm);
    assert!(stored.intent.split_whitespace().count() >= 8, "{}", stored.intent);
    eprintln!("LLM intent: {}", stored.intent);
}

/// Asset first: a verified past query that asks the same question is the answer, labelled,
/// without the model; a question that differs in a literal, or a principal who may not run
/// the verified query, goes to the model instead.
#[test]
fn a_verified_query_answers_the_same_question_without_the_model() {
    let quarry = crate::support::scripted();
    let analyst = quarry::pipeline::Principal::local();
    let answer = quarry
        .ask("How many refunds and what refunded amount per refund reason in 2026?", &analyst)
        .expect("reused answer");
    let reused = answer.reused.as_ref().expect("a verified query is reused");
    assert_eq!((reused.author.as_str(), answer.model.as_str()), ("elena.petrova", "none"));
    assert!(reused.substitutions.is_empty(), "{reused:?}");
    assert!(answer.sql.contains("FROM refunds") && !answer.result.rows.is_empty(), "{answer:?}");
    assert_eq!(answer.timings.generate_ms, 0);
    assert!(answer.tables[0].evidence[0].starts_with("read by the verified query"), "{:?}", answer.tables);

    // Another year: the scripted model has no answer for it, so the ask fails — it was not reused.
    let other_year =
        quarry.ask("How many refunds and what refunded amount per refund reason in 2025?", &analyst);
    assert!(other_year.is_err(), "{other_year:?}");

    // The regional analyst may not read ad tables: the verified CTR query is not served to them.
    let regional =
        quarry::pipeline::Principal::new("rita", "regional_analyst").with_attribute("country", "DE");
    let ctr = "Which 10 campaigns with at least 100k impressions have the highest click-through rate?";
    assert!(quarry.ask(ctr, &analyst).is_ok_and(|a| a.reused.is_some()));
    assert!(quarry.ask(ctr, &regional).is_err());
}

/// A verified query is a template for the same question with other literals: the month and the
/// status go into its syntax tree, the rows are those of the SQL written for them, no model
/// runs, and the caller's policy still applies (a row filter is added; a role that may not
/// read the table is not served it).
#[test]
fn a_verified_query_answers_with_other_literals_put_in_its_tree() {
    use quarry::pipeline::{AskOptions, Decision, Principal, ReviewDecision};
    let dir = crate::support::private_workspace();
    let quarry = crate::support::open_private(dir.path());
    let sql_for = |status: &str, from: &str, to: &str| {
        format!(
            "SELECT COUNT(*) AS orders FROM orders WHERE status = '{status}' \
             AND ordered_at >= '{from}' AND ordered_at < '{to}'"
        )
    };
    let decision = ReviewDecision {
        question: "How many orders were refunded in September 2026?".into(),
        sql: sql_for("refunded", "2026-09-01", "2026-10-01"),
        decision: Decision::Verify,
        comment: "checked against finance".into(),
    };
    assert!(quarry.review(&steward(), &decision).expect("verify").verified);

    let options = AskOptions { today: Some("2026-11-20".into()), ..AskOptions::default() };
    let ask = |question: &str, who: &Principal| quarry.ask_with(question, who, &options);
    let analyst = Principal::local();
    let answer = ask("how many orders were cancelled in August 2026?", &analyst).expect("a template answers");
    let reused = answer.reused.as_ref().expect("reused");
    assert_eq!(answer.model, "none");
    let swapped: Vec<(&str, &str)> =
        reused.substitutions.iter().map(|s| (s.before.as_str(), s.now.as_str())).collect();
    assert_eq!(swapped, [("refunded", "cancelled"), ("september 2026", "august 2026")]);
    let expected = quarry.run_sql(&sql_for("cancelled", "2026-08-01", "2026-09-01"), &analyst).expect("gold");
    assert_eq!(answer.result.rows, expected.result.rows);
    assert!(
        answer.tables[0].evidence[0].contains("with \"august 2026\" for \"september 2026\""),
        "{answer:?}"
    );

    // A relative period is read on the day it is asked: "last month" is October here.
    let answer = ask("How many orders were refunded last month?", &analyst);
    let expected = quarry.run_sql(&sql_for("refunded", "2026-10-01", "2026-11-01"), &analyst).expect("gold");
    assert_eq!(answer.expect("last month").result.rows, expected.result.rows);

    // The regional analyst gets the same template with their row filter.
    let regional = Principal::new("rita", "regional_analyst").with_attribute("country", "DE");
    let answer = ask("How many orders were refunded in July 2026?", &regional).expect("regional");
    assert!(answer.reused.is_some() && answer.sql.contains("country_code = 'DE'"), "{}", answer.sql);
    let expected = quarry.run_sql(&sql_for("refunded", "2026-07-01", "2026-08-01"), &regional).expect("gold");
    assert_eq!(answer.result.rows, expected.result.rows);

    // The verified CTR query with another N: LIMIT 5. The regional analyst may not read ad
    // tables: not served (the scripted model has no answer, so the ask fails).
    let ctr = "Which 5 campaigns with at least 100k impressions have the highest click-through rate?";
    let answer = ask(ctr, &analyst).expect("the CTR template");
    assert!(answer.sql.ends_with("LIMIT 5") && answer.result.rows.len() == 5, "{}", answer.sql);
    assert!(ask(ctr, &regional).is_err());
}
