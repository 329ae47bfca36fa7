//! The reconciler of `PostgresAccess`: a status that says exactly where the grant stands, the revocation
//! finalizer (a deleted grant goes only once the database has closed it), and the deletion of ended grants after
//! the retention period. The personal role (a CNPG DatabaseRole), the pg_ident line and the validator's list of
//! grants are the Postgres reconciler's, computed from all grants of the database together.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::reflector::ObjectRef;
use serde_json::{Value, json};

use super::context::Context;
use super::error::Error;
use crate::api::{Postgres, PostgresAccess, PostgresAccessStatus};
use crate::desired::access::{self, Standing};
use crate::desired::kinds;
use crate::names::Names;

pub async fn reconcile(grant: Arc<PostgresAccess>, cx: Arc<Context>) -> Result<Action, Error> {
    let namespace = grant.namespace().ok_or(Error::NoNamespace)?;
    // Decisions read both stores: never from a store that has not been filled yet (at start). Not awaited: a
    // reconcile waiting on another controller's store held that controller up; come back in a second instead.
    let ready = |store_ready: Option<Result<(), _>>| store_ready.is_some();
    if !ready(futures::FutureExt::now_or_never(
        cx.postgres.wait_until_ready(),
    )) || !ready(futures::FutureExt::now_or_never(
        cx.accesses.wait_until_ready(),
    )) {
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    let now = (cx.now)();
    let spec = &grant.spec;
    let role = access::role_name(
        &spec.identity.subject,
        spec.identity.email.as_deref(),
        spec.level,
    );
    let standing = access::standing(&grant, cx.config.access.max_ttl_seconds, now);
    let postgres_exists = cx
        .postgres
        .get(&ObjectRef::<Postgres>::new(&spec.postgres).within(&namespace))
        .is_some();
    let api: Api<PostgresAccess> = Api::namespaced(cx.client.clone(), &namespace);
    let ends_in = |at: jiff::Timestamp| {
        Duration::from_secs(u64::try_from(at.as_second() - now.as_second()).unwrap_or(0))
            + Duration::from_millis(200)
    };

    if grant.metadata.deletion_timestamp.is_some() {
        return revoke(
            &grant,
            &cx,
            &api,
            &namespace,
            &role,
            postgres_exists,
            &standing,
        )
        .await;
    }
    if !grant.finalizers().iter().any(|f| f == access::FINALIZER) {
        hold(&api, &grant).await?;
    }

    let (phase, message, next) = match &standing {
        Standing::Invalid { why, .. } => ("Failed", why.clone(), None),
        _ if !postgres_exists => (
            "Failed",
            format!("there is no Postgres {} in {namespace}", spec.postgres),
            Some(Duration::from_secs(30)),
        ),
        // Not reached: a deleted grant is handled by `revoke`.
        Standing::Revoked { at } => ("Revoked", format!("revoked at {at}"), None),
        Standing::Expired { at } => (
            "Expired",
            format!("ended at {at}; {role} can no longer log in"),
            None,
        ),
        Standing::Open { until } => {
            if in_cluster(
                &cx,
                &namespace,
                &spec.postgres,
                &spec.identity.subject,
                &role,
            ) == (true, true)
            {
                (
                    "Active",
                    format!("log in as {role} until {until}"),
                    Some(ends_in(*until)),
                )
            } else {
                (
                    "Pending",
                    format!(
                        "waiting for the database {} to take the grant",
                        spec.postgres
                    ),
                    Some(Duration::from_secs(2)),
                )
            }
        }
    };

    let previous = grant.status.clone().unwrap_or_default();
    let status = status(&previous, phase, &role, &message, None, &grant, now);
    if previous != status {
        write_status(&api, grant.as_ref(), &status).await?;
        if previous.phase.as_deref() != Some(phase) {
            tracing::info!(
                audit = true,
                access = %grant.name_any(),
                namespace,
                postgres = %spec.postgres,
                subject = %spec.identity.subject,
                email = spec.identity.email.as_deref().unwrap_or_default(),
                level = spec.level.as_str(),
                role,
                phase,
                "personal access {}",
                phase.to_lowercase()
            );
            let kind = if matches!(phase, "Failed" | "Revoked") {
                EventType::Warning
            } else {
                EventType::Normal
            };
            publish_on_access(&cx, &grant, kind, phase, message).await;
        }
    }

    // Ended grants are kept for the retention period (a record; their role stays refused), then deleted.
    if !standing.is_open() && grant.metadata.deletion_timestamp.is_none() {
        let retention = i64::try_from(cx.config.access.retention_seconds).unwrap_or(i64::MAX);
        let forget_at = standing.end() + jiff::SignedDuration::from_secs(retention);
        if now >= forget_at {
            api.delete(&grant.name_any(), &Default::default())
                .await
                .map_err(Error::Status)?;
            return Ok(Action::requeue(Duration::from_secs(1)));
        }
        let wait = ends_in(forget_at);
        return Ok(Action::requeue(next.map_or(wait, |n| n.min(wait))));
    }
    Ok(next.map_or(Action::requeue(Duration::from_secs(300)), Action::requeue))
}

/// A deleted grant: closed in the database like an expired one, then let go.
///
/// Held (finalizer) until the database no longer carries it open (no pg_ident line, no open entry in the validator's
/// list, the role NOLOGIN without its group), and then for the grace, counted from when that was first seen
/// (`status.closedAt`), for CNPG to write the settings and the validator's reaper to end the sessions. Let go at
/// once when there is nothing to close: no Cluster, or another open grant of the same person and level keeps the
/// same role open (which the status and an event say).
async fn revoke(
    grant: &PostgresAccess,
    cx: &Context,
    api: &Api<PostgresAccess>,
    namespace: &str,
    role: &str,
    postgres_exists: bool,
    standing: &Standing,
) -> Result<Action, Error> {
    let now = (cx.now)();
    let spec = &grant.spec;
    let names = Names::new(namespace, &spec.postgres);
    let cluster_exists = cx
        .cache
        .get(kinds::CLUSTER, namespace, &names.cluster())
        .is_some();
    let max_ttl = cx.config.access.max_ttl_seconds;
    let all = cx.accesses.state();
    let other_open = all.iter().find(|a| {
        a.metadata.uid != grant.metadata.uid
            && a.metadata.namespace.as_deref() == Some(namespace)
            && a.metadata.deletion_timestamp.is_none()
            && a.spec.postgres == spec.postgres
            && a.spec.identity.subject == spec.identity.subject
            && a.spec.level == spec.level
            && access::standing(a, max_ttl, now).is_open()
    });
    let done = |why: String| {
        tracing::info!(
            audit = true,
            access = %grant.name_any(),
            namespace,
            postgres = %spec.postgres,
            subject = %spec.identity.subject,
            role,
            "personal access revoked: {why}"
        );
        why
    };
    if !cluster_exists {
        done("there is no database to close it in".into());
        release(api, grant).await?;
        return Ok(Action::await_change());
    }
    if let Some(other) = other_open {
        let why = done(format!(
            "{role} stays open through the grant {} until {}",
            other.name_any(),
            other.spec.expires_at
        ));
        publish_on_access(cx, grant, EventType::Warning, "Revoked", why).await;
        release(api, grant).await?;
        return Ok(Action::await_change());
    }
    let (has_line, listed_open) =
        in_cluster(cx, namespace, &spec.postgres, &spec.identity.subject, role);
    // Without its Postgres the Cluster is no longer written: its stale line stays, and the validator's own list
    // ends the grant at its original end.
    let unmapped = !has_line || !postgres_exists;
    let role_closed = cx
        .cache
        .get(
            access::DATABASE_ROLE,
            namespace,
            &access::database_role_name(&spec.postgres, role),
        )
        .is_none_or(|r| {
            r.pointer("/spec/login") == Some(&json!(false))
                && r.pointer("/spec/inRoles") == Some(&json!([]))
        });
    let closed = unmapped && !listed_open && role_closed;
    let previous = grant.status.clone().unwrap_or_default();
    // A grant that had expired before it was deleted (the retention) has been closed since its end; a revoked or
    // invalid one only since the operator saw it closed.
    let seen: Option<jiff::Timestamp> = match standing {
        Standing::Expired { at } if closed => Some(*at),
        _ => previous.closed_at.as_deref().and_then(|t| t.parse().ok()),
    };
    let grace = jiff::SignedDuration::from_secs(access::REVOKE_GRACE_SECS);
    if let (true, Some(seen)) = (closed, seen)
        && now >= seen + grace
    {
        done(format!("closed in the database since {seen}"));
        release(api, grant).await?;
        return Ok(Action::await_change());
    }
    let (message, closed_at, next) = match (closed, seen) {
        (true, Some(seen)) => (
            format!("revoked: {role} can no longer log in; its sessions are being ended"),
            Some(seen),
            Duration::from_secs(
                u64::try_from((seen + grace).as_second() - now.as_second()).unwrap_or(0),
            ) + Duration::from_millis(200),
        ),
        (true, None) => (
            format!("revoked: {role} can no longer log in; its sessions are being ended"),
            Some(now),
            Duration::from_secs(u64::try_from(access::REVOKE_GRACE_SECS).unwrap_or(30)),
        ),
        (false, _) => (
            format!(
                "revoked: waiting for the database {} to close {role}",
                spec.postgres
            ),
            None,
            Duration::from_secs(2),
        ),
    };
    let status = status(&previous, "Revoked", role, &message, closed_at, grant, now);
    if previous != status {
        write_status(api, grant, &status).await?;
        if previous.phase.as_deref() != Some("Revoked") {
            publish_on_access(cx, grant, EventType::Warning, "Revoked", message).await;
        }
    }
    Ok(Action::requeue(next))
}

/// The status for `phase`, keeping the Ready condition's transition time while it holds.
fn status(
    previous: &PostgresAccessStatus,
    phase: &str,
    role: &str,
    message: &str,
    closed_at: Option<jiff::Timestamp>,
    grant: &PostgresAccess,
    now: jiff::Timestamp,
) -> PostgresAccessStatus {
    PostgresAccessStatus {
        phase: Some(phase.to_owned()),
        role_name: Some(role.to_owned()),
        message: Some(message.to_owned()),
        closed_at: closed_at.map(|t| t.to_string()),
        conditions: vec![condition(
            &previous.conditions,
            phase,
            message,
            grant.metadata.generation,
            now,
        )],
    }
}

async fn write_status(
    api: &Api<PostgresAccess>,
    grant: &PostgresAccess,
    status: &PostgresAccessStatus,
) -> Result<(), Error> {
    api.patch_status(
        &grant.name_any(),
        &PatchParams::default(),
        &Patch::Merge(json!({ "status": status })),
    )
    .await
    .map(|_| ())
    .map_err(Error::Status)
}

/// Adds the revocation finalizer (the access API sets it at creation; this covers anything else).
async fn hold(api: &Api<PostgresAccess>, grant: &PostgresAccess) -> Result<(), Error> {
    let mut finalizers = grant.finalizers().to_vec();
    finalizers.push(access::FINALIZER.to_owned());
    set_finalizers(api, grant, finalizers).await
}

/// Removes the revocation finalizer: the object goes.
async fn release(api: &Api<PostgresAccess>, grant: &PostgresAccess) -> Result<(), Error> {
    let finalizers: Vec<String> = grant
        .finalizers()
        .iter()
        .filter(|f| *f != access::FINALIZER)
        .cloned()
        .collect();
    set_finalizers(api, grant, finalizers).await
}

/// Writes the finalizers, on the version read (a concurrent change makes this fail and the reconcile retry).
async fn set_finalizers(
    api: &Api<PostgresAccess>,
    grant: &PostgresAccess,
    finalizers: Vec<String>,
) -> Result<(), Error> {
    let patch = json!({"metadata": {
        "finalizers": finalizers,
        "resourceVersion": grant.resource_version(),
    }});
    match api
        .patch(
            &grant.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
    {
        Ok(_) => Ok(()),
        // Already gone: nothing to hold or release.
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(Error::Status(e)),
    }
}

/// What the Cluster (as the watch cache has it) carries of the person's grant to the role: (its pg_ident line,
/// an open entry in the validator's list). Active needs both; a revoked grant is closed when neither is left.
fn in_cluster(
    cx: &Context,
    namespace: &str,
    postgres: &str,
    subject: &str,
    role: &str,
) -> (bool, bool) {
    let names = Names::new(namespace, postgres);
    let Some(cluster) = cx.cache.get(kinds::CLUSTER, namespace, &names.cluster()) else {
        return (false, false);
    };
    let line = format!("{} \"{subject}\" {role}", names.ident_map());
    let has_line = cluster
        .pointer("/spec/postgresql/pg_ident")
        .and_then(Value::as_array)
        .is_some_and(|lines| lines.iter().any(|l| l.as_str() == Some(line.as_str())));
    let now = (cx.now)().as_second();
    let listed_open = cluster
        .pointer("/spec/postgresql/parameters/pgrator_validator.grants")
        .and_then(Value::as_str)
        .and_then(|text| pgrator_token::Grants::parse(text).ok())
        .is_some_and(|grants| {
            grants
                .iter()
                .any(|g| g.role == role && g.subject == subject && g.until.seconds() > now)
        });
    (has_line, listed_open)
}

fn condition(
    previous: &[Condition],
    phase: &str,
    message: &str,
    generation: Option<i64>,
    now: jiff::Timestamp,
) -> Condition {
    let status = if phase == "Active" { "True" } else { "False" };
    let since = previous
        .iter()
        .find(|c| c.type_ == "Ready" && c.status == status && c.reason == phase)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or(Time(now));
    Condition {
        type_: "Ready".into(),
        status: status.into(),
        reason: phase.into(),
        message: message.into(),
        observed_generation: generation,
        last_transition_time: since,
    }
}

async fn publish_on_access(
    cx: &Context,
    grant: &PostgresAccess,
    kind: EventType,
    reason: &str,
    note: String,
) {
    let event = kube::runtime::events::Event {
        type_: kind,
        reason: reason.to_owned(),
        note: Some(note),
        action: "Access".into(),
        secondary: None,
    };
    if let Err(error) = cx
        .recorder
        .publish(&event, &kube::Resource::object_ref(grant, &()))
        .await
    {
        tracing::warn!(%error, "could not publish an event");
    }
}

pub fn error_policy(grant: Arc<PostgresAccess>, error: &Error, cx: Arc<Context>) -> Action {
    cx.metrics
        .reconcile_errors
        .get_or_create(&super::metrics::ErrorLabels {
            reason: error.reason(),
        })
        .inc();
    tracing::warn!(access = %grant.name_any(), %error, "access reconcile failed");
    Action::requeue(Duration::from_secs(5))
}
