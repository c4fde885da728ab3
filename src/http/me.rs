//! `GET /api/v1/me`: who the API key belongs to and what their role may do; the web page shows
//! only those controls (the server checks every request anyway).

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use super::auth::Caller;
use super::{ApiError, AppState};
use crate::pipeline::CatalogRequestError;
use crate::policy::Action;

pub fn router() -> Router<AppState> {
    Router::new().route("/me", get(me))
}

#[derive(Serialize)]
struct Me {
    name: String,
    role: String,
    actions: Vec<Action>,
}

async fn me(State(state): State<AppState>, Caller(principal): Caller) -> Result<Json<Me>, ApiError> {
    let policy = state.quarry.policy_of(&principal).map_err(CatalogRequestError::from)?;
    Ok(Json(Me { name: principal.name, role: principal.role, actions: policy.actions().collect() }))
}
