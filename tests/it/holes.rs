//! The holes a red team found around the validator, each closed: a steward cannot lift a
//! restriction alone, text that could break later requests is refused at the edge, every
//! refused request is audited, the analyst's table picks bind the model, and row filters that
//! stop at their table are named.

use axum::http::StatusCode;
use serde_json::{json, Value};

use quarry::catalog::Catalog;
use quarry::llm::ScriptedLlm;

use crate::support::{demo_policy, open_private, open_private_with, private_workspace, request, As};

async fn tags_of(quarry: &std::sync::Arc<quarry::pipeline::Quarry>, table: &str, column: &str) -> Value {
    let (_, detail) =
        request(quarry.clone(), As::Role("admin"), "GET", &format!("/api/v1/catalog/tables/{table}"), None)
            .await;
    detail["table"]["columns"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == column))
        .map(|c| c["tags"].clone())
        .unwrap_or_default()
}

/// Tags that drive policy are policy: adding a restriction is a steward's edit and takes effect
/// at once; lifting one needs `edit_policy` (the admin's).
#[tokio::test]
async fn a_steward_adds_restrictions_but_only_edit_policy_lifts_them() {
    let dir = private_workspace();
    let quarry = open_private(dir.path());
    let patch = |tags: Value| json!({ "columns": { "email": { "tags": tags } }, "comment": "review of personal data" });

    // Lifting: removing pii from users.email would let analysts read e-mail addresses.
    let (status, refused) = request(
        quarry.clone(),
        As::Role("steward"),
        "PATCH",
        "/api/v1/catalog/tables/users",
        Some(patch(json!([]))),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{refused}");
    assert_eq!(refused["error"], "lifts_restriction");
    let message = refused["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("users.email") && message.contains("analyst") && message.contains("edit_policy"),
        "{message}"
    );
    assert_eq!(tags_of(&quarry, "users", "email").await, json!(["pii", "pii:email"]), "nothing changed");
    let (status, _) = request(
        quarry.clone(),
        As::Role("analyst"),
        "POST",
        "/api/v1/sql",
        Some(json!({ "sql": "SELECT email FROM users LIMIT 1" })),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "still refused");

    // Lifting by tier: moving a table into a tier a role reads.
    let (_, detail) =
        request(quarry.clone(), As::Role("admin"), "GET", "/api/v1/catalog/tables/orders_staging", None)
            .await;
    assert_eq!(detail["table"]["tier"], 3, "{detail}");
    let tier = json!({ "tier": 1, "comment": "promoted" });
    let (status, refused) = request(
        quarry.clone(),
        As::Role("steward"),
        "PATCH",
        "/api/v1/catalog/tables/orders_staging",
        Some(tier),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{refused}");
    assert!(refused["message"].as_str().unwrap_or_default().contains("regional_analyst"), "{refused}");

    // Adding a restriction is immediate: sensitive on users.email.
    let more = patch(json!(["pii", "pii:email", "sensitive"]));
    let (status, answer) =
        request(quarry.clone(), As::Role("steward"), "PATCH", "/api/v1/catalog/tables/users", Some(more))
            .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    // The admin may lift it again.
    let (status, answer) = request(
        quarry.clone(),
        As::Role("admin"),
        "PATCH",
        "/api/v1/catalog/tables/users",
        Some(patch(json!(["pii"]))),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(tags_of(&quarry, "users", "email").await, json!(["pii"]));

    // The refused edits are in the audit log.
    let (_, audit) = request(quarry.clone(), As::Role("admin"), "GET", "/api/v1/audit?kind=edit", None).await;
    let refused = audit["records"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["outcome"] == "refused" && r["principal"] == "test-steward")
        .count();
    assert!(refused >= 2, "{audit}");
}

/// A NUL byte (or another control character) in feedback is refused with the field and the fix,
/// so it can never reach the history and break later asks of someone else.
#[tokio::test]
async fn control_characters_are_refused_at_the_edge_and_never_break_a_later_ask() {
    let dir = private_workspace();
    let quarry = open_private(dir.path());
    let question = "top three plans by zebra count";
    for (field, body) in [
        (
            "question",
            json!({ "question": "top three plans\u{0} by zebra count", "sql": "SELECT 1", "verdict": "up" }),
        ),
        (
            "comment",
            json!({ "question": question, "sql": "SELECT 1", "verdict": "down", "comment": "bad\u{0}" }),
        ),
        ("sql", json!({ "question": question, "sql": "SELECT 1 -- \u{1b}[2J", "verdict": "up" })),
    ] {
        let (status, answer) =
            request(quarry.clone(), As::Role("analyst"), "POST", "/api/v1/feedback", Some(body)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
        let text = answer.to_string();
        assert!(text.contains(field) && text.contains("remove it"), "{field}: {text}");
    }
    let (status, answer) = request(
        quarry.clone(),
        As::Role("analyst"),
        "POST",
        "/api/v1/ask",
        Some(json!({ "question": "plans\u{0}" })),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    // A log line with one is skipped, with its line number and the reason.
    let log = format!(
        "{}\n",
        json!({ "sql": "SELECT 1", "author": "a", "timestamp": "2026-10-01T00:00:00Z", "question": "x\u{0}y" })
    );
    let admin = quarry::pipeline::Principal::new("test-admin", "admin");
    let report = quarry
        .ingest_history(&admin, &log, quarry::history::LogFormat::Jsonl, false, &mut |_, _| {})
        .expect("ingest");
    assert_eq!(report.new, 0);
    assert!(report.skipped.first().is_some_and(|s| s.line == 1 && s.reason.contains("NUL")), "{report:?}");
    // Asking still works for everyone.
    let (status, answer) = request(
        quarry.clone(),
        As::Role("analyst"),
        "POST",
        "/api/v1/ask",
        Some(json!({ "question": question })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
}

/// 401s, 403s on reads (audit log, history, catalog) and refused feedback all leave a record.
#[tokio::test]
async fn every_refused_request_is_audited() {
    let dir = private_workspace();
    let quarry = open_private(dir.path());
    let (status, _) = request(quarry.clone(), As::Forged, "GET", "/api/v1/catalog/tables", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) =
        request(quarry.clone(), As::Nobody, "POST", "/api/v1/sql", Some(json!({ "sql": "SELECT 1" }))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = request(quarry.clone(), As::Role("analyst"), "GET", "/api/v1/audit", None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let log =
        "{\"sql\": \"SELECT 1\", \"author\": \"a\", \"timestamp\": \"2026-10-01T00:00:00Z\"}\n".to_string();
    let (status, _) =
        request(quarry.clone(), As::Role("analyst"), "POST", "/api/v1/history", Some(Value::String(log)))
            .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let bad = json!({ "question": "emails", "sql": "SELECT email FROM users", "verdict": "up" });
    let (status, _) =
        request(quarry.clone(), As::Role("analyst"), "POST", "/api/v1/feedback", Some(bad)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    let records = quarry.metadata().recent_audit(50).expect("audit");
    let found = |kind: &str, principal: &str, needle: &str| {
        records.iter().any(|r| {
            r.kind == kind
                && r.principal == principal
                && r.outcome == "refused"
                && r.detail.to_string().contains(needle)
        })
    };
    assert!(found("access", "anonymous", "GET /api/v1/catalog/tables"), "{records:#?}");
    assert!(found("access", "anonymous", "POST /api/v1/sql"), "{records:#?}");
    assert!(found("access", "test-analyst", "read_audit"), "{records:#?}");
    assert!(found("edit", "test-analyst", "history_ingest"), "{records:#?}");
    assert!(found("edit", "test-analyst", "feedback"), "{records:#?}");
}

/// SQL that reads a table outside the analyst's picks is sent back to the model as a violation
/// and never run; the repaired SQL reads only the picks.
#[tokio::test]
async fn table_picks_bind_the_model() {
    let dir = private_workspace();
    // The repair turn holds the question too: its rule comes first.
    let llm = ScriptedLlm::new([
        ("is not among the tables picked", "SELECT status, COUNT(*) AS n FROM orders GROUP BY status"),
        ("revenue by status please", "SELECT status, COUNT(*) AS n FROM orders_staging GROUP BY status"),
    ]);
    let quarry = open_private_with(dir.path(), llm);
    let body = json!({ "question": "revenue by status please", "tables": ["orders"] });
    let (status, answer) =
        request(quarry.clone(), As::Role("analyst"), "POST", "/api/v1/ask", Some(body)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert!(
        answer["sql"].as_str().is_some_and(|s| s.contains("FROM orders ") || s.ends_with("FROM orders")),
        "{answer}"
    );
    let tables: Vec<&str> =
        answer["tables"].as_array().into_iter().flatten().filter_map(|t| t["name"].as_str()).collect();
    assert_eq!(tables, ["orders"]);
    assert!(answer["repairs"][0]["error"].as_str().is_some_and(|e| e.contains("orders_staging")), "{answer}");
    // Without picks the same SQL is fine: the binding is the analyst's choice, not a policy.
    let body = json!({ "question": "revenue by status please" });
    let (_, answer) = request(quarry.clone(), As::Role("analyst"), "POST", "/api/v1/ask", Some(body)).await;
    assert!(answer["sql"].as_str().is_some_and(|s| s.contains("orders_staging")), "{answer}");
}

/// `catalog check` and start-up name the tables a row-filtered role reads unfiltered although
/// their rows belong to a filtered table.
#[test]
fn row_filters_that_stop_at_their_table_are_named_with_the_fix() {
    let dir = private_workspace();
    let quarry = open_private(dir.path());
    let catalog: std::sync::Arc<Catalog> = quarry.catalog();
    let warnings = demo_policy().unfiltered_children(&catalog);
    let about = |child: &str, parent: &str| {
        warnings.iter().any(|w| {
            w.contains("regional_analyst")
                && w.contains(&format!("reads {child} unfiltered"))
                && w.contains(parent)
        })
    };
    assert!(about("order_items", "orders") && about("refunds", "orders"), "{warnings:#?}");
    assert!(warnings.iter().all(|w| w.contains("tables_denied")), "each names the fix: {warnings:#?}");
    // Tables the role may not read, or filters of their own, are not warned about.
    assert!(!warnings.iter().any(|w| w.contains("reads user_sessions")), "{warnings:#?}");
    assert!(!warnings.iter().any(|w| w.contains("role 'analyst'")), "{warnings:#?}");
}

/// A large ingest is stored in batches, each with its own audit record in the same
/// transaction: however the process ends, no stored entry lacks the record of who added it.
#[test]
fn each_stored_batch_of_an_ingest_carries_its_audit_record() {
    let dir = private_workspace();
    let quarry = open_private(dir.path());
    let log: String = (0..450)
        .map(|i| {
            let line = json!({ "sql": format!("SELECT {i} AS n FROM countries"), "author": "bulk",
                               "timestamp": "2026-10-02T00:00:00Z" });
            format!("{line}\n")
        })
        .collect();
    let steward = quarry::pipeline::Principal::new("test-steward", "steward");
    let report = quarry
        .ingest_history(&steward, &log, quarry::history::LogFormat::Jsonl, false, &mut |_, _| {})
        .expect("ingest");
    assert_eq!(report.new, 450);
    let records = quarry.metadata().recent_audit(100).expect("audit");
    let mut batches: Vec<i64> = records
        .iter()
        .filter(|r| r.principal == "test-steward" && r.detail["action"] == "history_ingest_batch")
        .filter_map(|r| r.row_count)
        .collect();
    batches.sort_unstable();
    assert_eq!(batches, [50, 200, 200], "{records:#?}");
}

/// A query stops when its client goes away: over a real socket, the client sends an endless
/// query and hangs up; the audit record says it was cancelled, well before its deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_stops_when_its_client_goes_away() {
    use tokio::io::AsyncWriteExt;
    let dir = private_workspace();
    let quarry = open_private(dir.path());
    let key = crate::support::api_key(&quarry, "analyst");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    let app = quarry::http::app(quarry.clone());
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let body = json!({ "sql": "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT count(*) AS c FROM n" })
        .to_string();
    let request = format!(
        "POST /api/v1/sql HTTP/1.1\r\nhost: {address}\r\nauthorization: Bearer {key}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let started = std::time::Instant::now();
    let mut client = tokio::net::TcpStream::connect(address).await.expect("connect");
    client.write_all(request.as_bytes()).await.expect("send");
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    drop(client);
    let deadline = std::time::Duration::from_millis(quarry.config().timeout_ms);
    let record = loop {
        let records = quarry.metadata().recent_audit(20).expect("audit");
        if let Some(record) = records.into_iter().find(|r| r.kind == "sql") {
            break record;
        }
        assert!(started.elapsed() < deadline * 2, "no audit record of the run");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    server.abort();
    assert_eq!(record.outcome, "failed", "{record:?}");
    assert!(record.detail.to_string().contains("cancelled"), "{record:?}");
    assert!((record.duration_ms as u128) < deadline.as_millis() / 2, "{record:?}");
}
