//! The HTTP surface: JSON under `/api/v1/...` (every route but the OpenAPI document needs an
//! API key, see `auth`), `/healthz`, `/metrics`, the MCP endpoint `/mcp` (also behind a key),
//! and the web pages at `/` and `/api`.
//!
//! Only this layer knows status codes and wire types. Each resource module exposes a
//! `router()`; they are merged here over one `AppState`, and every error becomes an `ApiError`.

mod ask;
mod audit;
mod auth;
mod catalog;
mod feedback;
mod health;
mod history;
pub mod mcp;
mod me;
mod metrics;
mod openapi;
mod rate;
mod search;
mod sql;
mod threads;

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use crate::admission::Refused;
use crate::keys::AuthError;
use crate::pipeline::{AccessError, AskError, CatalogRequestError, Quarry};
use crate::stewardship::FieldError;
use crate::validate::Violation;
use crate::warehouse::Cancel;

/// The state every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub quarry: Arc<Quarry>,
    /// Asks per API key (`[server] asks_per_minute`).
    asks: Arc<rate::RateLimiter>,
    /// The OpenAPI document of the routes, as served.
    openapi: Arc<str>,
}

/// Largest request body accepted, in bytes.
const MAX_BODY_BYTES: usize = 64 * 1024;

/// Every documented route, with the document they make.
fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .merge(health::router())
        .merge(metrics::router())
        .nest(
            "/api/v1",
            ask::router()
                .merge(sql::router())
                .merge(catalog::router())
                .merge(search::router())
                .merge(audit::router())
                .merge(history::router())
                .merge(feedback::router())
                .merge(me::router())
                .merge(threads::router())
                .merge(openapi::router()),
        )
}

/// The OpenAPI 3.1 document of the HTTP API (also served at `/api/v1/openapi.json`).
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    routes().split_for_parts().1
}

/// The whole application, ready to serve (or to call with `oneshot` in tests).
pub fn app(quarry: Arc<Quarry>) -> Router {
    let asks = Arc::new(rate::RateLimiter::new(quarry.config().asks_per_minute));
    let (router, document) = routes().split_for_parts();
    let openapi = document.to_pretty_json().unwrap_or_else(|e| {
        tracing::error!("encoding the OpenAPI document: {e}");
        "{}".into()
    });
    let state = AppState { quarry, asks, openapi: openapi.into() };
    // The web pages and the MCP endpoint are the only routes outside the document.
    router
        .route("/", get(index))
        .route("/api", get(openapi::page))
        .merge(mcp(state.clone()))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), metrics::count))
        .fallback(not_found)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// `/mcp`: the MCP server over Streamable HTTP, stateless (any instance can answer any
/// request). The API key is checked before the service sees the request (a 401 like every other
/// route's, audited); the tools read the principal it resolved to. The service's own Host
/// allow-list is off: it guards unauthenticated local servers against DNS rebinding, and every
/// request here needs a key a rebinding page cannot have.
fn mcp(state: AppState) -> Router<AppState> {
    use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
    use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
    let quarry = state.quarry.clone();
    let limits = state.clone();
    let ask_gate: mcp::AskGate = Arc::new(move |principal| {
        ask::within_rate(&limits, principal, "MCP tools/call ask").map_err(error_body)
    });
    let service = StreamableHttpService::new(
        move || Ok(mcp::QuarryMcp::over_http(quarry.clone(), ask_gate.clone())),
        Arc::new(NeverSessionManager::default()),
        StreamableHttpServerConfig::default()
            .with_legacy_session_mode(false)
            .with_json_response(true)
            .disable_allowed_hosts()
            .with_max_request_body_bytes(MAX_BODY_BYTES),
    );
    Router::new().nest_service("/mcp", service).layer(axum::middleware::from_fn_with_state(state, mcp_caller))
}

/// Resolves the API key of an MCP request to its principal, or answers 401.
async fn mcp_caller(
    axum::extract::State(state): axum::extract::State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    use axum::extract::FromRequestParts;
    let (mut parts, body) = request.into_parts();
    match auth::Caller::from_request_parts(&mut parts, &state).await {
        Ok(auth::Caller(principal)) => {
            parts.extensions.insert(principal);
            next.run(axum::extract::Request::from_parts(parts, body)).await
        }
        Err(error) => error.into_response(),
    }
}

