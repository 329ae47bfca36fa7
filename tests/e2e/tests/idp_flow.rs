//! The test world's OpenID Provider (tests/world/idp) behaves like Zitadel where pgrator depends on it: the device
//! flow psql runs, JWT access tokens that verify against the JWKS with Zitadel's claims, opaque tokens that
//! introspect with client authentication, keys rotated on demand, minted bad tokens and injected faults.
//! Every test starts the real IdP binary (`tests/world/install.sh idp`).

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use pgrator_world::idp::defaults::*;
use pgrator_world::idp::{
    CLAIM_PROJECT_ROLES, ClientCredentials, Fault, Idp, IdpClient, IdpConfig, SCOPE_PROJECT_ROLES,
    TokenPoll, scope_project_audience,
};
use serde_json::{Value, json};

fn start() -> Idp {
    Idp::start(IdpConfig::default()).expect("the IdP starts (tests/world/install.sh idp)")
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64
}

/// Verifies a JWT's signature against the IdP's current JWKS with a real JWT library, checking iss and aud.
fn verify(idp: &Idp, token: &str, audience: &str) -> Result<Value, jsonwebtoken::errors::Error> {
    let header = jsonwebtoken::decode_header(token)?;
    let jwks: JwkSet = serde_json::from_value(idp.jwks().expect("JWKS")).expect("JWKS parses");
    let kid = header.kid.clone().expect("token header has a kid");
    let jwk = jwks
        .find(&kid)
        .unwrap_or_else(|| panic!("kid {kid} is not in the JWKS"));
    let key = DecodingKey::from_jwk(jwk)?;
    let mut validation = Validation::new(header.alg);
    validation.set_audience(&[audience]);
    validation.set_issuer(&[idp.issuer()]);
    validation.validate_nbf = true;
    validation.leeway = 5;
    validation.set_required_spec_claims(&["exp", "iat", "nbf", "iss", "aud", "sub"]);
    Ok(jsonwebtoken::decode::<Value>(token, &key, &validation)?.claims)
}

fn roles_claim(roles: &[&str]) -> Value {
    let mut m = serde_json::Map::new();
    for r in roles {
        m.insert(r.to_string(), json!({ ORG_ID: ORG_DOMAIN }));
    }
    Value::Object(m)
}

fn secret_creds() -> ClientCredentials {
    ClientCredentials::Secret {
        client_id: VALIDATOR.into(),
        secret: VALIDATOR_SECRET.into(),
    }
}

#[test]
fn discovery_is_zitadel_shaped_and_advertises_the_device_flow() {
    let idp = start();
    let d = idp.discovery().expect("discovery");
    assert_eq!(
        d["issuer"],
        idp.issuer(),
        "libpq compares the issuer byte for byte"
    );
    for (field, path) in [
        ("authorization_endpoint", "/oauth/v2/authorize"),
        ("token_endpoint", "/oauth/v2/token"),
        ("introspection_endpoint", "/oauth/v2/introspect"),
        ("jwks_uri", "/oauth/v2/keys"),
        (
            "device_authorization_endpoint",
            "/oauth/v2/device_authorization",
        ),
        ("revocation_endpoint", "/oauth/v2/revoke"),
        ("userinfo_endpoint", "/oidc/v1/userinfo"),
    ] {
        assert_eq!(d[field], idp.url(path), "{field}");
    }
    let grants: Vec<&str> = d["grant_types_supported"]
        .as_array()
        .expect("grant types")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        grants.contains(&"urn:ietf:params:oauth:grant-type:device_code"),
        "{grants:?}"
    );
    let auth_methods = d["introspection_endpoint_auth_methods_supported"]
        .as_array()
        .expect("introspection auth methods");
    assert!(
        auth_methods.contains(&json!("client_secret_basic"))
            && auth_methods.contains(&json!("private_key_jwt"))
    );

    // RFC 8414 metadata is the same document.
    let oauth = idp
        .get("/.well-known/oauth-authorization-server")
        .expect("oauth metadata")
        .ok_json()
        .expect("200 JSON");
    assert_eq!(oauth, d);
}

