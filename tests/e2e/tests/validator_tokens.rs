//! Every class of bad token is refused by the validator loaded in a real PostgreSQL 18, with a log line that names
//! the reason and never contains the token; key rotation at the IdP is picked up without a restart.
//! Tokens are minted by the test IdP (signed with its real keys unless a case says otherwise) and presented by a
//! libpq client, the same libpq psql uses.

use pgrator_e2e::oauth_db::OAuthDb;
use pgrator_world::idp::defaults::ALICE_SUB;
use pgrator_world::postgres::PgConfig;
use serde_json::{Value, json};

fn db(config: PgConfig) -> OAuthDb {
    let db = OAuthDb::start(&[(ALICE_SUB, "alice")], config).expect("start the IdP and PostgreSQL");
    db.pg
        .sql("postgres", "CREATE ROLE alice LOGIN")
        .expect("create role alice");
    db
}

fn mint(db: &OAuthDb, extra: Value) -> String {
    db.mint_for_alice(extra).expect("mint a token")
}

fn login(db: &OAuthDb, token: &str) -> Result<String, String> {
    db.token_login("alice", token)
}

/// The login is refused and the server log says why with `[code]`, without the token or its signature.
fn assert_refused(db: &OAuthDb, what: &str, token: &str, code: &str) {
    let before = db.pg.log_len();
    let err = login(db, token).expect_err(what);
    assert!(
        err.contains("OAuth bearer authentication failed"),
        "{what}: {err}"
    );
    let log = db.pg.log_since(before);
    assert!(
        log.contains(&format!("[{code}]")),
        "{what}: expected [{code}] in the server log:\n{log}"
    );
    assert_token_not_in(&log, token, what);
}

fn assert_token_not_in(log: &str, token: &str, what: &str) {
    assert!(!token.is_empty());
    assert!(
        !log.contains(token),
        "{what}: the token reached the server log"
    );
    if let Some(signature) = token.rsplit('.').next().filter(|s| s.len() > 16) {
        assert!(
            !log.contains(signature),
            "{what}: the token's signature reached the server log"
        );
    }
}

#[test]
fn every_class_of_bad_token_is_refused_with_its_reason() {
    let db = db(PgConfig::default());
    let good = mint(&db, json!({}));
    assert_eq!(
        login(&db, &good).as_deref(),
        Ok("alice"),
        "a valid token must be accepted"
    );

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    let cases: Vec<(&str, Value, &str)> = vec![
        ("expired", json!({"exp": now - 300}), "expired"),
        ("not yet valid", json!({"nbf": now + 3600}), "not_yet_valid"),
        (
            "issued in the future",
            json!({"iat": now + 3600}),
            "issued_in_future",
        ),
        (
            "wrong issuer",
            json!({"iss": "https://idp.invalid"}),
            "wrong_issuer",
        ),
        (
            "wrong audience",
            json!({"aud": ["someone-else"]}),
            "wrong_audience",
        ),
        ("missing scope", json!({"scope": "openid"}), "missing_scope"),
        ("alg none", json!({"signature": "none"}), "alg_none"),
        (
            "HS256 keyed with the public key",
            json!({"signature": "hmac_public_key"}),
            "hmac_refused",
        ),
        (
            "a bit flipped in the signature",
            json!({"signature": "corrupt"}),
            "bad_signature",
        ),
        (
            "a key the IdP never published",
            json!({"sign_with": "ephemeral"}),
            "unknown_kid",
        ),
        (
            "an embedded jwk header",
            json!({"embed_jwk": true}),
            "header_key_refused",
        ),
        (
            "a jku header",
            json!({"header": {"jku": "https://idp.invalid/keys"}}),
            "header_key_refused",
        ),
        (
            "an x5u header",
            json!({"header": {"x5u": "https://idp.invalid/cert"}}),
            "header_key_refused",
        ),
        ("no exp", json!({"omit": ["exp"]}), "missing_claim"),
    ];
    for (what, extra, code) in cases {
        assert_refused(&db, what, &mint(&db, extra), code);
    }

    // Not a token at all, or too large to look at.
    assert_refused(&db, "not a JWT", "not-a-jwt", "malformed");
    assert_refused(&db, "three garbage segments", "e30x.e30y.zzzz", "malformed");
    let (header_payload, _) = good.rsplit_once('.').expect("a JWS");
    let oversized = format!("{header_payload}{}.sig", "A".repeat(20 * 1024));
    assert_refused(&db, "oversized", &oversized, "oversized");
    assert_refused(&db, "oversized opaque", &"x".repeat(20 * 1024), "oversized");

    // The same valid token still works: nothing above poisoned the cache.
    assert_eq!(login(&db, &good).as_deref(), Ok("alice"));
}

#[test]
fn key_rotation_is_picked_up_without_a_restart() {
    // Preloaded: the keys are cached in shared memory, so a new key comes through an unknown-kid refresh, which
    // is allowed once per cooldown (5 s here) so that made-up key ids cannot make the server hammer the IdP.
    let db = db(PgConfig::default()
        .setting("shared_preload_libraries", "'pgrator_validator'")
        .setting("pgrator_validator.jwks_unknown_kid_cooldown", "'5s'"));
    let before_rotation = mint(&db, json!({}));
    assert_eq!(login(&db, &before_rotation).as_deref(), Ok("alice"));

    let old_kid = db.idp.jwks_kids().expect("kids")[0].clone();
    let new_kid = db.idp.rotate(false).expect("rotate the IdP's key");
    assert_ne!(old_kid, new_kid);
    let after_rotation = mint(&db, json!({}));
    assert_eq!(
        login(&db, &after_rotation).as_deref(),
        Ok("alice"),
        "a token of the new key"
    );
    assert_eq!(
        login(&db, &before_rotation).as_deref(),
        Ok("alice"),
        "the old key is still published"
    );

    // Retire the old key: tokens it signed are refused once the JWKS no longer lists it.
    db.idp
        .rotate(true)
        .expect("rotate again, retiring the old keys");
    let retired = mint(&db, json!({"sign_with": old_kid}));
    let fresh = mint(&db, json!({}));
    assert_refused(
        &db,
        "a new key inside the unknown-kid cooldown",
        &fresh,
        "unknown_kid",
    );
    std::thread::sleep(std::time::Duration::from_millis(5100));
    assert_eq!(
        login(&db, &fresh).as_deref(),
        Ok("alice"),
        "a token of the newest key, after the cooldown"
    );
    assert_refused(&db, "a token of a retired key", &retired, "unknown_kid");
}

#[test]
fn only_access_tokens_of_allowed_clients_log_in() {
    // Every application of the project gets the project id into `aud`: with the allowlist, only the clients
    // named there (azp, else client_id) get in, and an ID token never does.
    let db = db(PgConfig::default().setting("pgrator_validator.allowed_clients", "'psql'"));
    let good = mint(&db, json!({}));
    assert_eq!(login(&db, &good).as_deref(), Ok("alice"), "psql's token");
    assert_refused(
        &db,
        "a token another application of the project was issued",
        &mint(&db, json!({"azp": "reporting-app"})),
        "client_not_allowed",
    );
    assert_refused(
        &db,
        "a token that names no client",
        &mint(&db, json!({"claims": {"azp": null, "client_id": null}})),
        "client_not_allowed",
    );
    assert_refused(
        &db,
        "an ID token of psql's login",
        &mint(&db, json!({"claims": {"at_hash": "bG9naW4gb2YgYWxpY2U"}})),
        "not_access_token",
    );
    assert_eq!(login(&db, &good).as_deref(), Ok("alice"));
}
