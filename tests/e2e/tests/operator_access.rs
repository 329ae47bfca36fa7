//! Personal access, the operator's part, against the real kube-apiserver and CRDs: a PostgresAccess becomes a
//! personal DatabaseRole that may log in, a pg_ident line and an entry in the validator's list in the Cluster;
//! at its end the line and the entry go, the role can no longer log in, and the status says Expired. Bad grants
//! are refused by the schema or marked Failed.

use std::time::{Duration, Instant};

use jiff::Timestamp;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use pgrator_e2e::operator::{Operator, create_postgres, get, setup, wait_for};
use pgrator_operator::api::PostgresAccess;
use pgrator_operator::desired::access::DATABASE_ROLE;
use pgrator_operator::desired::kinds;
use serde_json::{Value, json};

const CONVERGE: Duration = Duration::from_secs(60);

fn grant(name: &str, postgres: &str, subject: &str, level: &str, expires: Timestamp) -> Value {
    json!({
        "apiVersion": "data.nais.io/v1", "kind": "PostgresAccess",
        "metadata": {"name": name},
        "spec": {"postgres": postgres, "identity": {"subject": subject, "email": "alice@example.com"},
                 "level": level, "reason": "investigating incident 4711", "expiresAt": expires.to_string()},
    })
}

async fn create_grant(
    client: &kube::Client,
    ns: &str,
    object: Value,
) -> Result<PostgresAccess, kube::Error> {
    let access: PostgresAccess = serde_json::from_value(object).expect("a PostgresAccess");
    Api::<PostgresAccess>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &access)
        .await
}

async fn phase(client: &kube::Client, ns: &str, name: &str, wanted: &str) -> PostgresAccess {
    let api = Api::<PostgresAccess>::namespaced(client.clone(), ns);
    wait_for(&format!("{name} {wanted}"), CONVERGE, || async {
        let a = api.get(name).await.ok()?;
        (a.status.as_ref()?.phase.as_deref() == Some(wanted)).then_some(a)
    })
    .await
}

