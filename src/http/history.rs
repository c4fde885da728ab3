//! `POST /api/v1/history`: add a query log to the history (ingest_history). The body is the
//! log itself: JSONL, or CSV with `content-type: text/csv`; `?llm_intents=true` has the loaded
//! model write the intent texts. The answer is the ingest report.

use axum::extract::rejection::QueryRejection;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::HeaderMap;
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;

use super::auth::Caller;
use super::{blocking, ApiError, AppState};
use crate::history::ingest::IngestReport;
use crate::history::LogFormat;

/// Largest log accepted in one request, in bytes; send bigger logs in parts (ingest is
/// idempotent) or use `quarry ingest history`.
const MAX_LOG_BYTES: usize = 16 * 1024 * 1024;

pub fn router() -> Router<AppState> {
    Router::new().route("/history", post(ingest).layer(DefaultBodyLimit::max(MAX_LOG_BYTES)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct IngestParams {
    llm_intents: Option<bool>,
}

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
