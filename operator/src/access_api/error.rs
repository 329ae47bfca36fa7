//! Errors of the access API: a status, a stable code for programs, and a message that says what to fix.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    /// A fault on our side (never caused by what the client sent).
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }

    /// The Kubernetes API refused or failed: its 4xx answers are passed on as the client's problem where they
    /// are one; anything else means the cluster is unavailable (503, try again).
    pub fn kube(doing: &str, error: kube::Error) -> ApiError {
        match &error {
            kube::Error::Api(s) if s.code == 422 || s.code == 400 => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid",
                format!("{doing}: {}", s.message),
            ),
            kube::Error::Api(s) if s.code == 409 => ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
                format!("{doing}: {}", s.message),
            ),
            _ => {
                tracing::warn!(%error, doing, "Kubernetes API call failed");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "cluster_unavailable",
                    format!("{doing}: the Kubernetes API did not answer; try again"),
                )
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            axum::Json(json!({"error": self.code, "message": self.message})),
        )
            .into_response();
        if self.status == StatusCode::UNAUTHORIZED
            && let Ok(v) = axum::http::HeaderValue::from_str(&format!(
                "Bearer error=\"invalid_token\", error_description=\"{}\"",
                self.code
            ))
        {
            response
                .headers_mut()
                .insert(axum::http::header::WWW_AUTHENTICATE, v);
        }
        response
    }
}
