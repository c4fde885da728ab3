//! `GET /metrics`: the server's counters in the Prometheus text format (OpenMetrics), and the
//! layer that counts every request by its declared route and status. Open like `/healthz`:
//! it holds counts and durations, never a question, a query or a value.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(metrics))
}

/// The server's counters for Prometheus (OpenMetrics text). No API key needed.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    responses((status = 200, description = "OpenMetrics text", content_type = "application/openmetrics-text", body = String))
)]
async fn metrics(State(state): State<AppState>) -> Response {
    ([(CONTENT_TYPE, crate::pipeline::metrics::CONTENT_TYPE)], state.quarry.metrics_text()).into_response()
}

/// Counts the request under its route as declared (`/api/v1/catalog/tables/{name}`), so that
/// table names in paths never become labels.
pub async fn count(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().to_string();
    let route = request.extensions().get::<MatchedPath>().map_or("unmatched", |p| p.as_str()).to_string();
    let response = next.run(request).await;
    let (status, elapsed) = (response.status().as_u16(), started.elapsed());
    tracing::info!(method, route, status, ms = elapsed.as_millis() as u64, "http");
    state.quarry.metrics().record_request(&method, &route, status, elapsed);
    response
}
