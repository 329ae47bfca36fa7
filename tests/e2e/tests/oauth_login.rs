//! The real psql logs in to PostgreSQL 18 through the OAuth device flow against the test IdP; our validator checks
//! the token against the IdP's keys and pg_ident.conf maps the identity to a role.

use pgrator_e2e::oauth_db::{OAuthDb, server_readable_file};
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
    use serde_json::json;

    fn mint(db: &OAuthDb, extra: serde_json::Value) -> String {
        db.mint_for_alice(extra).expect("mint a token")
    }

    fn login(db: &OAuthDb, token: &str) -> Result<String, String> {
        db.token_login("alice", token)
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

/// Preloaded, the validator shares keys across backends: after the first login, logins make no IdP request, and
/// the counters and key cache are readable from SQL.
#[test]
fn preloaded_validator_shares_keys_and_counts_outcomes() {
    let config = PgConfig::default().setting("shared_preload_libraries", "'pgrator_validator'");
    let db = OAuthDb::start(&[(ALICE_SUB, "alice")], config).expect("start the IdP and PostgreSQL");
    db.pg
        .sql("postgres", "CREATE ROLE alice LOGIN")
        .expect("create role alice");
    let first = db
        .psql_login("alice", ALICE, "SELECT current_user")
        .expect("run psql");
    assert!(first.success, "first login failed:\n{}", first.stderr);

    db.idp.reset_stats().expect("reset IdP stats");
    for _ in 0..3 {
        let out = db
            .psql_login("alice", ALICE, "SELECT current_user")
            .expect("run psql");
        assert!(out.success, "login failed:\n{}", out.stderr);
    }
    let stats = db.idp.stats().expect("IdP stats");
    // (psql itself reads the discovery document on every login; the validator needs only the keys.)
    assert_eq!(
        stats.count("/oauth/v2/keys"),
        0,
        "logins fetched keys: {stats:?}"
    );

    db.pg
        .sql("postgres", "CREATE EXTENSION pgrator_validator")
        .expect("create the extension");
    let accepted = db
        .pg
        .sql(
            "postgres",
            "SELECT count FROM pgrator_validator.counters() WHERE name = 'accepted'",
        )
        .expect("read counters");
    assert_eq!(accepted, "4");
    let cache = db
        .pg
        .sql(
            "postgres",
            "SELECT issuer, shared, keys > 0, failures FROM pgrator_validator.key_cache()",
        )
        .expect("read key cache");
    assert_eq!(cache, format!("{}|t|t|0", db.idp.issuer()));
    let log = db.pg.log();
    assert!(
        log.contains("pgrator_validator key refresher started"),
        "{log}"
    );
}

/// Zitadel's default opaque access tokens: the validator introspects them with its own client credentials.
#[test]
fn opaque_token_login_is_accepted_through_introspection() {
    use pgrator_world::idp::defaults::{PSQL_OPAQUE, VALIDATOR, VALIDATOR_SECRET};
    use pgrator_world::postgres::conf_quote;
    let (_secret_dir, secret_file) =
        server_readable_file("secret", VALIDATOR_SECRET.as_bytes()).expect("secret file");
    let config = PgConfig::default()
        .setting(
            "pgrator_validator.introspection_client_id",
            conf_quote(VALIDATOR),
        )
        .setting(
            "pgrator_validator.introspection_secret_file",
            conf_quote(&secret_file.to_string_lossy()),
        );
    let db = OAuthDb::start(&[(ALICE_SUB, "alice")], config).expect("start the IdP and PostgreSQL");
    db.pg
        .sql("postgres", "CREATE ROLE alice LOGIN")
        .expect("create role alice");
    let before = db.idp.stats().expect("stats").count("/oauth/v2/introspect");
    let out = db
        .psql_login_with(PSQL_OPAQUE, "alice", ALICE, "SELECT current_user")
        .expect("run psql");
    assert!(
        out.success,
        "opaque-token login failed:\n{}\n{}",
        out.stderr,
        db.pg.log()
    );
    assert_eq!(out.stdout.trim(), "alice");
    assert_eq!(
        db.idp.stats().expect("stats").count("/oauth/v2/introspect"),
        before + 1
    );
    // A wrong client secret: the IdP refuses the introspection, so is the login.
    std::fs::write(&secret_file, "not-the-secret").expect("write a wrong secret");
    let log_before = db.pg.log_len();
    let out = db
        .psql_login_with(PSQL_OPAQUE, "alice", ALICE, "SELECT 1")
        .expect("run psql");
    assert!(
        !out.success,
        "login with a wrong introspection secret succeeded"
    );
    let log = db.pg.log_since(log_before);
    // The refusal says the IdP refused the validator's client (HTTP 401), not just that something failed.
    assert!(
        log.contains("introspection at") && log.contains("introspection answered HTTP 401"),
        "the log does not explain the refusal:\n{log}"
    );
}

/// Preloaded, a positive introspection answer is shared: the same opaque token logs in again without asking the
/// IdP (the cache itself, including expiry and eviction, is unit-tested in pgrator-token).
#[test]
fn preloaded_validator_caches_introspection_answers() {
    use pgrator_e2e::oauth_db::hba_scope;
    use pgrator_world::idp::defaults::{PROJECT_ID, PSQL_OPAQUE, VALIDATOR, VALIDATOR_SECRET};
    use pgrator_world::libpq::TokenClient;
    use pgrator_world::postgres::conf_quote;
    use serde_json::json;

    let (_secret_dir, secret_file) =
        server_readable_file("secret", VALIDATOR_SECRET.as_bytes()).expect("secret file");
    let config = PgConfig::default()
        .setting("shared_preload_libraries", "'pgrator_validator'")
        .setting(
            "pgrator_validator.introspection_client_id",
            conf_quote(VALIDATOR),
        )
        .setting(
            "pgrator_validator.introspection_secret_file",
            conf_quote(&secret_file.to_string_lossy()),
        );
    let db = OAuthDb::start(&[(ALICE_SUB, "alice")], config).expect("start the IdP and PostgreSQL");
    db.pg
        .sql("postgres", "CREATE ROLE alice LOGIN")
        .expect("create role alice");

    let token = db
        .idp
        .mint(
            &json!({"user": ALICE, "client_id": PSQL_OPAQUE, "aud": [PSQL_OPAQUE, PROJECT_ID],
                      "scope": hba_scope(), "opaque": true}),
        )
        .expect("mint an opaque token")
        .access_token;
    let client = TokenClient::load().expect("load libpq");
    let conninfo = db.connect_as("alice", PSQL_OPAQUE).conninfo();
    let introspections = || db.idp.stats().expect("stats").count("/oauth/v2/introspect");
    let before = introspections();
    for _ in 0..3 {
        let conn = client
            .connect(&conninfo, token.as_bytes())
            .expect("login with the opaque token");
        assert_eq!(
            conn.query_one("SELECT current_user").as_deref(),
            Ok("alice")
        );
    }
    assert_eq!(
        introspections(),
        before + 1,
        "the answer was not shared across backends"
    );
    let log = db.pg.log();
    assert!(
        !log.contains(&token),
        "the opaque token reached the server log"
    );
}

/// pg_ident.conf regular expressions map identities to roles: `\1` substitutes the captured part.
#[test]
fn a_regex_ident_map_maps_the_identity_to_a_role() {
    let db = OAuthDb::start(
        &[(r#""/^3100000000000000(0[0-9])$""#, r"person_\1")],
        PgConfig::default(),
    )
    .expect("start the IdP and PostgreSQL");
    db.pg
        .sql(
            "postgres",
            "CREATE ROLE person_01 LOGIN; CREATE ROLE person_02 LOGIN",
        )
        .expect("create roles");
    let out = db
        .psql_login("person_01", ALICE, "SELECT current_user")
        .expect("run psql");
    assert!(out.success, "alice as person_01 failed:\n{}", out.stderr);
    assert_eq!(out.stdout.trim(), "person_01");
    // bob's identity maps to person_02, not person_01.
    let out = db
        .psql_login("person_01", BOB, "SELECT 1")
        .expect("run psql");
    assert!(!out.success, "bob logged in as person_01");
    let out = db
        .psql_login("person_02", BOB, "SELECT current_user")
        .expect("run psql");
    assert!(out.success, "bob as person_02 failed:\n{}", out.stderr);
}

/// Introspection with private_key_jwt: the validator signs a client assertion with a Zitadel key file.
#[test]
fn opaque_token_login_with_a_private_key_jwt_introspection_client() {
    use pgrator_world::idp::defaults::{PSQL_OPAQUE, VALIDATOR_JWT};
    use pgrator_world::postgres::conf_quote;
    // The IdP hands out the client's key as a Zitadel key file; start once to fetch it, then configure PostgreSQL.
    let db = OAuthDb::start(&[(ALICE_SUB, "alice")], PgConfig::default()).expect("start");
    let key_file_json = db
        .idp
        .get(&format!("/test/clients/{VALIDATOR_JWT}/key"))
        .and_then(|r| r.ok_json())
        .expect("the client's key file");
    let (_dir, key_file) = server_readable_file(
        "key.json",
        &serde_json::to_vec(&key_file_json).expect("json"),
    )
    .expect("key file");
    let settings = [
        format!(
            "pgrator_validator.introspection_client_id = {}",
            conf_quote(VALIDATOR_JWT)
        ),
        format!(
            "pgrator_validator.introspection_key_file = {}",
            conf_quote(&key_file.to_string_lossy())
        ),
    ];
    db.pg
        .sql("postgres", "CREATE ROLE alice LOGIN")
        .expect("create role alice");
    let conf = db.pg.data_dir().join("postgresql.conf");
    let mut text = std::fs::read_to_string(&conf).expect("read postgresql.conf");
    text += &(settings.join("\n") + "\n");
    std::fs::write(&conf, text).expect("write postgresql.conf");
    db.pg.reload().expect("reload");
    std::thread::sleep(std::time::Duration::from_millis(300));

    let introspections =
        |db: &OAuthDb| db.idp.stats().expect("stats").count("/oauth/v2/introspect");
    let before = introspections(&db);
    let out = db
        .psql_login_with(PSQL_OPAQUE, "alice", ALICE, "SELECT current_user")
        .expect("run psql");
    assert!(
        out.success,
        "opaque login with private_key_jwt failed:\n{}\n{}",
        out.stderr,
        db.pg.log()
    );
    assert_eq!(out.stdout.trim(), "alice");
    assert_eq!(
        introspections(&db),
        before + 1,
        "the login went through the IdP's introspection"
    );
    // The proof that a client assertion was sent and checked: with a key the IdP does not know, the IdP refuses.
    let mut wrong = key_file_json.clone();
    wrong["keyId"] = serde_json::json!("not-a-key-of-this-client");
    std::fs::write(&key_file, serde_json::to_vec(&wrong).expect("json"))
        .expect("write the key file");
    db.pg.reload().expect("reload");
    std::thread::sleep(std::time::Duration::from_millis(300));
    let log_before = db.pg.log_len();
    let refused = db
        .psql_login_with(PSQL_OPAQUE, "alice", ALICE, "SELECT 1")
        .expect("run psql");
    assert!(
        !refused.success,
        "an assertion with an unknown key was accepted by the IdP"
    );
    let log = db.pg.log_since(log_before);
    assert!(
        log.contains("introspection answered HTTP 401"),
        "the IdP did not refuse the client's assertion:\n{log}"
    );
}
