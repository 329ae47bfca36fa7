//! A panic inside the validator is caught at the FFI edge and becomes a refusal: the backend ends the login
//! normally, the server does not crash or restart, the log says what happened, and the next login works. Proven
//! with the module's fault-injection build (`./just build-validator-faults`), where one magic token panics.

use pgrator_e2e::oauth_db::{OAuthDb, validator_faults_lib, validator_lib};
use pgrator_world::idp::defaults::ALICE_SUB;
use pgrator_world::postgres::PgConfig;
use serde_json::json;

#[test]
fn a_panic_in_the_validator_is_a_refusal_and_the_server_lives_on() {
    let db = OAuthDb::start_with_module(
        &validator_faults_lib().expect("the fault-injection build"),
        &[(ALICE_SUB, "alice")],
        PgConfig::default().setting("shared_preload_libraries", "'pgrator_validator'"),
    )
    .expect("the IdP and PostgreSQL 18");
    db.pg
        .sql("postgres", "CREATE ROLE alice LOGIN")
        .expect("role");
    let started = db
        .pg
        .sql("postgres", "SELECT pg_postmaster_start_time()")
        .expect("start time");

    let before = db.pg.log_len();
    let refused = db.token_login("alice", "pgrator-fault.panic");
    assert!(refused.is_err(), "the panicking token logged in");
    let log = db.pg.log_since(before);
    assert!(
        log.contains("internal error in the validator: fault injected: a panic inside the validator [internal_error]"),
        "server log:\n{log}"
    );
    for crash in [
        "terminated by signal",
        "was terminated",
        "all server processes terminated",
        "PANIC:",
    ] {
        assert!(!log.contains(crash), "the server crashed ({crash}):\n{log}");
    }

    // The server is the same one, and the next login goes through.
    let token = db.mint_for_alice(json!({})).expect("a token");
    assert_eq!(db.token_login("alice", &token).as_deref(), Ok("alice"));
    let after = db
        .pg
        .sql("postgres", "SELECT pg_postmaster_start_time()")
        .expect("start time");
    assert_eq!(started, after, "the postmaster restarted");
}

#[test]
fn the_release_module_has_no_fault_trigger() {
    let release = std::fs::read(validator_lib().expect("the release module")).expect("read it");
    let faults = std::fs::read(validator_faults_lib().expect("the fault build")).expect("read it");
    let trigger = b"pgrator-fault.panic";
    let has = |bytes: &[u8]| bytes.windows(trigger.len()).any(|w| w == trigger);
    assert!(
        has(&faults),
        "the fault build lacks its trigger (the check would prove nothing)"
    );
    assert!(
        !has(&release),
        "the release module carries the fault trigger"
    );
}
