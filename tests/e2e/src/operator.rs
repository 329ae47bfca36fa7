//! The operator under test: the real reconciler running in this process against the test world's real
//! kube-apiserver (with the real CNPG, barman, prometheus-operator and Config Connector CRDs), scoped to one
//! namespace so that tests running side by side do not see each other's objects.

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use pgrator_operator::config::OperatorConfig;
use pgrator_operator::controller::{self, RunOptions, leader::LeaseConfig, metrics::Metrics};
use pgrator_operator::desired::Kind;
use pgrator_world::kube::ControlPlane;
use tokio::sync::oneshot;

/// The configuration every operator test uses: the example shipped with the operator.
pub fn example_config() -> OperatorConfig {
    let text = include_str!("../../../operator/deploy/config.example.yaml");
    OperatorConfig::from_yaml(text).expect("the example configuration is valid")
}

/// The shared control plane of this test binary.
pub fn plane() -> &'static ControlPlane {
    ControlPlane::shared()
        .unwrap_or_else(|e| panic!("the Kubernetes control plane must start: {e}"))
}

/// Installs (server-side apply) the operator's CRDs and waits until they are served.
pub async fn install_crds(client: &kube::Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for (_, crd) in pgrator_operator::api::crds() {
        let name = crd.metadata.name.clone().expect("a CRD has a name");
        crds.patch(
            &name,
            &PatchParams::apply("pgrator-test").force(),
            &Patch::Apply(&crd),
        )
        .await
        .unwrap_or_else(|e| panic!("install the CRD {name}: {e}"));
        wait_for(
            &format!("the CRD {name} to be Established"),
            Duration::from_secs(20),
            || async {
                let c = crds.get(&name).await.ok()?;
                c.status?
                    .conditions?
                    .iter()
                    .any(|c| c.type_ == "Established" && c.status == "True")
                    .then_some(())
            },
        )
        .await;
    }
}

/// Polls `probe` every 100 ms until it returns Some; an error naming `what` after `timeout`.
pub async fn poll_until<T, F, Fut>(what: &str, timeout: Duration, mut probe: F) -> Result<T, String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(v) = probe().await {
            return Ok(v);
        }
        if started.elapsed() >= timeout {
            return Err(format!("timed out after {timeout:?} waiting for {what}"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// As [`poll_until`], failing the test on the timeout.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    poll_until(what, timeout, probe)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Plays CNPG: merges `status` into the status of the Cluster `name` (CNPG does not run in the test world).
pub async fn report_cluster_status(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    status: serde_json::Value,
) {
    let clusters: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        namespace,
        &pgrator_operator::desired::kinds::CLUSTER.api_resource(),
    );
    clusters
        .patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({ "status": status })),
        )
        .await
        .expect("play CNPG: report the Cluster's status");
}

/// A running operator; stopping it (or dropping it) ends its loop.
pub struct Operator {
    pub metrics: Arc<Metrics>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), controller::leader::LeaderError>>>,
}

impl Operator {
    /// Starts an operator watching `namespace`, with a leader lease there when `identity` is given.
    pub async fn start(namespace: &str, identity: Option<&str>) -> Operator {
        Self::start_with(namespace, identity, example_config()).await
    }

    pub async fn start_with(
        namespace: &str,
        identity: Option<&str>,
        config: OperatorConfig,
    ) -> Operator {
        let kube_config = plane().config().await.expect("client configuration");
        Self::start_on(kube_config, namespace, identity, config)
    }

    /// Starts an operator against the API server of `kube_config` (another world than the shared control plane).
    pub fn start_on(
        kube_config: kube::Config,
        namespace: &str,
        identity: Option<&str>,
        config: OperatorConfig,
    ) -> Operator {
        let metrics = Arc::new(Metrics::default());
        let client = controller::client::counted_client(kube_config, metrics.clone())
            .expect("the operator's client");
        Self::launch(namespace, identity, config, client, metrics)
    }

    /// An operator (no lease) whose client lets `writes` writes reach the API server and stalls every later one
    /// before it is sent: frozen mid-reconcile, ready to be killed there.
    pub async fn start_stalling_after(namespace: &str, writes: i64) -> Operator {
        let metrics = Arc::new(Metrics::default());
        let kube_config = plane().config().await.expect("client configuration");
        let counting = {
            let metrics = metrics.clone();
            tower::util::MapRequestLayer::new(move |request: http::Request<kube::client::Body>| {
                metrics.count_request(request.method().as_str());
                request
            })
        };
        let client = kube::client::ClientBuilder::try_from(kube_config)
            .expect("the operator's client")
            // Counting inside the stall: the metrics count only the writes that were sent.
            .with_layer(&counting)
            .with_layer(&crate::stalled_writes::StallWritesLayer::new(writes))
            .build();
        Self::launch(namespace, None, example_config(), client, metrics)
    }

