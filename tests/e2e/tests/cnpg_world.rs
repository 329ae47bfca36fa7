//! The real CloudNativePG world (tests/world/src/cluster_world): CNPG's operator and webhooks in a pod, its
//! instance manager running PostgreSQL 18 in pods on a real kubelet and containerd, and pgrator's operator writing
//! what CNPG runs.

use std::time::{Duration, Instant};

use kube::api::{Api, DynamicObject, Patch, PatchParams};
use pgrator_e2e::cnpg_world::{
    VALIDATOR_IMAGE, VALIDATOR_IMAGE_NEXT, current_primary, healthy, operator_on_world,
    psql_in_pod, small_cluster, validator_image, world, world_config,
};
use pgrator_e2e::operator::{Operator, create_postgres, poll_until};
use pgrator_operator::desired::kinds;
use pgrator_operator::names::Names;
use serde_json::json;

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
    let c = healthy(&clusters, &ns, "plain", Duration::from_secs(180)).await;
    assert_eq!(
        c.data.pointer("/status/currentPrimary"),
        Some(&json!("plain-1"))
    );
    let version = psql_in_pod(world, &ns, "plain-1", "SHOW server_version");
    assert!(version.starts_with("18."), "{version}");
    // No way out of the world: from the pod, an address outside it (TEST-NET-1, routed nowhere) cannot be reached;
    // the packet dies on the namespace's dead-end route.
    let out = world
        .kubectl()
        .output([
            "-n",
            &ns,
            "exec",
            "plain-1",
            "-c",
            "postgres",
            "--",
            "psql",
            "-XtA",
            "-d",
            "host=192.0.2.1 port=5432 connect_timeout=3",
            "-c",
            "SELECT 1",
        ])
        .expect("kubectl exec");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "a pod reached an address outside the world: {said}"
    );
    assert!(
        said.contains("timeout expired")
            || said.contains("No route to host")
            || said.contains("unreachable"),
        "{said}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_runs_under_cnpg_with_the_validator_from_its_image() {
    let world = world();
    let (client, ns, operator) = operator_on_world("pg-real").await;
    create_postgres(&client, &ns, "orders", small_cluster()).await;
    let clusters: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), &ns, &kinds::CLUSTER.api_resource());
    let cluster = healthy(&clusters, &ns, "orders", Duration::from_secs(120)).await;
    let primary = current_primary(&cluster);
    // The library is preloaded and named as the validator, from the directory CNPG mounted the image at.
    assert_eq!(
        psql_in_pod(world, &ns, &primary, "SHOW oauth_validator_libraries"),
        "pgrator_validator"
    );
    assert_eq!(
        psql_in_pod(world, &ns, &primary, "SHOW shared_preload_libraries"),
        "pgrator_validator"
    );
    let mounted = world
        .kubectl()
        .run([
            "-n",
            &ns,
            "exec",
            &primary,
            "-c",
            "postgres",
            "--",
            "ls",
            "/extensions/pgrator-validator/lib",
        ])
        .expect("the extension image is mounted");
    assert!(
        mounted.lines().any(|l| l == "pgrator_validator.so"),
        "{mounted}"
    );
    let mounts = world
        .kubectl()
        .run([
            "-n",
            &ns,
            "get",
            "pod",
            &primary,
            "-o",
            "jsonpath={.spec.volumes[*].image.reference}",
        ])
        .expect("the pod's volumes");
    assert!(
        mounts.contains(VALIDATOR_IMAGE),
        "an ImageVolume of the validator's image: {mounts}"
    );
    // The OAuth line is in the pg_hba.conf CNPG's instance manager wrote, as PostgreSQL parsed it.
    let oauth_rules = psql_in_pod(
        world,
        &ns,
        &primary,
        "SELECT count(*) FROM pg_hba_file_rules WHERE auth_method = 'oauth' AND error IS NULL",
    );
    assert_eq!(
        oauth_rules,
        "1",
        "{}",
        psql_in_pod(world, &ns, &primary, "TABLE pg_hba_file_rules")
    );
    // The validator's SQL face works from the mounted share directory: its counters are readable.
    let counters = psql_in_pod(
        world,
        &ns,
        &primary,
        "CREATE EXTENSION IF NOT EXISTS pgrator_validator; SELECT count(*) > 0 FROM pgrator_validator.counters()",
    );
    assert_eq!(counters, "t");

    // The application's path: a pod of the namespace logs in through the Pooler (PgBouncer, in pods CNPG runs)
    // with the credentials CNPG put in the app Secret.
    let pooler = Names::new(&ns, "orders").pooler();
    world
        .kubectl()
        .run([
            "-n",
            &ns,
            "rollout",
            "status",
            &format!("deployment/{pooler}"),
            "--timeout=120s",
        ])
        .unwrap_or_else(|e| panic!("the Pooler's PgBouncer pods: {e}\n{}", world.diagnose(&ns)));
    let answer = app_pod_query(
        &client,
        &ns,
        &pooler,
        "orders-app",
        "SELECT current_user || ' ' || current_database()",
    )
    .await;
    assert_eq!(answer, "app app", "{}", world.diagnose(&ns));
    // The network policies are among the objects (the world's CNI, the bridge plugin, does not enforce them).
    let policies = world
        .kubectl()
        .run(["-n", &ns, "get", "networkpolicies", "-o", "name"])
        .expect("network policies");
    for policy in ["orders-postgres", "orders-pooler"] {
        assert!(
            policies
                .lines()
                .any(|l| l == format!("networkpolicy.networking.k8s.io/{policy}")),
            "{policies}"
        );
    }

    // WAL goes to the world's object storage through the Barman Cloud plugin's sidecar: CNPG reports archiving.
    poll_until(
        "CNPG to report WAL archiving working",
        Duration::from_secs(120),
        || async {
            let c = clusters.get("orders").await.ok()?;
            let conditions = c.data.pointer("/status/conditions")?.as_array()?.clone();
            conditions
                .iter()
                .any(|c| c["type"] == "ContinuousArchiving" && c["status"] == "True")
                .then_some(())
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", world.diagnose(&ns)));

    // A validator setting changed in the operator's configuration reaches the running servers by CNPG's reload,
    // without a restart.
    operator.stop().await;
    let mut config = world_config(world);
    config
        .validator
        .settings
        .insert("clock_skew".into(), "10s".into());
    let started_pods = pod_uids(world, &ns);
    let operator = Operator::start_on(
        world.config().await.expect("config"),
        &ns,
        None,
        config.clone(),
    );
    for pod in [&primary, &healthy_replica(world, &ns, &primary)] {
        poll_until(
            "the new setting in the running server",
            Duration::from_secs(60),
            || async {
                (psql_in_pod(world, &ns, pod, "SHOW pgrator_validator.clock_skew") == "10s")
                    .then_some(())
            },
        )
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", world.diagnose(&ns)));
    }
    assert_eq!(pod_uids(world, &ns), started_pods, "a reload, not new pods");

    // A new validator image rolls out through CNPG's own rolling update: every pod mounts it, one at a time.
    operator.stop().await;
    config.validator.image = validator_image(VALIDATOR_IMAGE_NEXT);
    let operator = Operator::start_on(world.config().await.expect("config"), &ns, None, config);
    let rollout = Instant::now();
    poll_until(
        "every pod to mount the new image",
        Duration::from_secs(300),
        || async {
            let refs = world
                .kubectl()
                .run([
                    "-n",
                    &ns,
                    "get",
                    "pods",
                    "-l",
                    "cnpg.io/cluster=orders,cnpg.io/podRole=instance",
                    "-o",
                    "jsonpath={range .items[*]}{.spec.volumes[*].image.reference}{\"\\n\"}{end}",
                ])
                .ok()?;
            let lines: Vec<&str> = refs.lines().filter(|l| !l.is_empty()).collect();
            (lines.len() == 2 && lines.iter().all(|l| l.contains(VALIDATOR_IMAGE_NEXT)))
                .then_some(())
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", world.diagnose(&ns)));
    let cluster = healthy(&clusters, &ns, "orders", Duration::from_secs(180)).await;
    eprintln!(
        "validator image rollout: {:.1} s to every pod and healthy",
        rollout.elapsed().as_secs_f64()
    );
    let primary = current_primary(&cluster);
    assert_eq!(
        psql_in_pod(world, &ns, &primary, "SHOW pgrator_validator.clock_skew"),
        "10s"
    );

    operator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cnpg_webhooks_refuse_a_cluster_with_a_fixed_parameter() {
    let world = world();
    let client = world.client().await.expect("client");
    let ns = world.namespace("cnpg-refuse").await.expect("namespace");
    let clusters: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), &ns, &kinds::CLUSTER.api_resource());
    let cluster: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "postgresql.cnpg.io/v1",
        "kind": "Cluster",
        "metadata": {"name": "bad", "namespace": ns},
        "spec": {"instances": 1, "imageName": world.postgres_image(), "storage": {"size": "1Gi"},
                 "postgresql": {"parameters": {"port": "5433"}}}
    }))
    .expect("a Cluster");
    let refused = clusters
        .patch("bad", &PatchParams::apply("test"), &Patch::Apply(&cluster))
        .await
        .expect_err("CNPG's webhook refuses a fixed parameter");
    let message = refused.to_string();
    assert!(
        message.contains("vcluster.cnpg.io") && message.contains("port"),
        "{message}"
    );
}

