//! The demo on the embedded default: the whole product in one run, on the real CloudNativePG world. A team writes
//! one `Postgres`; the operator makes everything the database needs on a real Kubernetes API; CNPG (its operator,
//! webhooks and instance manager, in pods on a real kubelet) runs PostgreSQL 18, which loads our validator from its
//! extension image; a developer asks for personal access with the `pgrator` CLI and logs in with psql through the
//! OAuth device flow over a kubelet port-forward (`pgrator postgres port-forward`), approved as the scripted person
//! `alice`; bob, outside the team, is refused. Prints each step.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use kube::ResourceExt;
use kube::api::{Api, DynamicObject, PostParams};
use pgrator_e2e::access_world::{cli_env, run_cli};
use pgrator_e2e::cnpg_world::{
    VALIDATOR_IMAGE, access_config, current_primary, healthy, psql_in_db, psql_in_pod,
    small_cluster, start_port_forward, team_idp, validator_image, world,
};
use pgrator_e2e::operator::{Operator, install_crds, poll_until};
use pgrator_operator::access_api::{ApiState, serve};
use pgrator_operator::api::Postgres;
use pgrator_operator::desired::desired;
use pgrator_world::idp::defaults::{ALICE, BOB, PSQL};
use pgrator_world::ports::free_port;
use pgrator_world::psql::{OAuthConnect, Psql};
use serde_json::json;

fn step(n: u32, text: &str) {
    println!("\n[{n}] {text}");
}

/// Waits (at most 90 s) for `probe` to return Some.
async fn until<T, F, Fut>(what: &str, probe: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    poll_until(what, Duration::from_secs(90), probe)
        .await
        .map_err(anyhow::Error::msg)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 4)]
