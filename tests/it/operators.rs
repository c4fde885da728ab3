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