#[test]
fn device_flow_gives_a_jwt_that_verifies_against_the_jwks_with_zitadel_claims() {
    let idp = start();
    let scope = format!("openid {SCOPE_PROJECT_ROLES}");
    let authz = idp
        .device_authorization(PSQL, &scope)
        .expect("device authorization");

    // What libpq needs from the response, Zitadel-shaped: 8 characters with a dash, 5 minutes, polled each second.
    let code = &authz.user_code;
    assert_eq!(code.len(), 9, "{code}");
    assert_eq!(&code[4..5], "-", "{code}");
    assert!(
        code.chars()
            .filter(|c| *c != '-')
            .all(|c| "BCDFGHJKLMNPQRSTVWXZ".contains(c)),
        "{code}"
    );
    assert_eq!(authz.interval, Some(1));
    assert_eq!(authz.expires_in, 300);
    assert_eq!(authz.verification_uri, idp.url("/device"));
    assert_eq!(
        authz.verification_uri_complete.as_deref(),
        Some(idp.url(&format!("/device?user_code={code}")).as_str())
    );
    assert_eq!(
        idp.pending_user_codes().expect("pending"),
        vec![code.clone()]
    );

    match idp.poll_token(PSQL, &authz.device_code).expect("poll") {
        TokenPoll::Pending(e) => assert_eq!(e, "authorization_pending"),
        other => panic!("before approval the token endpoint must say pending, got {other:?}"),
    }
    idp.approve(code, ALICE).expect("approve");
    let token = match idp.poll_token(PSQL, &authz.device_code).expect("poll") {
        TokenPoll::Token(t) => t,
        other => panic!("after approval the token endpoint must answer a token, got {other:?}"),
    };
    assert_eq!(token.token_type, "Bearer");
    assert_eq!(token.scope.as_deref(), Some(scope.as_str()));

    let claims = verify(&idp, &token.access_token, PSQL)
        .expect("the access token verifies against the JWKS");
    assert_eq!(claims["sub"], ALICE_SUB);
    assert_eq!(claims["iss"], idp.issuer());
    assert_eq!(claims["aud"], json!([PSQL, PROJECT_ID]));
    assert_eq!(claims["azp"], PSQL);
    assert_eq!(claims["client_id"], PSQL);
    assert_eq!(claims["scope"], scope);
    assert!(claims["jti"].as_str().is_some_and(|j| !j.is_empty()));
    let (iat, nbf, exp) = (
        claims["iat"].as_i64(),
        claims["nbf"].as_i64(),
        claims["exp"].as_i64(),
    );
    let (iat, nbf, exp) = (iat.expect("iat"), nbf.expect("nbf"), exp.expect("exp"));
    assert!(
        (iat - now()).abs() <= 5 && nbf <= now() + 1,
        "iat {iat} nbf {nbf}"
    );
    assert!(
        (exp - iat - 12 * 3600).abs() <= 2,
        "Zitadel's 12 h lifetime, got exp-iat {}",
        exp - iat
    );
    assert_eq!(claims[CLAIM_PROJECT_ROLES], roles_claim(&["team-a"]));
    assert!(
        claims.get("email").is_none(),
        "Zitadel puts no email into access tokens"
    );

    // The device code is single-use.
    assert!(matches!(
        idp.poll_token(PSQL, &authz.device_code).expect("poll"),
        TokenPoll::Failed { .. }
    ));
    assert!(idp.pending_user_codes().expect("pending").is_empty());
}

#[test]
fn roles_claim_follows_the_scope_and_the_users_grants() {
    let idp = start();
    let without = idp
        .device_flow_token(PSQL, "openid", ALICE)
        .expect("token without the roles scope");
    let claims = verify(&idp, &without.access_token, PSQL).expect("verifies");
    assert!(
        claims.get(CLAIM_PROJECT_ROLES).is_none(),
        "no roles claim without the roles scope: {claims}"
    );

    let bob = idp
        .device_flow_token(PSQL, &format!("openid {SCOPE_PROJECT_ROLES}"), BOB)
        .expect("bob's token");
    let claims = verify(&idp, &bob.access_token, PSQL).expect("verifies");
    assert_eq!(claims["sub"], BOB_SUB);
    assert_eq!(claims[CLAIM_PROJECT_ROLES], json!({}), "bob has no roles");

    let one_role = idp
        .device_flow_token(
            PSQL,
            "openid urn:zitadel:iam:org:project:role:team-a",
            ALICE,
        )
        .expect("token asking for one role");
    let claims = verify(&idp, &one_role.access_token, PSQL).expect("verifies");
    assert_eq!(claims[CLAIM_PROJECT_ROLES], roles_claim(&["team-a"]));

    let other_project = idp
        .device_flow_token(
            PSQL,
            &format!("openid {}", scope_project_audience("399999999999999999")),
            ALICE,
        )
        .expect("token with another project in aud");
    let claims = verify(&idp, &other_project.access_token, PSQL).expect("verifies");
    assert_eq!(
        claims["aud"],
        json!([PSQL, PROJECT_ID, "399999999999999999"])
    );
}

