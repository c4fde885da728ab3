//! Admission to the model under load: asks beyond the model's slots wait in line and are told
//! their place; a full line answers 429 with `Retry-After`; the waiting ask is served after.

use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

use quarry::llm::{ChatPrompt, Generation, GenerationParams, Llm, LlmError, ScriptedLlm};
use quarry::pipeline::{AskOptions, Principal, Quarry, Stage};

use crate::support::{api_key, private_workspace};

/// A scripted model that says when a generation starts and holds it until released.
struct Held {
    inner: ScriptedLlm,
    started: Mutex<Sender<()>>,
    release: Mutex<Receiver<()>>,
}

impl Llm for Held {
    fn model_id(&self) -> &str {
        "held"
    }

    fn generate(&self, prompt: &ChatPrompt, params: &GenerationParams) -> Result<Generation, LlmError> {
        let _ = self.started.lock().expect("started").send(());
        let released = self.release.lock().expect("release").recv_timeout(Duration::from_secs(60));
        released.map_err(|_| LlmError::Inference("the test never released the generation".into()))?;
        self.inner.generate(prompt, params)
    }
}

/// A 429's `Retry-After` seconds and its JSON body.
async fn too_many(response: axum::response::Response) -> (u64, Value) {
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("a Retry-After header in seconds");
    let bytes = response.into_body().collect().await.expect("body").to_bytes();
    (retry_after, serde_json::from_slice(&bytes).expect("json"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_line_is_answered_429_with_retry_after_and_the_waiting_ask_is_served() {
    let dir = private_workspace();
    let (started, generation_started) = channel();
    let (release, released) = channel();
    let llm = Arc::new(Held {
        inner: ScriptedLlm::new([
            ("orders per status", "SELECT status, COUNT(*) FROM orders GROUP BY status"),
            ("users per plan", "SELECT plan, COUNT(*) FROM users GROUP BY plan"),
        ]),
        started: Mutex::new(started),
        release: Mutex::new(released),
    });
    let mut config = crate::support::config_for(dir.path());
    config.governance = dir.path().join("schemas");
    config.llm_parallel = Some(1);
    config.llm_queue = 1;
    let quarry = Arc::new(Quarry::open(config, crate::support::embedder(), Some(llm)).expect("open"));

    // The first ask holds the model's one slot.
    let first = {
        let quarry = quarry.clone();
        std::thread::spawn(move || {
            quarry.ask_with("How many orders per status?", &Principal::local(), &AskOptions::default())
        })
    };
    generation_started.recv_timeout(Duration::from_secs(30)).expect("the first generation starts");

    // The second waits in line and is told it is next.
    let (stages, stage) = channel();
    let second = {
        let quarry = quarry.clone();
        std::thread::spawn(move || {
            let progress = move |s: Stage| drop(stages.send(s));
            quarry.ask_with_progress(
                "How many users per plan?",
                &Principal::local(),
                &AskOptions::default(),
                &progress,
            )
        })
    };
    loop {
        match stage.recv_timeout(Duration::from_secs(30)).expect("stages of the second ask") {
            Stage::Queued { place } => {
                assert_eq!(place, 1);
                break;
            }
            Stage::Generating { .. } => panic!("the second ask generated while the slot was held"),
            _ => {}
        }
    }

    // The third finds the line full: 429, with when to come back, in the header and the body.
    let request = Request::builder()
        .method("POST")
        .uri("/api/v1/ask")
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {}", api_key(&quarry, "analyst")))
        .body(Body::from(json!({ "question": "How many orders per status?" }).to_string()))
        .expect("request");
    let response = quarry::http::app(quarry.clone()).oneshot(request).await.expect("response");
    let (retry_after, body) = too_many(response).await;
    assert!(retry_after >= 1);
    assert_eq!((body["error"].as_str(), body["retry_after_s"].as_u64()), (Some("busy"), Some(retry_after)));
    assert!(body["message"].as_str().unwrap_or_default().contains("try again"), "{body}");

    // Released, both asks are answered, the waiting one after the first.
    release.send(()).expect("release the first");
    let first = first.join().expect("first thread").expect("the first ask is answered");
    assert_eq!(first.result.columns.len(), 2);
    generation_started.recv_timeout(Duration::from_secs(30)).expect("the second generation starts");
    release.send(()).expect("release the second");
    let second = second.join().expect("second thread").expect("the waiting ask is answered");
    assert!(second.sql.contains("plan"), "{}", second.sql);
}

#[tokio::test]
async fn a_key_over_its_asks_per_minute_is_answered_429_and_audited() {
    let dir = private_workspace();
    let mut config = crate::support::config_for(dir.path());
    config.governance = dir.path().join("schemas");
    config.asks_per_minute = 2;
    let llm = Arc::new(ScriptedLlm::new([(
        "orders per status",
        "SELECT status, COUNT(*) FROM orders GROUP BY status",
    )]));
    let quarry = Arc::new(Quarry::open(config, crate::support::embedder(), Some(llm)).expect("open"));
    let key = api_key(&quarry, "analyst");
    let app = quarry::http::app(quarry.clone());
    let ask = |path: &str| {
        Request::builder()
            .method("POST")
            .uri(path)
            .header("content-type", "application/json")
            .header("authorization", format!("Bearer {key}"))
            .body(Body::from(json!({ "question": "How many orders per status?" }).to_string()))
            .expect("request")
    };
    for path in ["/api/v1/ask", "/api/v1/ask/stream"] {
        let response = app.clone().oneshot(ask(path)).await.expect("response");
        assert_eq!(response.status(), StatusCode::OK, "{path}");
    }
    let response = app.clone().oneshot(ask("/api/v1/ask")).await.expect("response");
    let (retry_after, body) = too_many(response).await;
    assert!((1..=30).contains(&retry_after), "{retry_after}");
    assert_eq!(body["error"], "rate_limited", "{body}");

    // The MCP ask tool draws on the same allowance: a tool error saying when to come back.
    let frame = json!({ "jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": { "name": "ask", "arguments": { "question": "How many orders per status?" } } });
    let mcp = Request::post("http://localhost/mcp")
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("authorization", format!("Bearer {key}"))
        .body(Body::from(frame.to_string()))
        .expect("request");
    let response = app.clone().oneshot(mcp).await.expect("response");
    let bytes = http_body_util::BodyExt::collect(response.into_body()).await.expect("body").to_bytes();
    let reply: Value = serde_json::from_slice(&bytes).expect("JSON-RPC reply");
    assert_eq!(reply["result"]["isError"], true, "{reply}");
    assert_eq!(reply["result"]["structuredContent"]["error"], "rate_limited", "{reply}");
    assert!(reply["result"]["structuredContent"]["retry_after_s"].as_u64().is_some(), "{reply}");

    // Another key has a minute of its own.
    let (status, _) = crate::support::request(
        quarry.clone(),
        crate::support::As::Role("steward"),
        "POST",
        "/api/v1/ask",
        Some(json!({ "question": "How many orders per status?" })),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let turned_away: Vec<_> = quarry
        .audit_log(
            &Principal::new("auditor", "admin"),
            &quarry::metadata::AuditFilter { limit: 100, ..Default::default() },
        )
        .expect("audit log")
        .into_iter()
        .filter(|r| r.principal == "test-analyst" && r.outcome == "refused")
        .collect();
    assert_eq!(turned_away.len(), 2, "the 429 and the MCP refusal are audited once each");
    assert!(turned_away[0].detail.to_string().contains("asks_per_minute"), "{:?}", turned_away[0]);
}

/// With the real embedded model: while one question generates, the next finds the line full
/// (no place to wait) and is turned away at once; the first is answered.
#[test]
fn real_model_one_question_generates_and_the_next_is_turned_away_when_the_line_is_full() {
    let Some(_turn) = crate::support::real_model_turn() else { return };
    let dir = private_workspace();
    let mut config = crate::support::config_for(dir.path());
    config.governance = dir.path().join("schemas");
    config.llm_queue = 0;
    let llm = quarry::pipeline::load_default_llm(&config).expect("model assets: run `make assets`");
    let quarry = Arc::new(Quarry::open(config, crate::support::embedder(), Some(llm)).expect("open"));
    let (stages, stage) = channel();
    let first = {
        let quarry = quarry.clone();
        std::thread::spawn(move || {
            let progress = move |s: Stage| drop(stages.send(s));
            quarry.ask_with_progress(
                "How many users are there?",
                &Principal::local(),
                &AskOptions::default(),
                &progress,
            )
        })
    };
    while !matches!(stage.recv_timeout(Duration::from_secs(120)).expect("stages"), Stage::Generating { .. }) {
    }
    let error = quarry
        .ask_with(
            "How many distinct devices appear in user sessions?",
            &Principal::local(),
            &AskOptions::default(),
        )
        .expect_err("turned away while the model is busy");
    assert!(
        matches!(
            error,
            quarry::pipeline::AskError::Busy(quarry::admission::Refused::Full { waiting: 0, .. })
        ),
        "{error}"
    );
    let answer = first.join().expect("first thread").expect("the first question is answered");
    assert_eq!(answer.result.rows.len(), 1, "{}", answer.sql);
}

/// With the real embedded model: a question cancelled while the model writes its SQL stops
/// there (the model is told, not waited out); it is audited as failed, and the model answers
/// the next question as usual.
#[test]
fn real_model_a_question_cancelled_while_generating_stops_and_the_model_answers_the_next() {
    let Some(_turn) = crate::support::real_model_turn() else { return };
    let dir = private_workspace();
    let mut config = crate::support::config_for(dir.path());
    config.governance = dir.path().join("schemas");
    let llm = quarry::pipeline::load_default_llm(&config).expect("model assets: run `make assets`");
    let quarry = Arc::new(Quarry::open(config, crate::support::embedder(), Some(llm)).expect("open"));
    let cancel = quarry::warehouse::Cancel::new();
    let options = AskOptions { cancel: cancel.clone(), ..AskOptions::default() };
    let written = Mutex::new(String::new());
    // The client goes away once the model has written its first words.
    let progress = |stage: Stage| {
        if let Stage::Writing { text, .. } = stage {
            written.lock().unwrap_or_else(|p| p.into_inner()).push_str(&text);
            cancel.cancel();
        }
    };
    let question = "Which 5 countries had the most active users in October 2026?";
    let error = quarry
        .ask_with_progress(question, &Principal::local(), &options, &progress)
        .expect_err("a cancelled question has no answer");
    assert!(matches!(error, quarry::pipeline::AskError::Llm(quarry::llm::LlmError::Cancelled)), "{error}");
    let written = written.into_inner().unwrap_or_else(|p| p.into_inner());
    assert!(!written.is_empty() && !written.contains("LIMIT 5"), "stopped early, not at the end: {written}");
    let audited = quarry
        .audit_log(
            &Principal::new("auditor", "admin"),
            &quarry::metadata::AuditFilter { limit: 10, ..Default::default() },
        )
        .expect("audit log");
    assert!(
        audited.iter().any(|r| r.question.as_deref() == Some(question)
            && r.outcome == "failed"
            && r.detail.to_string().contains("cancelled")),
        "{audited:?}"
    );
    let answer = quarry
        .ask_with("How many users are there?", &Principal::local(), &AskOptions::default())
        .expect("the next question is answered");
    assert_eq!(answer.result.rows.len(), 1, "{}", answer.sql);
}

/// A scripted model that takes a while over each generation, as a real one does.
struct Slow(ScriptedLlm);

impl Llm for Slow {
    fn model_id(&self) -> &str {
        "slow"
    }

    fn generate(&self, prompt: &ChatPrompt, params: &GenerationParams) -> Result<Generation, LlmError> {
        std::thread::sleep(Duration::from_millis(150));
        self.0.generate(prompt, params)
    }
}

/// The load generator (`quarry bench ask-load`, `quarry bench sql`) against a real socket:
/// more clients than the model has slots and places in line get answers and 429s — which the
/// clients wait out as told — and nothing else; SQL under load is answered without errors.
#[test]
fn the_load_generator_meets_answers_and_429s_and_no_errors() {
    let dir = private_workspace();
    let mut config = crate::support::config_for(dir.path());
    config.governance = dir.path().join("schemas");
    config.llm_parallel = Some(1);
    config.llm_queue = 1;
    config.asks_per_minute = 0;
    let llm = Arc::new(Slow(ScriptedLlm::new([(
        "orders per status",
        "SELECT status, COUNT(*) FROM orders GROUP BY status",
    )])));
    let quarry = Arc::new(Quarry::open(config, crate::support::embedder(), Some(llm)).expect("open"));
    let key = api_key(&quarry, "analyst");
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    let app = quarry::http::app(quarry.clone());
    runtime.spawn(async move { axum::serve(listener, app).await });
    // Distinct questions, so that none is answered from the cache of identical questions.
    let questions = (0..400).map(|i| format!("How many orders per status, take {i}?")).collect();
    let options = |target| quarry::bench::LoadOptions {
        url: url.clone(),
        key: key.clone(),
        connections: 6,
        duration: Duration::from_secs(4),
        target,
        request_timeout: Duration::from_secs(30),
        server_pid: Some(std::process::id()),
    };
    let asked = quarry::bench::load(&options(quarry::bench::Target::Ask(questions))).expect("ask load");
    let turned_away = asked.errors.iter().find(|(status, _)| *status == 429).map_or(0, |(_, n)| *n);
    assert!(asked.ok >= 3, "answers came: {asked:?}");
    assert!(turned_away >= 1, "six clients for one slot and one place in line: {asked:?}");
    assert_eq!(asked.ok + turned_away, asked.requests, "only answers and 429s: {asked:?}");
    assert!(asked.ok_latency_ms_p50 >= 150.0, "an answer took a generation: {asked:?}");
    assert!(asked.server_peak_rss_mib.is_some_and(|m| m > 0), "{asked:?}");
    let sql =
        quarry::bench::Target::Sql(vec!["SELECT status, COUNT(*) AS n FROM orders GROUP BY status".into()]);
    let ran = quarry::bench::load(&options(sql)).expect("sql load");
    assert!(ran.ok >= 6 && ran.errors.is_empty(), "{ran:?}");
    assert_eq!(ran.endpoint, "/api/v1/sql");
    runtime.shutdown_background();
}
