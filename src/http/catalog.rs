//! `/api/v1/catalog/...`: browse tables and the glossary (read_catalog); stewards edit them
//! (edit_catalog): `PATCH /catalog/tables/{name}`, `PUT /catalog/glossary/{term}`.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Caller;
use super::{blocking, ApiError, AppState, ErrorBody};
use crate::catalog::GlossaryTerm;
use crate::pipeline::{CatalogRequestError, EditOutcome, TableDetail, TableFilter, TableSummary};
use crate::stewardship::{Conflict, FieldError};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(detail, edit))
        .routes(routes!(glossary))
        .routes(routes!(put_term))
        .routes(routes!(conflicts))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ListParams {
    /// Words in the table's name or description.
    q: Option<String>,
    /// Only this tier (1 is the most trusted).
    tier: Option<String>,
    domain: Option<String>,
    /// Only tables with a column carrying this tag (e.g. `pii`).
    tag: Option<String>,
    deprecated: Option<bool>,
    /// Only tables whose description or a column's is missing.
    undocumented: Option<bool>,
}

#[derive(Serialize, utoipa::ToSchema)]
struct TableList {
    tables: Vec<TableSummary>,
}

/// The tables the caller may read, with tier, owner, freshness and documentation.
#[utoipa::path(
    get,
    path = "/catalog/tables",
    tag = "catalog",
    params(ListParams),
    responses(
        (status = 200, description = "The tables", body = TableList),
        (status = 400, description = "An unknown parameter", body = ErrorBody),
        (status = 401, description = "No valid API key", body = ErrorBody),
        (status = 403, description = "The role may not read the catalog", body = ErrorBody),
        (status = 422, description = "A parameter with a value that cannot be used (see fields)", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
async fn list(
    State(state): State<AppState>,
    Caller(principal): Caller,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Result<Json<TableList>, ApiError> {
    let Query(params) = params.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let tier = match params.tier.as_deref() {
        None | Some("") => None,
        Some(text) => Some(text.parse::<i64>().map_err(|_| {
            ApiError::Catalog(CatalogRequestError::Invalid(vec![FieldError {
                field: "tier".into(),
                message: format!("'{text}' is not a tier"),
                allowed: vec!["1".into(), "2".into(), "3".into()],
            }]))
        })?),
    };
    let filter = TableFilter {
        q: params.q,
        tier,
        domain: params.domain,
        tag: params.tag,
        deprecated: params.deprecated,
        undocumented: params.undocumented,
    };
    let quarry = state.quarry.clone();
    let tables = blocking(move || quarry.list_tables(&principal, &filter)).await?;
    Ok(Json(TableList { tables }))
}

/// One table as the caller may see it: columns (no samples of columns the role may not read),
/// keys, governance, usage, and its revisions.
#[utoipa::path(
    get,
    path = "/catalog/tables/{name}",
    tag = "catalog",
    params(("name" = String, Path, description = "The table's name")),
    responses(
        (status = 200, description = "The table", body = TableDetail),
        (status = 401, description = "No valid API key", body = ErrorBody),
        (status = 403, description = "The role may not read the catalog", body = ErrorBody),
        (status = 404, description = "No such table the caller may read", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
async fn detail(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path(name): Path<String>,
) -> Result<Json<TableDetail>, ApiError> {
    let quarry = state.quarry.clone();
    Ok(Json(blocking(move || quarry.table_detail(&principal, &name)).await?))
}

#[derive(Serialize, utoipa::ToSchema)]
struct TableEdited {
    #[serde(flatten)]
    outcome: EditOutcome,
    #[serde(flatten)]
    table: TableDetail,
}

/// A steward's edit of a table's governance: description, owner, tier, domain, freshness,
/// deprecation, and per column description and tags. Each edit is a revision; restricting
/// edits are in force at once, lifting ones need the `lift_restriction` action.
#[utoipa::path(
    patch,
    path = "/catalog/tables/{name}",
    tag = "catalog",
    params(("name" = String, Path, description = "The table's name")),
    request_body(content = Object, description = "The fields to change, e.g. {\"description\": \"…\", \"tier\": 1, \"columns\": {\"email\": {\"tags\": [\"pii\"]}}}; unknown fields are refused with the allowed ones"),
    responses(
        (status = 200, description = "The revision and the table as now in force", body = TableEdited),
        (status = 400, description = "Not JSON", body = ErrorBody),
        (status = 401, description = "No valid API key", body = ErrorBody),
        (status = 403, description = "The role may not edit the catalog, or the edit lifts a restriction", body = ErrorBody),
        (status = 404, description = "No such table", body = ErrorBody),
        (status = 422, description = "Fields that cannot be accepted (see fields)", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
async fn edit(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path(name): Path<String>,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Json<TableEdited>, ApiError> {
    let Json(body) = body?;
    let quarry = state.quarry.clone();
    let (outcome, value) = blocking(move || quarry.edit_table(&principal, &name, &body)).await?;
    Ok(Json(TableEdited { outcome, table: value }))
}

#[derive(Serialize, utoipa::ToSchema)]
struct Glossary {
    terms: Vec<GlossaryTerm>,
}

/// The glossary: business terms and the definitions that bind the SQL written for them.
#[utoipa::path(
    get,
    path = "/catalog/glossary",
    tag = "catalog",
    responses(
        (status = 200, description = "The glossary", body = Glossary),
        (status = 401, description = "No valid API key", body = ErrorBody),
        (status = 403, description = "The role may not read the catalog", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
async fn glossary(
    State(state): State<AppState>,
    Caller(principal): Caller,
) -> Result<Json<Glossary>, ApiError> {
    let quarry = state.quarry.clone();
    Ok(Json(Glossary { terms: blocking(move || quarry.glossary(&principal)).await? }))
}

#[derive(Serialize, utoipa::ToSchema)]
struct TermEdited {
    #[serde(flatten)]
    outcome: EditOutcome,
    term: GlossaryTerm,
}

/// A steward defines or changes a glossary term.
#[utoipa::path(
    put,
    path = "/catalog/glossary/{term}",
    tag = "catalog",
    params(("term" = String, Path, description = "The term, e.g. `paid user`")),
    request_body(content = Object, description = "{\"definition\": \"…\", \"tables\": [\"…\"], \"comment\": \"why\"}"),
    responses(
        (status = 200, description = "The revision and the term as now in force", body = TermEdited),
        (status = 400, description = "Not JSON", body = ErrorBody),
        (status = 401, description = "No valid API key", body = ErrorBody),
        (status = 403, description = "The role may not edit the catalog", body = ErrorBody),
        (status = 422, description = "Fields that cannot be accepted (see fields)", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
async fn put_term(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path(term): Path<String>,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Json<TermEdited>, ApiError> {
    let Json(body) = body?;
    let quarry = state.quarry.clone();
    let (outcome, term) = blocking(move || quarry.put_term(&principal, &term, &body)).await?;
    Ok(Json(TermEdited { outcome, term }))
}

#[derive(Serialize, utoipa::ToSchema)]
struct Conflicts {
    conflicts: Vec<Conflict>,
}

/// Steward edits that the governance files have since contradicted (the files won), of the
/// tables the caller may read and of glossary terms.
#[utoipa::path(
    get,
    path = "/catalog/conflicts",
    tag = "catalog",
    responses(
        (status = 200, description = "The conflicts", body = Conflicts),
        (status = 401, description = "No valid API key", body = ErrorBody),
        (status = 403, description = "The role may not read the catalog", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
async fn conflicts(
    State(state): State<AppState>,
    Caller(principal): Caller,
) -> Result<Json<Conflicts>, ApiError> {
    let quarry = state.quarry.clone();
    Ok(Json(Conflicts { conflicts: blocking(move || quarry.conflicts_seen_by(&principal)).await? }))
}
