//! `POST /api/v1/ask`: a question in plain language -> SQL, rows, tables and evidence.

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;

use super::auth::Caller;
use super::{blocking, ApiError, AppState};
use crate::pipeline::Answer;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AskRequest {
    question: String,
}

pub fn router() -> Router<AppState> {
    Router::new().route("/ask", post(ask))
}

async fn ask(
    State(state): State<AppState>,
    Caller(principal): Caller,
    body: Result<Json<AskRequest>, JsonRejection>,
) -> Result<Json<Answer>, ApiError> {
    let Json(request) = body?;
    let quarry = state.quarry.clone();
    let answer = blocking(move || quarry.ask(&request.question, &principal)).await?;
    Ok(Json(answer))
}
