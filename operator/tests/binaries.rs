//! The operator binary refuses a bad configuration at start, naming the field, and accepts the example; the CLI
//! explains its usage errors with exit code 2.

use std::process::Command;

fn operator() -> Command {
    Command::new(env!("CARGO_BIN_EXE_pgrator-operator"))
}

#[test]
fn a_bad_configuration_is_refused_with_the_field_named() {
    let dir = tempfile::tempdir().expect("temp dir");
    let example = include_str!("../deploy/config.example.yaml");
    let good = dir.path().join("good.yaml");
    std::fs::write(&good, example).expect("write");
    let ok = operator()
        .arg("check-config")
        .arg(&good)
        .output()
        .expect("run");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );

    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        example.replace("retentionDays: 30", "retentionDays: 0"),
    )
    .expect("write");
    let refused = operator()
        .arg("check-config")
        .arg(&bad)
        .output()
        .expect("run");
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("backup.retentionDays: must be 1 to 3650"),
        "{stderr}"
    );

    let run = operator()
        .args(["run", "--config"])
        .arg(&bad)
        .output()
        .expect("run");
    assert!(
        !run.status.success(),
        "the operator started with a bad configuration"
    );
    assert!(String::from_utf8_lossy(&run.stderr).contains("backup.retentionDays"));
}

#[test]
fn the_cli_explains_usage_errors() {
    let out = Command::new(env!("CARGO_BIN_EXE_pgrator"))
        .args(["postgres", "access", "orders"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--namespace"));
}

#[test]
fn the_cli_refuses_plain_http_unless_told_it_is_a_test() {
    // Loopback only, and refused before any connection: tokens never travel in clear by accident.
    let run = |insecure: bool| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_pgrator"));
        command
            .args(["postgres", "accesses", "--token-cache", "-"])
            .env("PGRATOR_API", "http://127.0.0.1:9")
            .env("PGRATOR_ISSUER", "http://127.0.0.1:9")
            .env_remove("PGRATOR_INSECURE_HTTP");
        if insecure {
            command.env("PGRATOR_INSECURE_HTTP", "true");
        }
        let out = command.output().expect("run");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, stderr) = run(false);
    assert_ne!(code, Some(0));
    assert!(stderr.to_lowercase().contains("https"), "{stderr}");
    // With the test flag the same call gets as far as the (closed) port: a connection error, not the https rule.
    let (code, stderr) = run(true);
    assert_ne!(code, Some(0));
    assert!(!stderr.to_lowercase().contains("https"), "{stderr}");
}
