//! `GET /api/v1/openapi.json`: the OpenAPI 3.1 document of this API, generated from the
//! handlers' own types and `#[utoipa::path]` annotations (every route is registered through
//! them, so a route cannot be served without being documented); `GET /api` renders it as a
//! page (web/api.html, offline).

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::{Html, IntoResponse, Response};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;

/// What the document says about the API as a whole; the paths come from the routers.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Quarry",
        description = "A governed text-to-SQL agent: questions in plain language answered with SQL that runs on the warehouse, the rows, and the evidence for each table. Every query is validated under the caller's role policy before it runs, and every request is audited. Authenticate with `Authorization: Bearer <API key>` (`quarry keys create`).",
        license(name = "Apache-2.0")
    ),
    modifiers(&ApiKeyScheme),
    tags(
        (name = "ask", description = "Questions in plain language"),
        (name = "sql", description = "SQL from people and tools, governed like generated SQL"),
        (name = "catalog", description = "Tables, governance and the glossary; stewards' edits"),
        (name = "search", description = "What retrieval finds for a question"),
        (name = "feedback", description = "Votes, objections and reviews of answers"),
        (name = "history", description = "Query logs added to the history"),
        (name = "audit", description = "The audit log"),
        (name = "me", description = "The caller"),
        (name = "operations", description = "Health, metrics and this document")
    )
)]
pub(super) struct ApiDoc;

/// The bearer API key every `/api/v1` route but this document needs.
struct ApiKeyScheme;

impl Modify for ApiKeyScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("qk_… (quarry keys create)")
                    .build(),
            ),
        );
    }
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(document))
}

/// This document. No API key needed.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "operations",
    responses((status = 200, description = "The OpenAPI 3.1 document", body = Object))
)]
async fn document(State(state): State<AppState>) -> Response {
    ([(CONTENT_TYPE, "application/json")], state.openapi.to_string()).into_response()
}

/// The API page: the document rendered in the browser, with no request leaving the server.
pub async fn page() -> Html<&'static str> {
    Html(include_str!("../../web/api.html"))
}
