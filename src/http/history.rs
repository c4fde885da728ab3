//! `POST /api/v1/history`: add a query log to the history (ingest_history). The body is the
//! log itself: JSONL, or CSV with `content-type: text/csv`; `?llm_intents=true` has the loaded
//! model write the intent texts. The answer is the ingest report.

use axum::extract::rejection::QueryRejection;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::HeaderMap;
use axum::Json;
use serde::Deserialize;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouterExt};
use utoipa_axum::routes;

use super::auth::Caller;
use super::{blocking, ApiError, AppState, ErrorBody};
use crate::history::LogFormat;
use crate::ingest::IngestReport;

/// Largest log accepted in one request, in bytes; send bigger logs in parts (ingest is
/// idempotent) or use `quarry ingest history`.
const MAX_LOG_BYTES: usize = 16 * 1024 * 1024;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(ingest).layer(DefaultBodyLimit::max(MAX_LOG_BYTES)))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct IngestParams {
    /// Have the loaded model write the intent texts of the new queries (slow).
    llm_intents: Option<bool>,
}

/// Add a query log to the history: JSONL (one object per line: `sql`, `author`, `timestamp`, and
/// optionally `duration_ms`, `rows`, `success`, `title`, `question`, `verified`), or CSV with the
/// same columns and `content-type: text/csv`. Known entries are skipped; lines that cannot be
/// used are reported with the reason. Up to 16 MiB per request.
#[utoipa::path(
    post,
    path = "/history",
    tag = "history",
    params(IngestParams),
    request_body(content = String, content_type = "application/x-ndjson", description = "The log itself (JSONL, or CSV with content-type text/csv)"),
    responses(
        (status = 200, description = "What was added and what was skipped, with reasons", body = IngestReport),
        (status = 400, description = "Not UTF-8 text, too large, or an unknown parameter", body = ErrorBody),
        (status = 401, description = "No valid API key", body = ErrorBody),
        (status = 403, description = "The role may not ingest history", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
async fn ingest(
    State(state): State<AppState>,
    Caller(principal): Caller,
    params: Result<Query<IngestParams>, QueryRejection>,
    headers: HeaderMap,
    body: Result<String, axum::extract::rejection::StringRejection>,
) -> Result<Json<IngestReport>, ApiError> {
    let Query(params) = params.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let text = body.map_err(|e| {
        if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::BadRequest(format!(
                "the log is over {MAX_LOG_BYTES} bytes; send it in parts or use `quarry ingest history`"
            ))
        } else {
            ApiError::BadRequest(format!("the body is not UTF-8 text: {}", e.body_text()))
        }
    })?;
    let csv =
        headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with("text/csv"));
    let format = if csv { LogFormat::Csv } else { LogFormat::Jsonl };
    let quarry = state.quarry.clone();
    let llm = params.llm_intents.unwrap_or(false);
    let report =
        blocking(move || quarry.ingest_history(&principal, &text, format, llm, &mut |_, _| {})).await?;
    Ok(Json(report))
}
