//! `GET /healthz`: liveness plus what this server runs on.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use super::AppState;

#[derive(Serialize)]
struct Health {
    status: &'static str,
    model: String,
    tables: usize,
    indexed_queries: usize,
}

pub fn router() -> Router<AppState> {
    Router::new().route("/healthz", get(health))
}

async fn health(State(state): State<AppState>) -> Json<Health> {
    let quarry = &state.quarry;
    Json(Health {
        status: "ok",
        model: quarry.model_id().to_string(),
        tables: quarry.catalog().tables().count(),
        indexed_queries: quarry.index_report().queries,
    })
}
