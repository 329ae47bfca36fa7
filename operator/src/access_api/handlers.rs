//! The access API's handlers: request a grant, read one, list the caller's own.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use jiff::Timestamp;
use kube::api::{Api, ListParams, PostParams};
use kube::runtime::events::{Event, EventType};
use kube::{Resource, ResourceExt};
use serde_json::{Value, json};

use super::ApiState;
use super::caller::{caller, caller_and_token, check_name, require_member};
use super::error::ApiError;
use super::request::AccessRequest;
use crate::api::{Postgres, PostgresAccess, access::Identity};
use crate::desired::access::{self, SUBJECT_LABEL, role_name};

pub(super) async fn request_access(
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
    let grant = access::requested(
        &namespace,
        &name,
        identity,
        request.level,
        &request.reason,
        request.ttl,
        now,
    );
    let expires = grant.spec.expires_at.clone();
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
    Ok((
        StatusCode::CREATED,
        axum::Json(describe(&created, Timestamp::now())),
    ))
}

pub(super) async fn get_access(
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
    Ok(axum::Json(describe(&grant, Timestamp::now())))
}

pub(super) async fn list_mine(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    let who = caller(&state, &headers).await?;
    if !access::is_label_value(&who.authn_id) {
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
        .map(|g| describe(g, Timestamp::now()))
        .collect();
    Ok(axum::Json(json!({ "items": items })))
}

/// A grant as the API shows it.
fn describe(grant: &PostgresAccess, now: Timestamp) -> Value {
    let left = grant
        .spec
        .expires_at
        .parse::<Timestamp>()
        .map(|t| t.duration_since(now).as_secs().max(0))
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
