//! `GET /api/v1/audit`: the audit log for admins (read_audit), filtered by principal, kind and
//! time range, newest first.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Caller;
use super::{blocking, ApiError, AppState, ErrorBody};
use crate::metadata::{AuditFilter, AuditKind, StoredAudit};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(audit))
}

/// Most records one request returns.
const MAX_LIMIT: usize = 10_000;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct AuditParams {
    /// Only this principal's requests.
    principal: Option<String>,
    /// `ask`, `sql` or `edit`.
    kind: Option<String>,
    /// From this time (RFC 3339, e.g. `2026-12-01T00:00:00Z`).
    since: Option<String>,
    /// Before this time (RFC 3339).
    until: Option<String>,
    /// How many records (default 100, at most 10,000).
    limit: Option<usize>,
}

#[derive(Serialize, utoipa::ToSchema)]
struct Records {
    records: Vec<StoredAudit>,
}

/// The audit log, newest first: every request with who made it, the SQL that ran, the outcome.
#[utoipa::path(
    get,
    path = "/audit",
    tag = "audit",
    params(AuditParams),
    responses(
        (status = 200, description = "The records, newest first", body = Records),
        (status = 400, description = "An unknown parameter or kind", body = ErrorBody),
        (status = 401, description = "No valid API key", body = ErrorBody),
        (status = 403, description = "The role may not read the audit log", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
async fn audit(
    State(state): State<AppState>,
    Caller(principal): Caller,
    params: Result<Query<AuditParams>, QueryRejection>,
) -> Result<Json<Records>, ApiError> {
    let Query(params) = params.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let kind =
        match params.kind.as_deref() {
            None => None,
            Some(text) => Some(AuditKind::parse(text).ok_or_else(|| {
                ApiError::BadRequest(format!("kind '{text}' is not one of: ask, sql, edit"))
            })?),
        };
    let filter = AuditFilter {
        principal: params.principal,
        kind,
        since: params.since,
        until: params.until,
        limit: params.limit.unwrap_or(100).clamp(1, MAX_LIMIT),
    };
    let quarry = state.quarry.clone();
    Ok(Json(Records { records: blocking(move || quarry.audit_log(&principal, &filter)).await? }))
}
