//! The operator against the real kube-apiserver with the real CNPG, barman, prometheus-operator and Config
//! Connector CRDs: a Postgres gets every object it needs, a second reconcile makes no request, drift is corrected,
//! deletion keeps or removes the data as asked, a stopped operator converges on restart, and with leader election
//! only one operator acts.

use std::time::{Duration, Instant};

use kube::ResourceExt;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams};
use pgrator_e2e::operator::{
    Operator, create_postgres, example_config, get, report_cluster_status, setup, wait_for,
};
use pgrator_operator::api::Postgres;
use pgrator_operator::desired::{Child, desired, kinds};
use serde_json::json;

const CONVERGE: Duration = Duration::from_secs(60);

/// The objects the operator should make for `pg` (from the same pure function it uses).
fn expected(pg: &Postgres) -> Vec<Child> {
    desired(pg, &example_config(), &[]).expect("desired objects")
}

/// Waits until every expected object exists and the status reflects the current generation.
async fn converged(client: &kube::Client, pg: &Postgres) -> Postgres {
    let ns = pg.namespace().expect("namespace");
    let api = Api::<Postgres>::namespaced(client.clone(), &ns);
    for child in expected(pg) {
        wait_for(
            &format!("{} {}", child.kind.kind, child.name()),
            CONVERGE,
            || async { get(client, &ns, child.kind, child.name()).await },
        )
        .await;
    }
    wait_for("status of the current generation", CONVERGE, || async {
        let now = api.get(&pg.name_any()).await.ok()?;
        let status = now.status.as_ref()?;
        let progressing = status
            .conditions
            .iter()
            .find(|c| c.type_ == "Progressing")?;
        (status.observed_generation == now.metadata.generation && progressing.reason != "Applied")
            .then_some(now)
    })
    .await
}

