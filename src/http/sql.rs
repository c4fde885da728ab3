//! `POST /api/v1/sql`: SQL from a user or tool -> validated, run under governance, rows.

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;

use super::auth::Caller;
use super::{blocking, ApiError, AppState, CancelOnDrop};
use crate::pipeline::SqlAnswer;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SqlRequest {
    sql: String,
}

pub fn router() -> Router<AppState> {
    Router::new().route("/sql", post(run_sql))
}

async fn run_sql(
    State(state): State<AppState>,
    Caller(principal): Caller,
    body: Result<Json<SqlRequest>, JsonRejection>,
) -> Result<Json<SqlAnswer>, ApiError> {
    let Json(request) = body?;
    let quarry = state.quarry.clone();
    let guard = CancelOnDrop::new();
    let cancel = guard.token();
    let answer = blocking(move || quarry.run_sql_with(&request.sql, &principal, &cancel)).await?;
    drop(guard);
    Ok(Json(answer))
}