#[test]
fn unknown_user_or_code_cannot_be_approved_and_a_denied_login_fails() {
    let idp = start();
    let authz = idp
        .device_authorization(PSQL, "openid")
        .expect("device authorization");
    let err = idp
        .approve(&authz.user_code, "mallory")
        .expect_err("unknown user")
        .to_string();
    assert!(err.contains("404") && err.contains("mallory"), "{err}");
    let err = idp
        .approve("BBBB-BBBB", ALICE)
        .expect_err("unknown code")
        .to_string();
    assert!(err.contains("404") && err.contains("BBBB-BBBB"), "{err}");

    idp.deny(&authz.user_code).expect("deny");
    match idp.poll_token(PSQL, &authz.device_code).expect("poll") {
        TokenPoll::Failed { status, error, .. } => {
            assert_eq!((status, error.as_str()), (400, "access_denied"))
        }
        other => panic!("a denied login must fail, got {other:?}"),
    }
}

#[test]
fn opaque_token_introspects_with_secret_basic_and_private_key_jwt_and_not_with_a_wrong_secret() {
    let idp = start();
    let scope = format!("openid email {SCOPE_PROJECT_ROLES}");
    let token = idp
        .device_flow_token(PSQL_OPAQUE, &scope, ALICE)
        .expect("opaque token")
        .access_token;
    assert_eq!(
        token.matches('.').count(),
        0,
        "Zitadel's default access token is opaque, not a JWT: {token}"
    );

    let key_file = idp
        .client_key_file(VALIDATOR_JWT)
        .expect("key file of the private_key_jwt client");
    assert_eq!(key_file.key_type, "application");
    assert_eq!(key_file.client_id, VALIDATOR_JWT);
    for creds in [
        secret_creds(),
        ClientCredentials::PrivateKeyJwt(key_file.clone()),
    ] {
        let v = idp
            .introspect(&token, &creds)
            .expect("introspect")
            .ok_json()
            .expect("200 JSON");
        assert_eq!(v["active"], true, "{creds:?}: {v}");
        assert_eq!(v["sub"], ALICE_SUB);
        assert_eq!(v["username"], ALICE);
        assert_eq!(v["email"], "alice@pgrator.test");
        assert_eq!(v["client_id"], PSQL_OPAQUE);
        assert_eq!(v["token_type"], "Bearer");
        assert_eq!(v["iss"], idp.issuer());
        assert_eq!(v["aud"], json!([PSQL_OPAQUE, PROJECT_ID]));
        assert_eq!(v["scope"], scope);
        assert!(
            v["exp"].as_i64().expect("exp") > now()
                && v["iat"].as_i64().is_some()
                && v["nbf"].as_i64().is_some()
        );
        assert_eq!(v[CLAIM_PROJECT_ROLES], roles_claim(&["team-a"]));
    }

    // Wrong or missing client authentication: 401, as Zitadel answers.
    let wrong = ClientCredentials::Secret {
        client_id: VALIDATOR.into(),
        secret: "not-the-secret".into(),
    };
    assert_eq!(
        idp.introspect(&token, &wrong).expect("introspect").status,
        401
    );
    assert_eq!(
        idp.introspect(&token, &ClientCredentials::Public(PSQL.into()))
            .expect("introspect")
            .status,
        401
    );
    let mut forged = key_file.clone();
    forged.key_id = "999".into();
    assert_eq!(
        idp.introspect(&token, &ClientCredentials::PrivateKeyJwt(forged))
            .expect("introspect")
            .status,
        401
    );

    // Unknown and revoked tokens are inactive; userinfo works until the revocation.
    let unknown = idp
        .introspect("not-a-token", &secret_creds())
        .expect("introspect")
        .ok_json()
        .expect("200");
    assert_eq!(unknown, json!({"active": false}));
    let info = idp
        .userinfo(&token)
        .expect("userinfo")
        .ok_json()
        .expect("200");
    assert_eq!(
        (info["sub"].as_str(), info["email"].as_str()),
        (Some(ALICE_SUB), Some("alice@pgrator.test"))
    );
    assert_eq!(
        idp.revoke(&token, &ClientCredentials::Public(PSQL_OPAQUE.into()))
            .expect("revoke")
            .status,
        200
    );
    let v = idp
        .introspect(&token, &secret_creds())
        .expect("introspect")
        .ok_json()
        .expect("200");
    assert_eq!(v["active"], false, "revoked: {v}");
    // zitadel/oidc answers 403 at userinfo for a token it can read but no longer accepts.
    assert_eq!(idp.userinfo(&token).expect("userinfo").status, 403);
    assert_eq!(idp.userinfo("garbage").expect("userinfo").status, 401);
}

