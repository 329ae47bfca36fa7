//! The Postgres reconciler: one reconcile of one Postgres: read (from the watch cache), compute the desired objects (pure), apply what
//! differs with server-side apply under one field manager, write the status if it changed. A Postgres whose
//! objects are all as desired costs no request at all.

use std::sync::Arc;
use std::time::Duration;

use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::runtime::reflector::ObjectRef;
use serde_json::json;

use super::apply::{apply_child, delete, publish};
use super::context::Context;
use super::error::Error;
use super::status::{self, Observation};
use crate::api::Postgres;
use crate::desired::rollout::{self, LiveHealth};
use crate::desired::{Child, access, desired, kinds};
use crate::names::Names;

/// The finalizer that lets the operator decide what happens to the data when a Postgres is deleted.
pub const FINALIZER: &str = "data.nais.io/postgres-cleanup";

/// How often a converged Postgres is looked at again (cheap: no requests unless something differs).
pub const RESYNC: Duration = Duration::from_secs(300);
/// How soon one that is still changing is looked at again.
pub const PROGRESS: Duration = Duration::from_secs(15);

pub async fn reconcile(postgres: Arc<Postgres>, cx: Arc<Context>) -> Result<Action, Error> {
    let started = std::time::Instant::now();
    let namespace = postgres.namespace().ok_or(Error::NoNamespace)?;
    let api: Api<Postgres> = Api::namespaced(cx.client.clone(), &namespace);
    let result = finalizer(&api, FINALIZER, postgres, |event| async {
        match event {
            Finalizer::Apply(pg) => apply(&pg, &cx).await,
            Finalizer::Cleanup(pg) => cleanup(&pg, &cx).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)));
    cx.metrics
        .reconcile_duration
        .observe(started.elapsed().as_secs_f64());
    cx.metrics.reconciles.inc();
    result
}

/// What the controller does after a failed reconcile: count it and try again soon.
pub fn error_policy(postgres: Arc<Postgres>, error: &Error, cx: Arc<Context>) -> Action {
    cx.metrics
        .reconcile_errors
        .get_or_create(&super::metrics::ErrorLabels {
            reason: error.reason(),
        })
        .inc();
    tracing::warn!(
        postgres = %postgres.name_any(),
        namespace = postgres.namespace().unwrap_or_default(),
        reason = error.reason(),
        %error,
        "reconcile failed"
    );
    Action::requeue(Duration::from_secs(5))
}

