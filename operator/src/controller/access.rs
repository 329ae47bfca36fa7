//! The reconciler of `PostgresAccess`: the personal role (a CNPG DatabaseRole that may log in while the grant is
//! open and not after), and a status that says exactly where the grant stands. The pg_ident line and the
//! validator's list of grants are part of the Cluster, written by the Postgres reconciler from the same objects.

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
use super::reconcile::apply_child;
use crate::api::{Postgres, PostgresAccess, PostgresAccessStatus};
use crate::desired::access::{self, Standing};
use crate::desired::kinds;
use crate::names::Names;

pub async fn reconcile(grant: Arc<PostgresAccess>, cx: Arc<Context>) -> Result<Action, Error> {
    let namespace = grant.namespace().ok_or(Error::NoNamespace)?;
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

    let (phase, message, next) = match &standing {
        Standing::Invalid(why) => ("Failed", why.clone(), None),
        _ if !postgres_exists => (
            "Failed",
            format!("there is no Postgres {} in {namespace}", spec.postgres),
            Some(Duration::from_secs(30)),
        ),
        Standing::Open { until } | Standing::Expired { at: until } => {
            let open = matches!(standing, Standing::Open { .. });
            if let Some(child) = access::database_role(&grant, open) {
                let live = cx.cache.get(child.kind, &namespace, child.name());
                apply_child(&cx, child, live.as_ref()).await?;
            }
            let left = until.as_second() - now.as_second();
            if !open {
                (
                    "Expired",
                    format!("ended at {until}; {role} can no longer log in"),
                    None,
                )
            } else if in_cluster(
                &cx,
                &namespace,
                &spec.postgres,
                &spec.identity.subject,
                &role,
            ) {
                (
                    "Active",
                    format!("log in as {role} until {until}"),
                    Some(
                        Duration::from_secs(u64::try_from(left).unwrap_or(0))
                            + Duration::from_millis(200),
                    ),
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
    let status = PostgresAccessStatus {
        phase: Some(phase.to_owned()),
        role_name: Some(role.clone()),
        message: Some(message.clone()),
        conditions: vec![condition(
            &previous.conditions,
            phase,
            &message,
            grant.metadata.generation,
            now,
        )],
    };
    if previous != status {
        let api: Api<PostgresAccess> = Api::namespaced(cx.client.clone(), &namespace);
        api.patch_status(
            &grant.name_any(),
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": status })),
        )
        .await
        .map_err(Error::Status)?;
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
            let kind = if phase == "Failed" {
                EventType::Warning
            } else {
                EventType::Normal
            };
            publish_on_access(&cx, &grant, kind, phase, message).await;
        }
    }
    Ok(next.map_or(Action::requeue(Duration::from_secs(300)), Action::requeue))
}

/// True when the Cluster (as the watch cache has it) carries the grant: its pg_ident line and its entry in the
/// validator's list.
fn in_cluster(cx: &Context, namespace: &str, postgres: &str, subject: &str, role: &str) -> bool {
    let names = Names::new(namespace, postgres);
    let Some(cluster) = cx.cache.get(kinds::CLUSTER, namespace, &names.cluster()) else {
        return false;
    };
    let line = format!("{} \"{subject}\" {role}", names.ident_map());
    let has_line = cluster
        .pointer("/spec/postgresql/pg_ident")
        .and_then(Value::as_array)
        .is_some_and(|lines| lines.iter().any(|l| l.as_str() == Some(line.as_str())));
    let listed = cluster
        .pointer("/spec/postgresql/parameters/pgrator_validator.grants")
        .and_then(Value::as_str)
        .is_some_and(|g| g.split(',').any(|e| e.split(' ').next() == Some(role)));
    has_line && listed
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
