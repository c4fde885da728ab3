//! `GET /api/v1/search/tables?q=` and `GET /api/v1/search/queries?q=`: what retrieval finds for
//! a question (tables with evidence; past queries the caller may run), for people and tools.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::auth::Caller;
use super::{blocking, ApiError, AppState};
use crate::retrieve::{Example, TableCandidate};

pub fn router() -> Router<AppState> {
    Router::new().route("/search/tables", get(tables)).route("/search/queries", get(queries))
}

/// Most results one search returns.
const MAX_LIMIT: usize = 50;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SearchParams {
    q: String,
    limit: Option<usize>,
}

fn params(params: Result<Query<SearchParams>, QueryRejection>) -> Result<(String, usize), ApiError> {
    let Query(params) = params
        .map_err(|e| ApiError::BadRequest(format!("{}; e.g. ?q=weekly+revenue&limit=5", e.body_text())))?;
    Ok((params.q, params.limit.unwrap_or(5).clamp(1, MAX_LIMIT)))
}

#[derive(Serialize)]
struct Tables {
    tables: Vec<TableCandidate>,
}

async fn tables(
    State(state): State<AppState>,
    Caller(principal): Caller,
    query: Result<Query<SearchParams>, QueryRejection>,
) -> Result<Json<Tables>, ApiError> {
    let (q, limit) = params(query)?;
    let quarry = state.quarry.clone();
    Ok(Json(Tables { tables: blocking(move || quarry.search_tables(&principal, &q, limit)).await? }))
}

#[derive(Serialize)]
struct Queries {
    queries: Vec<Example>,
}

async fn queries(
    State(state): State<AppState>,
    Caller(principal): Caller,
    query: Result<Query<SearchParams>, QueryRejection>,
) -> Result<Json<Queries>, ApiError> {
    let (q, limit) = params(query)?;
    let quarry = state.quarry.clone();
    Ok(Json(Queries { queries: blocking(move || quarry.search_queries(&principal, &q, limit)).await? }))
}
