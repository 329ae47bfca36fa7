//! The operator on the real CloudNativePG world (`pgrator_world::cluster_world`): the world of this test binary
//! with the operator's CRDs and the validator's extension image loaded, the operator's configuration pointed at the
//! world's images and storage, and `psql` run inside a database pod.

use std::sync::OnceLock;

use pgrator_operator::config::OperatorConfig;
use pgrator_world::cluster_world::images::archive_from_layout;
use pgrator_world::cluster_world::{ClusterWorld, STORAGE_CLASS};

use pgrator_world::idp::Idp;

use crate::operator::{Operator, example_config, install_crds};
use crate::validator_image::validator_spec;

/// The validator's extension image as the node knows it (loaded, never pulled); pinned by digest with [`validator_image`].
pub const VALIDATOR_IMAGE: &str = "pgrator.test/pgrator-validator:0.1.0";
/// The same image under a new name: a release the platform rolls out (CNPG sees a new reference).
pub const VALIDATOR_IMAGE_NEXT: &str = "pgrator.test/pgrator-validator:0.1.1";

/// The world of this test binary, with the validator's image loaded into its node.
pub fn world() -> &'static ClusterWorld {
    loaded().0
}

/// `name` (one of the validator's names above) pinned by the digest the node has, as the operator requires.
pub fn validator_image(name: &str) -> String {
    format!("{name}@{}", loaded().1)
}

fn loaded() -> (&'static ClusterWorld, &'static str) {
    static LOADED: OnceLock<Result<String, String>> = OnceLock::new();
    let world =
        ClusterWorld::shared().unwrap_or_else(|e| panic!("the cluster world must start: {e}"));
    let digest = LOADED
        .get_or_init(|| load_validator(world).map_err(|e| format!("{e:#}")))
        .as_ref()
        .unwrap_or_else(|e| panic!("the validator's image must load into the node: {e}"));
    (world, digest)
}

/// Loads the validator's image under both names; returns its digest.
fn load_validator(world: &ClusterWorld) -> anyhow::Result<String> {
    let arch = pgrator_extension_oci::Arch::host()
        .ok_or_else(|| anyhow::anyhow!("an unsupported machine"))?;
    let work = tempfile::tempdir()?;
    let layout = work.path().join("layout");
    pgrator_extension_oci::extension::build_extension_layout(&validator_spec(arch)?, &layout)?;
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json"))?)?;
    let digest = index
        .pointer("/manifests/0/digest")
        .and_then(serde_json::Value::as_str)
        .ok_or_else(|| anyhow::anyhow!("the layout's index names no image"))?
        .to_string();
    for (i, name) in [VALIDATOR_IMAGE, VALIDATOR_IMAGE_NEXT]
        .into_iter()
        .enumerate()
    {
        let archive = work.path().join(format!("validator-{i}.tar"));
        archive_from_layout(&layout, name, &archive)?;
        world.import(&archive)?;
    }
    // A reference pinned by digest is looked up as `repo@digest`: the node knows the image by that name too.
    let repo = VALIDATOR_IMAGE
        .rsplit_once(':')
        .map_or(VALIDATOR_IMAGE, |(repo, _)| repo);
    world.tag_image(VALIDATOR_IMAGE, &format!("{repo}@{digest}"))?;
    Ok(digest)
}

/// The example configuration, with the world's PostgreSQL image, storage class and validator image.
pub fn world_config(world: &ClusterWorld) -> OperatorConfig {
    let mut config = example_config();
    config
        .postgres
        .images
        .insert("18".into(), world.postgres_image().into());
    config.validator.image = validator_image(VALIDATOR_IMAGE);
    onto_world(&mut config, world);
    config
}

/// What every configuration on the world shares: its storage class, and backups to its object storage.
fn onto_world(config: &mut OperatorConfig, world: &ClusterWorld) {
    config.postgres.storage_class = Some(STORAGE_CLASS.into());
    config.backup.sidecar_env.insert(
        "STORAGE_EMULATOR_HOST".into(),
        world.object_storage_endpoint().into(),
    );
}

/// A client of the world, the operator's CRDs installed, a fresh namespace and an operator watching it.
pub async fn operator_on_world(prefix: &str) -> (kube::Client, String, Operator) {
    let world = world();
    let client = world.client().await.expect("client");
    install_crds(&client).await;
    let ns = world.namespace(prefix).await.expect("namespace");
    let config = world.config().await.expect("client configuration");
    let operator = Operator::start_on(config, &ns, None, world_config(world));
    (client, ns, operator)
}

/// Runs `sql` with psql inside the database pod `pod` (as its postgres user, over the local socket CNPG allows)
/// and returns the unaligned result.
pub fn psql_in_pod(world: &ClusterWorld, ns: &str, pod: &str, sql: &str) -> String {
    psql_in_db(world, ns, pod, "postgres", sql)
}

/// As [`psql_in_pod`], in the database `db`.
pub fn psql_in_db(world: &ClusterWorld, ns: &str, pod: &str, db: &str, sql: &str) -> String {
    world
        .kubectl()
        .run([
            "-n",
            ns,
            "exec",
            pod,
            "-c",
            "postgres",
            "--",
            "psql",
            "-XtAq",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            db,
            "-c",
            sql,
        ])
        .unwrap_or_else(|e| panic!("psql in {ns}/{pod}: {e}"))
        .trim()
        .to_string()
}

