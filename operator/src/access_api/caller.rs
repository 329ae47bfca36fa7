//! Who calls: the verified bearer token, and the checks every handler shares (team membership, names).

use axum::http::{HeaderMap, StatusCode};
use pgrator_token::Accepted;

use super::ApiState;
use super::error::ApiError;
use super::verify;
use crate::names::is_dns_label;

/// The caller, from the `Authorization: Bearer` header.
pub(super) async fn caller(state: &ApiState, headers: &HeaderMap) -> Result<Accepted, ApiError> {
    caller_and_token(state, headers).await.map(|(who, _)| who)
}

/// The caller and the token they sent.
pub(super) async fn caller_and_token(
    state: &ApiState,
    headers: &HeaderMap,
) -> Result<(Accepted, String), ApiError> {
    let token = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "no_token",
                "send the IdP access token as `Authorization: Bearer <token>` (pgrator logs in for you)",
            )
        })?
        .to_owned();
    let verifier = state.verifier.clone();
    let checked = token.clone();
    let verdict = tokio::task::spawn_blocking(move || verifier.verify(&checked))
        .await
        .map_err(|_| ApiError::internal("token verification stopped"))?;
    verdict.map(|who| (who, token)).map_err(|e| match e {
        verify::VerifyError::Idp(_) | verify::VerifyError::CaFile { .. } => {
            tracing::warn!(error = %e, "cannot verify tokens");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "idp_unavailable",
                e.to_string(),
            )
        }
        other => {
            tracing::info!(reason = %other, "refused a token");
            ApiError::new(StatusCode::UNAUTHORIZED, "invalid_token", other.to_string())
        }
    })
}

pub(super) fn require_member(who: &Accepted, namespace: &str) -> Result<(), ApiError> {
    if who.roles.iter().any(|r| r == namespace) {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "not_a_member",
            format!(
                "{} is not a member of the team {namespace} (the IdP grants no project role {namespace:?})",
                who.authn_id
            ),
        ))
    }
}

pub(super) fn check_name(what: &str, value: &str) -> Result<(), ApiError> {
    if is_dns_label(value) {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_name",
            format!("{value:?} is not a {what} name"),
        ))
    }
}
