//! Who is calling: the `Authorization: Bearer <key>` header, resolved to a principal by its
//! API key. Every `/api/v1` handler takes a `Caller`; a missing or invalid key is a 401
//! before the handler runs. What the principal may do is decided by the pipeline (403).

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
            None => None,
            Some(value) => {
                Some(value.to_str().map_err(|_| ApiError::Unauthorized(crate::keys::AuthError::Malformed))?)
            }
        };
        crate::keys::authenticate(state.quarry.metadata(), header).map(Caller).map_err(ApiError::Unauthorized)
    }
}
