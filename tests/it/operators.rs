//! What operators and tools read: `GET /metrics` (Prometheus text), through the real app.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::json;
use tower::ServiceExt;

use crate::support::{open_private, private_workspace, request, As};

/// The metrics text, and its content type.
async fn scrape(quarry: std::sync::Arc<quarry::pipeline::Quarry>) -> (String, String) {
    let response = quarry::http::app(quarry)
        .oneshot(Request::get("/metrics").body(Body::empty()).expect("request"))
        .await
        .expect("response");
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response.headers()["content-type"].to_str().expect("ascii").to_string();
    let bytes = response.into_body().collect().await.expect("body").to_bytes();
    (String::from_utf8(bytes.to_vec()).expect("utf-8"), content_type)
}

/// The value of the sample written exactly `name{labels}`, if present.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
}

#[tokio::test]
async fn metrics_count_requests_asks_stages_tokens_and_refusals() {
    let dir = private_workspace();
    let quarry = open_private(dir.path());
    let (status, body) = request(
        quarry.clone(),
        As::Role("analyst"),
        "POST",
        "/api/v1/ask",
        Some(json!({ "question": "top three plans by zebra count" })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = request(
        quarry.clone(),
        As::Role("analyst"),
        "POST",
        "/api/v1/sql",
        Some(json!({ "sql": "DELETE FROM users" })),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) =
        request(quarry.clone(), As::Role("analyst"), "GET", "/api/v1/catalog/tables/users", None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = request(quarry.clone(), As::Nobody, "GET", "/api/v1/me", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let (text, content_type) = scrape(quarry.clone()).await;
    assert!(content_type.starts_with("application/openmetrics-text"), "{content_type}");
    assert!(text.trim_end().ends_with("# EOF"), "{text}");
    let count = |series: &str| sample(&text, series).unwrap_or_else(|| panic!("no {series} in\n{text}"));
    assert_eq!(count(r#"quarry_http_requests_total{method="POST",route="/api/v1/ask",status="200"}"#), 1.0);
    assert_eq!(count(r#"quarry_http_requests_total{method="POST",route="/api/v1/sql",status="422"}"#), 1.0);
    // The declared route is the label, never the table name in the path.
    assert_eq!(
        count(
            r#"quarry_http_requests_total{method="GET",route="/api/v1/catalog/tables/{name}",status="200"}"#
        ),
        1.0
    );
    assert!(!text.contains("tables/users"), "{text}");
    assert_eq!(count(r#"quarry_http_requests_total{method="GET",route="/api/v1/me",status="401"}"#), 1.0);
    assert_eq!(count(r#"quarry_asks_total{outcome="answered",source="model"}"#), 1.0);
    assert_eq!(count(r#"quarry_sql_requests_total{outcome="refused",source="none"}"#), 1.0);
    assert_eq!(count(r#"quarry_refusals_total{code="not_read_only"}"#), 1.0);
    for stage in ["embed", "retrieve", "generate", "validate", "execute", "total"] {
        assert_eq!(count(&format!(r#"quarry_ask_stage_duration_seconds_count{{stage="{stage}"}}"#)), 1.0);
    }
    assert!(count(r#"quarry_llm_tokens_total{kind="completion"}"#) > 0.0, "{text}");
    assert_eq!(count("quarry_llm_queue_waiting"), 0.0);
    assert_eq!(count("quarry_llm_generations_running"), 0.0);
    assert!(
        text.contains(r#"quarry_build_info{version=""#) && text.contains(r#"model="scripted""#),
        "{text}"
    );
    assert!(count(r#"quarry_index_points{kind="tables"}"#) >= 15.0, "{text}");
    // No question or SQL text ever becomes a label.
    assert!(!text.contains("zebra") && !text.contains("DELETE"), "{text}");
}

/// The served OpenAPI document.
async fn openapi(quarry: std::sync::Arc<quarry::pipeline::Quarry>) -> serde_json::Value {
    let (status, document) = request(quarry, As::Nobody, "GET", "/api/v1/openapi.json", None).await;
    assert_eq!(status, StatusCode::OK, "{document}");
    document
}

#[tokio::test]
async fn the_openapi_document_has_every_route_and_every_documented_route_is_served() {
    let quarry = crate::support::scripted();
    let document = openapi(quarry.clone()).await;
    assert_eq!(document["openapi"], "3.1.0");
    assert_eq!(document, serde_json::to_value(quarry::http::openapi_document()).expect("json"));
    // Each documented operation reaches its handler: a missing key is a 401 from the handler's
    // extractor, an open route answers 200; the router's fallback (404 not_found) or a 405
    // means the document names a route that is not served.
    let paths = document["paths"].as_object().expect("paths");
    let mut operations = Vec::new();
    // OpenAPI requires each operation's id to be unique (clients name their methods by it).
    let mut operation_ids: Vec<String> = Vec::new();
    for (path, item) in paths {
        for (method, operation) in item.as_object().expect("path item") {
            let concrete = path.replace("{name}", "users").replace("{term}", "revenue").replace("{id}", "t0");
            let (status, body) =
                request(quarry.clone(), As::Nobody, &method.to_uppercase(), &concrete, None).await;
            let secured = operation["security"].as_array().is_some_and(|s| !s.is_empty());
            let expected = if secured { StatusCode::UNAUTHORIZED } else { StatusCode::OK };
            assert_eq!(status, expected, "{method} {path}: {body}");
            assert!(operation["responses"].as_object().is_some_and(|r| !r.is_empty()), "{method} {path}");
            operations.push(format!("{} {path}", method.to_uppercase()));
            let id = operation["operationId"].as_str().unwrap_or_default().to_string();
            assert!(
                !id.is_empty() && !operation_ids.contains(&id),
                "{method} {path}: operationId '{id}' is missing or taken"
            );
            operation_ids.push(id);
        }
    }
    operations.sort();
    let expected = [
        "GET /api/v1/audit",
        "GET /api/v1/catalog/conflicts",
        "GET /api/v1/catalog/glossary",
        "GET /api/v1/catalog/tables",
        "GET /api/v1/catalog/tables/{name}",
        "GET /api/v1/me",
        "GET /api/v1/openapi.json",
        "GET /api/v1/reviews",
        "GET /api/v1/search/queries",
        "GET /api/v1/search/tables",
        "GET /api/v1/suggestions",
        "GET /api/v1/threads",
        "GET /api/v1/threads/{id}",
        "GET /healthz",
        "GET /metrics",
        "PATCH /api/v1/catalog/tables/{name}",
        "POST /api/v1/ask",
        "POST /api/v1/ask/stream",
        "POST /api/v1/feedback",
        "POST /api/v1/history",
        "POST /api/v1/reviews",
        "POST /api/v1/sql",
        "POST /api/v1/threads/{id}/choose",
        "PUT /api/v1/catalog/glossary/{term}",
    ];
    assert_eq!(operations, expected);
    // Every schema a document refers to is in it.
    let text = document.to_string();
    for reference in text.split("\"#/components/schemas/").skip(1) {
        let name = &reference[..reference.find('"').expect("end of ref")];
        assert!(document["components"]["schemas"][name].is_object(), "dangling $ref {name}");
    }
}

/// Routes registered with plain axum `.route(...)` bypass the document: only the web pages and
/// the MCP endpoint (JSON-RPC, described by its own `tools/list`) may.
#[test]
fn no_route_is_registered_outside_the_document() {
    let http = crate::support::repo_root().join("src/http");
    let mut undocumented = Vec::new();
    for entry in std::fs::read_dir(&http).expect("src/http") {
        let path = entry.expect("entry").path();
        let source = std::fs::read_to_string(&path).expect("read");
        for call in [".route(", ".route_service(", ".nest_service("] {
            for (at, _) in source.match_indices(call) {
                // The route's path: the string literal the call starts with.
                let rest = &source[at + call.len()..];
                let route = rest.strip_prefix('"').and_then(|r| r.split('"').next()).unwrap_or(rest);
                if !["/", "/api", "/mcp"].contains(&route) {
                    undocumented.push(format!("{}: {call}{route}", path.display()));
                }
            }
        }
    }
    assert!(
        undocumented.is_empty(),
        "register these with routes!(…) and #[utoipa::path]:\n{}",
        undocumented.join("\n")
    );
}

/// One JSON-RPC request to `/mcp` with `key`; the status and the JSON body.
async fn mcp(
    quarry: std::sync::Arc<quarry::pipeline::Quarry>,
    key: Option<&str>,
    method: &str,
    params: serde_json::Value,
) -> (StatusCode, serde_json::Value) {
    let mut builder = Request::post("http://localhost/mcp")
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-06-18");
    if let Some(key) = key {
        builder = builder.header("authorization", format!("Bearer {key}"));
    }
    let frame = json!({ "jsonrpc": "2.0", "id": 1, "method": method, "params": params });
    let response = quarry::http::app(quarry)
        .oneshot(builder.body(Body::from(frame.to_string())).expect("request"))
        .await
        .expect("response");
    let status = response.status();
    let bytes = response.into_body().collect().await.expect("body").to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or_else(|_| json!({ "raw": String::from_utf8_lossy(&bytes) })),
    )
}

#[tokio::test]
async fn mcp_lists_read_only_tools_runs_governed_sql_and_refuses_with_violations() {
    let quarry = crate::support::scripted();
    let key = crate::support::api_key(&quarry, "analyst");
    let (status, listed) = mcp(quarry.clone(), Some(&key), "tools/list", json!({})).await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    let tools = listed["result"]["tools"].as_array().expect("tools");
    let mut names: Vec<&str> = tools.iter().filter_map(|t| t["name"].as_str()).collect();
    names.sort();
    assert_eq!(names, ["ask", "describe_table", "run_sql", "search_queries", "search_tables"]);
    assert!(tools.iter().all(|t| t["annotations"]["readOnlyHint"] == true), "{listed}");

    let call = |sql: &str| json!({ "name": "run_sql", "arguments": { "sql": sql } });
    let (_, ran) =
        mcp(quarry.clone(), Some(&key), "tools/call", call("SELECT COUNT(*) AS n FROM users")).await;
    assert_eq!(ran["result"]["isError"], false, "{ran}");
    assert!(
        ran["result"]["structuredContent"]["result"]["rows"][0][0].as_i64().is_some_and(|n| n > 0),
        "{ran}"
    );

    // The analyst's policy masks email: the tool runs the same governed SQL as POST /sql.
    let (_, masked) =
        mcp(quarry.clone(), Some(&key), "tools/call", call("SELECT email FROM users LIMIT 1")).await;
    let (_, http) = request(
        quarry.clone(),
        As::Role("analyst"),
        "POST",
        "/api/v1/sql",
        Some(json!({ "sql": "SELECT email FROM users LIMIT 1" })),
    )
    .await;
    assert_eq!(masked["result"]["structuredContent"]["sql"], http["sql"], "{masked}\n{http}");

    let (_, refused) = mcp(quarry.clone(), Some(&key), "tools/call", call("DROP TABLE users")).await;
    assert_eq!(refused["result"]["isError"], true, "{refused}");
    let body = &refused["result"]["structuredContent"];
    assert_eq!(body["error"], "refused", "{refused}");
    assert_eq!(body["violations"][0]["code"], "not_read_only", "{refused}");
    let audited = quarry.metadata().recent_audit(200).expect("audit");
    assert!(audited.iter().any(|r| r.sql.as_deref() == Some("DROP TABLE users") && r.outcome == "refused"));

    let (_, missing) = mcp(
        quarry.clone(),
        Some(&key),
        "tools/call",
        json!({ "name": "describe_table", "arguments": { "name": "nope" } }),
    )
    .await;
    assert_eq!(missing["result"]["structuredContent"]["error"], "not_found", "{missing}");
}

#[tokio::test]
async fn mcp_without_a_valid_key_is_a_401_before_any_tool_runs() {
    let quarry = crate::support::scripted();
    for key in [None, Some("qk_0000")] {
        let (status, body) = mcp(quarry.clone(), key, "tools/list", json!({})).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert_eq!(body["error"], "unauthorized");
    }
}