/// Makes the operator look at `pg` again (an annotation: no spec change) and waits until it has.
async fn nudge(client: &kube::Client, pg: &Postgres, operator: &Operator) {
    let before = operator.metrics.reconciles.get();
    let api = Api::<Postgres>::namespaced(client.clone(), &pg.namespace().expect("ns"));
    api.patch(
        &pg.name_any(),
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"annotations": {"test/nudge": format!("{before}")}}})),
    )
    .await
    .expect("annotate");
    wait_for("a reconcile", CONVERGE, || async {
        (operator.metrics.reconciles.get() > before).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_gets_every_object_and_a_second_reconcile_makes_no_request() {
    let (client, ns) = setup("op-create").await;
    let operator = Operator::start(&ns, None).await;
    let pg = create_postgres(&client, &ns, "orders", json!({})).await;
    let pg = converged(&client, &pg).await;

    let children = expected(&pg);
    assert_eq!(children.len(), 13);
    for child in &children {
        let live = get(&client, &ns, child.kind, child.name())
            .await
            .expect("exists");
        let owned = live.metadata.owner_references.clone().unwrap_or_default();
        assert_eq!(
            owned.iter().any(|o| o.uid == pg.uid().unwrap_or_default()),
            !child.kind.keeps_data,
            "{} {}: owner reference only where deletion should cascade",
            child.kind.kind,
            child.name()
        );
        let managers: Vec<String> = live
            .metadata
            .managed_fields
            .unwrap_or_default()
            .iter()
            .filter_map(|m| m.manager.clone())
            .collect();
        assert!(managers.contains(&"pgrator".to_owned()), "{managers:?}");
    }
    let status = pg.status.clone().expect("status");
    assert_eq!(status.phase.as_deref(), Some("Progressing"), "{status:?}");
    let finalizers = pg.finalizers();
    assert!(
        finalizers.contains(&"data.nais.io/postgres-cleanup".to_owned()),
        "{finalizers:?}"
    );

    // A reconcile with nothing to do: not one request (reads come from the watch cache).
    let (writes, requests) = (operator.metrics.writes(), operator.metrics.requests());
    nudge(&client, &pg, &operator).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(operator.metrics.writes(), writes, "a no-op reconcile wrote");
    assert_eq!(
        operator.metrics.requests(),
        requests,
        "a no-op reconcile made requests"
    );

    // CNPG reports the cluster healthy: the Postgres becomes Ready and shows CNPG's figures.
    report_cluster_status(&client, &ns, "orders", json!({"phase": "Cluster in healthy state", "readyInstances": 2, "instances": 2, "currentPrimary": "orders-1"})).await;
    let api = Api::<Postgres>::namespaced(client.clone(), &ns);
    let ready = wait_for("Ready", CONVERGE, || async {
        let now = api.get("orders").await.ok()?;
        let s = now.status.clone()?;
        (s.phase.as_deref() == Some("Ready")).then_some(s)
    })
    .await;
    assert_eq!(ready.instances.as_deref(), Some("2/2"));
    assert_eq!(ready.primary.as_deref(), Some("orders-1"));

    // Events tell what was made.
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), &ns);
    let list = events.list(&Default::default()).await.expect("events");
    let created = list
        .items
        .iter()
        .find(|e| e.reason.as_deref() == Some("Created"))
        .expect("a Created event");
    assert!(
        created
            .note
            .as_deref()
            .unwrap_or_default()
            .contains("Cluster/orders"),
        "{created:?}"
    );
    operator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_on_a_field_we_own_is_corrected_and_other_fields_are_left_alone() {
    let (client, ns) = setup("op-drift").await;
    let operator = Operator::start(&ns, None).await;
    let pg = create_postgres(&client, &ns, "drifty", json!({})).await;
    converged(&client, &pg).await;

    let clusters: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), &ns, &kinds::CLUSTER.api_resource());
    // Someone edits a field we own and adds one we do not (a label of their own, a setting we never set).
    clusters
        .patch(
            "drifty",
            &PatchParams::default(),
            &Patch::Merge(json!({
                "metadata": {"labels": {"team/note": "mine"}},
                "spec": {"instances": 5, "logLevel": "debug"},
            })),
        )
        .await
        .expect("edit the Cluster");
    let restored = wait_for("instances restored to 2", CONVERGE, || async {
        let c = clusters.get("drifty").await.ok()?;
        (c.data.pointer("/spec/instances") == Some(&json!(2))).then_some(c)
    })
    .await;
    assert_eq!(
        restored.labels().get("team/note").map(String::as_str),
        Some("mine")
    );
    assert_eq!(
        restored.data.pointer("/spec/logLevel"),
        Some(&json!("debug"))
    );
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), &ns);
    wait_for("a DriftCorrected event", CONVERGE, || async {
        let list = events.list(&Default::default()).await.ok()?;
        list.items
            .iter()
            .any(|e| e.reason.as_deref() == Some("DriftCorrected"))
            .then_some(())
    })
    .await;
    operator.stop().await;
}

