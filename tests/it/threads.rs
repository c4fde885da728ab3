//! Conversation threads: a follow-up answered with its thread's earlier turns, threads kept per
//! principal, branches, expiry, and a follow-up never showing more than the principal may read.

use std::sync::Arc;

use axum::http::StatusCode;
use quarry::llm::ScriptedLlm;
use quarry::pipeline::{AskOptions, Principal, PriorTurn, Quarry};
use serde_json::{json, Value};

use crate::support::{
    assert_answers, open_private_with, private_workspace, real, real_model_turn, request, scripted, As,
};

const MONTHLY: &str = "SELECT strftime('%Y-%m', ordered_at) AS month, COUNT(*) AS orders FROM orders \
     WHERE ordered_at >= '2026-01-01' AND ordered_at < '2027-01-01' GROUP BY month";
const MONTHLY_REFUNDED: &str =
    "SELECT strftime('%Y-%m', ordered_at) AS month, COUNT(*) AS orders FROM orders \
     WHERE ordered_at >= '2026-01-01' AND ordered_at < '2027-01-01' AND status = 'refunded' GROUP BY month";

/// A workspace whose model answers the thread's two steps (the follow-up's rule first: its
/// prompt holds the first question too).
fn two_step_workspace() -> (tempfile::TempDir, Arc<Quarry>) {
    let dir = private_workspace();
    let llm = ScriptedLlm::new([
        ("Follow-up question:", format!("```sql\n{MONTHLY_REFUNDED}\n```")),
        ("orders per month in 2026", format!("```sql\n{MONTHLY}\n```")),
    ]);
    let quarry = open_private_with(dir.path(), llm);
    (dir, quarry)
}

async fn ask(quarry: &Arc<Quarry>, who: As<'_>, body: Value) -> (StatusCode, Value) {
    request(quarry.clone(), who, "POST", "/api/v1/ask", Some(body)).await
}

#[tokio::test]
async fn a_follow_up_is_answered_in_its_thread_and_the_thread_is_kept() {
    let (_dir, quarry) = two_step_workspace();
    let analyst = As::Role("analyst");
    let (status, first) = ask(&quarry, analyst, json!({ "question": "orders per month in 2026" })).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let id = first["thread"]["id"].as_str().expect("the answer names its thread").to_string();
    assert_eq!(first["thread"]["turn"], 1);

    let (status, second) =
        ask(&quarry, analyst, json!({ "question": "only refunded ones", "thread": id })).await;
    assert_eq!(status, StatusCode::OK, "{second}");
    assert_eq!(second["thread"], json!({ "id": id, "turn": 2 }));
    assert!(second["sql"].as_str().unwrap_or_default().contains("refunded"), "{second}");
    // Its one-line reading, from the SQL itself.
    assert_eq!(
        second["reading"],
        "Number of orders per month, from orders, where ordered at 2026-01-01 to 2026-12-31 and status = 'refunded'"
    );
    // The tables the first answer read are offered first, saying why.
    assert_eq!(second["candidates"][0]["name"], "orders");
    assert_eq!(second["candidates"][0]["evidence"][0], "read by the answer this question follows up");

    let (status, list) = request(quarry.clone(), analyst, "GET", "/api/v1/threads", None).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list["threads"][0]["id"], id.as_str());
    assert_eq!(list["threads"][0]["title"], "orders per month in 2026");
    assert_eq!(list["threads"][0]["turns"], 2);
    let (status, thread) =
        request(quarry.clone(), analyst, "GET", &format!("/api/v1/threads/{id}"), None).await;
    assert_eq!(status, StatusCode::OK, "{thread}");
    let questions: Vec<&str> =
        thread["turns"].as_array().expect("turns").iter().filter_map(|t| t["question"].as_str()).collect();
    assert_eq!(questions, ["orders per month in 2026", "only refunded ones"]);
    assert_eq!(thread["turns"][0]["tables"], json!(["orders"]));
    assert_eq!(thread["turns"][0]["sql"], first["sql"]);
}

#[test]
fn the_follow_up_prompt_holds_the_earlier_question_and_its_sql() {
    let quarry = scripted();
    let options = AskOptions {
        follows: vec![PriorTurn {
            question: "orders per month in 2026".into(),
            sql: MONTHLY.into(),
            tables: vec!["orders".into()],
        }],
        ..AskOptions::default()
    };
    let prompt = quarry.first_prompt("only refunded ones", &Principal::local(), &options).expect("prompt");
    // The conversation as it was: the first question with the tables, its SQL as the model's
    // reply, then the follow-up with what to write.
    assert!(
        prompt.user.contains("CREATE TABLE orders")
            && prompt.user.ends_with("Question: orders per month in 2026"),
        "{}",
        prompt.user
    );
    assert_eq!(prompt.turns.len(), 1, "{prompt:?}");
    assert!(prompt.turns[0].assistant.contains(MONTHLY), "{prompt:?}");
    assert!(prompt.turns[0].user.starts_with("Follow-up question: only refunded ones\n"), "{prompt:?}");
    assert!(prompt.turns[0].user.contains("Write the previous query again"), "{prompt:?}");
    // Asked alone, the same words are a plain question.
    let alone = quarry
        .first_prompt("only refunded ones", &Principal::local(), &AskOptions::default())
        .expect("prompt");
    assert!(
        !alone.user.contains("Earlier in this conversation")
            && alone.user.ends_with("Question: only refunded ones")
    );
}

