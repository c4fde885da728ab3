//! `GET /api/v1/search/tables?q=` and `GET /api/v1/search/queries?q=`: what retrieval finds for
//! a question (tables with evidence; past queries the caller may run), for people and tools;
//! `GET /api/v1/suggestions`: questions worth asking, from the history.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Caller;
use super::{blocking, ApiError, AppState, ErrorBody};
use crate::pipeline::Suggestion;
use crate::retrieve::{Example, TableCandidate};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(tables)).routes(routes!(queries)).routes(routes!(suggestions))
}

/// Most results one search returns.
const MAX_LIMIT: usize = 50;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct SearchParams {
    /// The question or words to search for.
    q: String,
    /// How many results (1 to 50, default 5).
    limit: Option<usize>,
}

fn params(params: Result<Query<SearchParams>, QueryRejection>) -> Result<(String, usize), ApiError> {
    let Query(params) = params
        .map_err(|e| ApiError::BadRequest(format!("{}; e.g. ?q=weekly+revenue&limit=5", e.body_text())))?;
    Ok((params.q, params.limit.unwrap_or(5).clamp(1, MAX_LIMIT)))
}

#[derive(Serialize, utoipa::ToSchema)]
struct Tables {
    tables: Vec<TableCandidate>,
}

/// The tables retrieval finds for a question, trustworthy first, with the evidence for each.
#[utoipa::path(
    get,
    path = "/search/tables",
    tag = "search",
    params(SearchParams),
    responses(
        (status = 200, description = "The tables, best first", body = Tables),
        (status = 400, description = "A missing or unknown parameter", body = ErrorBody),
        (status = 401, description = "No valid API key", body = ErrorBody),
        (status = 403, description = "The role may not read the catalog", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
async fn tables(
    State(state): State<AppState>,
    Caller(principal): Caller,
    query: Result<Query<SearchParams>, QueryRejection>,
) -> Result<Json<Tables>, ApiError> {
    let (q, limit) = params(query)?;
    let quarry = state.quarry.clone();
    Ok(Json(Tables { tables: blocking(move || quarry.search_tables(&principal, &q, limit)).await? }))
}

#[derive(Serialize, utoipa::ToSchema)]
struct Queries {
    queries: Vec<Example>,
}

/// Past queries close to a question in intent, among those the caller may run.
#[utoipa::path(
    get,
    path = "/search/queries",
    tag = "search",
    params(SearchParams),
    responses(
        (status = 200, description = "The past queries, closest first", body = Queries),
        (status = 400, description = "A missing or unknown parameter", body = ErrorBody),
        (status = 401, description = "No valid API key", body = ErrorBody),
        (status = 403, description = "The role may not read the catalog", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
async fn queries(
    State(state): State<AppState>,
    Caller(principal): Caller,
    query: Result<Query<SearchParams>, QueryRejection>,
) -> Result<Json<Queries>, ApiError> {
    let (q, limit) = params(query)?;
    let quarry = state.quarry.clone();
    Ok(Json(Queries { queries: blocking(move || quarry.search_queries(&principal, &q, limit)).await? }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct SuggestionParams {
    /// The question just answered: suggest the past questions closest to it.
    after: Option<String>,
    /// How many suggestions (1 to 50, default 5).
    limit: Option<usize>,
}

#[derive(Serialize, utoipa::ToSchema)]
struct Suggestions {
    suggestions: Vec<Suggestion>,
}

/// Questions worth asking, among those whose SQL the caller may run: after an answer, the past
/// questions closest to it; otherwise the verified ones first, then the most asked.
#[utoipa::path(
    get,
    path = "/suggestions",
    tag = "search",
    params(SuggestionParams),
    responses(
        (status = 200, description = "The suggested questions, best first", body = Suggestions),
        (status = 400, description = "An unknown parameter", body = ErrorBody),
        (status = 401, description = "No valid API key", body = ErrorBody),
        (status = 403, description = "The role may not read the catalog", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
async fn suggestions(
    State(state): State<AppState>,
    Caller(principal): Caller,
    query: Result<Query<SuggestionParams>, QueryRejection>,
) -> Result<Json<Suggestions>, ApiError> {
    let Query(params) = query.map_err(|e| {
        ApiError::BadRequest(format!("{}; e.g. ?after=revenue+last+month&limit=5", e.body_text()))
    })?;
    let limit = params.limit.unwrap_or(5).clamp(1, MAX_LIMIT);
    let quarry = state.quarry.clone();
    let suggestions =
        blocking(move || quarry.suggestions(&principal, params.after.as_deref(), limit)).await?;
    Ok(Json(Suggestions { suggestions }))
}