/// Runs `sql` with psql in a pod of `ns` (the world's PostgreSQL image, as an application would) against the
/// service `host` with the user and password of the Secret `secret`, and returns its answer.
async fn app_pod_query(
    client: &kube::Client,
    ns: &str,
    host: &str,
    secret: &str,
    sql: &str,
) -> String {
    use k8s_openapi::api::core::v1::Pod;
    let env_from = |name: &str, key: &str| json!({"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}});
    let pod: Pod = serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "app-check", "namespace": ns},
        "spec": {
            "restartPolicy": "Never",
            "containers": [{
                "name": "psql",
                "image": world().postgres_image(),
                "imagePullPolicy": "IfNotPresent",
                "command": ["psql", "-XtA", "-v", "ON_ERROR_STOP=1", "-c", sql],
                "env": [
                    env_from("PGUSER", "username"),
                    env_from("PGPASSWORD", "password"),
                    {"name": "PGHOST", "value": host},
                    {"name": "PGDATABASE", "value": "app"},
                    {"name": "PGSSLMODE", "value": "require"},
                ],
            }],
        },
    }))
    .expect("a Pod");
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    pods.create(&Default::default(), &pod)
        .await
        .expect("create the application's pod");
    let phase = poll_until(
        "the application's pod to finish",
        Duration::from_secs(120),
        || async {
            let phase = pods.get("app-check").await.ok()?.status?.phase?;
            matches!(phase.as_str(), "Succeeded" | "Failed").then_some(phase)
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", world().diagnose(ns)));
    let logs = pods
        .logs("app-check", &Default::default())
        .await
        .expect("the pod's output");
    assert_eq!(phase, "Succeeded", "psql in the application's pod: {logs}");
    logs.trim().to_string()
}

/// The uids of the namespace's pods (new pods get new uids).
fn pod_uids(world: &pgrator_world::cluster_world::ClusterWorld, ns: &str) -> String {
    world
        .kubectl()
        .run([
            "-n",
            ns,
            "get",
            "pods",
            "-l",
            "cnpg.io/podRole=instance",
            "-o",
            "jsonpath={.items[*].metadata.uid}",
        ])
        .expect("the pods")
}

/// A replica: an instance pod CNPG labels as such that is not `primary` (callers wait for health first).
fn healthy_replica(
    world: &pgrator_world::cluster_world::ClusterWorld,
    ns: &str,
    primary: &str,
) -> String {
    let pods = world
        .kubectl()
        .run([
            "-n",
            ns,
            "get",
            "pods",
            "-l",
            "cnpg.io/instanceRole=replica",
            "-o",
            "jsonpath={.items[*].metadata.name}",
        ])
        .expect("the replicas");
    pods.split_whitespace()
        .find(|p| *p != primary)
        .map(str::to_string)
        .unwrap_or_else(|| {
            panic!(
                "no replica besides {primary}: {pods}\n{}",
                world.diagnose(ns)
            )
        })
}
