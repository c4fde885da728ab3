//! `GET /healthz`: liveness plus what this server runs on.

use axum::extract::State;
use axum::Json;
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;

#[derive(Serialize, utoipa::ToSchema)]
struct Health {
    /// Always `ok` when the server answers.
    status: &'static str,
    /// The model that writes SQL.
    model: String,
    tables: usize,
    indexed_queries: usize,
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(health))
}

/// Liveness, and what this server runs on. No API key needed.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "Up, with what it runs on", body = Health)))]
async fn health(State(state): State<AppState>) -> Json<Health> {
    let quarry = &state.quarry;
    Json(Health {
        status: "ok",
        model: quarry.model_id().to_string(),
        tables: quarry.catalog().tables().count(),
        indexed_queries: quarry.index_report().queries,
    })
}