/// An error as its HTTP response would carry it: the status and the error body (what an MCP
/// tool error holds).
pub(crate) fn error_body(error: impl Into<ApiError>) -> (u16, serde_json::Value) {
    let (status, body) = error.into().status_and_body();
    (status.as_u16(), serde_json::to_value(body).unwrap_or_default())
}

async fn index() -> Html<&'static str> {
    Html(include_str!("../../web/index.html"))
}

async fn not_found() -> ApiError {
    ApiError::NotFound
}

/// Body of every error response.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct ErrorBody {
    /// Stable machine-readable code (`bad_json`, `unauthorized`, `forbidden`, `refused`,
    /// `unanswerable`, `rate_limited`, `busy`, …).
    #[schema(value_type = String)]
    error: &'static str,
    /// What went wrong and how to fix it, for a person.
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    sql: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    violations: Vec<Violation>,
    /// Fields of the request that cannot be accepted, with the allowed values.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    fields: Vec<FieldError>,
    /// When to ask again, in seconds (also the `Retry-After` header).
    #[serde(skip_serializing_if = "Option::is_none")]
    retry_after_s: Option<u64>,
}

/// Every way a request can fail, as the client sees it.
#[derive(Debug)]
pub enum ApiError {
    /// The body is not the JSON this endpoint expects.
    BadJson(String),
    /// A field has a value the endpoint cannot use.
    BadRequest(String),
    /// The body is larger than the server accepts.
    TooLarge,
    /// No such route.
    NotFound,
    /// No valid API key.
    Unauthorized(AuthError),
    /// The key asked more than `[server] asks_per_minute`; the next ask is possible after this.
    RateLimited(std::time::Duration),
    /// The pipeline refused or could not answer.
    Ask(AskError),
    /// A catalog, search or audit request failed.
    Catalog(CatalogRequestError),
    /// A blocking task failed unexpectedly.
    Internal(String),
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::TooLarge
        } else {
            ApiError::BadJson(rejection.body_text())
        }
    }
}

impl From<AskError> for ApiError {
    fn from(e: AskError) -> Self {
        ApiError::Ask(e)
    }
}

impl From<CatalogRequestError> for ApiError {
    fn from(e: CatalogRequestError) -> Self {
        ApiError::Catalog(e)
    }
}

fn forbidden(e: AccessError) -> (StatusCode, ErrorBody) {
    let code = match e {
        AccessError::UnknownRole { .. } => "unknown_role",
        AccessError::NotAllowed { .. } => "forbidden",
    };
    (StatusCode::FORBIDDEN, body(code, e.to_string()))
}

fn body(error: &'static str, message: String) -> ErrorBody {
    ErrorBody { error, message, sql: None, violations: Vec::new(), fields: Vec::new(), retry_after_s: None }
}

fn internal(what: &str, e: &dyn std::fmt::Display) -> (StatusCode, ErrorBody) {
    tracing::error!("{what}: {e}");
    (StatusCode::INTERNAL_SERVER_ERROR, body("internal", format!("{what} failed; see the server log")))
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, body) = self.status_and_body();
        let retry_after = body.retry_after_s;
        let mut response = (status, Json(body)).into_response();
        if let Some(seconds) = retry_after {
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, seconds.into());
        }
        response
    }
}

