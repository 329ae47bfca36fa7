//! The operator's image, built like the extension image: the `pgrator-operator` program of this build at
//! /usr/local/bin, the CA bundle, user 65532. Pushed to the registry, pulled by digest, and run with nothing but
//! what the image holds (it prints its install manifests).

mod oci_support;

use std::path::PathBuf;
use std::process::Command;

use oci_support::{block_on, client_options, host_arch};
use pgrator_extension_oci::registry::{pull_image, push_layout};
use pgrator_image::{
    OperatorImageSpec, SYSTEM_CA_BUNDLE, build_operator_image, build_operator_layout,
};
use pgrator_world::registry::{Registry, RegistryOptions};

fn spec(program: PathBuf) -> OperatorImageSpec {
    OperatorImageSpec {
        name: "pgrator".into(),
        version: "0.1.0".into(),
        programs: vec![(host_arch(), program)],
        args: vec!["--help".into()],
        ca_bundle: PathBuf::from(SYSTEM_CA_BUNDLE),
        license_files: vec![],
        spdx_license: Some("MIT".into()),
        source: None,
        revision: None,
        epoch: 0,
    }
}

#[test]
fn the_operator_image_holds_its_program_certificates_and_user_and_runs() {
    let program = pgrator_e2e::operator::operator_binary();
    let work = tempfile::tempdir().expect("temp dir");
    let layout = work.path().join("layout");
    let built =
        build_operator_layout(&spec(program.clone()), &layout).expect("build the operator image");
    // Reproducible like the extension image.
    assert_eq!(
        build_operator_image(&spec(program.clone()))
            .expect("rebuild")
            .set
            .digest(),
        built.set.digest()
    );

    let registry = Registry::start(RegistryOptions::plain()).expect("start the registry");
    let options = client_options(&registry);
    let pushed = block_on(push_layout(
        &layout,
        &format!("{}/pgrator/operator", registry.address()),
        &options,
    ))
    .expect("push");
    assert_eq!(
        pushed.reference,
        format!(
            "{}/pgrator/operator:0.1.0@{}",
            registry.address(),
            built.set.digest()
        )
    );
    let root = work.path().join("root");
    let pulled = block_on(pull_image(&pushed.reference, &root, &options, host_arch()))
        .expect("pull by digest");

    let config = &pulled.config.config;
    assert_eq!(config.user.as_deref(), Some("65532:65532"));
    assert_eq!(config.entrypoint, ["/usr/local/bin/pgrator"]);
    assert_eq!(config.cmd, ["--help"]);
    assert!(
        config
            .env
            .contains(&"SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt".to_string()),
        "{:?}",
        config.env
    );

    let read = |p: &str| std::fs::read(root.join(p)).unwrap_or_else(|e| panic!("{p}: {e}"));
    assert_eq!(
        read("usr/local/bin/pgrator"),
        std::fs::read(&program).expect("read the program")
    );
    assert_eq!(
        read("etc/ssl/certs/ca-certificates.crt"),
        std::fs::read(SYSTEM_CA_BUNDLE).expect("system CAs")
    );
    let passwd = String::from_utf8(read("etc/passwd")).expect("utf8");
    assert!(
        passwd
            .lines()
            .any(|l| l.starts_with("nonroot:x:65532:65532:")),
        "{passwd}"
    );
    assert!(
        String::from_utf8(read("etc/group"))
            .expect("utf8")
            .contains("nonroot:x:65532:")
    );

    // Run the program with only the image's loader and libraries (no system cache, no host library path).
    let [(_, libraries)] = built.libraries.as_slice() else {
        panic!("one architecture")
    };
    let loader = libraries
        .iter()
        .find(|l| l.image_path.contains("/ld-linux"))
        .expect("a dynamically linked program brings its loader");
    let library_dirs: Vec<String> = libraries
        .iter()
        .filter_map(|l| std::path::Path::new(&l.image_path).parent())
        .map(|d| {
            root.join(d.strip_prefix("/").expect("absolute"))
                .display()
                .to_string()
        })
        .collect();
    let out = Command::new(root.join(loader.image_path.trim_start_matches('/')))
        .arg("--inhibit-cache")
        .arg("--library-path")
        .arg(library_dirs.join(":"))
        .arg(root.join("usr/local/bin/pgrator"))
        .arg("manifests")
        .env_remove("LD_LIBRARY_PATH")
        .output()
        .expect("run the program from the image");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}\n{}",
        stdout,
        String::from_utf8_lossy(&out.stderr)
    );
    // The operator itself ran: its install manifests, admission policy included.
    assert!(
        stdout.contains("kind: Deployment") && stdout.contains("kind: ValidatingAdmissionPolicy"),
        "{stdout}"
    );
}
