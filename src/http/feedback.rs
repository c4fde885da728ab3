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
use crate::pipeline::{Decision, Feedback, FeedbackOutcome, ReviewDecision, ReviewFilter, Verdict};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(feedback)).routes(routes!(review, reviews))
}

/// An analyst's verdict on one answer, as sent.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(as = Feedback)]
#[serde(deny_unknown_fields)]
struct FeedbackBody {
    question: String,
    /// The SQL that answered (for a reused answer: the verified query's SQL).
    sql: String,
    verdict: Verdict,
    #[serde(default)]
    comment: Option<String>,
    /// What the SQL should have been (with `down`).
    #[serde(default)]
    corrected_sql: Option<String>,
}

impl From<FeedbackBody> for Feedback {
    fn from(b: FeedbackBody) -> Feedback {
        Feedback {
            question: b.question,
            sql: b.sql,
            verdict: b.verdict,
            comment: b.comment,
            corrected_sql: b.corrected_sql,
        }
    }
}

/// A reviewer's decision on a (question, SQL) pair, as sent.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(as = ReviewDecision)]
#[serde(deny_unknown_fields)]
struct ReviewBody {
    question: String,
    sql: String,
    decision: Decision,
    comment: String,
}

impl From<ReviewBody> for ReviewDecision {
    fn from(b: ReviewBody) -> ReviewDecision {
        ReviewDecision { question: b.question, sql: b.sql, decision: b.decision, comment: b.comment }
    }
}

/// An analyst's thumbs up or down on an answer. Up is a vote (a reviewer's verifies the query);
/// down demotes a verified answer pending review, with an optional corrected SQL.
#[utoipa::path(
    post,
    path = "/feedback",
    tag = "feedback",
    request_body = FeedbackBody,
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
    body: Result<Json<FeedbackBody>, JsonRejection>,
) -> Result<Json<FeedbackOutcome>, ApiError> {
    let Json(body) = body?;
    let feedback = Feedback::from(body);
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
    request_body = ReviewBody,
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
    body: Result<Json<ReviewBody>, JsonRejection>,
) -> Result<Json<FeedbackOutcome>, ApiError> {
    let Json(body) = body?;
    let decision = ReviewDecision::from(body);
    let quarry = state.quarry.clone();
    Ok(Json(blocking(move || quarry.review(&principal, &decision)).await?))
}
