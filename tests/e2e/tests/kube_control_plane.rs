//! The test world's Kubernetes control plane behaves as a real one: the API server validates CNPG objects
//! against the CRD's OpenAPI schema and CEL rules, the garbage collector follows owner references, server-side
//! apply tracks field ownership, and watches deliver events in order. One control plane serves the whole test
//! binary; each test works in its own namespace.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, ObjectMeta, Patch,
    PatchParams, PostParams, WatchEvent, WatchParams,
};
use pgrator_world::kube::ControlPlane;
use serde_json::{Value, json};

fn plane() -> &'static ControlPlane {
    ControlPlane::shared().unwrap_or_else(|e| {
        panic!("the Kubernetes control plane of the test world must start: {e}")
    })
}

fn cnpg_clusters(client: kube::Client, namespace: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("postgresql.cnpg.io", "v1", "Cluster");
    Api::namespaced_with(
        client,
        namespace,
        &ApiResource::from_gvk_with_plural(&gvk, "clusters"),
    )
}

fn cnpg_cluster(name: &str, spec: Value) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "postgresql.cnpg.io/v1",
        "kind": "Cluster",
        "metadata": { "name": name },
        "spec": spec,
    }))
    .expect("a Cluster object")
}

/// The API server's refusal: its Status, or a failure naming what was returned instead.
fn api_status<T: std::fmt::Debug>(result: kube::Result<T>, what: &str) -> kube::core::Status {
    match result {
        Err(kube::Error::Api(status)) => *status,
        other => panic!("{what}: expected the API server to refuse, got {other:?}"),
    }
}

#[tokio::test]
async fn cnpg_cluster_is_created_and_a_schema_invalid_one_is_rejected_by_the_api_server() {
    let plane = plane();
    let namespace = plane.namespace("schema").await.expect("namespace");
    let clusters = cnpg_clusters(plane.client().await.expect("client"), &namespace);

    let created = clusters
        .create(
            &PostParams::default(),
            &cnpg_cluster(
                "valid",
                json!({ "instances": 2, "storage": { "size": "1Gi" } }),
            ),
        )
        .await
        .expect("a valid CNPG Cluster is accepted");
    assert_eq!(created.data["spec"]["instances"], json!(2));
    let read = clusters
        .get("valid")
        .await
        .expect("the Cluster can be read back");
    assert_eq!(read.data["spec"]["storage"]["size"], json!("1Gi"));

    // OpenAPI schema: `instances` has `minimum: 1`.
    let status = api_status(
        clusters
            .create(
                &PostParams::default(),
                &cnpg_cluster("too-few", json!({ "instances": 0 })),
            )
            .await,
        "a Cluster with 0 instances",
    );
    assert_eq!(
        (status.code, status.reason.as_str()),
        (422, "Invalid"),
        "{status:?}"
    );
    assert!(
        status
            .message
            .contains(r#"Cluster.postgresql.cnpg.io "too-few" is invalid"#)
            && status.message.contains("spec.instances")
            && status
                .message
                .contains("should be greater than or equal to 1"),
        "unexpected message from the API server: {}",
        status.message
    );

    // CEL rule of the CRD (x-kubernetes-validations on spec).
    let both = json!({
        "instances": 1,
        "imageName": "ghcr.io/cloudnative-pg/postgresql:18",
        "imageCatalogRef": { "apiGroup": "postgresql.cnpg.io", "kind": "ImageCatalog", "name": "pg", "major": 18 },
    });
    let status = api_status(
        clusters
            .create(&PostParams::default(), &cnpg_cluster("both-images", both))
            .await,
        "a Cluster with both imageName and imageCatalogRef",
    );
    assert_eq!(
        (status.code, status.reason.as_str()),
        (422, "Invalid"),
        "{status:?}"
    );
    assert!(
        status
            .message
            .contains("imageName and imageCatalogRef are mutually exclusive"),
        "unexpected message from the API server: {}",
        status.message
    );

    let names: Vec<String> = clusters
        .list(&ListParams::default())
        .await
        .expect("list Clusters")
        .items
        .into_iter()
        .filter_map(|c| c.metadata.name)
        .collect();
    assert_eq!(
        names,
        ["valid"],
        "only the valid Cluster may have been stored"
    );
}

#[tokio::test]
async fn children_are_garbage_collected_when_their_owner_is_deleted() {
    let plane = plane();
    let namespace = plane.namespace("gc").await.expect("namespace");
    let client = plane.client().await.expect("client");
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), &namespace);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &namespace);
    let clusters = cnpg_clusters(client, &namespace);

    let owner = config_maps
        .create(
            &PostParams::default(),
            &ConfigMap {
                metadata: ObjectMeta {
                    name: Some("owner".into()),
                    ..ObjectMeta::default()
                },
                ..ConfigMap::default()
            },
        )
        .await
        .expect("create the owner");
    let owned_by = vec![OwnerReference {
        api_version: "v1".into(),
        kind: "ConfigMap".into(),
        name: "owner".into(),
        uid: owner.metadata.uid.clone().expect("the server sets a uid"),
        ..OwnerReference::default()
    }];

    let secret = |name: &str, owners: Option<Vec<OwnerReference>>| Secret {
        metadata: ObjectMeta {
            name: Some(name.into()),
            owner_references: owners,
            ..ObjectMeta::default()
        },
        string_data: Some(BTreeMap::from([("k".to_string(), "v".to_string())])),
        ..Secret::default()
    };
    secrets
        .create(
            &PostParams::default(),
            &secret("owned", Some(owned_by.clone())),
        )
        .await
        .expect("create the owned Secret");
    secrets
        .create(&PostParams::default(), &secret("unowned", None))
        .await
        .expect("create the unowned Secret");
    // A custom resource as a child too: the operator's children are CNPG objects.
    let mut child = cnpg_cluster("owned", json!({ "instances": 1 }));
    child.metadata.owner_references = Some(owned_by);
    clusters
        .create(&PostParams::default(), &child)
        .await
        .expect("create the owned Cluster");

    config_maps
        .delete("owner", &DeleteParams::background())
        .await
        .expect("delete the owner");

    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let secret_left = secrets
            .get_opt("owned")
            .await
            .expect("get Secret")
            .is_some();
        let cluster_left = clusters
            .get_opt("owned")
            .await
            .expect("get Cluster")
            .is_some();
        if !secret_left && !cluster_left {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the garbage collector did not delete the children within 60 s (Secret left: {secret_left}, \
             Cluster left: {cluster_left})"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(
        secrets
            .get_opt("unowned")
            .await
            .expect("get Secret")
            .is_some(),
        "a Secret without an owner reference must survive"
    );
}

