//! Writing what the reconcilers decided: one child applied (server-side apply under one field manager, only when it
//! differs from the live object), one child deleted, one event published. Shared by the Postgres and the access
//! reconcilers.

use kube::Resource;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::runtime::events::{Event, EventType};
use serde_json::{Value, json};

use super::context::Context;
use super::diff::{APPLIED_HASH, Verdict, intent_hash, verdict};
use super::error::Error;
use super::metrics::ApplyLabels;
use crate::api::Postgres;
use crate::desired::Child;
use crate::names::FIELD_MANAGER;

/// Applies one child if it differs; returns what was done and to which (kind, name) when it wrote.
pub(crate) async fn apply_child(
    cx: &Context,
    child: Child,
    live: Option<&Value>,
) -> Result<Option<(&'static str, (String, String))>, Error> {
    let kind = child.kind;
    let name = child.name().to_owned();
    let mut object = child.object;
    let mut intent = serde_json::to_value(&object).unwrap_or_default();
    let hash = intent_hash(&intent);
    object
        .metadata
        .annotations
        .get_or_insert_with(Default::default)
        .insert(APPLIED_HASH.to_owned(), hash.clone());
    intent["metadata"]["annotations"][APPLIED_HASH] = json!(hash);

    let verdict = verdict(&intent, live);
    let reason = match verdict {
        Verdict::UpToDate => {
            cx.metrics
                .applies
                .get_or_create(&ApplyLabels {
                    kind: kind.kind,
                    outcome: "unchanged",
                })
                .inc();
            return Ok(None);
        }
        Verdict::Absent => "Created",
        Verdict::IntentChanged => "Updated",
        Verdict::Drifted => "DriftCorrected",
    };
    let api: Api<DynamicObject> = Api::namespaced_with(
        cx.client.clone(),
        object.metadata.namespace.as_deref().unwrap_or_default(),
        &kind.api_resource(),
    );
    let applied = api
        .patch(
            &name,
            &PatchParams::apply(FIELD_MANAGER)
                .force()
                // An unknown field is an error, never silently dropped (it would look like drift forever).
                .validation(kube::api::ValidationDirective::Strict),
            &Patch::Apply(&object),
        )
        .await
        .map_err(|source| Error::Apply {
            kind: kind.kind,
            name: name.clone(),
            source,
        })?;
    cx.cache.store(kind, &applied);
    cx.metrics
        .applies
        .get_or_create(&ApplyLabels {
            kind: kind.kind,
            outcome: reason,
        })
        .inc();
    tracing::info!(kind = kind.kind, name = %name, namespace = object.metadata.namespace.as_deref().unwrap_or_default(), outcome = reason, "applied");
    Ok(Some((reason, (kind.kind.to_owned(), name))))
}

pub(crate) async fn delete(
    cx: &Context,
    kind: crate::desired::Kind,
    namespace: &str,
    name: &str,
) -> Result<(), Error> {
    let api: Api<DynamicObject> =
        Api::namespaced_with(cx.client.clone(), namespace, &kind.api_resource());
    match api.delete(name, &Default::default()).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 => {}
        Err(source) => {
            return Err(Error::Delete {
                kind: kind.kind,
                name: name.to_owned(),
                source,
            });
        }
    }
    cx.cache.forget(kind, namespace, name);
    tracing::info!(kind = kind.kind, name, namespace, "deleted");
    Ok(())
}

/// A Kubernetes event on the Postgres; a failure to publish is logged, never fatal.
pub(crate) async fn publish(
    cx: &Context,
    postgres: &Postgres,
    type_: EventType,
    reason: &str,
    action: &str,
    note: String,
) {
    let event = Event {
        type_,
        reason: reason.to_owned(),
        note: Some(note.chars().take(1000).collect()),
        action: action.to_owned(),
        secondary: None,
    };
    if let Err(error) = cx.recorder.publish(&event, &postgres.object_ref(&())).await {
        tracing::warn!(%error, "could not publish an event");
    }
}