fn cluster_has(cluster: &DynamicObject, subject: &str, role: &str) -> (bool, bool) {
    let line = format!("pgrator \"{subject}\" {role}");
    let has_line = cluster
        .data
        .pointer("/spec/postgresql/pg_ident")
        .and_then(Value::as_array)
        .is_some_and(|l| l.iter().any(|x| x.as_str() == Some(line.as_str())));
    let listed = cluster
        .data
        .pointer("/spec/postgresql/parameters/pgrator_validator.grants")
        .and_then(Value::as_str)
        .is_some_and(|g| g.contains(&format!("{role} {subject} ")));
    (has_line, listed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grant_opens_a_personal_role_and_closes_it_at_its_end() {
    let (client, ns) = setup("acc-life").await;
    let operator = Operator::start(&ns, None).await;
    create_postgres(&client, &ns, "orders", json!({})).await;
    let end = Timestamp::now() + jiff::SignedDuration::from_secs(12);
    create_grant(
        &client,
        &ns,
        grant(
            "alice-debug",
            "orders",
            "310000000000000001",
            "readwrite",
            end,
        ),
    )
    .await
    .expect("create the grant");

    let active = phase(&client, &ns, "alice-debug", "Active").await;
    let role = active
        .status
        .as_ref()
        .and_then(|s| s.role_name.clone())
        .expect("role name");
    assert!(role.starts_with("p_alice_readwrite_"), "{role}");
    let cluster = get(&client, &ns, kinds::CLUSTER, "orders")
        .await
        .expect("Cluster");
    assert_eq!(
        cluster_has(&cluster, "310000000000000001", &role),
        (true, true)
    );
    let roles: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), &ns, &DATABASE_ROLE.api_resource());
    let list = roles
        .list(&Default::default())
        .await
        .expect("DatabaseRoles");
    let db_role = list.items.first().expect("a DatabaseRole");
    assert_eq!(db_role.data.pointer("/spec/name"), Some(&json!(role)));
    assert_eq!(db_role.data.pointer("/spec/login"), Some(&json!(true)));
    assert_eq!(
        db_role.data.pointer("/spec/inRoles"),
        Some(&json!(["pgrator_readwrite"]))
    );

    // The end: the pg_ident line leaves the Cluster (the entry stays in the validator's list for a while, so the
    // validator keeps refusing and ends the open sessions), the role cannot log in, the status says so.
    let gone = wait_for("the line out of the Cluster", CONVERGE, || async {
        let c = get(&client, &ns, kinds::CLUSTER, "orders").await?;
        (cluster_has(&c, "310000000000000001", &role) == (false, true)).then(Instant::now)
    })
    .await;
    let late = Timestamp::now().duration_since(end);
    eprintln!(
        "grant left the Cluster {:.2} s after its end",
        late.as_secs_f64()
    );
    assert!(
        late.as_secs_f64() < 5.0,
        "the line stayed {late:?} past the end"
    );
    let _ = gone;
    phase(&client, &ns, "alice-debug", "Expired").await;
    let name = db_role.metadata.name.clone().expect("name");
    wait_for("login off", CONVERGE, || async {
        let r = roles.get(&name).await.ok()?;
        (r.data.pointer("/spec/login") == Some(&json!(false))).then_some(())
    })
    .await;
    operator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_grants_are_refused_or_failed() {
    let (client, ns) = setup("acc-bad").await;
    let operator = Operator::start(&ns, None).await;
    create_postgres(&client, &ns, "orders", json!({})).await;
    let soon = Timestamp::now() + jiff::SignedDuration::from_secs(3600);

    // The schema refuses a short reason and a change after creation.
    let mut short = grant("short", "orders", "s1", "read", soon);
    short["spec"]["reason"] = json!("because");
    match create_grant(&client, &ns, short).await {
        Err(kube::Error::Api(s)) => {
            assert!(s.message.contains("reason must say why"), "{}", s.message)
        }
        other => panic!("a short reason was accepted: {other:?}"),
    }
    create_grant(&client, &ns, grant("fixed", "orders", "s1", "read", soon))
        .await
        .expect("a good grant");
    let api = Api::<PostgresAccess>::namespaced(client.clone(), &ns);
    match api
        .patch(
            "fixed",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"level": "admin"}})),
        )
        .await
    {
        Err(kube::Error::Api(s)) => assert!(
            s.message.contains("cannot be changed once created"),
            "{}",
            s.message
        ),
        other => panic!("a grant was changed: {other:?}"),
    }

    // Longer than the platform allows (8 h in the example configuration), or for a database that is not there.
    let too_long = Timestamp::now() + jiff::SignedDuration::from_hours(9);
    create_grant(
        &client,
        &ns,
        grant("greedy", "orders", "s2", "admin", too_long),
    )
    .await
    .expect("created (the maximum is the operator's configuration)");
    let failed = phase(&client, &ns, "greedy", "Failed").await;
    assert!(
        failed
            .status
            .and_then(|s| s.message)
            .unwrap_or_default()
            .contains("maximum of 8 hours")
    );
    create_grant(&client, &ns, grant("lost", "nowhere", "s3", "read", soon))
        .await
        .expect("created");
    let lost = phase(&client, &ns, "lost", "Failed").await;
    assert!(
        lost.status
            .and_then(|s| s.message)
            .unwrap_or_default()
            .contains("no Postgres nowhere")
    );
    let cluster = wait_for("the Cluster", CONVERGE, || async {
        get(&client, &ns, kinds::CLUSTER, "orders").await
    })
    .await;
    let listed = cluster
        .data
        .pointer("/spec/postgresql/parameters/pgrator_validator.grants")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    assert!(
        !listed.contains(" s2 "),
        "a failed grant reached the validator: {listed}"
    );
    operator.stop().await;
}