async fn delete_and_wait(client: &kube::Client, pg: &Postgres) {
    let api = Api::<Postgres>::namespaced(client.clone(), &pg.namespace().expect("ns"));
    api.delete(&pg.name_any(), &DeleteParams::default())
        .await
        .expect("delete the Postgres");
    wait_for("the Postgres to be gone", CONVERGE, || async {
        api.get_opt(&pg.name_any())
            .await
            .ok()
            .and_then(|p| p.is_none().then_some(()))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletion_keeps_the_data_unless_allowed() {
    let (client, ns) = setup("op-delete").await;
    let operator = Operator::start(&ns, None).await;
    let kept = create_postgres(&client, &ns, "kept", json!({})).await;
    let gone = create_postgres(&client, &ns, "gone", json!({"allowDeletion": true})).await;
    let kept = converged(&client, &kept).await;
    let gone = converged(&client, &gone).await;

    delete_and_wait(&client, &kept).await;
    delete_and_wait(&client, &gone).await;
    for child in expected(&kept) {
        let exists = wait_for(
            &format!("{} {} settled", child.kind.kind, child.name()),
            CONVERGE,
            || async {
                let live = get(&client, &ns, child.kind, child.name()).await;
                let settled = live
                    .as_ref()
                    .is_none_or(|o| o.metadata.deletion_timestamp.is_none());
                settled.then_some(live.is_some())
            },
        )
        .await;
        assert_eq!(
            exists,
            child.kind.keeps_data,
            "without allowDeletion, {} {} should {}",
            child.kind.kind,
            child.name(),
            if child.kind.keeps_data { "stay" } else { "go" }
        );
    }
    for child in expected(&gone) {
        wait_for(
            &format!(
                "{} {} deleted (allowDeletion)",
                child.kind.kind,
                child.name()
            ),
            CONVERGE,
            || async {
                get(&client, &ns, child.kind, child.name())
                    .await
                    .is_none()
                    .then_some(())
            },
        )
        .await;
    }
    operator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_that_cannot_be_reconciled_is_degraded_and_still_deletes() {
    let (client, ns) = setup("op-broken").await;
    let operator = Operator::start(&ns, None).await;
    let pg = create_postgres(&client, &ns, "future", json!({"majorVersion": "19"})).await;
    let api = Api::<Postgres>::namespaced(client.clone(), &ns);
    let degraded = wait_for("Degraded", CONVERGE, || async {
        let now = api.get("future").await.ok()?;
        let s = now.status?;
        s.conditions
            .into_iter()
            .find(|c| c.type_ == "Degraded" && c.status == "True")
    })
    .await;
    assert_eq!(degraded.reason, "InvalidSpec");
    assert!(
        degraded.message.contains("PostgreSQL 19 is not offered"),
        "{}",
        degraded.message
    );
    delete_and_wait(&client, &pg).await;
    operator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_killed_mid_reconcile_converges_after_restart() {
    let (client, ns) = setup("op-restart").await;
    // Frozen after three writes (the finalizer and the first objects): the rest of the reconcile never leaves it.
    let first = Operator::start_stalling_after(&ns, 3).await;
    let pg = create_postgres(&client, &ns, "resumed", json!({"highAvailability": true})).await;
    wait_for("the writes the budget allows", CONVERGE, || async {
        (first.metrics.writes() == 3).then_some(())
    })
    .await;
    // Give it time to try more: nothing more may reach the API server.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(first.metrics.writes(), 3);
    first.kill();

    // What the killed operator left: some objects, not all of them, and no status of this generation.
    let children = expected(&pg);
    let mut present = Vec::new();
    for child in &children {
        if get(&client, &ns, child.kind, child.name()).await.is_some() {
            present.push(format!("{} {}", child.kind.kind, child.name()));
        }
    }
    assert!(
        !present.is_empty() && present.len() < children.len(),
        "the kill must leave work undone: {} of {} objects present: {present:?}",
        present.len(),
        children.len()
    );
    let api = Api::<Postgres>::namespaced(client.clone(), &ns);
    let left = api.get("resumed").await.expect("the Postgres");
    assert_ne!(
        left.status.as_ref().and_then(|s| s.observed_generation),
        left.metadata.generation,
        "the killed operator never reported this generation"
    );

    // A new operator finishes the job from what is there.
    let second = Operator::start(&ns, None).await;
    converged(&client, &pg).await;
    let cluster = get(&client, &ns, kinds::CLUSTER, "resumed")
        .await
        .expect("Cluster");
    assert_eq!(cluster.data.pointer("/spec/instances"), Some(&json!(3)));
    second.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_leader_election_only_one_operator_acts() {
    let (client, ns) = setup("op-leader").await;
    let a = Operator::start(&ns, Some("replica-a")).await;
    wait_for("replica-a to lead", CONVERGE, || async {
        a.is_leader().then_some(())
    })
    .await;
    let b = Operator::start(&ns, Some("replica-b")).await;
    let pg = create_postgres(&client, &ns, "led", json!({})).await;
    converged(&client, &pg).await;
    assert!(!b.is_leader(), "two leaders");
    assert_eq!(b.metrics.writes(), 0, "the standby wrote");

    // The leader steps down and gives the lease up: the standby takes over before the lease (6 s, renewed every
    // 0.5 s) could have expired, so the handover is the release, not the expiry.
    let stepped_down = Instant::now();
    a.stop().await;
    wait_for("replica-b to lead", CONVERGE, || async {
        b.is_leader().then_some(())
    })
    .await;
    let handover = stepped_down.elapsed();
    assert!(
        handover < Duration::from_secs(4),
        "a released lease is taken at once, not at expiry: {handover:?}"
    );
    let second = create_postgres(&client, &ns, "after", json!({})).await;
    converged(&client, &second).await;
    assert!(b.metrics.writes() > 0);

    // A leader that dies gives nothing up: its standby waits for the lease to expire (6 s after the last renewal,
    // which was at most 0.5 s and a request before the death), and only then acts.
    let c = Operator::start(&ns, Some("replica-c")).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!c.is_leader(), "two leaders");
    let died = Instant::now();
    b.kill();
    wait_for("replica-c to lead", CONVERGE, || async {
        c.is_leader().then_some(())
    })
    .await;
    let takeover = died.elapsed();
    assert!(
        takeover >= Duration::from_secs(5),
        "a dead leader's lease is taken only once expired: {takeover:?}"
    );
    let third = create_postgres(&client, &ns, "later", json!({})).await;
    converged(&client, &third).await;
    assert!(c.metrics.writes() > 0);
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_validator_image_and_new_settings_roll_out_in_two_steps() {
    let (client, ns) = setup("op-rollout").await;
    let first = Operator::start(&ns, None).await;
    let pg = create_postgres(&client, &ns, "staged", json!({})).await;
    converged(&client, &pg).await;
    first.stop().await;

    // The platform ships a new validator image and a new validator setting at once.
    let mut config = example_config();
    config.validator.image = config.validator.image.replace(
        "sha256:4370df898dad12e7547b99971ec2bc60410ce56a25311f53dbb590a5755e9802",
        "sha256:1111111111111111111111111111111111111111111111111111111111111111",
    );
    config
        .validator
        .settings
        .insert("clock_skew".into(), "10s".into());
    let second = Operator::start_with(&ns, None, config).await;
    let clusters: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), &ns, &kinds::CLUSTER.api_resource());
    let image = |c: &DynamicObject| {
        c.data
            .pointer("/spec/postgresql/extensions/0/image/reference")
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_owned()
    };
    let skew = |c: &DynamicObject| {
        c.data
            .pointer("/spec/postgresql/parameters/pgrator_validator.clock_skew")
            .cloned()
    };
    // Step 1: the image alone.
    let step1 = wait_for("the new image", CONVERGE, || async {
        let c = clusters.get("staged").await.ok()?;
        image(&c).contains("sha256:1111").then_some(c)
    })
    .await;
    assert_eq!(skew(&step1), None, "the settings came with the image");
    let api = Api::<Postgres>::namespaced(client.clone(), &ns);
    // (ValidatorImageFirst while the image is applied, WaitingForRollout while CNPG rolls the pods.)
    wait_for("Progressing: settings held back", CONVERGE, || async {
        let p = api.get("staged").await.ok()?;
        p.status?
            .conditions
            .iter()
            .any(|c| {
                c.type_ == "Progressing"
                    && ["ValidatorImageFirst", "WaitingForRollout"].contains(&c.reason.as_str())
            })
            .then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let held = clusters.get("staged").await.expect("the Cluster");
    assert_eq!(
        skew(&held),
        None,
        "the settings went out before the rollout ended"
    );
    // CNPG rolls the pods and reports the cluster healthy: step 2, the settings.
    report_cluster_status(
        &client,
        &ns,
        "staged",
        json!({"phase": "Cluster in healthy state", "readyInstances": 2, "instances": 2}),
    )
    .await;
    wait_for("the new setting", CONVERGE, || async {
        let c = clusters.get("staged").await.ok()?;
        (skew(&c) == Some(json!("10s"))).then_some(())
    })
    .await;
    second.stop().await;
}
