//! `POST /api/v1/feedback`: an analyst's 👍 or 👎 on an answer (`question`, `sql`, `verdict`,
//! optional `comment` and `corrected_sql`). A 👍 adds the query to the history as verified.

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};

use super::auth::Caller;
use super::{blocking, ApiError, AppState};
use crate::pipeline::{Feedback, FeedbackOutcome};

pub fn router() -> Router<AppState> {
    Router::new().route("/feedback", post(feedback))
}

async fn feedback(
    State(state): State<AppState>,
    Caller(principal): Caller,
    body: Result<Json<Feedback>, JsonRejection>,
) -> Result<Json<FeedbackOutcome>, ApiError> {
    let Json(feedback) = body?;
    let quarry = state.quarry.clone();
    Ok(Json(blocking(move || quarry.feedback(&principal, &feedback)).await?))
}
