//! `/api/v1/catalog/...`: browse tables and the glossary (read_catalog); stewards edit them
//! (edit_catalog): `PATCH /catalog/tables/{name}`, `PUT /catalog/glossary/{term}`.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::auth::Caller;
use super::{blocking, ApiError, AppState};
use crate::catalog::GlossaryTerm;
use crate::pipeline::{CatalogRequestError, EditOutcome, TableDetail, TableFilter, TableSummary};
use crate::stewardship::{Conflict, FieldError};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/catalog/tables", get(list))
        .route("/catalog/tables/{name}", get(detail).patch(edit))
        .route("/catalog/glossary", get(glossary))
        .route("/catalog/glossary/{term}", axum::routing::put(put_term))
        .route("/catalog/conflicts", get(conflicts))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListParams {
    q: Option<String>,
    tier: Option<String>,
    domain: Option<String>,
    tag: Option<String>,
    deprecated: Option<bool>,
    undocumented: Option<bool>,
}

#[derive(Serialize)]
struct TableList {
    tables: Vec<TableSummary>,
}

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

async fn detail(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path(name): Path<String>,
) -> Result<Json<TableDetail>, ApiError> {
    let quarry = state.quarry.clone();
    Ok(Json(blocking(move || quarry.table_detail(&principal, &name)).await?))
}

#[derive(Serialize)]
struct Edited<T> {
    #[serde(flatten)]
    outcome: EditOutcome,
    #[serde(flatten)]
    value: T,
}

async fn edit(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path(name): Path<String>,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Json<Edited<TableDetail>>, ApiError> {
    let Json(body) = body?;
    let quarry = state.quarry.clone();
    let (outcome, value) = blocking(move || quarry.edit_table(&principal, &name, &body)).await?;
    Ok(Json(Edited { outcome, value }))
}

#[derive(Serialize)]
struct Glossary {
    terms: Vec<GlossaryTerm>,
}

async fn glossary(
    State(state): State<AppState>,
    Caller(principal): Caller,
) -> Result<Json<Glossary>, ApiError> {
    let quarry = state.quarry.clone();
    Ok(Json(Glossary { terms: blocking(move || quarry.glossary(&principal)).await? }))
}

#[derive(Serialize)]
struct TermEdited {
    #[serde(flatten)]
    outcome: EditOutcome,
    term: GlossaryTerm,
}

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

#[derive(Serialize)]
struct Conflicts {
    conflicts: Vec<Conflict>,
}

async fn conflicts(
    State(state): State<AppState>,
    Caller(principal): Caller,
) -> Result<Json<Conflicts>, ApiError> {
    state
        .quarry
        .authorize(&principal, crate::policy::Action::ReadCatalog)
        .map_err(CatalogRequestError::from)?;
    Ok(Json(Conflicts { conflicts: state.quarry.conflicts() }))
}
