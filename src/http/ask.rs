//! `POST /api/v1/ask`: a question in plain language -> SQL, rows, tables and evidence.
//! `POST /api/v1/ask/stream`: the same, as server-sent events: a `stage` event as each stage
//! starts (retrieving, generating, validating, running), then one `answer` or `error` event.
//! Both take `tables` to offer the model exactly the tables the analyst picked.

use std::convert::Infallible;

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::routing::post;
use axum::{Json, Router};
use futures_util::Stream;
use serde::{Deserialize, Serialize};

use super::auth::Caller;
use super::{blocking, ApiError, AppState, ErrorBody};
use crate::pipeline::{Answer, AskOptions, Stage};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AskRequest {
    question: String,
    /// Tables to offer the model instead of retrieval's choice.
    #[serde(default)]
    tables: Option<Vec<String>>,
}

impl AskRequest {
    fn options(&self) -> AskOptions {
        AskOptions { tables: self.tables.clone(), ..AskOptions::default() }
    }
}

pub fn router() -> Router<AppState> {
    Router::new().route("/ask", post(ask)).route("/ask/stream", post(ask_stream))
}

async fn ask(
    State(state): State<AppState>,
    Caller(principal): Caller,
    body: Result<Json<AskRequest>, JsonRejection>,
) -> Result<Json<Answer>, ApiError> {
    let Json(request) = body?;
    let quarry = state.quarry.clone();
    let answer = blocking(move || quarry.ask_with(&request.question, &principal, &request.options())).await?;
    Ok(Json(answer))
}

/// The body of an `error` event: the error response with its status code.
#[derive(Serialize)]
struct StreamedError {
    status: u16,
    #[serde(flatten)]
    body: ErrorBody,
}

fn event(name: &str, data: &impl Serialize) -> Event {
    Event::default().event(name).json_data(data).unwrap_or_else(|e| {
        tracing::error!("encoding a {name} event: {e}");
        Event::default().event("error").data(r#"{"status":500,"error":"internal","message":"the answer could not be encoded; see the server log"}"#)
    })
}

async fn ask_stream(
    State(state): State<AppState>,
    Caller(principal): Caller,
    body: Result<Json<AskRequest>, JsonRejection>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let Json(request) = body?;
    let (sender, receiver) = tokio::sync::mpsc::unbounded_channel::<Event>();
    let quarry = state.quarry.clone();
    tokio::task::spawn_blocking(move || {
        let stages = sender.clone();
        // A send fails only when the client has gone; the answer is still audited.
        let progress = move |stage: Stage| {
            let _ = stages.send(event("stage", &stage));
        };
        let last =
            match quarry.ask_with_progress(&request.question, &principal, &request.options(), &progress) {
                Ok(answer) => event("answer", &answer),
                Err(e) => {
                    let (status, body) = ApiError::from(e).status_and_body();
                    event("error", &StreamedError { status: status.as_u16(), body })
                }
            };
        let _ = sender.send(last);
    });
    let events = futures_util::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|event| (Ok(event), receiver))
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}
