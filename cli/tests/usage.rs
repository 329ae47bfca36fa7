//! The `pgrator` binary as a user runs it: usage errors exit 2 and say what is missing; plain http is refused.

use std::process::Command;

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