/// The operator's configuration for personal access on the world: the IdP `idp` (listening where pods reach it),
/// the validator's image, and a PostgreSQL image whose system trust bundle holds the IdP's CA, as a platform whose
/// IdP has a private CA would build it (the validator reads the system bundle when no `ca_file` is set; the
/// host's path of the CA means nothing in a pod).
pub fn access_config(world: &ClusterWorld, idp: &Idp) -> OperatorConfig {
    let mut config = crate::access_world::operator_config(idp, &validator_image(VALIDATOR_IMAGE));
    config.validator.settings.remove("ca_file");
    let image = world
        .postgres_image_trusting(idp.ca().ca_pem())
        .unwrap_or_else(|e| panic!("the PostgreSQL image trusting the IdP: {e}"));
    config.postgres.images.insert("18".into(), image);
    onto_world(&mut config, world);
    config
}

/// `pgrator postgres port-forward <name>` against the world (a real port-forward through the API server and the
/// kubelet), and the local port it listens on.
pub fn start_port_forward(
    world: &ClusterWorld,
    cli: &std::path::Path,
    ns: &str,
    name: &str,
) -> (std::process::Child, u16) {
    use std::io::{BufRead, BufReader};
    let mut child = std::process::Command::new(cli)
        .args(["postgres", "port-forward", name, "-n", ns, "--port", "0"])
        .env("KUBECONFIG", world.kubeconfig())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .expect("start pgrator postgres port-forward");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let first = lines.next().and_then(Result::ok).unwrap_or_default();
    let port = first
        .strip_prefix("Forwarding 127.0.0.1:")
        .and_then(|r| r.split(' ').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("unexpected first line of the proxy: {first:?}"));
    // Keep reading, so the proxy never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    (child, port)
}

/// Personal access on the world for the team `ns`: the operator configured for the IdP `idp`, its access API on a
/// free loopback port, and the Postgres `name` made and healthy under CNPG. Returns the operator, the API's port and
/// the namespace's Clusters.
pub async fn postgres_with_access(
    client: &kube::Client,
    ns: &str,
    idp: &Idp,
    name: &str,
) -> (Operator, u16, kube::Api<kube::api::DynamicObject>) {
    use std::sync::Arc;
    let world = world();
    let config = access_config(world, idp);
    let operator = Operator::start_on(
        world.config().await.expect("config"),
        ns,
        None,
        config.clone(),
    );
    let api_port = pgrator_world::ports::free_port();
    let state = pgrator_operator::access_api::ApiState::new(client.clone(), Arc::new(config))
        .expect("access API state");
    tokio::spawn(pgrator_operator::access_api::serve(
        ([127, 0, 0, 1], api_port).into(),
        Arc::new(state),
    ));
    crate::operator::create_postgres(client, ns, name, small_cluster()).await;
    let clusters = kube::Api::namespaced_with(
        client.clone(),
        ns,
        &pgrator_operator::desired::kinds::CLUSTER.api_resource(),
    );
    healthy(&clusters, ns, name, std::time::Duration::from_secs(180)).await;
    (operator, api_port, clusters)
}

/// Resources small enough for two instances (and another test's two) on the world's one node.
pub fn small_cluster() -> serde_json::Value {
    serde_json::json!({"resources": {"cpu": "250m", "memory": "512Mi", "diskSize": "1Gi"}})
}

/// Waits for CNPG to call the Cluster `name` healthy; on the timeout, fails with what the world shows about it.
pub async fn healthy(
    clusters: &kube::Api<kube::api::DynamicObject>,
    ns: &str,
    name: &str,
    timeout: std::time::Duration,
) -> kube::api::DynamicObject {
    crate::operator::poll_until(
        &format!("CNPG to report {name} healthy"),
        timeout,
        || async {
            let c = clusters.get(name).await.ok()?;
            (c.data.pointer("/status/phase")?.as_str()? == "Cluster in healthy state").then_some(c)
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", world().diagnose(ns)))
}

/// The pod CNPG reports as the Cluster's primary.
pub fn current_primary(cluster: &kube::api::DynamicObject) -> String {
    cluster
        .data
        .pointer("/status/currentPrimary")
        .and_then(|p| p.as_str())
        .expect("a primary")
        .to_string()
}

/// The test IdP where pods reach it (the host's end of the world's link): alice belongs to the team `ns` (a project
/// role named after it), bob does not.
pub fn team_idp(world: &ClusterWorld, ns: &str) -> pgrator_world::error::Result<Idp> {
    team_idp_with(world, ns, |_| {})
}

/// [`team_idp`] with its configuration adjusted by `adjust` (token lifetimes, grant types).
pub fn team_idp_with(
    world: &ClusterWorld,
    ns: &str,
    adjust: impl FnOnce(&mut pgrator_world::idp::IdpConfig),
) -> pgrator_world::error::Result<Idp> {
    use pgrator_world::idp::defaults::{ALICE, ALICE_SUB, BOB, BOB_SUB};
    use pgrator_world::idp::{IdpConfig, IdpUser};
    let mut config = IdpConfig {
        users: vec![
            IdpUser::new(ALICE, ALICE_SUB, &[ns]),
            IdpUser::new(BOB, BOB_SUB, &[]),
        ],
        ..IdpConfig::default()
    };
    adjust(&mut config);
    Idp::start_at(config, world.host_ip()?)
}
