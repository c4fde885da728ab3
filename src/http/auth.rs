//! Who is calling: the `Authorization: Bearer <key>` header, resolved to a principal by its
//! API key. Every `/api/v1` handler takes a `Caller`; a missing or invalid key is a 401
//! before the handler runs, and audited. What the principal may do is decided by the
//! pipeline (403).

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use super::{ApiError, AppState};
use crate::pipeline::Principal;

/// The authenticated principal of a request.
pub struct Caller(pub Principal);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Caller, ApiError> {
        let header = match parts.headers.get(AUTHORIZATION) {
            None => Ok(None),
            Some(value) => value.to_str().map(Some).map_err(|_| crate::keys::AuthError::Malformed),
        };
        let principal = header.and_then(|header| crate::keys::authenticate(state.quarry.metadata(), header));
        principal.map(Caller).map_err(|error| {
            // Inside the nested /api/v1 router the URI lost its prefix; the original has it.
            let path =
                parts.extensions.get::<axum::extract::OriginalUri>().map_or(parts.uri.path(), |o| o.path());
            let request = format!("{} {path}", parts.method);
            state.quarry.audit_unauthenticated(&request, &error.to_string());
            ApiError::Unauthorized(error)
        })
    }
}