    fn launch(
        namespace: &str,
        identity: Option<&str>,
        config: OperatorConfig,
        client: kube::Client,
        metrics: Arc<Metrics>,
    ) -> Operator {
        let options = RunOptions {
            lease: identity.map(|id| {
                let mut lease = LeaseConfig::new(namespace, id);
                // Short terms so the take-over test does not wait long; renewals stay well inside them.
                lease.lease_duration = Duration::from_secs(6);
                lease.renew_deadline = Duration::from_secs(4);
                lease.renew_every = Duration::from_millis(500);
                lease
            }),
            instance: identity.map(str::to_owned),
            concurrency: 8,
            namespace: Some(namespace.to_owned()),
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(controller::run(
            client,
            Arc::new(config),
            metrics.clone(),
            options,
            async move {
                let _ = stopped.await;
            },
        ));
        Operator {
            metrics,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Graceful stop: reconciles in flight finish, the lease is given up.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            // A stop shows what the operator ended with: an error it hid would otherwise pass every test.
            match tokio::time::timeout(Duration::from_secs(20), task).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(e))) => panic!("the operator stopped with an error: {e}"),
                Ok(Err(e)) => panic!("the operator's task failed: {e}"),
                Err(_) => panic!("the operator did not stop within 20 s of being asked"),
            }
        }
    }

    /// Abrupt stop, as a killed process: the task is dropped wherever it is.
    pub fn kill(mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }

    pub fn is_leader(&self) -> bool {
        self.metrics.leader.get() == 1
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// The live object of `kind` named `name`, if any.
pub async fn get(
    client: &kube::Client,
    namespace: &str,
    kind: Kind,
    name: &str,
) -> Option<DynamicObject> {
    let api: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), namespace, &kind.api_resource());
    api.get_opt(name).await.expect("read an object")
}

/// The `pgrator` CLI binary of this build (`cargo build -p pgrator-cli --bin pgrator`; `./just test` builds it).
pub fn cli_binary() -> std::path::PathBuf {
    workspace_binary("pgrator-cli", "pgrator")
}

/// The `pgrator-operator` binary of this build (`./just test` builds it).
pub fn operator_binary() -> std::path::PathBuf {
    workspace_binary("pgrator-operator", "pgrator-operator")
}

/// A program of this workspace, built beside the test binaries: target/<profile>/deps/<test> -> target/<profile>/<bin>.
fn workspace_binary(package: &str, bin: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let path = exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(|profile| profile.join(bin))
        .expect("the target directory");
    assert!(
        path.is_file(),
        "{} is missing: build it with `cargo build -p {package} --bin {bin}` (`./just test` does)",
        path.display()
    );
    path
}

/// A client with the operator's CRDs installed, and a fresh namespace `<prefix>-...`.
pub async fn setup(prefix: &str) -> (kube::Client, String) {
    let client = plane().client().await.expect("client");
    install_crds(&client).await;
    let ns = plane().namespace(prefix).await.expect("namespace");
    (client, ns)
}

/// Creates the Postgres `name` in `ns` (PostgreSQL 18, 500m, 2Gi, 10Gi) with `extra` merged into spec.cluster.
pub async fn create_postgres(
    client: &kube::Client,
    ns: &str,
    name: &str,
    extra: serde_json::Value,
) -> pgrator_operator::api::Postgres {
    use pgrator_operator::api::Postgres;
    let mut cluster = serde_json::json!({"majorVersion": "18", "resources": {"cpu": "500m", "memory": "2Gi", "diskSize": "10Gi"}});
    if let (Some(c), Some(e)) = (cluster.as_object_mut(), extra.as_object()) {
        c.extend(e.clone());
    }
    let pg: Postgres = serde_json::from_value(serde_json::json!({
        "apiVersion": "data.nais.io/v1", "kind": "Postgres",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"cluster": cluster},
    }))
    .expect("a Postgres");
    Api::<Postgres>::namespaced(client.clone(), ns)
        .create(&kube::api::PostParams::default(), &pg)
        .await
        .expect("create the Postgres")
}
