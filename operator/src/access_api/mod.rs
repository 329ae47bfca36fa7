//! The access API: a developer's Zitadel bearer token in, a `PostgresAccess` out. The token is verified with the
//! validator's token library, the person must belong to the team that owns the namespace (a project role named
//! after the namespace, in the token's role claim), a reason is required, and every grant leaves an audit trail
//! (a Kubernetes event on the Postgres and a structured log line with `audit=true`). Bad input gets a 4xx that
//! says what to fix; nothing a client sends can make it answer 500.
//!
//! - `POST /api/v1/namespaces/{namespace}/postgres/{name}/access` `{"level","ttl","reason"}` -> 201 the grant
//! - `GET  /api/v1/namespaces/{namespace}/postgresaccesses/{name}` -> the grant and where it stands
//! - `GET  /api/v1/postgresaccesses` -> the caller's grants, with the time left

mod caller;
pub mod error;
mod handlers;
pub mod request;
pub mod verify;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::{get, post};
use kube::runtime::events::{Recorder, Reporter};

use crate::config::OperatorConfig;
use error::ApiError;
use handlers::{get_access, list_mine, request_access};
use verify::Verifier;

pub use crate::desired::access::SUBJECT_LABEL;

pub struct ApiState {
    pub client: kube::Client,
    pub config: Arc<OperatorConfig>,
    pub verifier: Arc<Verifier>,
    pub recorder: Recorder,
}

impl ApiState {
    pub fn new(
        client: kube::Client,
        config: Arc<OperatorConfig>,
    ) -> Result<ApiState, verify::VerifyError> {
        Ok(ApiState {
            verifier: Arc::new(Verifier::new(&config.idp)?),
            recorder: Recorder::new(
                client.clone(),
                Reporter {
                    controller: "pgrator-access-api".into(),
                    instance: None,
                },
            ),
            client,
            config,
        })
    }
}

pub fn router(state: Arc<ApiState>) -> Router {
    Router::new()
        .route(
            "/api/v1/namespaces/{namespace}/postgres/{name}/access",
            post(request_access),
        )
        .route(
            "/api/v1/namespaces/{namespace}/postgresaccesses/{name}",
            get(get_access),
        )
        .route("/api/v1/postgresaccesses", get(list_mine))
        .route("/healthz", get(|| async { "ok" }))
        .fallback(|| async {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                "no such endpoint (see the API's documentation in operator/README.md)",
            )
        })
        .with_state(state)
}

/// Serves the API on `addr` until the process ends.
pub async fn serve(addr: SocketAddr, state: Arc<ApiState>) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, "serving the access API");
    axum::serve(listener, router(state)).await
}
