//! The OpenAI-compatible model backend (`[llm] url`): what goes over the wire and how replies
//! and failures come back (against a scripted server), and a question answered through a real
//! `llama-server` with the real model.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::StatusCode;
use axum::routing::post;
use axum::Json;
use quarry::llm::{ChatPrompt, GenerationParams, Llm, LlmError, OpenAiLlm, Turn};
use quarry::pipeline::{load_default_llm, AskOptions, Principal, Quarry};
use quarry::warehouse::Cancel;
use serde_json::{json, Value};

use crate::support::{config_for, embedder, real_model_turn, shared_workspace};

/// A server on a free local port answering every chat request with `reply`; the requests it
/// got are kept.
fn scripted_server(status: u16, reply: Value) -> (String, Arc<Mutex<Vec<Value>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let url = format!("http://{}/v1", listener.local_addr().expect("address"));
    let requests = seen.clone();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        runtime.block_on(async move {
            let app = axum::Router::new().route(
                "/v1/chat/completions",
                post(move |Json(body): Json<Value>| {
                    requests.lock().expect("lock").push(body);
                    let reply = reply.clone();
                    async move { (StatusCode::from_u16(status).expect("status"), Json(reply)) }
                }),
            );
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            axum::serve(listener, app).await.expect("serve");
        });
    });
    (url, seen)
}

fn chat() -> ChatPrompt {
    ChatPrompt {
        system: "You write SQLite.".into(),
        user: "How many users?".into(),
        turns: vec![Turn { assistant: "SELECT nope".into(), user: "no such column: nope".into() }],
        assistant_prefix: "```sql\n".into(),
    }
}

#[test]
fn the_server_gets_the_whole_chat_and_its_reply_is_read_up_to_the_stop() {
    let reply = json!({
        "choices": [{"message": {"role": "assistant", "content": "SELECT COUNT(*) FROM users\n```\nDone."}}],
        "usage": {"prompt_tokens": 42, "completion_tokens": 9},
    });
    let (url, seen) = scripted_server(200, reply);
    let llm = OpenAiLlm::new(&url, "qwen-test", None, Duration::from_secs(10));
    let params = GenerationParams::greedy(128, "```").sampled(0.7, 3);
    let generation = llm.generate(&chat(), &params).expect("generation");
    assert_eq!(generation.text, "SELECT COUNT(*) FROM users\n");
    assert_eq!((generation.prompt_tokens, generation.completion_tokens), (42, 9));

    let request = seen.lock().expect("lock")[0].clone();
    let roles: Vec<&str> = request["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["role"].as_str().unwrap_or(""))
        .collect();
    // The repair turn is kept, and the answer's beginning goes last for the server to continue.
    assert_eq!(roles, ["system", "user", "assistant", "user", "assistant"]);
    assert_eq!(request["messages"][4]["content"], "```sql\n");
    assert_eq!(request["messages"][3]["content"], "no such column: nope");
    assert_eq!(request["model"], "qwen-test");
    assert_eq!((request["max_tokens"].as_u64(), request["seed"].as_u64()), (Some(128), Some(3)));
    assert!((request["temperature"].as_f64().unwrap_or(0.0) - 0.7).abs() < 1e-6);
    assert_eq!(request["stop"], json!(["```"]));
}

#[test]
fn server_failures_are_errors_that_name_the_server_and_the_fix() {
    let (url, _) = scripted_server(500, json!({"error": {"message": "model 'x' not loaded"}}));
    let llm = OpenAiLlm::new(&url, "x", None, Duration::from_secs(10));
    let error = llm.generate(&chat(), &GenerationParams::greedy(16, "```")).expect_err("a 500 is an error");
    let text = error.to_string();
    assert!(matches!(error, LlmError::Server { .. }), "{text}");
    assert!(
        text.contains("HTTP 500") && text.contains("model 'x' not loaded") && text.contains(&url),
        "{text}"
    );
    assert!(text.contains("[llm] url"), "the fix is named: {text}");

    // A reply without choices is not an answer.
    let (url, _) = scripted_server(200, json!({"object": "chat.completion"}));
    let llm = OpenAiLlm::new(&url, "x", None, Duration::from_secs(10));
    let text =
        llm.generate(&chat(), &GenerationParams::greedy(16, "```")).expect_err("no choices").to_string();
    assert!(text.contains("no choices[0].message.content"), "{text}");

    // Nobody listening.
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let url = format!("http://127.0.0.1:{port}/v1");
    let llm = OpenAiLlm::new(&url, "x", None, Duration::from_secs(5));
    let text = llm.generate(&chat(), &GenerationParams::greedy(16, "```")).expect_err("refused").to_string();
    assert!(text.contains(&url), "{text}");
}

/// A demo question answered through a real llama.cpp `llama-server` serving the real model,
/// with three voting candidates, the first streamed. `.ci/run` builds the server (scripts/build-llama-server.sh)
/// and points `QUARRY_LLAMA_SERVER` at it.
#[test]
fn a_question_through_a_real_llama_server() {
    let Some(_turn) = real_model_turn() else { return };
    let Some(binary) = std::env::var_os("QUARRY_LLAMA_SERVER") else {
        panic!("QUARRY_LLAMA_SERVER is not set: run scripts/build-llama-server.sh and set it to the binary it prints");
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = config_for(shared_workspace());
    config.workspace = dir.path().to_path_buf();
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let mut server = std::process::Command::new(binary)
        .args(["-m", &config.model.to_string_lossy(), "--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["-c", "4096", "--parallel", "1", "-t", &config.threads.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start llama-server");
    struct Stop<'a>(&'a mut std::process::Child);
    impl Drop for Stop<'_> {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _stop = Stop(&mut server);
    let health = format!("http://127.0.0.1:{port}/health");
    let ready = (0..120).any(|_| {
        std::thread::sleep(Duration::from_millis(500));
        ureq::get(&health).call().is_ok_and(|r| r.status() == 200)
    });
    assert!(ready, "llama-server did not become healthy in 60 s");

    config.llm_url = Some(format!("http://127.0.0.1:{port}/v1"));
    let llm = load_default_llm(&config).expect("server client");
    assert_eq!(llm.model_id(), quarry::config::DEFAULT_MODEL.trim_end_matches(".gguf"));
    let quarry = Quarry::open(config, embedder(), Some(llm)).expect("open");
    let options = AskOptions { samples: Some(3), ..AskOptions::default() };
    // The greedy candidate's SQL streams in as the server writes it.
    let written = Mutex::new(Vec::new());
    let progress = |stage: quarry::pipeline::Stage| {
        if let quarry::pipeline::Stage::Writing { text, .. } = stage {
            written.lock().expect("lock").push(text);
        }
    };
    let answer = quarry
        .ask_with_progress("How many users are there?", &Principal::local(), &options, &progress)
        .expect("answer");
    let written = written.into_inner().expect("pieces");
    assert!(written.len() >= 2, "the SQL came in pieces: {written:?}");
    assert!(written.concat().to_lowercase().contains("from users"), "{written:?}");
    assert_eq!(answer.result.rows.len(), 1, "{}", answer.sql);
    assert!(answer.sql.to_lowercase().contains("from users"), "{}", answer.sql);
    let votes = answer.votes.expect("three candidates vote");
    assert_eq!(votes.generated, 3);
    assert!(votes.ran >= 1 && votes.agreeing >= 1 && votes.agreeing <= votes.ran, "{votes:?}");
    assert!(answer.timings.prompt_tokens > 0 && answer.timings.completion_tokens > 0);
}

/// A server on a free local port answering every chat request with `events` as server-sent
/// events (each a `data:` line), the way OpenAI-compatible servers stream.
fn streaming_server(events: Vec<Value>) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let url = format!("http://{}/v1", listener.local_addr().expect("address"));
    let mut body: String = events.iter().map(|e| format!("data: {e}\n\n")).collect();
    body.push_str("data: [DONE]\n\n");
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        runtime.block_on(async move {
            let app = axum::Router::new().route(
                "/v1/chat/completions",
                post(move |Json(request): Json<Value>| {
                    let body = body.clone();
                    async move {
                        assert_eq!(request["stream"], json!(true), "the first candidate is streamed");
                        ([(axum::http::header::CONTENT_TYPE, "text/event-stream")], body)
                    }
                }),
            );
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            axum::serve(listener, app).await.expect("serve");
        });
    });
    url
}

