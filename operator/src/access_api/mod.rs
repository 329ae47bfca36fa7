//! The access API: a developer's Zitadel bearer token in, a `PostgresAccess` out. The token is verified with the
//! validator's token library, the person must belong to the team that owns the namespace (a project role named
//! after the namespace, in the token's role claim), a reason is required, and every grant leaves an audit trail
//! (a Kubernetes event on the Postgres and a structured log line with `audit=true`). Bad input gets a 4xx that
//! says what to fix; nothing a client sends can make it answer 500.
//!
//! - `POST /api/v1/namespaces/{namespace}/postgres/{name}/access` `{"level","ttl","reason"}` -> 201 the grant
//! - `GET  /api/v1/namespaces/{namespace}/postgresaccesses/{name}` -> the grant and where it stands
//! - `GET  /api/v1/postgresaccesses` -> the caller's grants, with the time left

pub mod error;
pub mod request;
pub mod verify;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use jiff::Timestamp;
use kube::api::{Api, ListParams, PostParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Resource, ResourceExt};
use pgrator_token::Accepted;
use serde_json::{Value, json};

use crate::api::{Postgres, PostgresAccess, PostgresAccessSpec, access::Identity};
use crate::config::OperatorConfig;
use crate::desired::access::{self, role_name};
use crate::names::{MANAGED_BY, MANAGER, POSTGRES_LABEL, is_dns_label};
use error::ApiError;
use request::AccessRequest;
use verify::Verifier;

/// The label with the grantee's subject (to list a person's grants).
pub const SUBJECT_LABEL: &str = "data.nais.io/subject";

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

/// The caller, from the `Authorization: Bearer` header.
async fn caller(state: &ApiState, headers: &HeaderMap) -> Result<Accepted, ApiError> {
    caller_and_token(state, headers).await.map(|(who, _)| who)
}

/// The caller and the token they sent.
async fn caller_and_token(
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

fn require_member(who: &Accepted, namespace: &str) -> Result<(), ApiError> {
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

fn check_name(what: &str, value: &str) -> Result<(), ApiError> {
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

async fn request_access(
    State(state): State<Arc<ApiState>>,
    Path((namespace, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    check_name("namespace", &namespace)?;
    check_name("Postgres", &name)?;
    let (who, token) = caller_and_token(&state, &headers).await?;
    let request = AccessRequest::parse(&body, state.config.access.max_ttl())?;
    require_member(&who, &namespace)?;
    let verifier = state.verifier.clone();
    // Only an address the PostgresAccess schema accepts is kept; otherwise the subject names the person.
    let email = tokio::task::spawn_blocking(move || verifier.email(&token))
        .await
        .unwrap_or(None)
        .filter(|e| crate::api::access::is_email(e));

    let postgres_api: Api<Postgres> = Api::namespaced(state.client.clone(), &namespace);
    let postgres = postgres_api
        .get_opt(&name)
        .await
        .map_err(|e| ApiError::kube("reading the Postgres", e))?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "no_such_postgres",
                format!("there is no Postgres {name} in {namespace}"),
            )
        })?;

    let expires =
        Timestamp::now() + jiff::SignedDuration::try_from(request.ttl).unwrap_or_default();
    let expires = expires.round(jiff::Unit::Second).unwrap_or(expires);
    let identity = Identity {
        subject: who.authn_id.clone(),
        email,
    };
    let role = role_name(&identity.subject, identity.email.as_deref(), request.level);
    let who_reads = identity
        .email
        .clone()
        .map(|e| format!("{e} ({})", who.authn_id))
        .unwrap_or_else(|| who.authn_id.clone());
    let mut labels = std::collections::BTreeMap::from([
        (MANAGED_BY.to_owned(), MANAGER.to_owned()),
        (POSTGRES_LABEL.to_owned(), name.clone()),
    ]);
    if is_label_value(&identity.subject) {
        labels.insert(SUBJECT_LABEL.to_owned(), identity.subject.clone());
    }
    let api: Api<PostgresAccess> = Api::namespaced(state.client.clone(), &namespace);
    // Counted by the spec (labels are only a convenience for listing).
    let existing = api
        .list(&ListParams::default())
        .await
        .map_err(|e| ApiError::kube("listing the grants of the Postgres", e))?;
    let now = Timestamp::now();
    let open = existing
        .items
        .iter()
        .filter(|a| {
            a.spec.postgres == name
                && access::standing(a, state.config.access.max_ttl_seconds, now).is_open()
        })
        .count();
    if open >= access::MAX_OPEN_GRANTS {
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_grants",
            format!(
                "{name} already has {open} open grants, the most a database takes ({}); wait for some to end",
                access::MAX_OPEN_GRANTS
            ),
        ));
    }
    let grant = PostgresAccess {
        metadata: kube::core::ObjectMeta {
            generate_name: Some(format!("{name}-")),
            namespace: Some(namespace.clone()),
            labels: Some(labels),
            // Held until the database has closed it, whenever it is deleted.
            finalizers: Some(vec![access::FINALIZER.to_owned()]),
            ..Default::default()
        },
        spec: PostgresAccessSpec {
            postgres: name.clone(),
            identity,
            level: request.level,
            reason: request.reason.clone(),
            expires_at: expires.to_string(),
        },
        status: None,
    };
    let created = api
        .create(&PostParams::default(), &grant)
        .await
        .map_err(|e| ApiError::kube("creating the PostgresAccess", e))?;

    // The audit trail: who, when, what, why.
    tracing::info!(
        audit = true,
        subject = %who.authn_id,
        email = identity_email(&created),
        namespace,
        postgres = %name,
        level = request.level.as_str(),
        role,
        expires_at = %expires,
        reason = %request.reason,
        access = %created.name_any(),
        "personal access granted"
    );
    let event = Event {
        type_: EventType::Normal,
        reason: "AccessGranted".into(),
        note: Some(
            format!(
                "{who_reads} was granted {} access as {role} until {expires}: {}",
                request.level.as_str(),
                request.reason
            )
            .chars()
            .take(1000)
            .collect(),
        ),
        action: "GrantAccess".into(),
        secondary: Some(created.object_ref(&())),
    };
    if let Err(error) = state
        .recorder
        .publish(&event, &postgres.object_ref(&()))
        .await
    {
        tracing::warn!(%error, "could not record the audit event");
    }
    Ok((StatusCode::CREATED, axum::Json(describe(&created))))
}

