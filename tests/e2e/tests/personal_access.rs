//! Issue 7's proof, end to end on the real CloudNativePG world (`pgrator_world::cluster_world`): the `pgrator` CLI
//! asks the access API (in the operator) for access; the person logs in to the IdP with the device flow; the
//! operator makes the personal role (a CNPG DatabaseRole) and the pg_ident line and grants list (in the Cluster);
//! CNPG's instance manager applies them in PostgreSQL 18 pods that load the validator from its extension image;
//! the real psql logs in through the device flow over a kubelet port-forward (`pgrator postgres port-forward`) as the
//! personal role and can do what the level allows and no more; a revoked grant ends its sessions; a person outside
//! the team is refused by the API; the audit trail holds who, when and why; after a failover logins work again; after
//! the end, logins are refused and the open session ends.

use std::time::{Duration, Instant};

use jiff::Timestamp;
use kube::api::Api;
use pgrator_e2e::access_world::{cli_as, cli_env, run_cli};
use pgrator_e2e::cnpg_world::{
    current_primary, postgres_with_access, psql_in_db, psql_in_pod, start_port_forward, team_idp,
    world,
};
use pgrator_e2e::oauth_db::hba_scope;
use pgrator_e2e::operator::{cli_binary, install_crds, poll_until, wait_for};
use pgrator_operator::api::{AccessLevel, PostgresAccess};
use pgrator_world::idp::defaults::{ALICE, ALICE_SUB, BOB, PROJECT_ID, PSQL};
use pgrator_world::libpq::TokenClient;
use pgrator_world::psql::{OAuthConnect, Psql};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_developer_gets_time_limited_access_end_to_end() {
    let world = world();
    let client = world.client().await.expect("client");
    install_crds(&client).await;
    let ns = world.namespace("team").await.expect("namespace");
    let idp = team_idp(world, &ns).expect("start the IdP where pods reach it");
    let (operator, api_port, clusters) = postgres_with_access(&client, &ns, &idp, "orders").await;
    let cluster = clusters.get("orders").await.expect("the Cluster");
    let primary = current_primary(&cluster);
    psql_in_db(
        world,
        &ns,
        &primary,
        "app",
        "CREATE TABLE orders (id int); ALTER TABLE orders OWNER TO app; INSERT INTO orders VALUES (1);",
    );

    // The proxy forwards through the API server and the kubelet to the primary's pod.
    let (mut proxy, port) = start_port_forward(world, &cli_binary(), &ns, "orders");
    let cache = tempfile::tempdir().expect("token cache dir");
    let env = |person: &str| cli_env(&idp, api_port, cache.path(), person);
    let port_arg = port.to_string();
    let access = cli_as(
        env(ALICE),
        idp.api().clone(),
        ALICE,
        &[
            "postgres",
            "access",
            "orders",
            "-n",
            &ns,
            "--level",
            "readwrite",
            "--ttl",
            "5m",
            "--reason",
            "repairing order 4711 after the incident",
            "--host",
            "127.0.0.1",
            "--port",
            &port_arg,
        ],
    )
    .await;
    assert_eq!(
        access.code,
        Some(0),
        "pgrator failed:\n{}\n{}",
        access.stdout,
        access.stderr
    );
    let role = access.role().expect("the CLI names the role");
    assert!(role.starts_with("p_alice_readwrite_"), "{role}");
    // The connection string the CLI printed is the one psql uses.
    let printed = access
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("psql \"").and_then(|l| l.strip_suffix('"')))
        .expect("the CLI prints a connection string")
        .to_owned();
    let connect = OAuthConnect {
        host: "127.0.0.1".into(),
        port,
        dbname: "app".into(),
        user: role.clone(),
        issuer: idp.issuer().to_string(),
        client_id: PSQL.into(),
        scope: None,
    };
    for part in connect.conninfo().split(' ') {
        assert!(
            printed.split(' ').any(|p| p == part),
            "{part} is not in what the CLI printed: {printed}"
        );
    }

    // The real psql, through the device flow, as alice's personal role, on the pod CNPG runs.
    let psql = Psql::locate().expect("psql");
    let bundle = idp.ca().system_bundle_with_ca().expect("trust bundle");
    // psql as alice's personal role, on a blocking thread (it waits for the device-flow approval).
    let psql_as_alice = |sql: &'static str| {
        let (psql, connect, bundle, approve) = (
            psql.clone(),
            connect.clone(),
            bundle.clone(),
            idp.approve_as(ALICE),
        );
        tokio::task::spawn_blocking(move || {
            psql.oauth_sql(&connect, sql, &bundle, Duration::from_secs(90), approve)
                .expect("psql")
        })
    };
    let login = psql_as_alice(
        "SELECT current_user || ' ' || system_user; INSERT INTO orders VALUES (2); SELECT count(*) FROM orders;",
    )
    .await
    .expect("psql ran");
    assert!(
        login.success,
        "psql as {role} failed:\n{}\n{}",
        login.stderr,
        world.diagnose(&ns)
    );
    let mut lines = login.stdout.lines();
    assert_eq!(
        lines.next(),
        Some(format!("{role} oauth:{ALICE_SUB}").as_str())
    );
    assert_eq!(lines.next(), Some("INSERT 0 1"));
    assert_eq!(lines.next(), Some("2"));
    // CNPG's instance manager made the role from the DatabaseRole.
    let can_login = |pod: &str| {
        psql_in_pod(
            world,
            &ns,
            pod,
            &format!("SELECT rolcanlogin FROM pg_roles WHERE rolname = '{role}'"),
        )
    };
    assert_eq!(can_login(&primary), "t");

    // readwrite may write data but not change the schema.
    let denied = psql_as_alice("CREATE TABLE secrets (x int)")
        .await
        .expect("psql ran");
    assert!(
        !denied.success && denied.stderr.contains("permission denied"),
        "{}",
        denied.stderr
    );

    // Revocation: a second grant of alice's (read), a session open on it, then the grant deleted. The session
    // ends within seconds, new logins are refused, and the role can no longer log in (it used to live on).
    let read_cli = cli_as(
        env(ALICE),
        idp.api().clone(),
        ALICE,
        &[
            "postgres",
            "access",
            "orders",
            "-n",
            &ns,
            "--level",
            "read",
            "--ttl",
            "30m",
            "--reason",
            "checking the nightly job's rows",
        ],
    )
    .await;
    assert_eq!(
        read_cli.code,
        Some(0),
        "{}\n{}",
        read_cli.stdout,
        read_cli.stderr
    );
    let read_role = role.replace("_readwrite_", "_read_");
    assert!(read_cli.stdout.contains(&read_role), "{}", read_cli.stdout);
    let tokens = TokenClient::load().expect("libpq");
    let token = idp
        .mint(&json!({"user": ALICE, "client_id": PSQL, "aud": [PSQL, PROJECT_ID], "scope": hba_scope()}))
        .expect("a token")
        .access_token;
    let read_conninfo = OAuthConnect {
        user: read_role.clone(),
        ..connect.clone()
    }
    .conninfo();
    let session = tokens
        .connect(&read_conninfo, token.as_bytes())
        .expect("a session as the read role");
    assert_eq!(
        session.query_one("SELECT count(*) FROM orders").as_deref(),
        Ok("2")
    );
    let role_can_login = |r: &str| {
        psql_in_pod(
            world,
            &ns,
            &primary,
            &format!("SELECT rolcanlogin FROM pg_roles WHERE rolname = '{r}'"),
        )
    };
    assert_eq!(role_can_login(&read_role), "t");
    let grants: Api<PostgresAccess> = Api::namespaced(client.clone(), &ns);
    let read_grant = grants
        .list(&Default::default())
        .await
        .expect("grants")
        .items
        .into_iter()
        .find(|g| g.spec.level == pgrator_operator::api::AccessLevel::Read)
        .expect("the read grant");
    let revoked_at = Instant::now();
    grants
        .delete(
            &read_grant.metadata.name.clone().expect("name"),
            &Default::default(),
        )
        .await
        .expect("revoke");
    wait_for(
        "the revoked session to end",
        Duration::from_secs(30),
        || async { session.query_one("SELECT 1").is_err().then_some(()) },
    )
    .await;
    let ended_after = revoked_at.elapsed();
    eprintln!(
        "revoked: the open session ended {:.2} s after the deletion",
        ended_after.as_secs_f64()
    );
    assert!(
        ended_after < Duration::from_secs(10),
        "the session lived {ended_after:?}"
    );
    assert!(
        tokens.connect(&read_conninfo, token.as_bytes()).is_err(),
        "a new login after the revocation"
    );
    wait_for(
        "the revoked role NOLOGIN",
        Duration::from_secs(30),
        || async { (role_can_login(&read_role) == "f").then_some(()) },
    )
    .await;
    assert!(
        tokens
            .connect(&connect.conninfo(), token.as_bytes())
            .is_ok(),
        "the readwrite grant is still open"
    );

    // bob is not in the team: the API says so, the CLI exits 4.
    let bob_env = env(BOB);
    let idp_api = idp.api().clone();
    let bob = cli_as(
        bob_env,
        idp_api,
        BOB,
        &[
            "postgres",
            "access",
            "orders",
            "-n",
            &ns,
            "--ttl",
            "1m",
            "--reason",
            "just curious about it",
        ],
    )
    .await;
    assert_eq!(bob.code, Some(4), "{}\n{}", bob.stdout, bob.stderr);
    assert!(
        bob.stderr.contains("is not a member of the team"),
        "{}",
        bob.stderr
    );

    // Bad requests get a 4xx that says what to fix, never a 500.
    let cached: serde_json::Value = serde_json::from_slice(
        &std::fs::read(cache.path().join(format!("{ALICE}.json")))
            .expect("the CLI cached alice's login"),
    )
    .expect("JSON");
    let bearer = format!(
        "Bearer {}",
        cached["access_token"].as_str().expect("a token")
    );
    let api = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent();
    let base = format!("http://127.0.0.1:{api_port}/api/v1/namespaces/{ns}");
    let good = r#"{"level":"read","ttl":"1h","reason":"checking the nightly job"}"#;
    for (what, path, auth, body, status, says) in [
        (
            "no token",
            "postgres/orders/access",
            None,
            good,
            401,
            "Authorization: Bearer",
        ),
        (
            "a forged token",
            "postgres/orders/access",
            Some("Bearer eyJhbGciOiJSUzI1NiJ9.e30.c2ln"),
            good,
            401,
            "refused",
        ),
        (
            "not JSON",
            "postgres/orders/access",
            Some(bearer.as_str()),
            "level=read",
            400,
            "must be JSON",
        ),
        (
            "an unknown level",
            "postgres/orders/access",
            Some(bearer.as_str()),
            r#"{"level":"root","ttl":"1h","reason":"checking the nightly job"}"#,
            400,
            "unknown variant",
        ),
        (
            "a short reason",
            "postgres/orders/access",
            Some(bearer.as_str()),
            r#"{"level":"read","ttl":"1h","reason":"x"}"#,
            422,
            "reason must say why",
        ),
        (
            "too long",
            "postgres/orders/access",
            Some(bearer.as_str()),
            r#"{"level":"read","ttl":"9h","reason":"checking the nightly job"}"#,
            422,
            "longer than the platform allows",
        ),
        (
            "no such database",
            "postgres/nothere/access",
            Some(bearer.as_str()),
            good,
            404,
            "there is no Postgres nothere",
        ),
        (
            "a bad name",
            "postgres/Bad_Name/access",
            Some(bearer.as_str()),
            good,
            400,
            "is not a Postgres name",
        ),
    ] {
        let mut request = api
            .post(&format!("{base}/{path}"))
            .header("Content-Type", "application/json");
        if let Some(auth) = auth {
            request = request.header("Authorization", auth);
        }
        let mut response = request.send(body).expect("the API answers");
        let text = response.body_mut().read_to_string().unwrap_or_default();
        assert_eq!(response.status().as_u16(), status, "{what}: {text}");
        assert!(text.contains(says), "{what}: {text}");
    }

    // A person outside the team learns nothing about the team's grants: the same answer for a grant that exists
    // and one that does not; a name that is no name is refused before anything is read.
    let bob_cached: serde_json::Value = serde_json::from_slice(
        &std::fs::read(cache.path().join(format!("{BOB}.json")))
            .expect("the CLI cached bob's login"),
    )
    .expect("JSON");
    let bob_bearer = format!(
        "Bearer {}",
        bob_cached["access_token"].as_str().expect("a token")
    );
    let alices_grant =
        Api::<pgrator_operator::api::PostgresAccess>::namespaced(client.clone(), &ns)
            .list(&Default::default())
            .await
            .expect("grants")
            .items[0]
            .metadata
            .name
            .clone()
            .expect("a name");
    let probe = |name: &str| {
        let mut response = api
            .get(&format!("{base}/postgresaccesses/{name}"))
            .header("Authorization", &bob_bearer)
            .call()
            .expect("the API answers");
        let text = response.body_mut().read_to_string().unwrap_or_default();
        (response.status().as_u16(), text)
    };
    let (existing, nothing) = (probe(&alices_grant), probe("orders-nosuch"));
    assert_eq!(existing.0, 403, "{}", existing.1);
    assert_eq!(
        (existing.0, existing.1.replace(&alices_grant, "")),
        (nothing.0, nothing.1.replace("orders-nosuch", "")),
        "a grant that exists and one that does not look the same to an outsider"
    );
    assert_eq!(probe("Bad_Name").0, 400);

    // The audit trail: who, when, why.
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), &ns);
    let audit = events
        .list(&Default::default())
        .await
        .expect("events")
        .items
        .into_iter()
        .find(|e| e.reason.as_deref() == Some("AccessGranted"))
        .expect("an AccessGranted event");
    let note = audit.note.unwrap_or_default();
    assert!(
        note.contains(ALICE_SUB)
            && note.contains("alice@pgrator.test")
            && note.contains("repairing order 4711"),
        "{note}"
    );
    assert!(audit.event_time.is_some());

    let list = run_cli(
        &cli_binary(),
        &env(ALICE),
        &["postgres", "accesses"],
        idp.api(),
        ALICE,
        false,
    );
    assert_eq!(list.code, Some(0), "{}\n{}", list.stdout, list.stderr);
    assert!(list.stdout.contains(&role), "{}", list.stdout);
    // Failover: the primary's pod deleted; the proxy follows CNPG's new primary, and OAuth logins work again.
    let conninfo = connect.conninfo();
    let deleted = Instant::now();
    world
        .kubectl()
        .run(["-n", &ns, "delete", "pod", &primary, "--wait=false"])
        .expect("delete the primary's pod");
    // Each try bounded: a connection to the pod being deleted may otherwise wait for TCP's own timeout.
    let probe = format!("{conninfo} connect_timeout=5");
    let last = std::sync::Mutex::new(String::new());
    let back = poll_until(
        "an OAuth login on a new primary",
        Duration::from_secs(180),
        || async {
            let answer = tokens
                .connect(&probe, token.as_bytes())
                .map_err(|e| e.to_string())
                .and_then(|session| session.query_one("SELECT pg_is_in_recovery()"));
            let promoted = answer.as_deref() == Ok("f");
            if !promoted && let Ok(mut last) = last.lock() {
                *last = format!("{answer:?}");
            }
            promoted.then_some(())
        },
    )
    .await;
    if let Err(e) = back {
        let last = last.lock().map(|l| l.clone()).unwrap_or_default();
        panic!("{e}; last answer: {last}\n{}", world.diagnose(&ns));
    }
    let failover = deleted.elapsed();
    eprintln!(
        "failover: OAuth logins on the new primary {:.1} s after the primary's pod was deleted",
        failover.as_secs_f64()
    );
    assert!(
        failover < Duration::from_secs(120),
        "OAuth logins came back after {failover:?}"
    );

    // The end: logins refused from the grant's end on, the open session ended, the role set NOLOGIN by CNPG.
    let grant = grants
        .list(&Default::default())
        .await
        .expect("grants")
        .items
        .into_iter()
        .find(|g| g.spec.level == AccessLevel::Readwrite)
        .expect("the readwrite grant");
    let end: Timestamp = grant.spec.expires_at.parse().expect("expiresAt");
    let listed = psql_in_pod(
        world,
        &ns,
        &current_primary(&clusters.get("orders").await.expect("the Cluster")),
        "SHOW pgrator_validator.grants",
    );
    assert!(
        listed.contains(&role),
        "the validator's grants, as CNPG set them: {listed}"
    );
    // The grant runs 5 minutes so that everything above fits before its end; a run too slow for that fails here,
    // clearly, instead of at the bounds below.
    let margin = end.duration_since(Timestamp::now()).as_secs_f64();
    assert!(
        margin > 10.0,
        "only {margin:.0} s left of the grant before its end is checked"
    );
    let open = tokens
        .connect(&conninfo, token.as_bytes())
        .expect("a session open across the end");
    let refused_at = poll_until(
        "logins refused after the end",
        Duration::from_secs(300),
        || async {
            tokens
                .connect(&conninfo, token.as_bytes())
                .is_err()
                .then(Timestamp::now)
        },
    )
    .await
    .expect("logins end");
    let late = refused_at.duration_since(end).as_secs_f64();
    eprintln!("logins refused {late:.2} s after the grant's end");
    assert!(
        (-0.5..5.0).contains(&late),
        "logins were refused {late:.1} s from the end"
    );
    let gone = poll_until(
        "the open session to end",
        Duration::from_secs(60),
        || async { open.query_one("SELECT 1").is_err().then(Timestamp::now) },
    )
    .await
    .expect("the session ends");
    let session_late = gone.duration_since(end).as_secs_f64();
    eprintln!("the open session ended {session_late:.2} s after the grant's end");
    assert!(
        (-0.5..10.0).contains(&session_late),
        "the open session ended {session_late:.1} s after the end"
    );
    let now_primary = current_primary(&clusters.get("orders").await.expect("the Cluster"));
    poll_until(
        "CNPG to set the role NOLOGIN",
        Duration::from_secs(60),
        || async { (can_login(&now_primary) == "f").then_some(()) },
    )
    .await
    .expect("NOLOGIN after the end");
    let _ = proxy.kill();
    let _ = proxy.wait();
    operator.stop().await;
}
