//! `GET /api/v1/threads`: the caller's conversation threads, most recent first;
//! `GET /api/v1/threads/{id}`: one of them with its turns. A follow-up is asked with
//! `POST /api/v1/ask` and the thread's id.

use axum::extract::{Path, State};
use axum::Json;
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Caller;
use super::{blocking, ApiError, AppState, ErrorBody};
use crate::metadata::{StoredThread, ThreadSummary};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(threads)).routes(routes!(thread))
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