#[test]
fn a_follow_up_gets_the_definitions_it_names_with_the_conversations_help() {
    let quarry = scripted();
    let first = "How many users signed up in 2026 in each country?";
    let options = AskOptions {
        follows: vec![PriorTurn {
            question: first.into(),
            sql: "SELECT country_code, COUNT(*) AS signups FROM users WHERE signup_date >= '2026-01-01' GROUP BY country_code".into(),
            tables: vec!["users".into()],
        }],
        ..AskOptions::default()
    };
    // "paid" in the follow-up, "users" in the first question: the term "paid user".
    let prompt = quarry.first_prompt("Only the paid ones.", &Principal::local(), &options).expect("prompt");
    assert!(
        prompt.turns[0].user.contains(
            "Definition the SQL must follow - paid user: A user whose current users.plan is 'plus' or 'pro'"
        ),
        "{prompt:?}"
    );
    assert!(!prompt.user.contains("paid user"), "the first question names no such term: {}", prompt.user);
}

#[test]
fn a_follow_up_never_shows_the_model_what_the_principal_may_not_read() {
    let quarry = scripted();
    // An earlier turn reading a column the analyst may not read (pii), and a table it may not
    // see: as if the policy had tightened since, or the turn were forged.
    let hidden_sql = "SELECT user_id, email FROM users";
    let options = AskOptions {
        follows: vec![PriorTurn {
            question: "list users and their e-mail addresses".into(),
            sql: hidden_sql.into(),
            tables: vec!["users".into(), "no_such_table".into()],
        }],
        ..AskOptions::default()
    };
    let prompt = quarry.first_prompt("only the first ten", &Principal::local(), &options).expect("prompt");
    assert!(
        prompt.user.contains(
            "Earlier question: list users and their e-mail addresses\nQuestion: only the first ten"
        ),
        "{}",
        prompt.user
    );
    assert!(prompt.turns.is_empty(), "no SQL to show, so no reply of the model's: {prompt:?}");
    assert!(
        !prompt.user.contains(hidden_sql),
        "the SQL the analyst may not run is not shown: {}",
        prompt.user
    );
    let retrieved = quarry.retrieval("only the first ten", &Principal::local(), &options).expect("retrieval");
    assert!(retrieved.tables.iter().all(|t| t.name != "no_such_table"));
    assert_eq!(retrieved.tables[0].name, "users");
    assert!(retrieved.reusable.is_empty(), "a follow-up never reuses a verified query asked alone");
}

