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
    assert_eq!(
        db_role
            .metadata
            .owner_references
            .as_ref()
            .map(|o| o[0].kind.as_str()),
        Some("Postgres"),
        "one role per person and level, made for the database, whatever the number of grants"
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
    assert!(
        late.as_secs_f64() > -0.2,
        "the line left {late:?} before the end"
    );
    let _ = gone;
    phase(&client, &ns, "alice-debug", "Expired").await;
    let name = db_role.metadata.name.clone().expect("name");
    wait_for("login off and no group", CONVERGE, || async {
        let r = roles.get(&name).await.ok()?;
        (r.data.pointer("/spec/login") == Some(&json!(false))
            && r.data.pointer("/spec/inRoles") == Some(&json!([])))
        .then_some(())
    })
    .await;
    operator.stop().await;
}

fn listed_entry(cluster: &DynamicObject, subject: &str) -> Option<(String, i64)> {
    let text = cluster
        .data
        .pointer("/spec/postgresql/parameters/pgrator_validator.grants")
        .and_then(Value::as_str)?;
    pgrator_token::Grants::parse(text)
        .expect("the Cluster's list parses")
        .iter()
        .find(|g| g.subject == subject)
        .map(|g| (g.role.clone(), g.until.seconds()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn back_to_back_grants_work_and_a_deleted_grant_is_closed_before_it_goes() {
    let (client, ns) = setup("acc-renew").await;
    let operator = Operator::start(&ns, None).await;
    create_postgres(&client, &ns, "orders", json!({})).await;
    let subject = "310000000000000007";
    let first_end = Timestamp::now() + jiff::SignedDuration::from_secs(6);
    create_grant(
        &client,
        &ns,
        grant("first", "orders", subject, "read", first_end),
    )
    .await
    .expect("the first grant");
    let first = phase(&client, &ns, "first", "Active").await;
    let role = first.status.and_then(|s| s.role_name).expect("role");
    phase(&client, &ns, "first", "Expired").await;

    // Asked again after the end: the same role opens again (it used to stay Pending, its line missing).
    let second_end = Timestamp::now() + jiff::SignedDuration::from_secs(3600);
    create_grant(
        &client,
        &ns,
        grant("second", "orders", subject, "read", second_end),
    )
    .await
    .expect("the second grant");
    phase(&client, &ns, "second", "Active").await;
    let cluster = get(&client, &ns, kinds::CLUSTER, "orders")
        .await
        .expect("Cluster");
    assert_eq!(cluster_has(&cluster, subject, &role), (true, true));
    let roles: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), &ns, &DATABASE_ROLE.api_resource());
    let items = roles.list(&Default::default()).await.expect("roles").items;
    assert_eq!(items.len(), 1, "one DatabaseRole for the person and level");
    assert_eq!(items[0].data.pointer("/spec/login"), Some(&json!(true)));

    // Revocation: deleting the grant closes it like expiry, and the object is held until it is closed.
    let api = Api::<PostgresAccess>::namespaced(client.clone(), &ns);
    let deleted_at = Timestamp::now();
    api.delete("second", &Default::default())
        .await
        .expect("delete");
    let closed = wait_for("the grant closed in the Cluster", CONVERGE, || async {
        let c = get(&client, &ns, kinds::CLUSTER, "orders").await?;
        let (_, until) = listed_entry(&c, subject)?;
        (!cluster_has(&c, subject, &role).0 && until <= Timestamp::now().as_second())
            .then(Timestamp::now)
    })
    .await;
    eprintln!(
        "revoked grant closed in the Cluster {:.2} s after the deletion",
        closed.duration_since(deleted_at).as_secs_f64()
    );
    assert!(closed.duration_since(deleted_at).as_secs_f64() < 5.0);
    let held = api.get("second").await.expect("held by its finalizer");
    assert_eq!(
        held.status.and_then(|s| s.phase).as_deref(),
        Some("Revoked"),
        "the status says it was revoked"
    );
    let name = items[0].metadata.name.clone().expect("name");
    wait_for("login off", CONVERGE, || async {
        let r = roles.get(&name).await.ok()?;
        (r.data.pointer("/spec/login") == Some(&json!(false))).then_some(())
    })
    .await;
    let gone = wait_for("the grant object to go", CONVERGE, || async {
        api.get_opt("second")
            .await
            .ok()?
            .is_none()
            .then(Timestamp::now)
    })
    .await;
    let held_for = gone.duration_since(deleted_at).as_secs_f64();
    eprintln!("the revoked grant went {held_for:.1} s after its deletion");
    assert!(
        held_for >= pgrator_operator::desired::access::REVOKE_GRACE_SECS as f64,
        "released after {held_for:.1} s, before the grace for CNPG and the reaper"
    );
    operator.stop().await;
}

/// A client of the test API server acting as `user` in `groups` (impersonation by the admin).
async fn as_user(user: &str, groups: &[&str]) -> kube::Client {
    let mut config = pgrator_e2e::operator::plane()
        .config()
        .await
        .expect("config");
    config.auth_info.impersonate = Some(user.to_owned());
    config.auth_info.impersonate_groups = Some(groups.iter().map(|g| g.to_string()).collect());
    kube::Client::try_from(config).expect("client")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_operator_may_create_or_change_a_postgres_access() {
    use k8s_openapi::api::rbac::v1::{ClusterRole, RoleBinding};
    let (client, ns) = setup("acc-guard").await;
    let operator_ns = "pgrator-system";
    // The policy as the install manifests have it, bound to this test's namespace only (tests share the server).
    let labels = json!({"app.kubernetes.io/managed-by": "pgrator"});
    let mut policy = pgrator_operator::manifests::access_policy(operator_ns, &labels);
    let unique = format!("{}-{ns}", pgrator_operator::manifests::ACCESS_POLICY);
    policy[0]["metadata"]["name"] = json!(unique);
    policy[1]["metadata"]["name"] = json!(unique);
    policy[1]["spec"]["policyName"] = json!(unique);
    policy[1]["spec"]["matchResources"] =
        json!({"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns}}});
    for (object, plural) in policy.iter().zip([
        "validatingadmissionpolicies",
        "validatingadmissionpolicybindings",
    ]) {
        let resource = kube::api::ApiResource {
            group: "admissionregistration.k8s.io".into(),
            version: "v1".into(),
            api_version: "admissionregistration.k8s.io/v1".into(),
            kind: object["kind"].as_str().expect("kind").into(),
            plural: plural.into(),
        };
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
        api.patch(
            &unique,
            &PatchParams::apply("pgrator-test").force(),
            &Patch::Apply(object),
        )
        .await
        .unwrap_or_else(|e| panic!("install the {plural}: {e}"));
    }
    // RBAC lets both write PostgresAccess objects here: the policy is what must stop the team member.
    let role: ClusterRole = serde_json::from_value(json!({
        "metadata": {"name": format!("access-writer-{ns}")},
        "rules": [{"apiGroups": ["data.nais.io"], "resources": ["postgresaccesses"],
                   "verbs": ["get", "list", "create", "update", "patch", "delete"]}],
    }))
    .expect("role");
    Api::<ClusterRole>::all(client.clone())
        .create(&PostParams::default(), &role)
        .await
        .expect("cluster role");
    let binding: RoleBinding = serde_json::from_value(json!({
        "metadata": {"name": "access-writers"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": format!("access-writer-{ns}")},
        "subjects": [
            {"kind": "User", "name": "mallory@example.com", "apiGroup": "rbac.authorization.k8s.io"},
            {"kind": "ServiceAccount", "name": "pgrator-operator", "namespace": operator_ns},
        ],
    }))
    .expect("binding");
    Api::<RoleBinding>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &binding)
        .await
        .expect("role binding");
    let operator_user = pgrator_operator::manifests::operator_user(operator_ns);
    let operator_client = as_user(&operator_user, &["system:serviceaccounts"]).await;
    let mallory = as_user("mallory@example.com", &[&ns]).await;
    let end = Timestamp::now() + jiff::SignedDuration::from_secs(3600);
    let mut forged = grant("forged", "orders", "310000000000000666", "admin", end);

    // The policy takes a moment to be enforced after it is made: wait until the team member is refused.
    let refusal = wait_for("the policy to refuse the team member", CONVERGE, || async {
        match create_grant(&mallory, &ns, forged.clone()).await {
            Err(kube::Error::Api(s)) if s.code == 403 || s.code == 422 => Some(s.message),
            Err(kube::Error::Api(s)) => panic!("refused for another reason: {s:?}"),
            Err(e) => panic!("{e}"),
            Ok(_) => {
                // Made before the policy was in force: remove it and try again.
                let _ = Api::<PostgresAccess>::namespaced(client.clone(), &ns)
                    .delete("forged", &Default::default())
                    .await;
                None
            }
        }
    })
    .await;
    assert!(
        refusal.contains("a PostgresAccess is made by the access API only"),
        "{refusal}"
    );

    // The operator's service account may create one (as the access API does), with its finalizer.
    forged["metadata"]["name"] = json!("granted");
    forged["metadata"]["finalizers"] = json!([pgrator_operator::desired::access::FINALIZER]);
    create_grant(&operator_client, &ns, forged)
        .await
        .expect("the operator's service account creates a PostgresAccess");
    let patch = json!({"metadata": {"finalizers": null}});
    match Api::<PostgresAccess>::namespaced(mallory.clone(), &ns)
        .patch("granted", &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Err(kube::Error::Api(s)) => assert!(
            s.message
                .contains("only the operator may change a PostgresAccess, its finalizers or its data.nais.io labels"),
            "{}",
            s.message
        ),
        other => panic!("the team member removed the revocation finalizer: {other:?}"),
    }
    // Nor the labels the API and the operator read by.
    let relabel = json!({"metadata": {"labels": {"data.nais.io/subject": "310000000000000001"}}});
    assert!(
        Api::<PostgresAccess>::namespaced(mallory.clone(), &ns)
            .patch("granted", &PatchParams::default(), &Patch::Merge(&relabel))
            .await
            .is_err(),
        "a team member relabelled a grant as someone else's"
    );
    // A label of one's own is fine; deleting (revoking) is fine.
    let label = json!({"metadata": {"labels": {"note": "checked"}}});
    Api::<PostgresAccess>::namespaced(mallory.clone(), &ns)
        .patch("granted", &PatchParams::default(), &Patch::Merge(&label))
        .await
        .expect("a label is not a change of the grant");
    Api::<PostgresAccess>::namespaced(mallory.clone(), &ns)
        .delete("granted", &Default::default())
        .await
        .expect("a team member may revoke");
    Api::<PostgresAccess>::namespaced(operator_client.clone(), &ns)
        .patch("granted", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("the operator releases its finalizer");
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
    // The failed grant is listed as ended (the validator refuses it, the reaper ends any session), never open.
    let (cluster, (role, until)) = wait_for("the failed grant listed", CONVERGE, || async {
        let c = get(&client, &ns, kinds::CLUSTER, "orders").await?;
        let entry = listed_entry(&c, "s2")?;
        Some((c, entry))
    })
    .await;
    assert!(
        until <= Timestamp::now().as_second(),
        "a failed grant is listed as open"
    );
    assert!(
        !cluster_has(&cluster, "s2", &role).0,
        "a failed grant got a pg_ident line"
    );
    operator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ended_grants_are_deleted_after_the_retention_period() {
    let (client, ns) = setup("acc-retain").await;
    let mut config = pgrator_e2e::operator::example_config();
    config.access.retention_seconds = 600;
    let operator = Operator::start_with(&ns, None, config).await;
    create_postgres(&client, &ns, "orders", json!({})).await;
    let api = Api::<PostgresAccess>::namespaced(client.clone(), &ns);
    // Ended 11 minutes ago (past the 10-minute retention), and one that ended a minute ago (within it).
    let long_ago = Timestamp::now() - jiff::SignedDuration::from_secs(660);
    let recently = Timestamp::now() - jiff::SignedDuration::from_secs(60);
    create_grant(&client, &ns, grant("old", "orders", "s1", "read", long_ago))
        .await
        .expect("an old grant");
    create_grant(
        &client,
        &ns,
        grant("recent", "orders", "s2", "read", recently),
    )
    .await
    .expect("a recent grant");
    let started = Instant::now();
    wait_for("the old grant to be deleted", CONVERGE, || async {
        api.get_opt("old").await.ok()?.is_none().then_some(())
    })
    .await;
    eprintln!(
        "an ended grant past the retention went in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let recent = phase(&client, &ns, "recent", "Expired").await;
    assert!(
        recent.metadata.deletion_timestamp.is_none(),
        "kept within the retention"
    );
    // The recent one is still listed as ended (refused by the validator, its sessions ended).
    let (_, until) = wait_for("the recent grant listed", CONVERGE, || async {
        listed_entry(&get(&client, &ns, kinds::CLUSTER, "orders").await?, "s2")
    })
    .await;
    assert_eq!(until, recently.as_second());
    operator.stop().await;
}
