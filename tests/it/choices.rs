//! Clarify instead of guessing: candidates that disagree offer their readings, and choosing one
//! answers the thread's turn with it — for its principal alone, validated as any SQL is.

use std::sync::Arc;

use axum::http::StatusCode;
use quarry::llm::ScriptedLlm;
use quarry::pipeline::Quarry;
use serde_json::{json, Value};

use crate::support::{open_private_with, private_workspace, real, real_model_turn, request, As};

const ALL: &str = "SELECT COUNT(*) AS orders FROM orders";
const COMPLETED: &str = "SELECT COUNT(*) AS orders FROM orders WHERE status = 'completed'";
const REFUNDED: &str = "SELECT COUNT(*) AS orders FROM orders WHERE status = 'refunded'";

/// A model whose five candidates split 2–2–1 on "How many orders did we have?" (the greedy one
/// and the samples of seeds 1 to 4), and agree on "How many users are there?".
fn split_workspace() -> (tempfile::TempDir, Arc<Quarry>) {
    let dir = private_workspace();
    let llm = ScriptedLlm::default()
        .with_samples(
            "How many orders did we have",
            &[
                ALL,
                "SELECT COUNT(order_id) FROM orders",
                COMPLETED,
                "SELECT COUNT(*) FROM orders WHERE status IN ('completed')",
                REFUNDED,
            ],
        )
        .with_samples("How many users are there", &["SELECT COUNT(*) FROM users"]);
    let quarry = open_private_with(dir.path(), llm);
    (dir, quarry)
}

async fn post(quarry: &Arc<Quarry>, who: As<'_>, path: &str, body: Value) -> (StatusCode, Value) {
    request(quarry.clone(), who, "POST", path, Some(body)).await
}

fn count(answer: &Value) -> i64 {
    answer["result"]["rows"][0][0].as_i64().unwrap_or(-1)
}