impl ApiError {
    /// The status code and body this error is sent as (also inside an event stream).
    fn status_and_body(self) -> (StatusCode, ErrorBody) {
        match self {
            ApiError::BadJson(message) => (StatusCode::BAD_REQUEST, body("bad_json", message)),
            ApiError::BadRequest(message) => (StatusCode::BAD_REQUEST, body("bad_request", message)),
            ApiError::TooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                body("too_large", format!("the request body is over {MAX_BODY_BYTES} bytes; send less")),
            ),
            ApiError::NotFound => (
                StatusCode::NOT_FOUND,
                body(
                    "not_found",
                    "no such endpoint; every route is in /api/v1/openapi.json (readable at /api)".into(),
                ),
            ),
            ApiError::Unauthorized(e) => (StatusCode::UNAUTHORIZED, body("unauthorized", e.to_string())),
            ApiError::RateLimited(wait) => (
                StatusCode::TOO_MANY_REQUESTS,
                ErrorBody {
                    retry_after_s: Some(wait.as_secs().max(1)),
                    ..body(
                        "rate_limited",
                        format!(
                            "this API key asked more questions in the last minute than the server allows ([server] asks_per_minute); ask again in {} s",
                            wait.as_secs().max(1)
                        ),
                    )
                },
            ),
            ApiError::Catalog(e) => match e {
                CatalogRequestError::Forbidden(e) => forbidden(e),
                CatalogRequestError::NotFound(message) => (StatusCode::NOT_FOUND, body("not_found", message)),
                CatalogRequestError::Invalid(fields) => (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    ErrorBody {
                        fields,
                        ..body("invalid", "the request has fields that cannot be accepted; see fields".into())
                    },
                ),
                e @ CatalogRequestError::LiftsRestriction { .. } => {
                    (StatusCode::FORBIDDEN, body("lifts_restriction", e.to_string()))
                }
                CatalogRequestError::Metadata(e) => internal("the metadata database", &e),
                CatalogRequestError::Retrieve(e) => internal("retrieval", &e),
            },
            ApiError::Ask(e) => match e {
                AskError::InvalidQuestion(message) => {
                    (StatusCode::BAD_REQUEST, body("invalid_question", message))
                }
                AskError::UnknownThread(message) => (StatusCode::NOT_FOUND, body("unknown_thread", message)),
                AskError::Forbidden(e) => forbidden(e),
                AskError::Refused { sql, refusal } => (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    ErrorBody {
                        sql: Some(sql),
                        violations: refusal.violations,
                        ..body("refused", "the query was refused by the validator; see violations".into())
                    },
                ),
                // No violations in the body: their hints may list tables of the whole catalog.
                AskError::Unanswerable { sql, refusal, offered } => (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    ErrorBody {
                        sql: Some(sql),
                        ..body("unanswerable", crate::pipeline::unanswerable(&refusal, &offered))
                    },
                ),
                AskError::Execution { sql, source } => (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    ErrorBody {
                        sql: Some(sql),
                        ..body("execution_failed", source.to_string())
                    },
                ),
                AskError::Busy(e) => match e {
                    // A full line is the caller's to back off from (429); a wait past the
                    // deadline is the server's (503). Both say when to come back.
                    Refused::Full { retry_after, .. } | Refused::Deadline { retry_after, .. } => (
                        if matches!(e, Refused::Full { .. }) {
                            StatusCode::TOO_MANY_REQUESTS
                        } else {
                            StatusCode::SERVICE_UNAVAILABLE
                        },
                        ErrorBody {
                            retry_after_s: Some(retry_after.as_secs().max(1)),
                            ..body("busy", e.to_string())
                        },
                    ),
                    Refused::Cancelled => (StatusCode::SERVICE_UNAVAILABLE, body("cancelled", e.to_string())),
                },
                AskError::Llm(e @ crate::llm::LlmError::Cancelled) => {
                    (StatusCode::SERVICE_UNAVAILABLE, body("cancelled", e.to_string()))
                }
                AskError::Llm(e) => {
                    tracing::error!("llm: {e}");
                    (
                        StatusCode::SERVICE_UNAVAILABLE,
                        body(
                            "llm_unavailable",
                            "the language model could not answer; see the server log".into(),
                        ),
                    )
                }
                AskError::Retrieve(e) => {
                    tracing::error!("retrieve: {e}");
                    (
                        StatusCode::INTERNAL_SERVER_ERROR,
                        body("internal", "retrieval failed; see the server log".into()),
                    )
                }
                AskError::Audit(e) => {
                    tracing::error!("audit: {e}");
                    (
                        StatusCode::INTERNAL_SERVER_ERROR,
                        body("internal", "the audit log could not be written; see the server log".into()),
                    )
                }
            },
            ApiError::Internal(e) => {
                tracing::error!("internal: {e}");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    body("internal", "internal error; see the server log".into()),
                )
            }
        }
    }
}

/// Raises its `Cancel` when dropped. A handler holds one while its blocking work runs: when the
/// client goes away, axum drops the handler's future, and the query under way stops.
struct CancelOnDrop(Cancel);

impl CancelOnDrop {
    fn new() -> CancelOnDrop {
        CancelOnDrop(Cancel::new())
    }

    fn token(&self) -> Cancel {
        self.0.clone()
    }
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

/// Runs blocking pipeline work off the async threads.
async fn blocking<T: Send + 'static, E: Into<ApiError> + Send + 'static>(
    work: impl FnOnce() -> Result<T, E> + Send + 'static,
) -> Result<T, ApiError> {
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result.map_err(Into::into),
        Err(e) => Err(ApiError::Internal(e.to_string())),
    }
}