async fn get_access(
    State(state): State<Arc<ApiState>>,
    Path((namespace, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    check_name("namespace", &namespace)?;
    check_name("PostgresAccess", &name)?;
    let who = caller(&state, &headers).await?;
    let api: Api<PostgresAccess> = Api::namespaced(state.client.clone(), &namespace);
    let grant = api
        .get_opt(&name)
        .await
        .map_err(|e| ApiError::kube("reading the PostgresAccess", e))?;
    // Someone outside the team gets the same answer whether or not the grant exists (unless it is their own),
    // so grant names of other teams cannot be probed.
    let own = grant
        .as_ref()
        .is_some_and(|g| g.spec.identity.subject == who.authn_id);
    if !own {
        require_member(&who, &namespace)?;
    }
    let grant = grant.ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "no_such_access",
            format!("there is no PostgresAccess {name} in {namespace}"),
        )
    })?;
    Ok(axum::Json(describe(&grant)))
}

async fn list_mine(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    let who = caller(&state, &headers).await?;
    if !is_label_value(&who.authn_id) {
        return Ok(axum::Json(json!({"items": []})));
    }
    let api: Api<PostgresAccess> = Api::all(state.client.clone());
    let list = api
        .list(&ListParams::default().labels(&format!("{SUBJECT_LABEL}={}", who.authn_id)))
        .await
        .map_err(|e| ApiError::kube("listing grants", e))?;
    // The label only narrows the listing; the spec says whose grant it is.
    let items: Vec<Value> = list
        .items
        .iter()
        .filter(|g| g.spec.identity.subject == who.authn_id)
        .map(describe)
        .collect();
    Ok(axum::Json(json!({ "items": items })))
}

/// A grant as the API shows it.
fn describe(grant: &PostgresAccess) -> Value {
    let left = grant
        .spec
        .expires_at
        .parse::<Timestamp>()
        .map(|t| t.duration_since(Timestamp::now()).as_secs().max(0))
        .unwrap_or(0);
    let status = grant.status.clone().unwrap_or_default();
    json!({
        "name": grant.name_any(),
        "namespace": grant.namespace(),
        "postgres": grant.spec.postgres,
        "level": grant.spec.level.as_str(),
        "subject": grant.spec.identity.subject,
        "reason": grant.spec.reason,
        "expiresAt": grant.spec.expires_at,
        "secondsLeft": left,
        "phase": status.phase.unwrap_or_else(|| "Pending".into()),
        "role": status.role_name.unwrap_or_else(|| role_name(&grant.spec.identity.subject, grant.spec.identity.email.as_deref(), grant.spec.level)),
        "message": status.message,
    })
}

fn identity_email(grant: &PostgresAccess) -> &str {
    grant.spec.identity.email.as_deref().unwrap_or_default()
}

fn is_label_value(s: &str) -> bool {
    s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && s.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && s.bytes().last().is_some_and(|b| b.is_ascii_alphanumeric())
}
