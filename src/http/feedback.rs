//! `POST /api/v1/feedback`: an analyst's 👍 or 👎 on an answer (`question`, `sql`, `verdict`,
//! optional `comment` and `corrected_sql`). A 👍 is a vote (a reviewer's verifies); a 👎
//! demotes a verified answer pending review.
//! `GET /api/v1/reviews?status=pending|verified|all`: what reviewers look at (the `verify`
//! action). `POST /api/v1/reviews` (`question`, `sql`, `decision`: verify or revoke, `comment`).

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;

use super::auth::Caller;
use super::{blocking, ApiError, AppState};
use crate::history::verdict::Review;
use crate::pipeline::{Feedback, FeedbackOutcome, ReviewDecision, ReviewFilter};

pub fn router() -> Router<AppState> {
    Router::new().route("/feedback", post(feedback)).route("/reviews", post(review).get(reviews))
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReviewsParams {
    #[serde(default)]
    status: ReviewFilter,
}

async fn reviews(
    State(state): State<AppState>,
    Caller(principal): Caller,
    params: Result<Query<ReviewsParams>, QueryRejection>,
) -> Result<Json<Vec<Review>>, ApiError> {
    let Query(params) = params.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let quarry = state.quarry.clone();
    Ok(Json(blocking(move || quarry.reviews(&principal, params.status)).await?))
}

async fn review(
    State(state): State<AppState>,
    Caller(principal): Caller,
    body: Result<Json<ReviewDecision>, JsonRejection>,
) -> Result<Json<FeedbackOutcome>, ApiError> {
    let Json(decision) = body?;
    let quarry = state.quarry.clone();
    Ok(Json(blocking(move || quarry.review(&principal, &decision)).await?))
}
