//! `POST /api/v1/sql`: SQL from a user or tool -> validated, run under governance, rows.

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Caller;
use super::{blocking, ApiError, AppState, CancelOnDrop, ErrorBody};
use crate::pipeline::SqlAnswer;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct SqlRequest {
    /// One SQL statement (SQLite dialect); it is validated under the caller's policy first.
    #[schema(example = "SELECT plan, COUNT(*) AS users FROM users GROUP BY plan")]
    sql: String,
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(run_sql))
}

/// Run SQL written by a person or a tool, validated and governed like a generated query.
#[utoipa::path(
    post,
    path = "/sql",
    tag = "sql",
    request_body = SqlRequest,
    responses(
        (status = 200, description = "The rows, with the SQL as run (masks, row filters, row cap applied)", body = SqlAnswer),
        (status = 400, description = "Not the JSON expected", body = ErrorBody),
        (status = 401, description = "No valid API key", body = ErrorBody),
        (status = 403, description = "The role may not run SQL", body = ErrorBody),
        (status = 422, description = "Refused by the validator (see violations) or failed on the warehouse", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
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
