//! `GET /api/v1/me`: who the API key belongs to and what their role may do; the web page shows
//! only those controls (the server checks every request anyway).

use axum::extract::State;
use axum::Json;
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Caller;
use super::{ApiError, AppState, ErrorBody};
use crate::pipeline::CatalogRequestError;
use crate::policy::Action;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(me))
}

#[derive(Serialize, utoipa::ToSchema)]
struct Me {
    name: String,
    role: String,
    actions: Vec<Action>,
}

/// Who the API key belongs to and what their role may do.
#[utoipa::path(
    get,
    path = "/me",
    tag = "me",
    responses(
        (status = 200, description = "The caller and their actions", body = Me),
        (status = 401, description = "No valid API key", body = ErrorBody),
        (status = 403, description = "The key's role is not in the policy", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
async fn me(State(state): State<AppState>, Caller(principal): Caller) -> Result<Json<Me>, ApiError> {
    let policy = state.quarry.policy_of(&principal).map_err(CatalogRequestError::from)?;
    Ok(Json(Me { name: principal.name, role: principal.role, actions: policy.actions().collect() }))
}
