//! The committed CRD (operator/deploy/crds/postgres.yaml) is exactly what the Rust types generate.
//! Regenerate with `cargo run -p pgrator-operator --bin pgrator-crdgen > operator/deploy/crds/postgres.yaml`.

use kube::CustomResourceExt;
use pgrator_operator::api::Postgres;

#[test]
fn committed_crd_matches_the_types() {
    let generated = serde_yaml::to_string(&Postgres::crd()).expect("serialize the CRD");
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/crds/postgres.yaml");
    let committed = std::fs::read_to_string(path).expect("read the committed CRD");
    assert!(
        generated == committed,
        "{path} is out of date: run `cargo run -p pgrator-operator --bin pgrator-crdgen > operator/deploy/crds/postgres.yaml`"
    );
}
