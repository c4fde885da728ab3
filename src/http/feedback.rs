//! `POST /api/v1/feedback`: an analyst's 👍 or 👎 on an answer (`question`, `sql`, `verdict`,
//! optional `comment` and `corrected_sql`). A 👍 is a vote (a reviewer's verifies); a 👎
//! demotes a verified answer pending review.
//! `GET /api/v1/reviews?status=pending|verified|all`: what reviewers look at (the `verify`
//! action). `POST /api/v1/reviews` (`question`, `sql`, `decision`: verify or revoke, `comment`).

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::Json;
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Caller;
use super::{blocking, ApiError, AppState, ErrorBody};
use crate::history::verdict::Review;
use crate::pipeline::{Feedback, FeedbackOutcome, ReviewDecision, ReviewFilter};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(feedback)).routes(routes!(review, reviews))
}

/// An analyst's thumbs up or down on an answer. Up is a vote (a reviewer's verifies the query);
/// down demotes a verified answer pending review, with an optional corrected SQL.
#[utoipa::path(
    post,
    path = "/feedback",
    tag = "feedback",
    request_body = Feedback,
    responses(
        (status = 200, description = "What the feedback changed", body = FeedbackOutcome),
        (status = 400, description = "Not the JSON expected", body = ErrorBody),
        (status = 401, description = "No valid API key", body = ErrorBody),
        (status = 403, description = "The role may not give feedback", body = ErrorBody),
        (status = 422, description = "The corrected SQL was refused by the validator", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
async fn feedback(
    State(state): State<AppState>,
    Caller(principal): Caller,
    body: Result<Json<Feedback>, JsonRejection>,
) -> Result<Json<FeedbackOutcome>, ApiError> {
    let Json(feedback) = body?;
    let quarry = state.quarry.clone();
    Ok(Json(blocking(move || quarry.feedback(&principal, &feedback)).await?))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ReviewsParams {
    /// `pending` (the default), `verified` or `all`.
    #[param(inline)]
    #[serde(default)]
    status: ReviewFilter,
    /// Only answers whose SQL reads this table (the table page lists its verified queries).
    #[serde(default)]
    table: Option<String>,
}

/// What reviewers look at: answers voted for or objected to, pending or verified.
#[utoipa::path(
    get,
    path = "/reviews",
    tag = "feedback",
    params(ReviewsParams),
    responses(
        (status = 200, description = "The answers under review", body = Vec<Review>),
        (status = 400, description = "An unknown parameter or status", body = ErrorBody),
        (status = 401, description = "No valid API key", body = ErrorBody),
        (status = 403, description = "The role may not verify", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
async fn reviews(
    State(state): State<AppState>,
    Caller(principal): Caller,
    params: Result<Query<ReviewsParams>, QueryRejection>,
) -> Result<Json<Vec<Review>>, ApiError> {
    let Query(params) = params.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let quarry = state.quarry.clone();
    Ok(Json(blocking(move || quarry.reviews(&principal, params.status, params.table.as_deref())).await?))
}

/// A reviewer verifies a past answer (it becomes an example and may be reused) or revokes it.
#[utoipa::path(
    post,
    path = "/reviews",
    tag = "feedback",
    request_body = ReviewDecision,
    responses(
        (status = 200, description = "What the feedback changed", body = FeedbackOutcome),
        (status = 400, description = "Not the JSON expected", body = ErrorBody),
        (status = 401, description = "No valid API key", body = ErrorBody),
        (status = 403, description = "The role may not verify", body = ErrorBody),
        (status = 422, description = "The SQL was refused by the validator", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
async fn review(
    State(state): State<AppState>,
    Caller(principal): Caller,
    body: Result<Json<ReviewDecision>, JsonRejection>,
) -> Result<Json<FeedbackOutcome>, ApiError> {
    let Json(decision) = body?;
    let quarry = state.quarry.clone();
    Ok(Json(blocking(move || quarry.review(&principal, &decision)).await?))
}