#[test]
fn introspection_is_active_only_for_a_caller_in_the_audience() {
    let mut config = IdpConfig::default();
    let mut other = IdpClient::secret_basic("other-api", "other-secret");
    other.project_id = Some("399999999999999999".into());
    config.clients.push(other);
    let idp = Idp::start(config).expect("IdP starts");
    let other_creds = ClientCredentials::Secret {
        client_id: "other-api".into(),
        secret: "other-secret".into(),
    };

    let plain = idp
        .device_flow_token(PSQL, "openid", ALICE)
        .expect("token")
        .access_token;
    let v = idp
        .introspect(&plain, &other_creds)
        .expect("introspect")
        .ok_json()
        .expect("200");
    assert_eq!(
        v["active"], false,
        "another project's API is not an audience: {v}"
    );
    let v = idp
        .introspect(&plain, &secret_creds())
        .expect("introspect")
        .ok_json()
        .expect("200");
    assert_eq!(
        v["active"], true,
        "a JWT introspects too for the project's API: {v}"
    );

    let scoped = idp
        .device_flow_token(
            PSQL,
            &format!("openid {}", scope_project_audience("399999999999999999")),
            ALICE,
        )
        .expect("token for the other project too")
        .access_token;
    let v = idp
        .introspect(&scoped, &other_creds)
        .expect("introspect")
        .ok_json()
        .expect("200");
    assert_eq!(
        v["active"], true,
        "the audience scope makes the other project an audience: {v}"
    );
}

#[test]
fn rotation_publishes_the_new_kid_signs_new_tokens_with_it_and_retires_old_keys_on_request() {
    let idp = start();
    let keys = idp.get("/oauth/v2/keys").expect("keys");
    assert_eq!(keys.header("cache-control"), Some("max-age=300"));
    let first = idp.jwks_kids().expect("kids");
    assert_eq!(first.len(), 1);
    let old_token = idp
        .device_flow_token(PSQL, "openid", ALICE)
        .expect("token")
        .access_token;
    assert_eq!(
        jsonwebtoken::decode_header(&old_token)
            .expect("header")
            .kid
            .as_deref(),
        Some(first[0].as_str())
    );

    let new_kid = idp.rotate(false).expect("rotate");
    assert_ne!(new_kid, first[0]);
    assert_eq!(
        idp.jwks_kids().expect("kids"),
        vec![new_kid.clone(), first[0].clone()],
        "new first, old still published"
    );
    let new_token = idp
        .device_flow_token(PSQL, "openid", ALICE)
        .expect("token")
        .access_token;
    assert_eq!(
        jsonwebtoken::decode_header(&new_token)
            .expect("header")
            .kid
            .as_deref(),
        Some(new_kid.as_str())
    );
    verify(&idp, &new_token, PSQL).expect("the new token verifies");
    verify(&idp, &old_token, PSQL)
        .expect("the old token still verifies while its key is published");

    // Other algorithms Zitadel can sign with.
    for alg in ["ES256", "EdDSA"] {
        let kid = idp.rotate_alg(alg, false).expect("rotate");
        let token = idp
            .device_flow_token(PSQL, "openid", ALICE)
            .expect("token")
            .access_token;
        let header = jsonwebtoken::decode_header(&token).expect("header");
        assert_eq!(
            (header.kid.as_deref(), format!("{:?}", header.alg)),
            (Some(kid.as_str()), alg.to_string())
        );
        verify(&idp, &token, PSQL).unwrap_or_else(|e| panic!("{alg} token verifies: {e}"));
        let v = idp
            .introspect(&token, &secret_creds())
            .expect("introspect")
            .ok_json()
            .expect("200");
        assert_eq!(v["active"], true, "{alg} JWT introspects: {v}");
    }

    let retiring = idp.rotate(true).expect("rotate and retire");
    assert_eq!(
        idp.jwks_kids().expect("kids"),
        vec![retiring.clone()],
        "retired keys leave the JWKS"
    );
    let statuses: Vec<(String, String)> = idp
        .keys()
        .expect("keys")
        .into_iter()
        .map(|k| (k.kid, k.status))
        .collect();
    assert!(
        statuses.contains(&(retiring, "current".into()))
            && statuses.contains(&(first[0].clone(), "retired".into()))
    );
    let v = idp
        .introspect(&old_token, &secret_creds())
        .expect("introspect")
        .ok_json()
        .expect("200");
    assert_eq!(
        v["active"], false,
        "a JWT signed by a retired key no longer introspects: {v}"
    );
}

