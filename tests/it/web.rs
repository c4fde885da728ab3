//! What the web page relies on beyond asking: the progress stream, picked tables, 👍/👎
//! feedback into the history, the caller's role, catalog filters and who reads a table.

use axum::http::StatusCode;
use serde_json::{json, Value};

use crate::support::{open_private, private_workspace, request, scripted, As};

/// The events of a server-sent event stream, as (name, JSON data).
fn parse_events(raw: &Value) -> Vec<(String, Value)> {
    let text = raw["raw"].as_str().unwrap_or_else(|| panic!("not an event stream: {raw}"));
    text.split("\n\n")
        .filter_map(|block| {
            let name = block.lines().find_map(|l| l.strip_prefix("event: "))?;
            let data = block.lines().find_map(|l| l.strip_prefix("data: "))?;
            Some((name.to_string(), serde_json::from_str(data).expect("event data is JSON")))
        })
        .collect()
}

#[tokio::test]
async fn asking_streams_each_stage_then_the_answer() {
    let body = json!({ "question": "top three plans by zebra count" });
    let (status, raw) =
        request(scripted(), As::Role("analyst"), "POST", "/api/v1/ask/stream", Some(body)).await;
    assert_eq!(status, StatusCode::OK);
    let events = parse_events(&raw);
    let stages: Vec<String> = events
        .iter()
        .filter(|(name, _)| name == "stage")
        .map(|(_, data)| data["stage"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(stages, ["retrieving", "generating", "validating", "running"], "{events:?}");
    let (last, answer) = events.last().expect("events");
    assert_eq!(last, "answer");
    assert_eq!(answer["result"]["columns"], json!(["plan", "users"]));

    // A refusal arrives as an error event with the status and violations of POST /ask.
    let body = json!({ "question": "please drop everything now" });
    let (_, raw) = request(scripted(), As::Role("analyst"), "POST", "/api/v1/ask/stream", Some(body)).await;
    let (last, error) = parse_events(&raw).pop().expect("events");
    assert_eq!(last, "error");
    assert_eq!(error["status"], 422);
    assert_eq!(error["error"], "refused");
    assert!(error["violations"].as_array().is_some_and(|v| !v.is_empty()), "{error}");

    let (status, _) = request(scripted(), As::Nobody, "POST", "/api/v1/ask/stream", Some(json!({}))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn picked_tables_are_offered_instead_of_retrievals_choice() {
    let body = json!({ "question": "top three plans by zebra count", "tables": ["users", "orders"] });
    let (status, answer) = request(scripted(), As::Role("analyst"), "POST", "/api/v1/ask", Some(body)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let offered: Vec<&str> = answer["candidates"]
        .as_array()
        .expect("candidates")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(offered, ["users", "orders"]);
    assert_eq!(answer["candidates"][1]["evidence"][0], "picked by you");

    for (tables, mentions) in [(json!(["no_such_table"]), "no_such_table"), (json!([]), "pick at least one")]
    {
        let body = json!({ "question": "top three plans by zebra count", "tables": tables });
        let (status, answer) =
            request(scripted(), As::Role("analyst"), "POST", "/api/v1/ask", Some(body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
        assert!(answer["message"].as_str().unwrap_or_default().contains(mentions), "{answer}");
    }
}

#[tokio::test]
async fn a_thumbs_up_verifies_the_query_so_the_same_question_reuses_it() {
    let dir = private_workspace();
    let quarry = open_private(dir.path());
    let question = "How many orders were refunded, all time?";
    let sql = "SELECT COUNT(*) AS refunded_orders FROM orders WHERE status = 'refunded'";
    let up = json!({ "question": question, "sql": sql, "verdict": "up" });
    let (status, outcome) =
        request(quarry.clone(), As::Role("analyst"), "POST", "/api/v1/feedback", Some(up)).await;
    assert_eq!(status, StatusCode::OK, "{outcome}");
    assert_eq!(outcome, json!({ "added_sql": sql, "verified": true }));

    // The library finds it by meaning, verified, by its author.
    let path = "/api/v1/search/queries?q=number+of+refunded+orders&limit=5";
    let (_, found) = request(quarry.clone(), As::Role("analyst"), "GET", path, None).await;
    let hit = found["queries"]
        .as_array()
        .and_then(|q| q.iter().find(|q| q["sql"] == sql))
        .unwrap_or_else(|| panic!("not in the library: {found}"));
    assert_eq!(hit["verified"], true);
    assert_eq!(hit["author"], "test-analyst");

    // The same question is answered by it, without the model (the script has no rule for it).
    let ask = json!({ "question": question });
    let (status, answer) =
        request(quarry.clone(), As::Role("analyst"), "POST", "/api/v1/ask", Some(ask)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["reused"]["author"], "test-analyst");
    assert_eq!(answer["model"], "none");

    // The verdict is audited.
    let (_, audit) = request(quarry.clone(), As::Role("admin"), "GET", "/api/v1/audit?kind=edit", None).await;
    let record = audit["records"]
        .as_array()
        .and_then(|r| r.iter().find(|r| r["detail"]["action"] == "feedback"))
        .unwrap_or_else(|| panic!("no feedback record: {audit}"));
    assert_eq!(record["question"], question);
    assert_eq!(record["detail"]["verdict"], "up");
}

#[tokio::test]
async fn a_thumbs_down_keeps_the_correction_unverified_and_bad_feedback_is_explained() {
    let dir = private_workspace();
    let quarry = open_private(dir.path());
    let corrected = "SELECT plan, COUNT(*) AS paying_users FROM users WHERE plan <> 'free' GROUP BY plan";
    let down = json!({
        "question": "paying users per plan",
        "sql": "SELECT plan, COUNT(*) FROM users GROUP BY plan",
        "verdict": "down",
        "comment": "free is not a paying plan",
        "corrected_sql": corrected,
    });
    let (status, outcome) =
        request(quarry.clone(), As::Role("analyst"), "POST", "/api/v1/feedback", Some(down)).await;
    assert_eq!(status, StatusCode::OK, "{outcome}");
    assert_eq!(outcome, json!({ "added_sql": corrected, "verified": false }));
    let (_, found) = request(
        quarry.clone(),
        As::Role("analyst"),
        "GET",
        "/api/v1/search/queries?q=paying+users+per+plan",
        None,
    )
    .await;
    let hit = found["queries"].as_array().and_then(|q| q.iter().find(|q| q["sql"] == corrected));
    assert_eq!(hit.map(|h| h["verified"].clone()), Some(json!(false)), "{found}");

    let cases = [
        // An analyst cannot verify SQL their role may not run.
        (json!({ "question": "emails", "sql": "SELECT email FROM users", "verdict": "up" }), 422, "sql"),
        (
            json!({ "question": "n", "sql": "SELECT 1", "verdict": "up", "corrected_sql": "SELECT 2" }),
            422,
            "corrected_sql",
        ),
        (json!({ "question": " ", "sql": "SELECT 1", "verdict": "down" }), 422, "question"),
        (json!({ "question": "n", "sql": "SELECT 1", "verdict": "meh" }), 400, "verdict"),
    ];
    for (body, expected, names) in cases {
        let (status, answer) =
            request(quarry.clone(), As::Role("analyst"), "POST", "/api/v1/feedback", Some(body.clone()))
                .await;
        assert_eq!(status.as_u16(), expected, "{body}: {answer}");
        assert!(answer.to_string().contains(names), "{body}: {answer}");
    }
}

#[tokio::test]
async fn me_names_the_role_and_what_it_may_do() {
    let (status, me) = request(scripted(), As::Role("analyst"), "GET", "/api/v1/me", None).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(
        me,
        json!({ "name": "test-analyst", "role": "analyst", "actions": ["ask", "sql", "read_catalog"] })
    );
    let (_, me) = request(scripted(), As::Role("admin"), "GET", "/api/v1/me", None).await;
    let actions = me["actions"].as_array().expect("actions");
    assert!(actions.contains(&json!("edit_catalog")) && actions.contains(&json!("read_audit")), "{me}");
    let (status, _) = request(scripted(), As::Forged, "GET", "/api/v1/me", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_catalog_filters_deprecated_and_undocumented_tables_and_names_readers() {
    let dir = private_workspace();
    // A table no governance file describes.
    rusqlite::Connection::open(dir.path().join("warehouse.sqlite"))
        .and_then(|c| c.execute_batch("CREATE TABLE scratch_notes (id INTEGER PRIMARY KEY, note TEXT)"))
        .expect("add a table");
    let quarry = open_private(dir.path());
    let list = |query: &'static str| {
        let quarry = quarry.clone();
        async move {
            let path = format!("/api/v1/catalog/tables?{query}");
            let (status, body) = request(quarry, As::Role("steward"), "GET", &path, None).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            body["tables"].as_array().cloned().unwrap_or_default()
        }
    };
    let names = |tables: &[Value]| -> Vec<String> {
        tables.iter().filter_map(|t| t["name"].as_str()).map(String::from).collect()
    };
    let all = list("").await;
    let deprecated = list("deprecated=true").await;
    let undocumented = list("undocumented=true").await;
    assert!(!deprecated.is_empty() && deprecated.iter().all(|t| t["deprecated_for"].is_string()));
    assert!(names(&deprecated).contains(&"user_profiles_v1".to_string()), "{deprecated:?}");
    assert_eq!(names(&undocumented), ["scratch_notes"]);
    assert_eq!(list("deprecated=false").await.len() + deprecated.len(), all.len());
    assert_eq!(list("undocumented=false").await.len() + undocumented.len(), all.len());
    let (status, body) =
        request(quarry.clone(), As::Role("steward"), "GET", "/api/v1/catalog/tables?deprecated=maybe", None)
            .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    let (_, orders) =
        request(quarry.clone(), As::Role("steward"), "GET", "/api/v1/catalog/tables/orders", None).await;
    let readers = orders["signals"]["usage"]["readers"].as_array().expect("readers");
    assert!(
        !readers.is_empty() && readers[0]["what"].is_string() && readers[0]["queries"].as_u64() > Some(0)
    );
}
