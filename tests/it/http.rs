//! The HTTP API through the real app (no port): asking, running SQL, and every kind of bad input.
//! What depends on the warehouse runs on the SQLite demo and on its PostgreSQL copy
//! (`backends`; the latter inside `scripts/with-postgres.sh`).

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

use std::sync::Arc;

use quarry::pipeline::Quarry;

use crate::postgres::scripted_on_postgres;
use crate::support::{api_key, scripted};

/// The scripted workspace on each warehouse engine.
fn backends(test: &str) -> Vec<(&'static str, Arc<Quarry>)> {
    let mut all = vec![("sqlite", scripted())];
    all.extend(scripted_on_postgres(test).map(|q| ("postgres", q)));
    all
}

async fn call(quarry: &Arc<Quarry>, method: &str, path: &str, body: Option<&str>) -> (StatusCode, Value) {
    call_raw(quarry, method, path, body.map(str::to_string)).await
}

/// A request as the analyst with a raw (possibly malformed) body.
async fn call_raw(
    quarry: &Arc<Quarry>,
    method: &str,
    path: &str,
    body: Option<String>,
) -> (StatusCode, Value) {
    let quarry = quarry.clone();
    let key = api_key(&quarry, "analyst");
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {key}"))
        .body(body.map(Body::from).unwrap_or_else(Body::empty))
        .expect("request");
    let response = quarry::http::app(quarry).oneshot(request).await.expect("response");
    let status = response.status();
    let bytes = response.into_body().collect().await.expect("body").to_bytes();
    let value =
        serde_json::from_slice(&bytes).unwrap_or_else(|_| json!({ "raw": String::from_utf8_lossy(&bytes) }));
    (status, value)
}

async fn post(quarry: &Arc<Quarry>, path: &str, body: Value) -> (StatusCode, Value) {
    call(quarry, "POST", path, Some(&body.to_string())).await
}

#[tokio::test]
async fn healthz_reports_model_and_catalog() {
    for (engine, quarry) in backends("healthz_reports_model_and_catalog") {
        let (status, body) = call(&quarry, "GET", "/healthz", None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["status"], "ok");
        assert_eq!(body["model"], "scripted");
        assert!(body["tables"].as_u64().unwrap_or(0) >= 15, "{engine}: {body}");
        // The demo log is SQLite SQL: on PostgreSQL its entries in SQLite's own syntax
        // (strftime, julianday) do not validate and are skipped at ingest.
        let least = if engine == "sqlite" { 100 } else { 90 };
        assert!(body["indexed_queries"].as_u64().unwrap_or(0) >= least, "{engine}: {body}");
    }
}

#[tokio::test]
async fn index_page_is_served() {
    let app = quarry::http::app(scripted());
    let response =
        app.oneshot(Request::get("/").body(Body::empty()).expect("request")).await.expect("response");
    assert_eq!(response.status(), StatusCode::OK);
    let bytes = response.into_body().collect().await.expect("body").to_bytes();
    let html = String::from_utf8_lossy(&bytes);
    assert!(html.contains("/api/v1/ask") && html.contains("<form"), "{html}");
}

#[tokio::test]
async fn ask_answers_with_sql_rows_tables_and_timings() {
    for (engine, quarry) in backends("ask_answers_with_sql_rows_tables_and_timings") {
        let (status, body) =
            post(&quarry, "/api/v1/ask", json!({ "question": "top three plans by zebra count" })).await;
        assert_eq!(status, StatusCode::OK, "{engine}: {body}");
        assert!(body["sql"].as_str().unwrap_or("").contains("GROUP BY plan"), "{engine}: {body}");
        assert_eq!(body["result"]["columns"], json!(["plan", "users"]));
        let rows = body["result"]["rows"].as_array().expect("rows");
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0][0], "free", "free is the most common plan in the demo: {body}");
        let users = &body["tables"][0];
        assert_eq!(users["name"], "users");
        assert_eq!(users["tier"], 1);
        assert!(users["owner"].is_string(), "{engine}: {body}");
        assert!(body["candidates"].as_array().is_some_and(|c| !c.is_empty()));
        for stage in [
            "embed_ms",
            "retrieve_ms",
            "generate_ms",
            "validate_ms",
            "execute_ms",
            "total_ms",
            "prompt_tokens",
        ] {
            assert!(body["timings"][stage].is_u64(), "{engine}: missing timing {stage}: {body}");
        }
    }
}

#[tokio::test]
async fn ask_repairs_an_unknown_column_once() {
    for (engine, quarry) in backends("ask_repairs_an_unknown_column_once") {
        let (status, body) =
            post(&quarry, "/api/v1/ask", json!({ "question": "count the orders with a typo first" })).await;
        assert_eq!(status, StatusCode::OK, "{engine}: {body}");
        assert_eq!(body["repairs"].as_array().map(Vec::len), Some(1), "{engine}: {body}");
        assert!(
            body["repairs"][0]["error"].as_str().unwrap_or("").contains("nonexistent_column"),
            "{engine}: {body}"
        );
        assert_eq!(body["result"]["rows"][0][0].as_i64().map(|n| n > 10_000), Some(true), "{engine}: {body}");
    }
}

