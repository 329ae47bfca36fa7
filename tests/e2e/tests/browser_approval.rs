//! A person approves the psql login in a real browser (headless Chromium on the IdP's device page), as they would.

use std::time::Duration;

use pgrator_e2e::oauth_db::OAuthDb;
use pgrator_world::browser::approve_in_browser;
use pgrator_world::idp::defaults::{ALICE, ALICE_SUB, PSQL};
use pgrator_world::postgres::PgConfig;

#[test]
fn a_person_approves_the_psql_login_in_the_browser() {
    let db = OAuthDb::start(&[(ALICE_SUB, "alice")], PgConfig::default())
        .expect("start the IdP and PostgreSQL");
    db.pg
        .sql("postgres", "CREATE ROLE alice LOGIN")
        .expect("create role alice");

    let connect = db.connect_as("alice", PSQL);
    let out = db
        .psql
        .oauth_sql(
            &connect,
            "SELECT current_user",
            &db.trust_bundle,
            Duration::from_secs(90),
            |prompt| {
                approve_in_browser(prompt, ALICE)
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            },
        )
        .expect("run psql");
    assert!(
        out.success,
        "psql login approved in the browser failed:\n{}",
        out.stderr
    );
    assert_eq!(out.stdout.trim(), "alice");
}