#[test]
fn a_streamed_reply_is_handed_over_piece_by_piece_up_to_the_stop() {
    let delta = |text: &str| json!({"choices": [{"delta": {"content": text}}]});
    let url = streaming_server(vec![
        json!({"choices": [{"delta": {"role": "assistant", "content": ""}}]}),
        delta("SELECT COUNT(*)"),
        delta(" FROM users"),
        delta("\n``"),
        delta("`\nDone."),
        json!({"choices": [], "usage": {"prompt_tokens": 42, "completion_tokens": 9}, "timings": {"prompt_ms": 12.5}}),
    ]);
    let llm = OpenAiLlm::new(&url, "qwen-test", None, Duration::from_secs(10));
    let pieces = Mutex::new(Vec::new());
    let partial = |piece: &str| pieces.lock().expect("lock").push(piece.to_string());
    let generations = llm
        .generate_batch_streaming(&chat(), &[GenerationParams::greedy(128, "```")], &partial, &Cancel::new())
        .expect("generation");
    assert_eq!(generations[0].text, "SELECT COUNT(*) FROM users\n");
    assert_eq!((generations[0].prompt_tokens, generations[0].completion_tokens), (42, 9));
    assert_eq!(generations[0].prefill_ms, 12);
    let pieces = pieces.into_inner().expect("pieces");
    assert!(pieces.len() >= 2, "handed over as it came: {pieces:?}");
    assert_eq!(pieces.concat(), generations[0].text, "no stop string and nothing after it: {pieces:?}");
}

#[test]
fn a_cancelled_question_closes_the_stream_at_the_next_piece() {
    let delta = |text: &str| json!({"choices": [{"delta": {"content": text}}]});
    let url = streaming_server(vec![delta("SELECT COUNT(*)"), delta(" FROM users"), delta(" WHERE 1 = 1")]);
    let llm = OpenAiLlm::new(&url, "qwen-test", None, Duration::from_secs(10));
    let cancel = Cancel::new();
    let pieces = Mutex::new(Vec::new());
    // The client goes away once the first words are shown.
    let partial = |piece: &str| {
        pieces.lock().expect("lock").push(piece.to_string());
        cancel.cancel();
    };
    let error = llm
        .generate_batch_streaming(&chat(), &[GenerationParams::greedy(128, "```")], &partial, &cancel)
        .expect_err("cancelled");
    assert!(matches!(error, LlmError::Cancelled), "{error}");
    let pieces = pieces.into_inner().expect("pieces");
    assert_eq!(pieces.len(), 1, "nothing handed over after the cancel: {pieces:?}");
    assert!("SELECT COUNT(*)".starts_with(pieces[0].as_str()), "{pieces:?}");
}