#[tokio::test]
async fn ask_refuses_a_write_from_the_model_with_422_and_violations() {
    for (engine, quarry) in backends("ask_refuses_a_write_from_the_model_with_422_and_violations") {
        let (status, body) =
            post(&quarry, "/api/v1/ask", json!({ "question": "please drop everything now" })).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{engine}: {body}");
        assert_eq!(body["error"], "refused");
        assert_eq!(body["violations"][0]["code"], "not_read_only", "{engine}: {body}");
        assert!(body["violations"][0]["hint"].as_str().is_some_and(|h| !h.is_empty()), "{engine}: {body}");
    }
}

#[tokio::test]
async fn ask_rejects_empty_and_huge_questions() {
    for question in [String::new(), "   ".to_string(), "why ".repeat(1000)] {
        let (status, body) = post(&scripted(), "/api/v1/ask", json!({ "question": question })).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(body["error"], "invalid_question", "{body}");
        assert!(body["message"].as_str().is_some_and(|m| m.len() > 20), "{body}");
    }
}

#[tokio::test]
async fn malformed_json_is_a_400_naming_the_problem() {
    for (body, needle) in [
        ("{\"question\": ", "EOF"),
        ("{\"questoin\": \"hi\"}", "questoin"),
        ("[1, 2]", "invalid type"),
        ("{\"question\": 42}", "invalid type"),
    ] {
        let (status, value) = call(&scripted(), "POST", "/api/v1/ask", Some(body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {value}");
        assert_eq!(value["error"], "bad_json");
        assert!(value["message"].as_str().unwrap_or("").contains(needle), "{body}: {value}");
    }
}

#[tokio::test]
async fn sql_runs_valid_queries() {
    for (engine, quarry) in backends("sql_runs_valid_queries") {
        let (status, body) = post(
            &quarry,
            "/api/v1/sql",
            json!({ "sql": "SELECT country_code, country_name FROM countries ORDER BY country_code LIMIT 2" }),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{engine}: {body}");
        assert_eq!(body["result"]["rows"], json!([["AU", "Australia"], ["BR", "Brazil"]]));
        assert_eq!(body["tables"][0]["name"], "countries");
    }
}

#[tokio::test]
async fn sql_refusals_are_422_with_codes_and_hints() {
    for (engine, quarry) in backends("sql_refusals_are_422_with_codes_and_hints") {
        for (sql, code) in [
            ("DELETE FROM users", "not_read_only"),
            ("SELECT 1; DROP TABLE users", "multiple_statements"),
            ("SELEC * FROM users", "parse_error"),
            ("SELECT * FROM userz", "unknown_table"),
            ("SELECT emial FROM users", "unknown_column"),
            ("", "empty"),
        ] {
            let (status, body) = post(&quarry, "/api/v1/sql", json!({ "sql": sql })).await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{engine} {sql}: {body}");
            let codes: Vec<&str> = body["violations"]
                .as_array()
                .expect("violations")
                .iter()
                .filter_map(|v| v["code"].as_str())
                .collect();
            assert!(codes.contains(&code), "{engine} {sql}: expected {code}, got {codes:?}");
        }
        let (_, body) = post(&quarry, "/api/v1/sql", json!({ "sql": "SELECT * FROM userz" })).await;
        assert!(
            body["violations"][0]["message"].as_str().unwrap_or("").contains("users"),
            "did-you-mean expected: {body}"
        );
    }
}

#[tokio::test]
async fn every_request_is_audited() {
    for (engine, quarry) in backends("every_request_is_audited") {
        let before = quarry.metadata().recent_audit(1000).expect("audit").len();
        let _ = post(&quarry, "/api/v1/sql", json!({ "sql": "SELECT 1 AS one" })).await;
        let _ = post(&quarry, "/api/v1/sql", json!({ "sql": "DROP TABLE users" })).await;
        let records = quarry.metadata().recent_audit(1000).expect("audit");
        assert!(records.len() >= before + 2, "{engine}: both requests audited");
        assert!(records
            .iter()
            .any(|r| r.sql.as_deref() == Some("DROP TABLE users") && r.outcome == "refused"));
        assert!(records
            .iter()
            .any(|r| r.sql.as_deref() == Some("SELECT 1 AS one") && r.outcome == "answered"));
    }
}

#[tokio::test]
async fn unknown_routes_and_huge_bodies_are_refused() {
    let (status, body) = call(&scripted(), "GET", "/api/v1/nope", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"], "not_found");
    let huge = json!({ "sql": "x".repeat(100_000) }).to_string();
    let (status, _) = call(&scripted(), "POST", "/api/v1/sql", Some(&huge)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
}