#[test]
fn minted_tokens_carry_the_requested_defects() {
    let idp = start();
    let expired = idp
        .mint(&json!({"user": ALICE, "exp_in": -300, "iat_in": -3600, "nbf_in": -3600}))
        .expect("mint");
    assert_eq!(expired.claims["sub"], ALICE_SUB);
    let err = verify(&idp, &expired.access_token, PSQL).expect_err("expired");
    assert_eq!(
        *err.kind(),
        jsonwebtoken::errors::ErrorKind::ExpiredSignature
    );
    assert!(expired.claims["exp"].as_i64().expect("exp") < now());

    let good = idp
        .mint(&json!({"user": ALICE, "scope": format!("openid {SCOPE_PROJECT_ROLES}")}))
        .expect("mint");
    let claims = verify(&idp, &good.access_token, PSQL).expect("a default minted token is valid");
    assert_eq!(claims[CLAIM_PROJECT_ROLES], roles_claim(&["team-a"]));
    assert_eq!(claims["aud"], json!([PSQL, PROJECT_ID]));

    let wrong_aud = idp.mint(&json!({"aud": ["someone-else"]})).expect("mint");
    let err = verify(&idp, &wrong_aud.access_token, PSQL).expect_err("wrong audience");
    assert_eq!(
        *err.kind(),
        jsonwebtoken::errors::ErrorKind::InvalidAudience
    );

    let corrupt = idp.mint(&json!({"signature": "corrupt"})).expect("mint");
    let err = verify(&idp, &corrupt.access_token, PSQL).expect_err("corrupt signature");
    assert_eq!(
        *err.kind(),
        jsonwebtoken::errors::ErrorKind::InvalidSignature
    );

    let unknown_kid = idp.mint(&json!({"kid": "no-such-key"})).expect("mint");
    let header = jsonwebtoken::decode_header(&unknown_kid.access_token).expect("header");
    assert_eq!(header.kid.as_deref(), Some("no-such-key"));

    let alg_none = idp.mint(&json!({"signature": "none"})).expect("mint");
    assert!(
        alg_none.access_token.ends_with('.'),
        "unsigned: {}",
        alg_none.access_token
    );
    assert_eq!(alg_none.alg.as_deref(), Some("none"));

    let ephemeral = idp
        .mint(&json!({"sign_with": "ephemeral", "embed_jwk": true}))
        .expect("mint");
    let kid = ephemeral.kid.clone().expect("kid");
    assert!(
        !idp.jwks_kids().expect("kids").contains(&kid),
        "an ephemeral key is in no JWKS"
    );
    assert_eq!(
        ephemeral.header.as_ref().expect("header")["jwk"]["kid"],
        kid.as_str()
    );

    // Opaque tokens with chosen claims, for introspection.
    let opaque = idp.mint(&json!({"user": BOB, "opaque": true, "client_id": PSQL_OPAQUE, "aud": [PSQL_OPAQUE, PROJECT_ID]})).expect("mint");
    let v = idp
        .introspect(&opaque.access_token, &secret_creds())
        .expect("introspect")
        .ok_json()
        .expect("200");
    assert_eq!(
        (v["active"].as_bool(), v["sub"].as_str()),
        (Some(true), Some(BOB_SUB)),
        "{v}"
    );
    let stale = idp
        .mint(&json!({"opaque": true, "exp_in": -1}))
        .expect("mint");
    let v = idp
        .introspect(&stale.access_token, &secret_creds())
        .expect("introspect")
        .ok_json()
        .expect("200");
    assert_eq!(v["active"], false, "expired opaque token: {v}");
}