#[tokio::test]
async fn candidates_that_disagree_offer_their_readings_and_a_choice_answers_the_turn() {
    let (_dir, quarry) = split_workspace();
    let analyst = As::Role("analyst");
    let (status, first) = post(
        &quarry,
        analyst,
        "/api/v1/ask",
        json!({ "question": "How many orders did we have?", "samples": 5 }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let choices = first["choices"].as_array().expect("choices");
    assert_eq!(choices.len(), 3, "{first}");
    let votes: Vec<i64> = choices.iter().filter_map(|c| c["votes"].as_i64()).collect();
    assert_eq!(votes, [2, 2, 1]);
    let shown: Vec<bool> = choices.iter().filter_map(|c| c["shown"].as_bool()).collect();
    assert_eq!(shown, [true, false, false]);
    // Each reading says what it computes, differently, and shows its own rows.
    assert_eq!(choices[0]["reading"], "Number of orders, from orders");
    assert_eq!(choices[1]["reading"], "Number of orders, from orders, where status = 'completed'");
    assert_eq!(choices[2]["reading"], "Number of orders, from orders, where status = 'refunded'");
    assert_eq!(choices[0]["first_rows"][0][0], first["result"]["rows"][0][0]);
    assert_ne!(choices[1]["first_rows"][0][0], choices[0]["first_rows"][0][0]);
    assert_eq!(choices[1]["tables"], json!(["orders"]));
    assert_eq!(first["confidence"]["level"], "low", "only 2 of 5 agreed: {first}");
    let completed = choices[1]["first_rows"][0][0].as_i64().expect("a count");

    // Choosing the second reading answers the turn with it.
    let id = first["thread"]["id"].as_str().expect("a thread").to_string();
    let choose = format!("/api/v1/threads/{id}/choose");
    let (status, chosen) = post(&quarry, analyst, &choose, json!({ "turn": 1, "choice": 1 })).await;
    assert_eq!(status, StatusCode::OK, "{chosen}");
    assert!(chosen["sql"].as_str().unwrap_or_default().starts_with(COMPLETED), "{chosen}");
    assert_eq!(count(&chosen), completed);
    assert_eq!(chosen["reading"], "Number of orders, from orders, where status = 'completed'");
    assert_eq!(chosen["thread"], json!({ "id": id, "turn": 1 }));
    let shown: Vec<bool> =
        chosen["choices"].as_array().expect("choices").iter().filter_map(|c| c["shown"].as_bool()).collect();
    assert_eq!(shown, [false, true, false]);
    assert_eq!(chosen["confidence"]["level"], "medium");
    assert_eq!(chosen["tables"][0]["evidence"], json!(["read by the reading you chose"]));

    // The thread now holds the chosen reading: a follow-up builds on it.
    let (status, thread) =
        request(quarry.clone(), analyst, "GET", &format!("/api/v1/threads/{id}"), None).await;
    assert_eq!(status, StatusCode::OK, "{thread}");
    assert_eq!(thread["turns"][0]["sql"], chosen["sql"]);
    // The readings are kept as the model wrote them, and validated again when chosen.
    assert_eq!(thread["turns"][0]["choices"][1]["sql"], COMPLETED);
    assert_eq!(thread["turns"][0]["choices"].as_array().map(Vec::len), Some(3));

    // Wrong choices are told what there is.
    let (status, error) = post(&quarry, analyst, &choose, json!({ "turn": 1, "choice": 7 })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
    assert!(error["message"].as_str().unwrap_or_default().contains("readings 0 to 2"), "{error}");
    let (status, error) = post(&quarry, analyst, &choose, json!({ "turn": 2, "choice": 0 })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
    assert!(error["message"].as_str().unwrap_or_default().contains("last turn (1)"), "{error}");
    let (status, error) = post(&quarry, analyst, &choose, json!({ "choice": 0 })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
    // Another principal's thread is not there for them.
    let (status, error) =
        post(&quarry, As::Role("steward"), &choose, json!({ "turn": 1, "choice": 0 })).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{error}");
    assert_eq!(error["error"], "unknown_thread");
}

#[tokio::test]
async fn candidates_that_agree_offer_no_readings_and_samples_are_bounded() {
    let (_dir, quarry) = split_workspace();
    let analyst = As::Role("analyst");
    let (status, answer) = post(
        &quarry,
        analyst,
        "/api/v1/ask",
        json!({ "question": "How many users are there?", "samples": 3 }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["choices"], json!([]));
    assert_eq!(answer["votes"]["agreeing"], 3);
    let id = answer["thread"]["id"].as_str().expect("a thread");
    let (status, error) =
        post(&quarry, analyst, &format!("/api/v1/threads/{id}/choose"), json!({ "turn": 1, "choice": 0 }))
            .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
    assert!(error["message"].as_str().unwrap_or_default().contains("offered no readings"), "{error}");

    for samples in [0, 9] {
        let (status, error) = post(
            &quarry,
            analyst,
            "/api/v1/ask",
            json!({ "question": "How many users are there?", "samples": samples }),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
        assert!(error["message"].as_str().unwrap_or_default().contains("1 to 8"), "{error}");
    }
}

#[tokio::test]
async fn a_reading_the_principal_may_no_longer_run_is_refused_and_hidden() {
    let dir = private_workspace();
    let plans = "SELECT plan FROM users WHERE user_id = 1";
    let llm = ScriptedLlm::default().with_samples(
        "Tell me about user one",
        &[
            plans,
            "SELECT country_code FROM users WHERE user_id = 1",
            "SELECT signup_date FROM users WHERE user_id = 1",
            "SELECT is_active FROM users WHERE user_id = 1",
            "SELECT user_id FROM users WHERE user_id = 1",
        ],
    );
    let quarry = open_private_with(dir.path(), llm);
    let steward = As::Role("steward");
    let (status, first) =
        post(&quarry, steward, "/api/v1/ask", json!({ "question": "Tell me about user one", "samples": 5 }))
            .await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let choices = first["choices"].as_array().expect("choices");
    assert_eq!(choices.len(), 3, "five different results, three offered: {first}");
    assert!(choices[0]["sql"].as_str().unwrap_or_default().starts_with("SELECT plan FROM"), "{first}");
    let id = first["thread"]["id"].as_str().expect("a thread").to_string();
    // The policy tightened since: plans are confidential now, which stewards may not read.
    let (status, edit) = request(
        quarry.clone(),
        steward,
        "PATCH",
        "/api/v1/catalog/tables/users",
        Some(json!({ "columns": { "plan": { "tags": ["sensitive"] } }, "comment": "plans are confidential now" })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{edit}");
    let choose = format!("/api/v1/threads/{id}/choose");
    let (status, error) = post(&quarry, steward, &choose, json!({ "turn": 1, "choice": 0 })).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
    let (status, chosen) = post(&quarry, steward, &choose, json!({ "turn": 1, "choice": 1 })).await;
    assert_eq!(status, StatusCode::OK, "{chosen}");
    assert_eq!(chosen["choices"][0]["sql"], "", "{chosen}");
    assert_eq!(chosen["choices"][0]["first_rows"], json!([]));
    // Nor its sentence, which names the column it reads.
    assert_eq!(chosen["choices"][0]["reading"], "A reading you may no longer run");
    let (status, thread) =
        request(quarry.clone(), steward, "GET", &format!("/api/v1/threads/{id}"), None).await;
    assert_eq!(status, StatusCode::OK, "{thread}");
    assert_eq!(thread["turns"][0]["choices"][0]["sql"], "", "{thread}");
    assert_eq!(thread["turns"][0]["choices"][0]["reading"], "A reading you may no longer run");
}

/// The real model, five candidates, on a question that reads two ways in the demo warehouse.
#[test]
fn real_model_offers_readings_when_its_candidates_disagree_and_a_choice_answers() {
    let Some(_turn) = real_model_turn() else { return };
    let quarry = real();
    let analyst = quarry::pipeline::Principal::local();
    let options = quarry::pipeline::AskOptions {
        samples: Some(5),
        thread: Some(quarry::pipeline::ThreadChoice::New),
        ..Default::default()
    };
    let answer = quarry.ask_with(AMBIGUOUS, &analyst, &options).expect("an answer");
    assert!(
        answer.choices.len() >= 2,
        "expected readings to choose from; votes {:?}, sql {}",
        answer.votes,
        answer.sql
    );
    let position = answer.thread.clone().expect("recorded in a thread");
    let other = answer.choices.iter().position(|c| !c.shown).expect("a reading not shown");
    let chosen = quarry.choose(&position.id, position.turn, other, &analyst).expect("the choice answers");
    assert_eq!(chosen.sql, answer.choices[other].sql);
    assert_eq!(chosen.result.rows.len(), answer.choices[other].row_count);
    assert!(chosen.choices[other].shown);
}

/// A question the demo's data reads more than one way (which orders count, which date).
const AMBIGUOUS: &str = "How big were orders in the summer?";

/// Three of five candidates filter on an amount no order reaches; two return rows. The vote
/// is among results with rows, and the answer says how few agreed.
#[test]
fn a_result_with_rows_outvotes_empty_ones() {
    let dir = private_workspace();
    let nothing = "SELECT order_id FROM orders WHERE total_amount > 100000000";
    let large = "SELECT order_id FROM orders WHERE total_amount > 500";
    let llm = ScriptedLlm::default()
        .with_samples("Which orders were large", &[nothing, nothing, nothing, large, large]);
    let quarry = open_private_with(dir.path(), llm);
    let options = quarry::pipeline::AskOptions { samples: Some(5), ..Default::default() };
    let answer = quarry
        .ask_with("Which orders were large?", &quarry::pipeline::Principal::local(), &options)
        .expect("answer");
    assert!(answer.sql.starts_with(large), "{}", answer.sql);
    assert!(!answer.result.rows.is_empty());
    let votes = answer.votes.expect("votes");
    assert_eq!((votes.agreeing, votes.ran), (2, 5), "{votes:?}");
    assert_eq!(answer.confidence.level, quarry::check::Level::Low, "{:?}", answer.confidence);
}