#[tokio::test]
async fn server_side_apply_refuses_a_second_manager_changing_a_field_the_first_owns() {
    let plane = plane();
    let namespace = plane.namespace("ssa").await.expect("namespace");
    let clusters = cnpg_clusters(plane.client().await.expect("client"), &namespace);

    let first = cnpg_cluster(
        "applied",
        json!({ "instances": 1, "storage": { "size": "1Gi" } }),
    );
    clusters
        .patch(
            "applied",
            &PatchParams::apply("pgrator-first"),
            &Patch::Apply(&first),
        )
        .await
        .expect("the first manager applies");

    let second = cnpg_cluster("applied", json!({ "instances": 3 }));
    let status = api_status(
        clusters
            .patch(
                "applied",
                &PatchParams::apply("pgrator-second"),
                &Patch::Apply(&second),
            )
            .await,
        "a second manager applying spec.instances",
    );
    assert_eq!(
        (status.code, status.reason.as_str()),
        (409, "Conflict"),
        "{status:?}"
    );
    assert!(
        status.message.contains(r#"conflict with "pgrator-first""#)
            && status.message.contains(".spec.instances"),
        "the conflict must name the owning manager and the field: {}",
        status.message
    );
    let current = clusters.get("applied").await.expect("read back");
    assert_eq!(
        current.data["spec"]["instances"],
        json!(1),
        "the refused apply must not have changed anything"
    );

    // A field the first manager does not own is free for the second.
    let other = cnpg_cluster("applied", json!({ "description": "second" }));
    let patched = clusters
        .patch(
            "applied",
            &PatchParams::apply("pgrator-second"),
            &Patch::Apply(&other),
        )
        .await
        .expect("the second manager may set a field nobody owns");
    assert_eq!(patched.data["spec"]["description"], json!("second"));
}

#[tokio::test]
async fn a_watch_sees_create_update_and_delete_in_order() {
    let plane = plane();
    let namespace = plane.namespace("watch").await.expect("namespace");
    let config_maps: Api<ConfigMap> =
        Api::namespaced(plane.client().await.expect("client"), &namespace);

    let list = config_maps
        .list_metadata(&ListParams::default())
        .await
        .expect("list");
    let from = list
        .metadata
        .resource_version
        .expect("a list has a resourceVersion");
    let mut events = config_maps
        .watch(
            &WatchParams::default()
                .fields("metadata.name=watched")
                .timeout(60),
            &from,
        )
        .await
        .expect("start the watch")
        .boxed();

    let config_map = |value: &str| ConfigMap {
        metadata: ObjectMeta {
            name: Some("watched".into()),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([("step".to_string(), value.to_string())])),
        ..ConfigMap::default()
    };
    config_maps
        .create(&PostParams::default(), &config_map("created"))
        .await
        .expect("create");
    config_maps
        .patch(
            "watched",
            &PatchParams::default(),
            &Patch::Merge(json!({ "data": { "step": "updated" } })),
        )
        .await
        .expect("update");
    config_maps
        .delete("watched", &DeleteParams::default())
        .await
        .expect("delete");

    let mut seen: Vec<(String, String)> = Vec::new();
    let collect = async {
        while let Some(event) = events.next().await {
            let (kind, object) = match event.expect("a watch event") {
                WatchEvent::Added(o) => ("Added", o),
                WatchEvent::Modified(o) => ("Modified", o),
                WatchEvent::Deleted(o) => ("Deleted", o),
                WatchEvent::Bookmark(_) => continue,
                WatchEvent::Error(status) => panic!("the watch failed: {status:?}"),
            };
            let step = object
                .data
                .and_then(|d| d.get("step").cloned())
                .unwrap_or_default();
            seen.push((kind.to_string(), step));
            if kind == "Deleted" {
                break;
            }
        }
    };
    let finished = tokio::time::timeout(Duration::from_secs(30), collect)
        .await
        .is_ok();
    assert!(
        finished,
        "no Deleted event within 30 s; events so far: {seen:?}"
    );
    let expected = [
        ("Added", "created"),
        ("Modified", "updated"),
        ("Deleted", "updated"),
    ]
    .map(|(k, s)| (k.to_string(), s.to_string()));
    assert_eq!(seen, expected);
}