#[test]
fn faults_make_endpoints_hang_fail_or_slow_down() {
    let idp = start();
    idp.fault(Fault::Hang, &["/oauth/v2/keys"]).expect("fault");
    let started = Instant::now();
    let reply = idp
        .get_within("/oauth/v2/keys", Duration::from_millis(700))
        .expect("request");
    assert!(
        reply.is_none(),
        "a hanging key endpoint must not answer: {reply:?}"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(650),
        "gave up after {:?}",
        started.elapsed()
    );
    // Other endpoints and the test API still answer.
    assert_eq!(
        idp.get("/.well-known/openid-configuration")
            .expect("discovery")
            .status,
        200
    );

    idp.fault(Fault::Down, &["/oauth/v2/keys"]).expect("fault");
    assert_eq!(idp.get("/oauth/v2/keys").expect("keys").status, 503);

    idp.fault(Fault::Slow(Duration::from_millis(400)), &["/oauth/v2/keys"])
        .expect("fault");
    let started = Instant::now();
    assert_eq!(idp.get("/oauth/v2/keys").expect("keys").status, 200);
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "answered after {:?}",
        started.elapsed()
    );

    idp.fault(Fault::None, &[]).expect("lift faults");
    let reply = idp
        .get_within("/oauth/v2/keys", Duration::from_secs(5))
        .expect("request")
        .expect("an answer");
    assert_eq!(reply.status, 200);
}

#[test]
fn stats_count_requests_per_path() {
    let idp = start();
    idp.reset_stats().expect("reset");
    for _ in 0..3 {
        idp.jwks().expect("keys");
    }
    idp.discovery().expect("discovery");
    idp.device_flow_token(PSQL, "openid", ALICE).expect("token");
    let stats = idp.stats().expect("stats");
    assert_eq!(stats.count("/oauth/v2/keys"), 3);
    assert_eq!(stats.count("/.well-known/openid-configuration"), 1);
    assert_eq!(stats.count("/oauth/v2/device_authorization"), 1);
    assert!(stats.count("/oauth/v2/token") >= 1);
    assert!(
        stats.paths.keys().all(|p| !p.starts_with("/test/")),
        "the test API is not counted: {:?}",
        stats.paths
    );
    assert_eq!(stats.total, stats.paths.values().sum::<u64>());
}

#[test]
fn the_device_page_approves_a_code_typed_by_a_person() {
    let idp = start();
    let authz = idp
        .device_authorization(PSQL, "openid")
        .expect("device authorization");
    let page = idp
        .get(&format!("/device?user_code={}", authz.user_code))
        .expect("page");
    assert_eq!(page.status, 200);
    for id in ["id=\"user_code\"", "id=\"username\"", "id=\"approve\""] {
        assert!(page.body.contains(id), "the form has {id}");
    }
    assert!(
        page.body
            .contains(&format!("value=\"{}\"", authz.user_code)),
        "verification_uri_complete prefills the code"
    );

    let bad = idp
        .post_form(
            "/device",
            &[
                ("user_code", &authz.user_code),
                ("username", "mallory"),
                ("action", "approve"),
            ],
        )
        .expect("post");
    assert_eq!(bad.status, 404);
    assert!(bad.body.contains("unknown user"), "{}", bad.body);

    // A person types the code in lower case and without the dash.
    let typed = authz.user_code.replace('-', "").to_lowercase();
    let ok = idp
        .post_form(
            "/device",
            &[
                ("user_code", &typed),
                ("username", ALICE),
                ("action", "approve"),
            ],
        )
        .expect("post");
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert!(ok.body.contains("Device approved"), "{}", ok.body);
    assert!(matches!(
        idp.poll_token(PSQL, &authz.device_code).expect("poll"),
        TokenPoll::Token(_)
    ));
}

