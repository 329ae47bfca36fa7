//! The real psql logs in to PostgreSQL 18 through the OAuth device flow against the test IdP; our validator checks
//! the token against the IdP's keys and pg_ident.conf maps the identity to a role.

use pgrator_e2e::oauth_db::OAuthDb;
use pgrator_world::idp::defaults::{ALICE, ALICE_SUB, BOB, BOB_SUB};
use pgrator_world::postgres::PgConfig;

fn db() -> OAuthDb {
    let db = OAuthDb::start(&[(ALICE_SUB, "alice")], PgConfig::default())
        .expect("start the IdP and PostgreSQL");
    db.pg
        .sql("postgres", "CREATE ROLE alice LOGIN")
        .expect("create role alice");
    db
}

#[test]
fn psql_device_flow_login_is_accepted_and_mapped_to_the_role() {
    let db = db();
    let before = db.pg.log_len();
    let out = db
        .psql_login("alice", ALICE, "SELECT current_user || ' ' || system_user")
        .expect("run psql");
    assert!(out.success, "psql login failed:\n{}", out.stderr);
    let prompt = out.prompt.as_ref().expect("psql printed a device code");
    assert!(
        prompt.verification_uri.starts_with(db.idp.issuer()),
        "{prompt:?}"
    );
    assert_eq!(out.stdout.trim(), format!("alice oauth:{ALICE_SUB}"));

    let log = db.pg.log_since(before);
    assert!(
        log.contains(&format!(
            "connection authenticated: identity=\"{ALICE_SUB}\" method=oauth"
        )),
        "server log:\n{log}"
    );
    assert!(
        !log.contains("eyJ"),
        "a token reached the server log:\n{log}"
    );
}

#[test]
fn login_as_a_role_the_map_does_not_give_that_person_is_refused() {
    let db = db();
    let before = db.pg.log_len();
    // bob's token is valid, but pg_ident.conf maps only alice's identity to the role alice.
    let out = db.psql_login("alice", BOB, "SELECT 1").expect("run psql");
    assert!(!out.success, "bob logged in as alice:\n{}", out.stdout);
    assert!(
        out.stderr
            .contains("OAuth bearer authentication failed for user \"alice\""),
        "{}",
        out.stderr
    );
    let log = db.pg.log_since(before);
    assert!(
        log.contains(&format!(
            "no match in usermap \"oauth\" for user \"alice\" authenticated as \"{BOB_SUB}\""
        )),
        "server log:\n{log}"
    );
    assert!(
        !log.contains("eyJ"),
        "a token reached the server log:\n{log}"
    );
}

/// Tokens sent by a libpq client (no device flow): the validator checks the signature against the IdP's JWKS.
mod signature {
    use super::*;
    use pgrator_e2e::oauth_db::hba_scope;
    use pgrator_world::idp::defaults::{PROJECT_ID, PSQL};
    use pgrator_world::libpq::TokenClient;
    use serde_json::json;

    fn mint(db: &OAuthDb, extra: serde_json::Value) -> String {
        let mut req = json!({"user": ALICE, "client_id": PSQL, "aud": [PSQL, PROJECT_ID], "scope": hba_scope()});
        if let (Some(r), Some(e)) = (req.as_object_mut(), extra.as_object()) {
            r.extend(e.clone());
        }
        db.idp.mint(&req).expect("mint a token").access_token
    }

    fn login(db: &OAuthDb, token: &str) -> Result<String, String> {
        let client = TokenClient::load().expect("load libpq");
        let conninfo = db.connect_as("alice", PSQL).conninfo();
        let conn = client.connect(&conninfo, token.as_bytes())?;
        conn.query_one("SELECT current_user")
    }

    #[test]
    fn a_token_signed_by_the_idp_is_accepted_and_a_forged_one_is_refused() {
        let db = db();
        assert_eq!(login(&db, &mint(&db, json!({}))).as_deref(), Ok("alice"));

        for (what, extra, code) in [
            (
                "a signature with one bit flipped",
                json!({"signature": "corrupt"}),
                "bad_signature",
            ),
            (
                "a key the IdP never published",
                json!({"sign_with": "ephemeral"}),
                "unknown_kid",
            ),
        ] {
            let before = db.pg.log_len();
            let err = login(&db, &mint(&db, extra)).expect_err(what);
            assert!(
                err.contains("OAuth bearer authentication failed"),
                "{what}: {err}"
            );
            let log = db.pg.log_since(before);
            assert!(
                log.contains(&format!("[{code}]")),
                "{what}: expected [{code}] in the server log:\n{log}"
            );
            assert!(
                !log.contains("eyJ"),
                "a token reached the server log:\n{log}"
            );
        }
    }
}
