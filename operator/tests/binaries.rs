//! The operator binary refuses a bad configuration at start, naming the field, and accepts the example.

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