#[test]
fn a_restart_keeps_keys_tokens_and_client_keys() {
    let mut idp = start();
    let kid = idp.rotate(false).expect("rotate");
    let token = idp
        .device_flow_token(PSQL_OPAQUE, "openid", ALICE)
        .expect("token")
        .access_token;
    let key_file = idp.client_key_file(VALIDATOR_JWT).expect("key file");
    idp.restart().expect("restart");
    assert_eq!(idp.jwks_kids().expect("kids")[0], kid);
    let v = idp
        .introspect(&token, &ClientCredentials::PrivateKeyJwt(key_file))
        .expect("introspect")
        .ok_json()
        .expect("200");
    assert_eq!(
        v["active"], true,
        "tokens and the client key survive a restart: {v}"
    );
}

#[test]
fn the_log_has_one_line_per_request_and_no_token() {
    let idp = start();
    let token = idp
        .device_flow_token(PSQL, "openid", ALICE)
        .expect("token")
        .access_token;
    idp.userinfo(&token).expect("userinfo");
    let logs = idp.logs();
    assert!(
        logs.lines()
            .any(|l| l.contains("\"path\":\"/oidc/v1/userinfo\"") && l.contains("\"status\":200")),
        "{logs}"
    );
    let signature = token.rsplit('.').next().expect("signature part");
    assert!(
        !logs.contains(signature),
        "the log must never contain a token"
    );
}

#[test]
fn jwt_validation_of_the_defaults_uses_rs256() {
    let idp = start();
    let token = idp
        .device_flow_token(PSQL, "openid", BOB)
        .expect("token")
        .access_token;
    assert_eq!(
        jsonwebtoken::decode_header(&token).expect("header").alg,
        Algorithm::RS256,
        "Zitadel signs with RS256 by default"
    );
}

#[test]
fn a_refresh_token_comes_only_with_offline_access_to_a_client_allowed_it_and_works_once() {
    let mut config = IdpConfig::default();
    for c in config.clients.iter_mut().filter(|c| c.client_id == PSQL) {
        c.grant_types = Some(vec![
            "urn:ietf:params:oauth:grant-type:device_code".into(),
            "authorization_code".into(),
            "refresh_token".into(),
        ]);
    }
    let idp = Idp::start(config).expect("the IdP starts");
    let api = idp.api();
    let plain = api
        .device_flow_token(PSQL, "openid", ALICE)
        .expect("a login without offline_access");
    assert_eq!(plain.refresh_token, None);
    let first = api
        .device_flow_token(PSQL, "openid offline_access", ALICE)
        .expect("a login with offline_access");
    let refresh = first.refresh_token.clone().expect("a refresh token");
    let use_it = |token: &str| {
        api.post_form(
            "/oauth/v2/token",
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", token),
                ("client_id", PSQL),
            ],
        )
        .expect("POST the token endpoint")
    };
    let renewed = use_it(&refresh).ok_json().expect("the refresh works");
    let access = renewed["access_token"].as_str().expect("an access token");
    assert_ne!(access, first.access_token);
    let claims = verify(&idp, access, PSQL).expect("the new token verifies");
    assert_eq!(claims["sub"], ALICE_SUB);
    let next = renewed["refresh_token"]
        .as_str()
        .expect("a new refresh token")
        .to_owned();
    assert_ne!(next, refresh);
    // Rotation: the used token is refused, the new one works.
    let again = use_it(&refresh);
    assert_eq!(again.status, 400, "{}", again.body);
    assert_eq!(again.json().expect("json")["error"], "invalid_grant");
    use_it(&next)
        .ok_json()
        .expect("the new refresh token works");
    // A client not allowed the grant gets no refresh token, even when it asks.
    let default = start();
    let none = default
        .api()
        .device_flow_token(PSQL, "openid offline_access", ALICE)
        .expect("a login");
    assert_eq!(none.refresh_token, None);
}
