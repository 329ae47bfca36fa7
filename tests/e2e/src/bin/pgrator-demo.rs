//! The demo on the embedded default: the whole product in one run. A team writes one `Postgres`; the operator makes
//! everything the database needs on the real Kubernetes API with the real CNPG CRDs; a stand-in for CNPG's
//! instance manager applies the Cluster to PostgreSQL 18, which loads our validator from its extension image pulled
//! from a registry; a developer asks for personal access with the `pgrator` CLI and logs in with psql through the
//! OAuth device flow, approved as the scripted person `alice`; bob, outside the team, is refused. Prints each step.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use kube::ResourceExt;
use kube::api::{Api, DynamicObject, PostParams};
use pgrator_e2e::access_world::{cli_env, operator_config, run_cli};
use pgrator_e2e::cnpg_standin::Standin;
use pgrator_e2e::oauth_db::validator_pg_config;
use pgrator_e2e::operator::{Operator, install_crds, plane, poll_until};
use pgrator_e2e::validator_image::pull_validator;
use pgrator_operator::access_api::{ApiState, serve};
use pgrator_operator::api::Postgres;
use pgrator_operator::desired::desired;
use pgrator_world::idp::defaults::{ALICE, ALICE_SUB, BOB, BOB_SUB, PSQL};
use pgrator_world::idp::{Idp, IdpConfig, IdpUser};
use pgrator_world::ports::free_port;
use pgrator_world::postgres::{PgConfig, Postgres as Pg};
use pgrator_world::psql::{OAuthConnect, Psql};
use pgrator_world::registry::{Registry, RegistryOptions};
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
        "the test world: Kubernetes 1.35 with the real CNPG, Barman Cloud, Prometheus and Config Connector CRDs; an IdP; a registry",
    );
    let kube = plane();
    let client = kube.client().await?;
    install_crds(&client).await;
    let ns = kube.namespace("team").await?;
    let idp = Idp::start(IdpConfig {
        users: vec![
            IdpUser::new(ALICE, ALICE_SUB, &[&ns]),
            IdpUser::new(BOB, BOB_SUB, &[]),
        ],
        ..IdpConfig::default()
    })?;
    println!(
        "    kube-apiserver {}, namespace {ns} (the team)",
        kube.server_url()
    );
    println!(
        "    IdP {} (alice has the project role {ns}; bob has none)",
        idp.issuer()
    );

    step(
        2,
        "the validator ships as a CNPG extension image: built, pushed, pulled by digest onto the \"node\"",
    );
    let work = tempfile::tempdir()?;
    let registry = Registry::start(RegistryOptions::plain().tls())?;
    let pulled = pull_validator(&registry, work.path()).await?;
    println!("    {}", pulled.reference);

    step(3, "the operator starts (leader, watch cache, access API)");
    let config = operator_config(&idp, &pulled.reference);
    let operator = Operator::start_with(&ns, None, config.clone()).await;
    let api_port = free_port();
    let state = ApiState::new(kube.client().await?, Arc::new(config.clone()))?;
    tokio::spawn(serve(([127, 0, 0, 1], api_port).into(), Arc::new(state)));
    println!("    access API on 127.0.0.1:{api_port}");

    step(4, "the team writes one object");
    let manifest = json!({
        "apiVersion": "data.nais.io/v1", "kind": "Postgres", "metadata": {"name": "orders", "namespace": ns},
        "spec": {"cluster": {"majorVersion": "18", "resources": {"cpu": "500m", "memory": "1Gi", "diskSize": "10Gi"}}},
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
        "CNPG (played by a stand-in here: no pods) applies the Cluster to PostgreSQL 18 with the validator from the image",
    );
    let server = Arc::new(Pg::start(validator_pg_config(
        &idp,
        &pulled.mount,
        &[],
        PgConfig::default().setting("shared_preload_libraries", "'pgrator_validator'"),
    ))?);
    let standin = Standin::start(kube.config().await?, &ns, "orders", server.clone());
    let applied = until("the Cluster applied", || async {
        let a = standin.applied();
        a.hba.iter().any(|l| l.contains(" oauth ")).then_some(a)
    })
    .await?;
    for line in &applied.hba {
        println!("    pg_hba:  {line}");
    }
    server.sql("app", "CREATE TABLE orders (id int); ALTER TABLE orders OWNER TO app; INSERT INTO orders VALUES (1), (2)")?;

    step(
        6,
        "alice asks for personal access with the CLI (device-flow login, then the access API)",
    );
    let cache = tempfile::tempdir()?;
    let port = server.port().to_string();
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
    let role = alice
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("Access is active: log in as "))
        .and_then(|l| l.split(' ').next())
        .context("the CLI names the role")?
        .to_owned();

    step(
        7,
        "alice's psql logs in as her personal role through the OAuth device flow",
    );
    let connect = OAuthConnect {
        host: server.host().to_string(),
        port: server.port(),
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
    drop(standin);
    operator.stop().await;
    println!("\ndone in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}
