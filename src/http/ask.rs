//! `POST /api/v1/ask`: a question in plain language -> SQL, rows, tables and evidence.
//! `POST /api/v1/ask/stream`: the same, as server-sent events: a `stage` event as each stage
//! starts (retrieving, generating, validating, running), `writing` stage events with the SQL
//! text as the model writes it, then one `answer` or `error` event.
//! Both take `tables` to offer the model exactly the tables the analyst picked, and `thread`
//! (with `after` to branch) to follow up in one of the caller's threads; every answer is a
//! turn of a thread (`answer.thread`).

use std::convert::Infallible;

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::Json;
use futures_util::Stream;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Caller;
use super::{blocking, ApiError, AppState, CancelOnDrop, ErrorBody};
use crate::pipeline::{Answer, AskOptions, Principal, Stage, ThreadChoice};
use crate::warehouse::Cancel;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct AskRequest {
    /// The question in plain language.
    #[schema(example = "How many orders were refunded in September 2026?")]
    question: String,
    /// Tables to offer the model instead of retrieval's choice (the analyst's picks: SQL reading
    /// any other table is refused back to the model).
    #[serde(default)]
    tables: Option<Vec<String>>,
    /// A follow-up in one of your threads (the `thread.id` of an earlier answer): the thread's
    /// earlier questions and SQL are the context. Without it the answer starts a new thread.
    #[serde(default)]
    #[schema(example = "t3f9a0c1d2e4b5a6978877665")]
    thread: Option<String>,
    /// Follow up after this turn of the thread instead of its last (a branch: the answer
    /// starts a new thread holding the turns up to it).
    #[serde(default)]
    after: Option<u32>,
    /// Candidates to generate and vote between (1 to 8; default `[llm] samples`). With more
    /// than one, an answer whose candidates disagree offers the leading readings as `choices`.
    #[serde(default)]
    #[schema(example = 5)]
    samples: Option<usize>,
}

impl AskRequest {
    fn options(&self, cancel: Cancel) -> Result<AskOptions, ApiError> {
        let thread = match (&self.thread, self.after) {
            (Some(id), after) => ThreadChoice::FollowUp { id: id.trim().to_string(), after },
            (None, None) => ThreadChoice::New,
            (None, Some(_)) => {
                return Err(ApiError::BadRequest(
                    "'after' names a turn of a thread: send it with 'thread'".into(),
                ))
            }
        };
        if let Some(samples) = self.samples.filter(|n| !(1..=MAX_SAMPLES).contains(n)) {
            return Err(ApiError::BadRequest(format!(
                "'samples' is {samples}: ask for 1 to {MAX_SAMPLES} candidates, or leave it out for the server's default"
            )));
        }
        Ok(AskOptions {
            tables: self.tables.clone(),
            cancel,
            thread: Some(thread),
            samples: self.samples,
            ..AskOptions::default()
        })
    }
}

/// Most candidates one ask may ask for.
const MAX_SAMPLES: usize = 8;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(ask)).routes(routes!(ask_stream))
}

/// Ask a question in plain language.
///
/// The answer carries the SQL that ran (validated under the caller's policy), the rows, the tables
/// with the evidence for each, the confidence with its reasons, and the time per stage.
#[utoipa::path(
    post,
    path = "/ask",
    tag = "ask",
    request_body = AskRequest,
    responses(
        (status = 200, description = "The answer", body = Answer),
        (status = 400, description = "Not the JSON expected, or an empty or huge question", body = ErrorBody),
        (status = 401, description = "No valid API key", body = ErrorBody),
        (status = 403, description = "The role may not ask", body = ErrorBody),
        (status = 422, description = "Refused by the validator, unanswerable from the readable tables, or failed on the warehouse", body = ErrorBody),
        (status = 429, description = "Over the key's rate limit or the model's line is full (see Retry-After)", body = ErrorBody),
        (status = 503, description = "Waited too long for the model, or the model is unavailable", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
async fn ask(
    State(state): State<AppState>,
    Caller(principal): Caller,
    body: Result<Json<AskRequest>, JsonRejection>,
) -> Result<Json<Answer>, ApiError> {
    let Json(request) = body?;
    within_rate(&state, &principal, "POST /api/v1/ask")?;
    let quarry = state.quarry.clone();
    let guard = CancelOnDrop::new();
    let options = request.options(guard.token())?;
    let answer = blocking(move || quarry.ask_with(&request.question, &principal, &options)).await?;
    drop(guard);
    Ok(Json(answer))
}

/// The caller's ask taken from its rate limit, or a 429 (audited) saying when to come back.
pub(super) fn within_rate(state: &AppState, principal: &Principal, request: &str) -> Result<(), ApiError> {
    state.asks.take(&principal.name, std::time::Instant::now()).map_err(|wait| {
        let error = ApiError::RateLimited(wait);
        state.quarry.audit_turned_away(principal, request, "over [server] asks_per_minute");
        error
    })
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

/// Ask a question, answered as server-sent events.
///
/// A `stage` event as each stage starts (`retrieving`, `queued`, `generating`, `writing` with the
/// SQL as the model writes it, `validating`, `running`), then one `answer` event (the body of
/// `POST /ask`) or one `error` event (an error body with its `status`).
#[utoipa::path(
    post,
    path = "/ask/stream",
    tag = "ask",
    request_body = AskRequest,
    responses(
        (status = 200, description = "Events: stage*, then answer or error", content_type = "text/event-stream", body = String),
        (status = 400, description = "Not the JSON expected", body = ErrorBody),
        (status = 401, description = "No valid API key", body = ErrorBody),
        (status = 429, description = "Over the key's rate limit (see Retry-After)", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
async fn ask_stream(
    State(state): State<AppState>,
    Caller(principal): Caller,
    body: Result<Json<AskRequest>, JsonRejection>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let Json(request) = body?;
    let options = request.options(Cancel::new())?;
    within_rate(&state, &principal, "POST /api/v1/ask/stream")?;
    // Each event with whether it is the last: the stream ends after the answer or error.
    let (sender, receiver) = tokio::sync::mpsc::unbounded_channel::<(Event, bool)>();
    let quarry = state.quarry.clone();
    // The stream's receiver goes when the client does: then the query under way stops.
    let cancel = Cancel::new();
    let (watched, watcher) = (sender.clone(), cancel.clone());
    tokio::spawn(async move {
        watched.closed().await;
        watcher.cancel();
    });
    let options = AskOptions { cancel, ..options };
    tokio::task::spawn_blocking(move || {
        let stages = sender.clone();
        // A send fails only when the client has gone; the answer is still audited.
        let progress = move |stage: Stage| {
            let _ = stages.send((event("stage", &stage), false));
        };
        let last = match quarry.ask_with_progress(&request.question, &principal, &options, &progress) {
            Ok(answer) => event("answer", &answer),
            Err(e) => {
                let (status, body) = ApiError::from(e).status_and_body();
                event("error", &StreamedError { status: status.as_u16(), body })
            }
        };
        let _ = sender.send((last, true));
    });
    let events = futures_util::stream::unfold((receiver, false), |(mut receiver, ended)| async move {
        if ended {
            return None;
        }
        receiver.recv().await.map(|(event, last)| (Ok(event), (receiver, last)))
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}
