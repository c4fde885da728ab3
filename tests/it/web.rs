//! What the web page relies on beyond asking: the progress stream, picked tables, 👍/👎
//! feedback into the history, the caller's role, catalog filters, who reads a table and the
//! questions it suggests.

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
    // A question no other test asks of the shared workspace: a repeat would be served from
    // the answer cache, without the generating stages.
    let body = json!({ "question": "streamed: top three plans by zebra count" });
    let (status, raw) =
        request(scripted(), As::Role("analyst"), "POST", "/api/v1/ask/stream", Some(body)).await;
    assert_eq!(status, StatusCode::OK);
    let events = parse_events(&raw);
    let stages: Vec<String> = events
        .iter()
        .filter(|(name, _)| name == "stage")
        .map(|(_, data)| data["stage"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(stages, ["retrieving", "generating", "writing", "validating", "running"], "{events:?}");
    let (last, answer) = events.last().expect("events");
    assert_eq!(last, "answer");
    assert_eq!(answer["result"]["columns"], json!(["plan", "users"]));
    // The text the model wrote arrives before it is validated (the scripted model: at once).
    let written: String = events
        .iter()
        .filter(|(name, data)| name == "stage" && data["stage"] == "writing")
        .map(|(_, data)| data["text"].as_str().unwrap_or_default())
        .collect();
    assert!(written.contains("SELECT plan, COUNT(*) AS users FROM users"), "{written}");

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
async fn an_analysts_thumbs_up_is_a_vote_and_a_reviewer_verifies() {
    let dir = private_workspace();
    let quarry = open_private(dir.path());
    let question = "How many orders were refunded, all time?";
    let sql = "SELECT COUNT(*) AS refunded_orders FROM orders WHERE status = 'refunded'";
    let up = json!({ "question": question, "sql": sql, "verdict": "up" });
    let (status, outcome) =
        request(quarry.clone(), As::Role("analyst"), "POST", "/api/v1/feedback", Some(up)).await;
    assert_eq!(status, StatusCode::OK, "{outcome}");
    assert_eq!(outcome, json!({ "added_sql": sql, "verified": false, "status": "proposed" }));

    // The library finds it by meaning, by its author, not verified.
    let path = "/api/v1/search/queries?q=number+of+refunded+orders&limit=5";
    let (_, found) = request(quarry.clone(), As::Role("analyst"), "GET", path, None).await;
    let hit = found["queries"]
        .as_array()
        .and_then(|q| q.iter().find(|q| q["sql"] == sql))
        .unwrap_or_else(|| panic!("not in the library: {found}"));
    assert_eq!((hit["verified"].clone(), hit["author"].clone()), (json!(false), json!("test-analyst")));

    // One analyst's vote does not make it the answer for everyone: the model answers.
    let ask = json!({ "question": question });
    let (_, answer) =
        request(quarry.clone(), As::Role("analyst"), "POST", "/api/v1/ask", Some(ask.clone())).await;
    assert!(answer["reused"].is_null() && answer["model"] != "none", "{answer}");

    // It waits in the review queue; an analyst may not see the queue or verify.
    let (status, _) = request(quarry.clone(), As::Role("analyst"), "GET", "/api/v1/reviews", None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let verify = json!({ "question": question, "sql": sql, "decision": "verify", "comment": "checked against finance" });
    let (status, _) =
        request(quarry.clone(), As::Role("analyst"), "POST", "/api/v1/reviews", Some(verify.clone())).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (_, pending) = request(quarry.clone(), As::Role("steward"), "GET", "/api/v1/reviews", None).await;
    let queued = pending.as_array().and_then(|p| p.iter().find(|r| r["sql"] == sql)).cloned();
    assert_eq!(queued.as_ref().map(|r| r["votes"].clone()), Some(json!(["test-analyst"])), "{pending}");

    // A steward verifies: now it answers the question, naming who verified it and when.
    let (status, outcome) =
        request(quarry.clone(), As::Role("steward"), "POST", "/api/v1/reviews", Some(verify)).await;
    assert_eq!((status, outcome["verified"].clone()), (StatusCode::OK, json!(true)), "{outcome}");
    let (_, answer) =
        request(quarry.clone(), As::Role("analyst"), "POST", "/api/v1/ask", Some(ask.clone())).await;
    assert_eq!(answer["model"], "none", "{answer}");
    assert_eq!(answer["reused"]["verified_by"], "test-steward");
    assert!(answer["reused"]["verified_at"].as_str().is_some_and(|at| at.starts_with("20")), "{answer}");
    let (_, verified) =
        request(quarry.clone(), As::Role("admin"), "GET", "/api/v1/reviews?status=verified", None).await;
    let listed = verified.as_array().and_then(|v| v.iter().find(|r| r["sql"] == sql)).cloned();
    assert_eq!(listed.map(|r| r["by"].clone()), Some(json!("test-steward")), "{verified}");
    // A table page lists the reviewed answers that read it, and only those.
    let on = |table: &str| {
        let quarry = quarry.clone();
        let path = format!("/api/v1/reviews?status=all&table={table}");
        async move {
            let (_, listed) = request(quarry, As::Role("steward"), "GET", &path, None).await;
            listed.as_array().is_some_and(|l| l.iter().any(|r| r["sql"] == sql))
        }
    };
    assert!(on("orders").await, "listed on the orders page");
    assert!(!on("users").await, "not on a table it does not read");

    // A 👎 on the reused answer demotes it pending review: the model answers again.
    let down =
        json!({ "question": question, "sql": sql, "verdict": "down", "comment": "refunds are in refunds" });
    let (status, outcome) =
        request(quarry.clone(), As::Role("analyst"), "POST", "/api/v1/feedback", Some(down)).await;
    assert_eq!((status, outcome["status"].clone()), (StatusCode::OK, json!("demoted")), "{outcome}");
    let (_, answer) = request(quarry.clone(), As::Role("analyst"), "POST", "/api/v1/ask", Some(ask)).await;
    assert!(answer["reused"].is_null(), "{answer}");
    let (_, pending) = request(quarry.clone(), As::Role("steward"), "GET", "/api/v1/reviews", None).await;
    let queued = pending.as_array().and_then(|p| p.iter().find(|r| r["sql"] == sql)).cloned();
    assert_eq!(queued.map(|r| r["objections"][0]["comment"].clone()), Some(json!("refunds are in refunds")));

    // A revocation is the reviewer's too; every verdict is audited with who and what.
    let revoke = json!({ "question": question, "sql": sql, "decision": "revoke", "comment": "wrong table" });
    let (status, outcome) =
        request(quarry.clone(), As::Role("admin"), "POST", "/api/v1/reviews", Some(revoke)).await;
    assert_eq!((status, outcome["status"].clone()), (StatusCode::OK, json!("revoked")), "{outcome}");
    let (_, audit) = request(quarry.clone(), As::Role("admin"), "GET", "/api/v1/audit?kind=edit", None).await;
    let verdicts: Vec<(Value, Value)> = audit["records"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["detail"]["action"] == "verdict" && r["sql"] == sql)
        .map(|r| (r["principal"].clone(), r["detail"]["verdict"].clone()))
        .collect();
    for expected in [
        ("test-analyst", "up"),
        ("test-steward", "verify"),
        ("test-analyst", "down"),
        ("test-admin", "revoke"),
    ] {
        assert!(
            verdicts.contains(&(json!(expected.0), json!(expected.1))),
            "{expected:?} not in {verdicts:?}"
        );
    }
}

/// Enough distinct analysts' votes verify without a reviewer (`[review] promote_votes`).
#[test]
fn distinct_analysts_votes_promote_a_pair() {
    let dir = private_workspace();
    let quarry = open_private(dir.path());
    let sql = "SELECT plan, COUNT(*) AS users FROM users GROUP BY plan";
    let feedback = quarry::pipeline::Feedback {
        question: "users per plan".into(),
        sql: sql.into(),
        verdict: quarry::pipeline::Verdict::Up,
        comment: None,
        corrected_sql: None,
    };
    let promote = quarry.config().promote_votes;
    assert!(promote >= 2, "the demo configuration promotes after several votes");
    for voter in 1..=promote {
        let analyst = quarry::pipeline::Principal::new(format!("analyst-{voter}"), "analyst");
        let outcome = quarry.feedback(&analyst, &feedback).expect("feedback");
        assert_eq!(outcome.verified, voter == promote, "after {voter} of {promote} votes");
        // The same analyst voting again counts once.
        let again = quarry.feedback(&analyst, &feedback).expect("feedback");
        assert_eq!(again.verified, voter == promote);
    }
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
    assert_eq!(outcome, json!({ "added_sql": corrected, "verified": false, "status": "proposed" }));
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

#[tokio::test]
async fn suggestions_are_verified_then_frequent_questions_the_role_may_run() {
    let dir = private_workspace();
    // A question asked often whose SQL reads personal data: the analyst may not run it.
    let mut log = std::fs::read_to_string(dir.path().join("history.jsonl")).expect("history");
    for day in 20..24 {
        log.push_str(&format!(
            "{{\"sql\": \"SELECT email FROM users WHERE plan = 'pro'\", \"author\": \"crm.bot\", \"timestamp\": \"2026-11-{day}T10:00:00Z\", \"question\": \"Which e-mail addresses do pro users have?\", \"verified\": true}}\n"
        ));
    }
    // One question, asked twice: over users, and (verified) over advertisers, which the regional
    // analyst may not read: that query must add nothing to what the regional analyst is told.
    let shared = "How many rows does the shared report count?";
    for (sql, verified) in [("SELECT COUNT(*) FROM users", false), ("SELECT COUNT(*) FROM advertisers", true)]
    {
        let line = json!({ "sql": sql, "author": "ops.bot", "timestamp": "2026-11-25T10:00:00Z",
                           "question": shared, "verified": verified });
        log.push_str(&format!("{line}\n"));
    }
    std::fs::write(dir.path().join("history.jsonl"), log).expect("write history");
    let quarry = open_private(dir.path());
    let entry = |body: &Value| -> Value {
        body["suggestions"]
            .as_array()
            .and_then(|s| s.iter().find(|s| s["question"] == shared).cloned())
            .unwrap_or_default()
    };
    let (_, body) =
        request(quarry.clone(), As::Role("regional_analyst"), "GET", "/api/v1/suggestions?limit=50", None)
            .await;
    let regional = entry(&body);
    assert_eq!(
        (&regional["asked"], &regional["verified"], &regional["tables"]),
        (&json!(1), &json!(false), &json!(["users"])),
        "{body}"
    );
    let (_, body) =
        request(quarry.clone(), As::Role("admin"), "GET", "/api/v1/suggestions?limit=50", None).await;
    let admin = entry(&body);
    assert_eq!((&admin["asked"], &admin["verified"]), (&json!(2), &json!(true)), "{body}");
    let questions = |body: &Value| -> Vec<(String, bool)> {
        body["suggestions"]
            .as_array()
            .expect("suggestions")
            .iter()
            .map(|s| (s["question"].as_str().unwrap_or_default().to_string(), s["verified"] == json!(true)))
            .collect()
    };
    let pii = "Which e-mail addresses do pro users have?".to_string();

    let (status, body) =
        request(quarry.clone(), As::Role("analyst"), "GET", "/api/v1/suggestions", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let analyst = questions(&body);
    assert_eq!(analyst.len(), 5, "{body}");
    assert!(analyst.iter().all(|(q, _)| *q != pii), "{analyst:?}");
    // Verified ones first.
    let first_unverified = analyst.iter().position(|(_, v)| !v).unwrap_or(analyst.len());
    assert!(analyst[first_unverified..].iter().all(|(_, v)| !v), "{analyst:?}");
    assert!(analyst[0].1, "{analyst:?}");

    let (_, body) =
        request(quarry.clone(), As::Role("admin"), "GET", "/api/v1/suggestions?limit=3", None).await;
    let admin = questions(&body);
    assert_eq!(admin.len(), 3, "{body}");
    assert_eq!(admin[0].0, pii, "asked four times and verified, and an admin reads e-mails: {admin:?}");
    // A steward reads them masked: a query on them is shown to no one who reads them masked.
    let (_, body) = request(quarry.clone(), As::Role("steward"), "GET", "/api/v1/suggestions", None).await;
    assert!(questions(&body).iter().all(|(q, _)| *q != pii), "{body}");

    // After an answer: close questions, never the one just asked.
    let after = "How many refunds, and what refunded amount, per refund reason in 2026?";
    let path = format!(
        "/api/v1/suggestions?after={}",
        after.replace(' ', "+").replace(',', "%2C").replace('?', "%3F")
    );
    let (status, body) = request(quarry.clone(), As::Role("analyst"), "GET", &path, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let close = questions(&body);
    assert!(!close.is_empty() && close.iter().all(|(q, _)| q != after && *q != pii), "{close:?}");
    // A past query with neither question nor title has nothing to suggest but its SQL: never.
    assert!(close.iter().all(|(q, _)| !q.to_uppercase().starts_with("SELECT")), "{close:?}");

    let (status, body) =
        request(quarry.clone(), As::Role("analyst"), "GET", "/api/v1/suggestions?n=3", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["message"].as_str().unwrap_or_default().contains("after="), "{body}");
    let (status, _) = request(quarry, As::Nobody, "GET", "/api/v1/suggestions", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}