#[tokio::test]
async fn a_thread_is_its_principals_alone() {
    let (_dir, quarry) = two_step_workspace();
    let (_, first) =
        ask(&quarry, As::Role("analyst"), json!({ "question": "orders per month in 2026" })).await;
    let id = first["thread"]["id"].as_str().expect("thread").to_string();
    let (status, body) =
        ask(&quarry, As::Role("steward"), json!({ "question": "only refunded ones", "thread": id })).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["error"], "unknown_thread");
    assert!(body["message"].as_str().unwrap_or_default().contains("GET /api/v1/threads"), "{body}");
    let (status, _) =
        request(quarry.clone(), As::Role("steward"), "GET", &format!("/api/v1/threads/{id}"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, list) = request(quarry.clone(), As::Role("steward"), "GET", "/api/v1/threads", None).await;
    assert!(list["threads"].as_array().expect("list").iter().all(|t| t["id"] != id.as_str()), "{list}");
    let (status, _) = request(quarry.clone(), As::Nobody, "GET", "/api/v1/threads", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_thread_shows_its_principal_only_what_it_may_read_now() {
    let (dir, quarry) = two_step_workspace();
    let analyst = As::Role("analyst");
    let (_, first) = ask(&quarry, analyst, json!({ "question": "orders per month in 2026" })).await;
    let id = first["thread"]["id"].as_str().expect("thread").to_string();
    // The turn as it would read had the analyst's role been narrowed since: SQL on a pii column
    // and a table it may not read.
    let db = rusqlite::Connection::open(dir.path().join("quarry.db")).expect("metadata db");
    db.execute(
        "UPDATE thread_turns SET sql = 'SELECT user_id, email FROM users', tables = '[\"users\",\"no_such_table\"]' WHERE thread = ?1",
        [&id],
    )
    .expect("narrow it");
    let (status, thread) =
        request(quarry.clone(), analyst, "GET", &format!("/api/v1/threads/{id}"), None).await;
    assert_eq!(status, StatusCode::OK, "{thread}");
    assert_eq!(thread["turns"][0]["sql"], "", "SQL the analyst may not run is not shown: {thread}");
    assert_eq!(thread["turns"][0]["tables"], json!(["users"]));
    assert_eq!(thread["turns"][0]["question"], "orders per month in 2026");
}

#[tokio::test]
async fn following_up_an_earlier_turn_branches_into_a_new_thread() {
    let (_dir, quarry) = two_step_workspace();
    let analyst = As::Role("analyst");
    let (_, first) = ask(&quarry, analyst, json!({ "question": "orders per month in 2026" })).await;
    let id = first["thread"]["id"].as_str().expect("thread").to_string();
    ask(&quarry, analyst, json!({ "question": "only refunded ones", "thread": id })).await;

    let (status, branch) =
        ask(&quarry, analyst, json!({ "question": "only the refunded ones", "thread": id, "after": 1 }))
            .await;
    assert_eq!(status, StatusCode::OK, "{branch}");
    let branch_id = branch["thread"]["id"].as_str().expect("thread");
    assert_ne!(branch_id, id, "a branch is a thread of its own");
    assert_eq!(branch["thread"]["turn"], 2);
    let (_, thread) =
        request(quarry.clone(), analyst, "GET", &format!("/api/v1/threads/{branch_id}"), None).await;
    let questions: Vec<&str> =
        thread["turns"].as_array().expect("turns").iter().filter_map(|t| t["question"].as_str()).collect();
    assert_eq!(questions, ["orders per month in 2026", "only the refunded ones"]);
    assert_eq!(thread["branched_from"], id.as_str());
    let (_, original) = request(quarry.clone(), analyst, "GET", &format!("/api/v1/threads/{id}"), None).await;
    assert_eq!(original["turns"].as_array().map(Vec::len), Some(2), "the branch leaves the thread as it was");

    // Turns that do not exist, and `after` without a thread, are named as such.
    let (status, body) = ask(&quarry, analyst, json!({ "question": "x y", "thread": id, "after": 7 })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["message"].as_str().unwrap_or_default().contains("turns 1 to 2"), "{body}");
    let (status, body) = ask(&quarry, analyst, json!({ "question": "x y", "after": 1 })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["message"].as_str().unwrap_or_default().contains("with 'thread'"), "{body}");
}

#[tokio::test]
async fn a_thread_expires_after_its_keep_days() {
    let (dir, quarry) = two_step_workspace();
    let analyst = As::Role("analyst");
    let (_, first) = ask(&quarry, analyst, json!({ "question": "orders per month in 2026" })).await;
    let id = first["thread"]["id"].as_str().expect("thread").to_string();
    // Its last turn, moved past the 30 days a thread is kept by default.
    let db = rusqlite::Connection::open(dir.path().join("quarry.db")).expect("metadata db");
    db.execute("UPDATE threads SET updated_at = '2020-01-01T00:00:00.000Z' WHERE id = ?1", [&id])
        .expect("age it");
    let (status, body) =
        ask(&quarry, analyst, json!({ "question": "only refunded ones", "thread": id })).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert!(body["message"].as_str().unwrap_or_default().contains("kept 30 days"), "{body}");
    // The next recorded turn deletes what expired.
    ask(&quarry, analyst, json!({ "question": "orders per month in 2026, again" })).await;
    let left: i64 = db
        .query_row("SELECT COUNT(*) FROM thread_turns WHERE thread = ?1", [&id], |r| r.get(0))
        .expect("count");
    assert_eq!(left, 0);
}

/// Every follow-up pair of the evaluation set is a real follow-up: both gold queries run on the
/// demo warehouse, return rows, and answer differently.
#[test]
fn every_follow_up_pair_has_gold_sql_that_runs_and_differs() {
    let quarry = scripted();
    let pairs =
        quarry::eval::followups::parse_pairs(quarry::eval::followups::DEMO_FOLLOWUPS).expect("pairs parse");
    assert_eq!(pairs.len(), 20);
    for pair in &pairs {
        let first = quarry
            .run_sql(&pair.first_gold, &Principal::local())
            .unwrap_or_else(|e| panic!("{}: {e}", pair.first));
        let second = quarry
            .run_sql(&pair.gold, &Principal::local())
            .unwrap_or_else(|e| panic!("{}: {e}", pair.follow_up));
        assert!(
            !first.result.rows.is_empty() && !second.result.rows.is_empty(),
            "{} / {}",
            pair.first,
            pair.follow_up
        );
        assert!(
            !quarry::eval::same_result(&first.result, &second.result, false),
            "{} -> {}: the follow-up's gold answers the same",
            pair.first,
            pair.follow_up
        );
    }
}

#[test]
fn real_model_answers_a_follow_up_in_the_context_of_its_thread() {
    let Some(_turn) = real_model_turn() else { return };
    let quarry = real();
    // The earlier turn as a right first answer would leave it: the follow-up alone is tested.
    let options = AskOptions {
        follows: vec![PriorTurn {
            question: "How many orders were placed in each month of 2026?".into(),
            sql: MONTHLY.into(),
            tables: vec!["orders".into()],
        }],
        ..AskOptions::default()
    };
    let answer = assert_answers(&quarry, "Only the refunded ones.", &options, MONTHLY_REFUNDED);
    assert!(answer.sql.contains("refunded"), "{}", answer.sql);
}
