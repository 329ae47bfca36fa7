//! Every object the operator makes for the golden fixtures (small; HA with audit, collation, extensions and a
//! maintenance window; names at the length limits) is accepted by the real CRD schemas (CNPG, Barman Cloud,
//! prometheus-operator, Config Connector) and by the API server's NetworkPolicy validation, with strict field
//! validation: an unknown field is an error. A deliberately wrong object is refused, so the check can fail.

use std::path::Path;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams, ValidationDirective};
use pgrator_e2e::operator::{example_config, install_crds, plane};
use pgrator_operator::api::{AccessLevel, Postgres};
use pgrator_operator::desired::{Child, OpenGrant, desired, kinds};
use serde_json::json;

fn fixture(case: &str) -> Postgres {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../operator/tests/golden")
        .join(case)
        .join("postgres.yaml");
    serde_yaml::from_str(&std::fs::read_to_string(&path).expect("read the fixture"))
        .expect("a Postgres")
}

async fn dry_run(client: &kube::Client, child: &Child) -> Result<(), kube::Error> {
    let ns = child
        .object
        .metadata
        .namespace
        .as_deref()
        .expect("namespaced");
    let api: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), ns, &child.kind.api_resource());
    api.patch(
        child.name(),
        &PatchParams::apply("pgrator")
            .force()
            .dry_run()
            .validation(ValidationDirective::Strict),
        &Patch::Apply(&child.object),
    )
    .await
    .map(|_| ())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_desired_object_is_accepted_by_its_real_schema() {
    let client = plane().client().await.expect("client");
    install_crds(&client).await;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let config = example_config();
    for case in ["small", "ha-audit", "long-name"] {
        let pg = fixture(case);
        let ns = pg.metadata.namespace.clone().expect("namespace");
        let object: Namespace =
            serde_json::from_value(json!({"metadata": {"name": ns}})).expect("namespace");
        match namespaces.create(&PostParams::default(), &object).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => panic!("namespace {ns}: {e}"),
        }
        // With personal grants, one open and one ended, so their DatabaseRoles are checked too.
        let grant = |role: &str, subject: &str, open: bool| OpenGrant {
            role: role.into(),
            subject: subject.into(),
            level: AccessLevel::Readwrite,
            until: 1_800_000_000,
            open,
            who: format!("{subject}@example.com"),
        };
        let grants = [
            grant("p_alice_readwrite_1a2b3c4d5e6f", "310000000000000001", true),
            grant("p_bob_readwrite_6f5e4d3c2b1a", "310000000000000002", false),
        ];
        let children = desired(&pg, &config, &grants).expect("desired objects");
        assert_eq!(children.len(), 15, "13 objects and two personal roles");
        for child in &children {
            dry_run(&client, child).await.unwrap_or_else(|e| {
                panic!("{case}: {} {} refused: {e}", child.kind.kind, child.name())
            });
        }
        // The control: a field the schema does not have, and a value of the wrong type.
        let mut cluster = children
            .iter()
            .find(|c| c.kind == kinds::CLUSTER)
            .expect("a Cluster")
            .clone();
        cluster.object.data["spec"]["instancez"] = json!(2);
        let refused = dry_run(&client, &cluster)
            .await
            .expect_err("an unknown field was accepted")
            .to_string();
        assert!(
            refused.contains(".spec.instancez: field not declared in schema"),
            "refused for another reason: {refused}"
        );
        cluster.object.data["spec"]
            .as_object_mut()
            .expect("spec")
            .remove("instancez");
        cluster.object.data["spec"]["instances"] = json!("two");
        let refused = dry_run(&client, &cluster)
            .await
            .expect_err("a string for instances was accepted")
            .to_string();
        assert!(
            refused.contains(".spec.instances: expected numeric"),
            "refused for another reason: {refused}"
        );
    }
}
