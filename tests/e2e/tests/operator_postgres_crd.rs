//! The Postgres CRD generated from the operator's types, installed in the real API server: a good object is
//! stored, and every kind of bad object is refused with a message that tells the user what to fix.

use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use pgrator_operator::api::Postgres;
use pgrator_world::kube::ControlPlane;
use serde_json::{Value, json};

fn plane() -> &'static ControlPlane {
    ControlPlane::shared()
        .unwrap_or_else(|e| panic!("the Kubernetes control plane must start: {e}"))
}

async fn install_crd(client: &kube::Client) {
    pgrator_e2e::operator::install_crds(client).await;
}

fn postgres(name: &str, cluster: Value, extra: Value) -> Value {
    let mut spec = json!({"cluster": cluster});
    if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
        s.extend(e.clone());
    }
    json!({"apiVersion": "data.nais.io/v1", "kind": "Postgres", "metadata": {"name": name}, "spec": spec})
}

fn cluster() -> Value {
    json!({"majorVersion": "18", "resources": {"cpu": "500m", "memory": "1Gi", "diskSize": "10Gi"}})
}

/// `base` with the field at `pointer` set (its parent must exist).
fn with(mut base: Value, pointer: &str, value: Value) -> Value {
    let (parent, key) = pointer.rsplit_once('/').expect("a JSON pointer");
    let target = if parent.is_empty() {
        Some(&mut base)
    } else {
        base.pointer_mut(parent)
    };
    let object = target
        .and_then(Value::as_object_mut)
        .expect("the parent of the field");
    object.insert(key.to_string(), value);
    base
}

/// Sends `object` as it is (a typed Postgres could not even hold most of these) and returns the refusal.
async fn refusal(api: &Api<DynamicObject>, object: Value) -> String {
    let raw: DynamicObject = serde_json::from_value(object).expect("an object");
    match api.create(&PostParams::default(), &raw).await {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 422, "{status:?}");
            status.message
        }
        other => panic!("expected the API server to refuse, got {other:?}"),
    }
}

#[tokio::test]
async fn the_api_server_refuses_bad_postgres_objects_with_readable_messages() {
    let plane = plane();
    let client = plane.client().await.expect("client");
    install_crd(&client).await;
    let namespace = plane.namespace("pgcrd").await.expect("namespace");
    let api: Api<Postgres> = Api::namespaced(client.clone(), &namespace);
    let raw: Api<DynamicObject> =
        Api::namespaced_with(client, &namespace, &ApiResource::erase::<Postgres>(&()));

    let good: Postgres = serde_json::from_value(postgres(
        "good",
        cluster(),
        json!({"maintenanceWindow": {"day": 3, "hour": 4}, "database": {"collation": "nb_NO"}}),
    ))
    .expect("a Postgres object");
    api.create(&PostParams::default(), &good)
        .await
        .expect("a valid Postgres is accepted");

    for (what, object, expected) in [
        (
            "a bad cpu quantity",
            postgres(
                "bad-cpu",
                with(cluster(), "/resources/cpu", json!("lots")),
                json!({}),
            ),
            "cpu must be a positive Kubernetes quantity",
        ),
        (
            "too little memory",
            postgres(
                "bad-mem",
                with(cluster(), "/resources/memory", json!("64Mi")),
                json!({}),
            ),
            "memory must be a Kubernetes quantity of at least 256Mi",
        ),
        (
            "major version 17",
            postgres(
                "pg17",
                with(cluster(), "/majorVersion", json!("17")),
                json!({}),
            ),
            "majorVersion must be \"18\" or later",
        ),
        (
            "an unknown audit class",
            postgres(
                "bad-audit",
                with(
                    cluster(),
                    "/audit",
                    json!({"enabled": true, "statementClasses": ["everything"]}),
                ),
                json!({}),
            ),
            "Unsupported value: \"everything\"",
        ),
        (
            "a collation that is no locale name",
            postgres(
                "bad-collation",
                cluster(),
                json!({"database": {"collation": "C; drop"}}),
            ),
            "collation must be a locale name such as C, C.UTF-8, nb_NO or en_US.UTF-8",
        ),
        (
            "an audit class twice",
            postgres(
                "audit-twice",
                with(
                    cluster(),
                    "/audit",
                    json!({"enabled": true, "statementClasses": ["ddl", "role", "ddl"]}),
                ),
                json!({}),
            ),
            "audit.statementClasses lists a class twice",
        ),
        (
            "audit class all beside others",
            postgres(
                "audit-all",
                with(
                    cluster(),
                    "/audit",
                    json!({"enabled": true, "statementClasses": ["all", "ddl"]}),
                ),
                json!({}),
            ),
            "'all' already includes every class",
        ),
        (
            "maintenance day 8",
            postgres(
                "bad-day",
                cluster(),
                json!({"maintenanceWindow": {"day": 8, "hour": 1}}),
            ),
            "maintenanceWindow.day must be 1 (Monday) to 7 (Sunday)",
        ),
        (
            "a name longer than 40 characters",
            postgres(&"n".repeat(41), cluster(), json!({})),
            "the name of a Postgres must be at most 40",
        ),
    ] {
        let message = refusal(&raw, object).await;
        assert!(
            message.contains(expected),
            "{what}: the message does not say what to fix: {message}"
        );
    }

    // Updates: the disk may not shrink, the major version may not go down, the collation is fixed.
    let params = PatchParams::default();
    for (what, patch, expected) in [
        (
            "a smaller disk",
            json!({"spec": {"cluster": {"resources": {"diskSize": "5Gi"}}}}),
            "diskSize may not shrink",
        ),
        (
            "another collation",
            json!({"spec": {"database": {"collation": "C"}}}),
            "collation cannot be changed",
        ),
    ] {
        match api.patch("good", &params, &Patch::Merge(&patch)).await {
            Err(kube::Error::Api(status)) => {
                assert!(
                    status.message.contains(expected),
                    "{what}: {}",
                    status.message
                )
            }
            other => panic!("{what}: expected a refusal, got {other:?}"),
        }
    }
    let grow =
        json!({"spec": {"cluster": {"majorVersion": "19", "resources": {"diskSize": "20Gi"}}}});
    api.patch("good", &params, &Patch::Merge(&grow))
        .await
        .expect("a larger disk and a newer major version");
    match api
        .patch(
            "good",
            &params,
            &Patch::Merge(&json!({"spec": {"cluster": {"majorVersion": "18"}}})),
        )
        .await
    {
        Err(kube::Error::Api(status)) => {
            assert!(
                status.message.contains("majorVersion may not go down"),
                "{}",
                status.message
            )
        }
        other => panic!("a major version downgrade: expected a refusal, got {other:?}"),
    }
}
