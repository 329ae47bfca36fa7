//! The real CloudNativePG world (tests/world/src/cluster_world): CNPG's operator and webhooks in a pod, its
//! instance manager running PostgreSQL 18 in pods on a real kubelet and containerd.

use std::time::Duration;

use kube::api::{Api, DynamicObject, Patch, PatchParams};
use pgrator_e2e::operator::wait_for;
use pgrator_operator::desired::kinds;
use pgrator_world::cluster_world::ClusterWorld;
use serde_json::json;

fn world() -> &'static ClusterWorld {
    ClusterWorld::shared().unwrap_or_else(|e| panic!("the cluster world must start: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cnpg_cluster_runs_postgresql_18_in_a_pod() {
    let world = world();
    let client = world.client().await.expect("client");
    let ns = world.namespace("cnpg").await.expect("namespace");
    let clusters: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), &ns, &kinds::CLUSTER.api_resource());
    let cluster: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "postgresql.cnpg.io/v1",
        "kind": "Cluster",
        "metadata": {"name": "plain", "namespace": ns},
        "spec": {"instances": 1, "imageName": world.postgres_image(), "storage": {"size": "1Gi"}}
    }))
    .expect("a Cluster");
    clusters
        .patch(
            "plain",
            &PatchParams::apply("test"),
            &Patch::Apply(&cluster),
        )
        .await
        .expect("CNPG's webhooks admit the Cluster");
    let healthy = wait_for("a healthy Cluster", Duration::from_secs(180), || async {
        let c = clusters.get("plain").await.ok()?;
        (c.data.pointer("/status/phase")?.as_str()? == "Cluster in healthy state").then_some(c)
    })
    .await;
    assert_eq!(
        healthy.data.pointer("/status/currentPrimary"),
        Some(&json!("plain-1"))
    );
}
