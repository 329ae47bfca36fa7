//! The committed generated files are exactly what the code generates: the CRD
//! (`operator/deploy/crds/postgres.yaml`) and the install manifests (`operator/deploy/install.yaml`).
//! Regenerate both with `just generate`.

use pgrator_operator::manifests::{Install, install, to_yaml};

fn assert_committed(relative: &str, generated: &str) {
    let path = format!("{}/{relative}", env!("CARGO_MANIFEST_DIR"));
    let committed = std::fs::read_to_string(&path).expect("read the committed file");
    assert!(
        generated == committed,
        "{path} is out of date: run `just generate`"
    );
}

#[test]
fn committed_crds_match_the_types() {
    for (file, crd) in pgrator_operator::api::crds() {
        let generated = serde_yaml::to_string(&crd).expect("serialize the CRD");
        assert_committed(&format!("deploy/crds/{file}"), &generated);
    }
}

#[test]
fn committed_install_manifests_match_the_code() {
    let objects = install(&Install {
        namespace: "pgrator-system",
        image: "registry.example.com/pgrator/pgrator-operator:0.1.0",
        config_yaml: include_str!("../deploy/config.example.yaml"),
    });
    assert_committed("deploy/install.yaml", &to_yaml(&objects).expect("YAML"));
}
