//! Issue 7's proof, end to end with the real parts: the `pgrator` CLI asks the access API (in the operator) for
//! access; the person logs in to the IdP with the device flow; the operator makes the personal role and the
//! pg_ident line; a stand-in for CNPG's instance manager applies them to a real PostgreSQL 18 that loads the
//! validator from its extension image pulled from a registry; the real psql logs in through the device flow as
//! the personal role and can do what the level allows and no more; a person outside the team is refused by the
//! API; after the end, logins are refused; the audit trail holds who, when and why.

use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use kube::api::{Api, PostParams};
use pgrator_e2e::access_world::{cli_env, operator_config, run_cli};
use pgrator_e2e::cnpg_standin::Standin;
use pgrator_e2e::oauth_db::{hba_scope, validator_pg_config};
use pgrator_e2e::operator::{Operator, cli_binary, install_crds, plane, wait_for};
use pgrator_e2e::validator_image::pull_validator;
use pgrator_operator::access_api::{ApiState, serve};
use pgrator_operator::api::Postgres;
use pgrator_world::idp::defaults::{ALICE, ALICE_SUB, BOB, BOB_SUB, PROJECT_ID, PSQL};
use pgrator_world::idp::{Idp, IdpConfig, IdpUser};
use pgrator_world::libpq::TokenClient;
use pgrator_world::ports::free_port;
use pgrator_world::postgres::{PgConfig, Postgres as Pg};
use pgrator_world::psql::{OAuthConnect, Psql};
use pgrator_world::registry::{Registry, RegistryOptions};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(90);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_developer_gets_time_limited_access_end_to_end() {
    let client = plane().client().await.expect("client");
    install_crds(&client).await;
    let ns = plane().namespace("team").await.expect("namespace");

    // The IdP: alice belongs to the team (a project role named after the namespace), bob does not.
    let idp_config = IdpConfig {
        users: vec![
            IdpUser::new(ALICE, ALICE_SUB, &[&ns]),
            IdpUser::new(BOB, BOB_SUB, &[]),
        ],
        ..IdpConfig::default()
    };
    let idp = Idp::start(idp_config).expect("start the IdP");

    // The validator image, through a registry, onto the "node".
    let work = tempfile::tempdir().expect("temp dir");
    let registry = Registry::start(RegistryOptions::plain().tls()).expect("start the registry");
    let pulled = pull_validator(&registry, work.path())
        .await
        .expect("the validator image");

    // PostgreSQL 18 as a CNPG instance with the extension mounted; its HBA, ident and settings come from the
    // Cluster, through the stand-in.
    let pg = Arc::new(
        Pg::start(validator_pg_config(
            &idp,
            &pulled.mount,
            &[],
            // As the Cluster says: the validator preloaded (shared key cache, session reaper).
            PgConfig::default().setting("shared_preload_libraries", "'pgrator_validator'"),
        ))
        .expect("start PostgreSQL 18"),
    );

    let config = operator_config(&idp, &pulled.reference);
    let operator = Operator::start_with(&ns, None, config.clone()).await;
    let api_port = free_port();
    let state = ApiState::new(plane().client().await.expect("client"), Arc::new(config))
        .expect("access API state");
    tokio::spawn(serve(([127, 0, 0, 1], api_port).into(), Arc::new(state)));

    let pg_object: Postgres = serde_json::from_value(json!({
        "apiVersion": "data.nais.io/v1", "kind": "Postgres", "metadata": {"name": "orders"},
        "spec": {"cluster": {"majorVersion": "18", "resources": {"cpu": "500m", "memory": "1Gi", "diskSize": "10Gi"}}},
    }))
    .expect("a Postgres");
    Api::<Postgres>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &pg_object)
        .await
        .expect("create the Postgres");
    let standin = Standin::start(
        plane().config().await.expect("config"),
        &ns,
        "orders",
        pg.clone(),
    );
    wait_for("the stand-in to apply the Cluster", WAIT, || async {
        let a = standin.applied();
        a.hba.iter().any(|l| l.contains(" oauth ")).then_some(())
    })
    .await;
    // PostgreSQL was started with the validator preloaded and mounted from the pulled image: that is only right if
    // the operator's Cluster says so too (the stand-in cannot restart the server for a preload).
    let cluster = pgrator_e2e::operator::get(
        &client,
        &ns,
        pgrator_operator::desired::kinds::CLUSTER,
        "orders",
    )
    .await
    .expect("the Cluster");
    let postgresql = &cluster.data["spec"]["postgresql"];
    assert_eq!(
        postgresql["shared_preload_libraries"],
        json!(["pgrator_validator"])
    );
    assert_eq!(
        postgresql["parameters"]["oauth_validator_libraries"],
        json!("pgrator_validator")
    );
    assert_eq!(
        postgresql["extensions"][0]["image"]["reference"],
        json!(pulled.reference),
        "the Cluster mounts the image the test pulled"
    );
    pg.sql(
        "app",
        "CREATE TABLE orders (id int); ALTER TABLE orders OWNER TO app; INSERT INTO orders VALUES (1);",
    )
    .expect("the application's table");

    // The developer asks for access with the CLI.
    let cache = tempfile::tempdir().expect("token cache dir");
    let env = |person: &str| cli_env(&idp, api_port, cache.path(), person);
    let port = pg.port().to_string();
    let alice_env = env(ALICE);
    let idp_api = idp.api().clone();
    let started = Instant::now();
    let args = [
        "postgres",
        "access",
        "orders",
        "-n",
        &ns,
        "--level",
        "readwrite",
        "--ttl",
        "2m",
        "--reason",
        "repairing order 4711 after the incident",
        "--host",
        "127.0.0.1",
        "--port",
        &port,
    ];
    let cli = cli_as(alice_env, idp_api, ALICE, &args).await;
    assert_eq!(
        cli.code,
        Some(0),
        "pgrator failed:\n{}\n{}",
        cli.stdout,
        cli.stderr
    );
    let role = cli
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("Access is active: log in as "))
        .and_then(|l| l.split(' ').next())
        .expect("the CLI names the role")
        .to_owned();
    assert!(role.starts_with("p_alice_readwrite_"), "{role}");
    assert!(
        cli.stdout.contains(&format!("user={role}")),
        "{}",
        cli.stdout
    );

    // The real psql logs in through the device flow as the personal role, approved by alice.
    let psql = Psql::locate().expect("psql");
    let bundle = idp.ca().system_bundle_with_ca().expect("trust bundle");
    let connect = OAuthConnect {
        host: pg.host().to_string(),
        port: pg.port(),
        dbname: "app".into(),
        user: role.clone(),
        issuer: idp.issuer().to_string(),
        client_id: PSQL.into(),
        scope: None,
    };
    // psql as alice's personal role, on a blocking thread (it waits for the device-flow approval).
    let psql_as_alice = |sql: &'static str| {
        let (psql, connect, bundle, approve) = (
            psql.clone(),
            connect.clone(),
            bundle.clone(),
            idp.approve_as(ALICE),
        );
        tokio::task::spawn_blocking(move || {
            psql.oauth_sql(&connect, sql, &bundle, Duration::from_secs(60), approve)
                .expect("psql")
        })
    };
    let allowed = psql_as_alice(
        "SELECT current_user || ' ' || system_user; INSERT INTO orders VALUES (2); SELECT count(*) FROM orders;",
    )
    .await
    .expect("psql ran");
    let to_prompt = started.elapsed();
    assert!(
        allowed.success,
        "psql as {role} failed:\n{}",
        allowed.stderr
    );
    let mut lines = allowed.stdout.lines();
    assert_eq!(
        lines.next(),
        Some(format!("{role} oauth:{ALICE_SUB}").as_str())
    );
    assert_eq!(lines.next(), Some("INSERT 0 1"));
    assert_eq!(lines.next(), Some("2"));
    eprintln!(
        "CLI command to active grant: {:.1} s; to psql's answer: {:.1} s",
        cli.active_after.map(|d| d.as_secs_f64()).unwrap_or(-1.0),
        to_prompt.as_secs_f64()
    );

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
    let can_login = |r: &str| {
        pg.sql(
            "postgres",
            &format!("SELECT rolcanlogin FROM pg_roles WHERE rolname = '{r}'"),
        )
        .expect("pg_roles")
        .trim()
        .to_owned()
    };
    assert_eq!(can_login(&read_role), "t");
    let grants: Api<pgrator_operator::api::PostgresAccess> = Api::namespaced(client.clone(), &ns);
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
        || async { (can_login(&read_role) == "f").then_some(()) },
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

    // The end: from then on the login is refused.
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
    let grant = grants
        .list(&Default::default())
        .await
        .expect("grants")
        .items
        .into_iter()
        .find(|g| g.spec.level == pgrator_operator::api::AccessLevel::Readwrite)
        .expect("the readwrite grant");
    let end: Timestamp = grant.spec.expires_at.parse().expect("expiresAt");
    let conninfo = connect.conninfo();
    assert!(
        tokens.connect(&conninfo, token.as_bytes()).is_ok(),
        "logins work before the end"
    );
    let open = tokens
        .connect(&conninfo, token.as_bytes())
        .expect("a session open across the end");
    let applied = standin.applied();
    assert!(
        applied.skipped.is_empty(),
        "settings the server did not know: {:?}",
        applied.skipped
    );
    assert!(
        applied
            .settings
            .iter()
            .any(|(k, v)| k == "pgrator_validator.grants" && v.contains(&role)),
        "{:?}",
        applied.settings
    );
    let refused_at = wait_for(
        "logins refused after the end",
        Duration::from_secs(120),
        || async {
            match tokens.connect(&conninfo, token.as_bytes()) {
                Err(_) => Some(Timestamp::now()),
                Ok(_) => None,
            }
        },
    )
    .await;
    let late = refused_at.duration_since(end).as_secs_f64();
    eprintln!("logins refused {late:.2} s after the grant's end");
    assert!(late < 5.0, "the door stayed open {late:.1} s after the end");
    assert!(
        late > -0.5,
        "logins were refused {late:.1} s before the end"
    );
    let gone = wait_for(
        "the open session to end",
        Duration::from_secs(60),
        || async { open.query_one("SELECT 1").is_err().then(Timestamp::now) },
    )
    .await;
    let session_late = gone.duration_since(end).as_secs_f64();
    eprintln!("the open session ended {session_late:.2} s after the grant's end");
    assert!(
        (-0.5..10.0).contains(&session_late),
        "the open session ended {session_late:.1} s after the end (the reaper acts within seconds)"
    );
    drop(standin);
    operator.stop().await;
}

/// Runs the CLI as `person` with `args` on a blocking thread (it waits for the device-flow approval at the IdP).
async fn cli_as(
    env: Vec<(&'static str, String)>,
    idp_api: pgrator_world::idp::IdpApi,
    person: &'static str,
    args: &[&str],
) -> pgrator_e2e::access_world::CliRun {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_cli(&cli_binary(), &env, &args, &idp_api, person, false)
    })
    .await
    .expect("the CLI ran")
}