async fn apply(postgres: &Postgres, cx: &Context) -> Result<Action, Error> {
    let namespace = postgres.namespace().ok_or(Error::NoNamespace)?;
    // The grants come from the access store: never write a Cluster (or drop personal roles) from an empty one.
    if futures::FutureExt::now_or_never(cx.accesses.wait_until_ready()).is_none() {
        tracing::debug!(postgres = %postgres.name_any(), "waiting for the PostgresAccess store to fill");
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    let names = Names::new(&namespace, &postgres.name_any());
    let mut observed = Observation::default();
    let grants = cx.open_grants(&namespace, &names.postgres);

    let outcome = match desired(postgres, &cx.config, &grants) {
        Err(e) => Err(Error::Spec(e)),
        Ok(children) => apply_children(postgres, cx, &names, children, &mut observed).await,
    };
    observed.cluster = cx.cache.get(kinds::CLUSTER, &namespace, &names.cluster());
    observed.object_store = cx
        .cache
        .get(kinds::OBJECT_STORE, &namespace, &names.object_store());
    if let Err(e) = &outcome {
        observed.error = Some((e.reason(), e.to_string()));
        publish(
            cx,
            postgres,
            EventType::Warning,
            e.reason(),
            "Reconcile",
            e.to_string(),
        )
        .await;
    }

    let next = status::compute(
        postgres,
        &observed,
        cx.config.alerts.backup_max_age_hours,
        (cx.now)(),
    );
    let state = match next.phase.as_deref() {
        Some("Ready") => "Ready",
        Some("Degraded") => "Degraded",
        _ => "Progressing",
    };
    if !status::unchanged(postgres.status.as_ref(), &next) {
        let api: Api<Postgres> = Api::namespaced(cx.client.clone(), &namespace);
        api.patch_status(
            &postgres.name_any(),
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": next })),
        )
        .await
        .map_err(Error::Status)?;
    }
    cx.set_state(ObjectRef::from_obj(postgres), Some(state));
    outcome?;
    let mut next = if state == "Ready" { RESYNC } else { PROGRESS };
    // Back exactly when the first open grant ends, to take its line out of the Cluster.
    if let Some(until) = access::next_expiry(&grants) {
        let left = until.saturating_sub((cx.now)().as_second()).max(0);
        next = next.min(
            Duration::from_secs(u64::try_from(left).unwrap_or(0)) + Duration::from_millis(200),
        );
    }
    Ok(Action::requeue(next))
}

/// Applies every child that differs from its live version; goes on past a failure so that one broken kind does
/// not hold back the others, and returns the first error.
async fn apply_children(
    postgres: &Postgres,
    cx: &Context,
    names: &Names,
    children: Vec<Child>,
    observed: &mut Observation,
) -> Result<(), Error> {
    let namespace = &names.namespace;
    let mut first_error = None;
    let mut wanted: Vec<(&'static str, String)> = Vec::new();
    let mut changes: Vec<(&'static str, (String, String))> = Vec::new();
    for mut child in children {
        let live = cx.cache.get(child.kind, namespace, child.name());
        if child.kind == kinds::CLUSTER {
            let health = LiveHealth {
                healthy: live.as_ref().is_some_and(status::cluster_healthy),
            };
            let (staged, hold) = rollout::stage(
                &child.object.data,
                live.as_ref(),
                health,
                postgres.spec.maintenance_window.as_ref(),
                (cx.now)(),
            );
            child.object.data = staged;
            observed.hold = hold;
        }
        wanted.push((child.kind.kind, child.name().to_owned()));
        match apply_child(cx, child, live.as_ref()).await {
            Ok(Some((reason, what))) => {
                changes.push((reason, what.clone()));
                observed.changed.push(what);
            }
            Ok(None) => {}
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    // One event per kind of change, naming every object it touched.
    for reason in ["Created", "Updated", "DriftCorrected"] {
        let touched: Vec<String> = changes
            .iter()
            .filter(|(r, _)| *r == reason)
            .map(|(_, (kind, name))| format!("{kind}/{name}"))
            .collect();
        if !touched.is_empty() {
            publish(
                cx,
                postgres,
                EventType::Normal,
                reason,
                "Apply",
                touched.join(", "),
            )
            .await;
        }
    }
    // Objects we made earlier that are no longer wanted (never data-bearing ones).
    for (kind, name) in cx.cache.children_of(namespace, &names.postgres) {
        if !kind.keeps_data
            && !wanted.contains(&(kind.kind, name.clone()))
            && let Err(e) = delete(cx, kind, namespace, &name).await
        {
            first_error.get_or_insert(e);
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// The Postgres is being deleted. Everything without data goes; the data-bearing objects (the Cluster, backups,
/// bucket and what backups need) are deleted only with `allowDeletion: true`, and otherwise left in place with their
/// labels, so a Postgres created again under the same name takes them back. Works from the watch cache alone, so a
/// Postgres whose spec can no longer be reconciled still finishes deleting.
async fn cleanup(postgres: &Postgres, cx: &Context) -> Result<Action, Error> {
    let namespace = postgres.namespace().ok_or(Error::NoNamespace)?;
    let allow = postgres.spec.cluster.allow_deletion;
    let mut kept = Vec::new();
    for (kind, name) in cx.cache.children_of(&namespace, &postgres.name_any()) {
        if kind.keeps_data && !allow {
            kept.push(format!("{}/{name}", kind.kind));
            continue;
        }
        delete(cx, kind, &namespace, &name).await?;
    }
    let note = if kept.is_empty() {
        "deleted everything made for this Postgres".to_owned()
    } else {
        format!(
            "left in place (allowDeletion is false): {}",
            kept.join(", ")
        )
    };
    tracing::info!(postgres = %postgres.name_any(), namespace, %note, "cleaned up");
    publish(cx, postgres, EventType::Normal, "Deleted", "Delete", note).await;
    cx.set_state(ObjectRef::from_obj(postgres), None);
    Ok(Action::await_change())
}
