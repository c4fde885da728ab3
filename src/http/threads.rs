//! `GET /api/v1/threads`: the caller's conversation threads, most recent first;
//! `GET /api/v1/threads/{id}`: one of them with its turns; `POST /api/v1/threads/{id}/choose`:
//! answer its last turn with another reading its answer offered. A follow-up is asked with
//! `POST /api/v1/ask` and the thread's id.

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Caller;
use super::{blocking, ApiError, AppState, ErrorBody};
use crate::metadata::{StoredThread, ThreadSummary};
use crate::pipeline::Answer;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(threads)).routes(routes!(thread)).routes(routes!(choose))
}

#[derive(Serialize, utoipa::ToSchema)]
struct Threads {
    threads: Vec<ThreadSummary>,
}

/// Your conversation threads still kept (`[threads] keep_days` after their last turn), most
/// recent first: each with its first question and number of turns.
#[utoipa::path(
    get,
    path = "/threads",
    tag = "ask",
    responses(
        (status = 200, description = "Your threads, most recent first", body = Threads),
        (status = 401, description = "No valid API key", body = ErrorBody),
        (status = 403, description = "The role may not ask", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
async fn threads(
    State(state): State<AppState>,
    Caller(principal): Caller,
) -> Result<Json<Threads>, ApiError> {
    let quarry = state.quarry.clone();
    let threads = blocking(move || quarry.threads(&principal)).await?;
    Ok(Json(Threads { threads }))
}

/// One of your threads, with each turn's question, SQL and tables, oldest first.
#[utoipa::path(
    get,
    path = "/threads/{id}",
    tag = "ask",
    params(("id" = String, Path, description = "The thread's id (`thread.id` of an answer)")),
    responses(
        (status = 200, description = "The thread and its turns", body = StoredThread),
        (status = 401, description = "No valid API key", body = ErrorBody),
        (status = 403, description = "The role may not ask", body = ErrorBody),
        (status = 404, description = "No such thread of yours, or it expired", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
async fn thread(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path(id): Path<String>,
) -> Result<Json<StoredThread>, ApiError> {
    let quarry = state.quarry.clone();
    let thread = blocking(move || quarry.thread(&id, &principal)).await?;
    Ok(Json(thread))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct ChooseRequest {
    /// The turn whose answer offered the readings: the thread's last turn.
    turn: u32,
    /// Which reading, counted from 0 (its place in the answer's `choices`).
    choice: usize,
}

/// Answer the last turn of one of your threads with another reading its answer offered.
///
/// When an answer's candidates disagreed it offers `choices`; this answers the turn with the
/// one you mean — validated and run for you now, as any SQL is — and a follow-up then builds
/// on it. The answer lists the readings again with this one `shown`.
#[utoipa::path(
    post,
    path = "/threads/{id}/choose",
    tag = "ask",
    params(("id" = String, Path, description = "The thread's id (`thread.id` of the answer)")),
    request_body = ChooseRequest,
    responses(
        (status = 200, description = "The turn answered with the chosen reading", body = Answer),
        (status = 400, description = "Not the thread's last turn, or no such reading", body = ErrorBody),
        (status = 401, description = "No valid API key", body = ErrorBody),
        (status = 403, description = "The role may not ask", body = ErrorBody),
        (status = 404, description = "No such thread of yours, or it expired", body = ErrorBody),
        (status = 422, description = "The reading is refused for you now, or failed on the warehouse", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
async fn choose(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path(id): Path<String>,
    body: Result<Json<ChooseRequest>, JsonRejection>,
) -> Result<Json<Answer>, ApiError> {
    let Json(request) = body?;
    let quarry = state.quarry.clone();
    let answer = blocking(move || quarry.choose(&id, request.turn, request.choice, &principal)).await?;
    Ok(Json(answer))
}