async fn main() -> Result<()> {
    let started = Instant::now();
    let cli = std::env::current_exe()?
        .parent()
        .map(|dir| dir.join("pgrator"))
        .filter(|p| p.is_file())
        .context("the pgrator CLI next to the demo (the demo recipe builds it)")?;

    step(
        1,
        "the world: Kubernetes 1.35 with one node (kubelet, containerd, CNI), CloudNativePG 1.30 and the Barman Cloud plugin; an IdP",
    );
    let kube = world();
    println!("    {}", kube.describe());
    let client = kube.client().await?;
    install_crds(&client).await;
    let ns = kube.namespace("team").await?;
    let idp = team_idp(kube, &ns)?;
    println!("    namespace {ns} (the team)");
    println!(
        "    IdP {} (alice has the project role {ns}; bob has none)",
        idp.issuer()
    );

    step(
        2,
        "the validator ships as a CNPG extension image: built with our OCI builder, loaded into the node, pinned by digest",
    );
    println!("    {}", validator_image(VALIDATOR_IMAGE));

    step(3, "the operator starts (leader, watch cache, access API)");
    let config = access_config(kube, &idp);
    let operator = Operator::start_on(kube.config().await?, &ns, None, config.clone());
    let api_port = free_port();
    let state = ApiState::new(kube.client().await?, Arc::new(config.clone()))?;
    tokio::spawn(serve(([127, 0, 0, 1], api_port).into(), Arc::new(state)));
    println!("    access API on 127.0.0.1:{api_port}");

    step(4, "the team writes one object");
    let manifest = json!({
        "apiVersion": "data.nais.io/v1", "kind": "Postgres", "metadata": {"name": "orders", "namespace": ns},
        "spec": {"cluster": {"majorVersion": "18", "resources": small_cluster()["resources"].clone()}},
    });
    for line in serde_yaml::to_string(&manifest)?.lines() {
        println!("    {line}");
    }
    let pg: Postgres = serde_json::from_value(manifest)?;
    let pg = Api::<Postgres>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &pg)
        .await?;
    let wanted = desired(&pg, &config, &[])?;
    for child in &wanted {
        let api: Api<DynamicObject> =
            Api::namespaced_with(client.clone(), &ns, &child.kind.api_resource());
        until(child.name(), || async {
            api.get_opt(child.name()).await.ok().flatten()
        })
        .await?;
    }
    println!("    the operator made, on the real API server:");
    for child in &wanted {
        println!("      {:<18} {}", child.kind.kind, child.name());
    }

    step(
        5,
        "CNPG runs the Cluster: PostgreSQL 18 pods (primary and replica) with the validator mounted from its image",
    );
    let clusters: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        &ns,
        &pgrator_operator::desired::kinds::CLUSTER.api_resource(),
    );
    let cluster = healthy(&clusters, &ns, "orders", Duration::from_secs(300)).await;
    println!(
        "    the Cluster is healthy {:.0} s after the demo started (the world included)",
        started.elapsed().as_secs_f64()
    );
    let primary = current_primary(&cluster);
    println!(
        "{}",
        kube.kubectl()
            .run(["-n", &ns, "get", "pods", "-o", "wide"])?
            .trim_end()
            .lines()
            .map(|l| format!("    {l}"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let hba = psql_in_pod(
        kube,
        &ns,
        &primary,
        "SELECT type || ' ' || array_to_string(database, ',') || ' ' || array_to_string(user_name, ',') || ' ' || auth_method || ' ' || array_to_string(options, ' ') FROM pg_hba_file_rules WHERE auth_method = 'oauth'",
    );
    println!("    pg_hba (as CNPG wrote it): {hba}");
    psql_in_db(
        kube,
        &ns,
        &primary,
        "app",
        "CREATE TABLE orders (id int); ALTER TABLE orders OWNER TO app; INSERT INTO orders VALUES (1), (2)",
    );
    let (mut proxy, proxy_port) = start_port_forward(kube, &cli, &ns, "orders");
    println!(
        "    $ pgrator postgres port-forward orders -n {ns}   (127.0.0.1:{proxy_port} -> the primary's pod, through the kubelet)"
    );

    step(
        6,
        "alice asks for personal access with the CLI (device-flow login, then the access API)",
    );
    let cache = tempfile::tempdir()?;
    let port = proxy_port.to_string();
    println!(
        "    $ pgrator postgres access orders -n {ns} --level readwrite --ttl 1h --reason \"fixing order 4711\""
    );
    let alice = run_cli(
        &cli,
        &cli_env(&idp, api_port, cache.path(), ALICE),
        &[
            "postgres",
            "access",
            "orders",
            "-n",
            &ns,
            "--level",
            "readwrite",
            "--ttl",
            "1h",
            "--reason",
            "fixing order 4711",
            "--host",
            "127.0.0.1",
            "--port",
            &port,
        ],
        idp.api(),
        ALICE,
        true,
    );
    if alice.code != Some(0) {
        bail!("the CLI failed: {}", alice.stderr);
    }
    let role = alice.role().context("the CLI names the role")?;

    step(
        7,
        "alice's psql logs in as her personal role through the OAuth device flow",
    );
    let connect = OAuthConnect {
        host: "127.0.0.1".into(),
        port: proxy_port,
        dbname: "app".into(),
        user: role.clone(),
        issuer: idp.issuer().to_string(),
        client_id: PSQL.into(),
        scope: None,
    };
    let approve = idp.approve_as(ALICE);
    let out = Psql::locate()?.oauth_sql(
        &connect,
        "SELECT format('logged in as %s (system_user %s); orders: %s rows', current_user, system_user, (SELECT count(*) FROM orders))",
        &idp.ca().system_bundle_with_ca()?,
        Duration::from_secs(60),
        move |prompt| {
            println!("    psql says: Visit {} and enter the code: {} (alice approves)", prompt.verification_uri, prompt.user_code);
            approve(prompt)
        },
    )?;
    if !out.success {
        bail!("psql failed: {}", out.stderr);
    }
    println!("    {}", out.stdout.trim());

    step(8, "bob is not in the team: the access API refuses him");
    let bob = run_cli(
        &cli,
        &cli_env(&idp, api_port, cache.path(), BOB),
        &[
            "postgres",
            "access",
            "orders",
            "-n",
            &ns,
            "--reason",
            "just looking around",
        ],
        idp.api(),
        BOB,
        true,
    );
    println!("    exit code {}", bob.code.unwrap_or(-1));

    step(9, "the audit trail and the grant");
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), &ns);
    for e in events.list(&Default::default()).await?.items {
        if e.reason.as_deref() == Some("AccessGranted") {
            println!("    event AccessGranted: {}", e.note.unwrap_or_default());
        }
    }
    let grants: Api<pgrator_operator::api::PostgresAccess> = Api::namespaced(client.clone(), &ns);
    for g in grants.list(&Default::default()).await?.items {
        let s = g.status.clone().unwrap_or_default();
        println!(
            "    PostgresAccess {}: {} {}, until {}",
            g.name_any(),
            s.phase.unwrap_or_default(),
            s.role_name.unwrap_or_default(),
            g.spec.expires_at
        );
    }
    // Summed resident sizes overcount what processes share (PostgreSQL's shared buffers in every backend).
    println!(
        "\n    the world's processes and pods: {} MiB resident (summed)",
        kube.rss_kib() / 1024
    );
    let _ = proxy.kill();
    let _ = proxy.wait();
    operator.stop().await;
    println!("\ndone in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}
