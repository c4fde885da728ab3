//! `GET /api/v1/audit`: the audit log for admins (read_audit), filtered by principal, kind and
//! time range, newest first.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::auth::Caller;
use super::{blocking, ApiError, AppState};
use crate::metadata::{AuditFilter, AuditKind, StoredAudit};

pub fn router() -> Router<AppState> {
    Router::new().route("/audit", get(audit))
}

/// Most records one request returns.
const MAX_LIMIT: usize = 10_000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditParams {
    principal: Option<String>,
    kind: Option<String>,
    since: Option<String>,
    until: Option<String>,
    limit: Option<usize>,
}

#[derive(Serialize)]
struct Records {
    records: Vec<StoredAudit>,
}

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
