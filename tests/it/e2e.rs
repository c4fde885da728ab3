//! End to end with every real component: llama.cpp running the Qwen2.5-Coder GGUF, fastembed,
//! Qdrant Edge and SQLite. Runs when `QUARRY_E2E=1` (`make test` and CI set it).

use quarry::eval::{has_order_by, same_result};
use quarry::pipeline::Principal;

use crate::support::{e2e_enabled, real};

/// Questions the default model answers, with hand-written gold SQL.
const CASES: &[(&str, &str)] = &[
    ("How many users are on the pro plan?", "SELECT COUNT(*) FROM users WHERE plan = 'pro'"),
    (
        "Which 5 countries had the most active users in October 2026?",
        "SELECT c.country_name, COUNT(DISTINCT d.user_id) AS active_users \
         FROM daily_active_users d JOIN countries c ON c.country_code = d.country_code \
         WHERE d.activity_date BETWEEN '2026-10-01' AND '2026-10-31' \
         GROUP BY c.country_name ORDER BY active_users DESC LIMIT 5",
    ),
];

#[test]
fn real_model_answers_demo_questions_with_the_right_rows() {
    if !e2e_enabled() {
        eprintln!("skipped: set QUARRY_E2E=1 to run tests with the real model");
        return;
    }
    let quarry = real();
    let principal = Principal::local();
    for (question, gold) in CASES {
        let expected = quarry.run_sql(gold, &principal).expect("gold runs");
        let answer = quarry.ask(question, &principal).unwrap_or_else(|e| panic!("{question}: {e}"));
        assert!(
            same_result(&expected.result, &answer.result, has_order_by(gold)),
            "{question}\nmodel SQL: {}\nrows: {:?}\nexpected: {:?}",
            answer.sql,
            answer.result.rows,
            expected.result.rows
        );
        assert!(answer.model.contains("qwen2.5-coder"), "{}", answer.model);
        assert!(
            answer.timings.prompt_tokens > 100 && answer.timings.completion_tokens > 5,
            "{:?}",
            answer.timings
        );
        assert!(
            !answer.tables.is_empty() && answer.tables.iter().all(|t| !t.evidence.is_empty()),
            "{:?}",
            answer.tables
        );
    }
}

#[tokio::test]
async fn real_model_answers_over_http() {
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    if !e2e_enabled() {
        eprintln!("skipped: set QUARRY_E2E=1 to run tests with the real model");
        return;
    }
    let app = quarry::http::app(real());
    let request = Request::post("/api/v1/ask")
        .header("content-type", "application/json")
        .body(Body::from(r#"{"question": "How many orders have the status refunded?"}"#))
        .expect("request");
    let response = app.oneshot(request).await.expect("response");
    let status = response.status();
    let bytes = response.into_body().collect().await.expect("body").to_bytes();
    let body: serde_json::Value = serde_json::from_slice(&bytes).expect("json");
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["sql"].as_str().is_some_and(|s| s.to_lowercase().contains("refunded")), "{body}");
    assert_eq!(body["result"]["rows"].as_array().map(Vec::len), Some(1), "{body}");
}
