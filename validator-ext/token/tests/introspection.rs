//! Opaque tokens: request building (secret_basic, private_key_jwt), response evaluation, the positive cache.

mod support;

use pgrator_token::introspection::client_assertion::{KeyLoadError, SigningKey, ZitadelKeyFile};
use pgrator_token::introspection::request::{
    ClientAuth, IntrospectionClient, JWT_BEARER_ASSERTION, basic_credentials,
};
use pgrator_token::introspection::{IntrospectionCache, evaluate};
use pgrator_token::{Accepted, KeySet, Policy, Requirements, UnixTime, Verification, validate_jwt};
use ring::rand::SystemRandom;
use serde_json::{Value, json};
use support::*;

const ENDPOINT: &str = "https://idp.example.test/oauth/v2/introspect";

fn form_value(body: &str, name: &str) -> Option<String> {
    body.split('&')
        .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
        .map(str::to_string)
}

/// The public JWKS of a signing key, taken from the assertion signer itself (ring public key).
fn jwks_of(pem: &str) -> KeySet {
    let der = pem_to_der(pem);
    let rng = SystemRandom::new();
    let jwk = if let Ok(k) = ring::signature::RsaKeyPair::from_pkcs8(&der) {
        let c = ring::signature::RsaPublicKeyComponents::<Vec<u8>>::from(k.public());
        json!({"kty":"RSA","n": b64(&c.n),"e": b64(&c.e),"kid":"client-key"})
    } else {
        use ring::signature::KeyPair;
        let k = ring::signature::EcdsaKeyPair::from_pkcs8(
            &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            &der,
            &rng,
        )
        .expect("EC key");
        let p = k.public_key().as_ref();
        json!({"kty":"EC","crv":"P-256","x": b64(&p[1..33]),"y": b64(&p[33..]),"kid":"client-key"})
    };
    KeySet::parse(json!({"keys":[jwk]}).to_string().as_bytes()).expect("jwks")
}

fn pkjwt_client(pem: &str) -> IntrospectionClient {
    let rng = SystemRandom::new();
    IntrospectionClient {
        endpoint: ENDPOINT.into(),
        client_id: "client-123@pgrator".into(),
        auth: ClientAuth::PrivateKeyJwt {
            key: Box::new(SigningKey::from_pem(pem, &rng).expect("key loads")),
            key_id: Some("client-key".into()),
            audience: ISSUER.into(),
            lifetime_secs: 60,
        },
    }
}

#[test]
fn secret_basic_request() {
    let c = IntrospectionClient {
        endpoint: ENDPOINT.into(),
        client_id: "db client".into(),
        auth: ClientAuth::SecretBasic {
            secret: "s:e/c".into(),
        },
    };
    let r = c
        .request("opaque-token_123", now(), &SystemRandom::new())
        .expect("built");
    assert_eq!(r.url, ENDPOINT);
    assert_eq!(
        r.body,
        "token=opaque-token_123&token_type_hint=access_token"
    );
    let auth = r
        .headers
        .iter()
        .find(|(n, _)| n == "Authorization")
        .map(|(_, v)| v.clone());
    assert_eq!(auth, Some(basic_credentials("db client", "s:e/c")));
}

#[test]
fn private_key_jwt_assertions_verify_with_the_clients_public_key() {
    for (pem, alg) in [(RSA_A_PEM, "RS256"), (P256_PEM, "ES256")] {
        let c = pkjwt_client(pem);
        let r = c
            .request("tok", now(), &SystemRandom::new())
            .expect("built");
        assert!(r.headers.iter().all(|(n, _)| n != "Authorization"));
        assert_eq!(form_value(&r.body, "token").as_deref(), Some("tok"));
        assert_eq!(
            form_value(&r.body, "client_assertion_type").as_deref(),
            Some(&*pgrator_token::introspection::form::encode(
                JWT_BEARER_ASSERTION
            ))
        );
        let assertion = form_value(&r.body, "client_assertion").expect("assertion");
        // Our own validator checks the assertion as the IdP would: iss/sub = client id, aud = issuer.
        let mut p = Policy::new(vec![ISSUER.into()]);
        p.algorithms = [
            pgrator_token::Algorithm::RS256,
            pgrator_token::Algorithm::ES256,
        ]
        .into_iter()
        .collect();
        let req = Requirements::from_hba("client-123@pgrator", "");
        let a =
            validate_jwt(&assertion, &jwks_of(pem), &p, &req, now()).expect("assertion verifies");
        assert_eq!(a.authn_id, "client-123@pgrator");
        assert_eq!(a.expires_at, UnixTime(NOW + 60));
        assert_eq!(
            a.verification,
            Verification::Signature {
                alg: pgrator_token::Algorithm::from_name(alg).expect("alg"),
                kid: Some("client-key".into())
            }
        );
        let payload: Value = serde_json::from_slice(
            &base64::Engine::decode(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                assertion.split('.').nth(1).expect("payload"),
            )
            .expect("b64"),
        )
        .expect("json");
        assert_eq!(payload["iat"], json!(NOW));
        assert_eq!(payload["iss"], payload["sub"]);
        assert_eq!(
            payload["jti"].as_str().map(str::len),
            Some(22),
            "16 random bytes"
        );
        // Expired after its short lifetime.
        assert_eq!(
            validate_jwt(&assertion, &jwks_of(pem), &p, &req, UnixTime(NOW + 60 + 30))
                .map_err(|r| r.code())
                .err(),
            Some("expired")
        );
    }
}

#[test]
fn assertion_ids_are_unique() {
    let c = pkjwt_client(P256_PEM);
    let rng = SystemRandom::new();
    let jti = |b: &str| form_value(b, "client_assertion").expect("assertion");
    let a = jti(&c.request("t", now(), &rng).expect("a").body);
    let b = jti(&c.request("t", now(), &rng).expect("b").body);
    assert_ne!(a, b);
}

#[test]
fn private_key_formats() {
    let rng = SystemRandom::new();
    let pkcs1 = include_str!("fixtures/rsa2048-a.pkcs1.pem");
    let k = SigningKey::from_pem(pkcs1, &rng).expect("PKCS#1 RSA (Zitadel key files) loads");
    assert_eq!(k.algorithm(), pgrator_token::Algorithm::RS256);
    assert!(!format!("{k:?}").contains("BEGIN"));
    let sec1 = include_str!("fixtures/p256.sec1.pem");
    assert!(
        matches!(SigningKey::from_pem(sec1, &rng), Err(KeyLoadError::UnsupportedLabel(l)) if l == "EC PRIVATE KEY")
    );
    assert!(matches!(
        SigningKey::from_pem(
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----",
            &rng
        ),
        Err(KeyLoadError::Rejected(_))
    ));
    assert!(matches!(
        SigningKey::from_pem("no pem", &rng),
        Err(KeyLoadError::Pem(_))
    ));
    // PKCS#1 signs assertions the PKCS#8 form of the same key's public part verifies.
    let c = IntrospectionClient {
        endpoint: ENDPOINT.into(),
        client_id: "c".into(),
        auth: ClientAuth::PrivateKeyJwt {
            key: Box::new(k),
            key_id: Some("client-key".into()),
            audience: ISSUER.into(),
            lifetime_secs: 60,
        },
    };
    let assertion = form_value(
        &c.request("t", now(), &rng).expect("built").body,
        "client_assertion",
    )
    .expect("assertion");
    let p = Policy::new(vec![ISSUER.into()]);
    assert!(
        validate_jwt(
            &assertion,
            &jwks_of(RSA_A_PEM),
            &p,
            &Requirements::from_hba("c", ""),
            now()
        )
        .is_ok()
    );
}

#[test]
fn zitadel_key_file() {
    let file = json!({"type":"application","keyId":"2772","key": include_str!("fixtures/rsa2048-a.pkcs1.pem"),"appId":"1","clientId":"2@p"});
    let k = ZitadelKeyFile::parse(file.to_string().as_bytes()).expect("parses");
    assert_eq!((k.key_id.as_str(), k.client_id.as_str()), ("2772", "2@p"));
    assert!(SigningKey::from_pem(&k.key_pem, &SystemRandom::new()).is_ok());
    assert!(!format!("{k:?}").contains("PRIVATE"));
    let user = json!({"type":"serviceaccount","keyId":"1","key":"x","userId":"u1"});
    assert_eq!(
        ZitadelKeyFile::parse(user.to_string().as_bytes())
            .expect("parses")
            .client_id,
        "u1"
    );
    assert!(ZitadelKeyFile::parse(br#"{"keyId":"1","key":"x"}"#).is_err());
}

fn answer() -> Value {
    json!({
        "active": true,
        "iss": ISSUER,
        "aud": [AUDIENCE, "project-123"],
        "client_id": "cli",
        "exp": NOW + 300,
        "iat": NOW - 10,
        "scope": "openid db:connect",
        "sub": "308349723487234",
        "token_type": "Bearer",
        "username": "alice@example.test",
        "urn:zitadel:iam:org:project:roles": {"db-user": {"1": "org"}},
    })
}

fn judge(status: u16, body: &Value) -> Result<Accepted, &'static str> {
    evaluate(
        status,
        body.to_string().as_bytes(),
        &policy(),
        &requirements(),
        now(),
    )
    .map_err(|e| e.code())
}

#[test]
fn active_answers_are_accepted() {
    let a = judge(200, &answer()).expect("accepted");
    assert_eq!(a.authn_id, "308349723487234");
    assert_eq!(a.verification, Verification::Introspection);
    assert_eq!(a.roles, vec!["db-user"]);
    assert_eq!(a.expires_at, UnixTime(NOW + 300));
}

#[test]
fn inactive_and_broken_answers() {
    assert_eq!(
        judge(200, &json!({"active": false})).err(),
        Some("inactive")
    );
    assert_eq!(
        judge(200, &with(answer(), "active", Some(json!(false)))).err(),
        Some("inactive")
    );
    assert_eq!(
        judge(200, &with(answer(), "active", None)).err(),
        Some("idp_error")
    );
    assert_eq!(
        judge(200, &with(answer(), "active", Some(json!("true")))).err(),
        Some("idp_error")
    );
    assert_eq!(
        judge(200, &with(answer(), "active", Some(json!(1)))).err(),
        Some("idp_error")
    );
    assert_eq!(judge(401, &answer()).err(), Some("idp_error"));
    assert_eq!(judge(500, &json!({})).err(), Some("idp_error"));
    assert_eq!(
        evaluate(200, b"<html>", &policy(), &requirements(), now())
            .map_err(|e| e.code())
            .err(),
        Some("idp_error")
    );
    let dup = br#"{"active":false,"active":true}"#;
    assert_eq!(
        evaluate(200, dup, &policy(), &requirements(), now())
            .map_err(|e| e.code())
            .err(),
        Some("idp_error")
    );
    let big = vec![b' '; 300 * 1024];
    assert_eq!(
        evaluate(200, &big, &policy(), &requirements(), now())
            .map_err(|e| e.code())
            .err(),
        Some("idp_error")
    );
}

#[test]
fn the_jwt_claim_rules_apply() {
    assert_eq!(
        judge(
            200,
            &with(answer(), "iss", Some(json!("https://evil.test")))
        )
        .err(),
        Some("wrong_issuer")
    );
    assert_eq!(
        judge(200, &with(answer(), "iss", None)).err(),
        Some("missing_claim")
    );
    assert_eq!(
        judge(200, &with(answer(), "aud", Some(json!(["someone-else"])))).err(),
        Some("wrong_audience")
    );
    assert_eq!(
        judge(200, &with(answer(), "aud", Some(json!(7)))).err(),
        Some("invalid_claim")
    );
    assert_eq!(
        judge(200, &with(answer(), "exp", Some(json!(NOW - 31)))).err(),
        Some("expired")
    );
    assert_eq!(
        judge(200, &with(answer(), "exp", None)).err(),
        Some("missing_claim")
    );
    assert_eq!(
        judge(200, &with(answer(), "nbf", Some(json!(NOW + 31)))).err(),
        Some("not_yet_valid")
    );
    assert_eq!(
        judge(200, &with(answer(), "iat", Some(json!(NOW + 31)))).err(),
        Some("issued_in_future")
    );
    assert_eq!(
        judge(200, &with(answer(), "scope", Some(json!("openid")))).err(),
        Some("missing_scope")
    );
    assert_eq!(
        judge(200, &with(answer(), "sub", None)).err(),
        Some("identity_claim_missing")
    );
    let mut p = policy();
    p.required_role = Some("db-admin".into());
    assert_eq!(
        evaluate(
            200,
            answer().to_string().as_bytes(),
            &p,
            &requirements(),
            now()
        )
        .map_err(|e| e.code())
        .err(),
        Some("missing_role")
    );
    p.identity_claim = "username".into();
    p.required_role = Some("db-user".into());
    assert_eq!(
        evaluate(
            200,
            answer().to_string().as_bytes(),
            &p,
            &requirements(),
            now()
        )
        .map(|a| a.authn_id)
        .ok()
        .as_deref(),
        Some("alice@example.test")
    );
}

fn accepted(exp: i64) -> Accepted {
    Accepted {
        authn_id: "u".into(),
        expires_at: UnixTime(exp),
        scopes: vec!["openid".into(), "db:connect".into()],
        roles: vec!["db-user".into()],
        verification: Verification::Introspection,
    }
}

#[test]
fn cache_hits_and_expires_at_min_of_exp_and_ttl() {
    let mut c = IntrospectionCache::new(10, 60);
    let (p, r) = (policy(), requirements());
    assert!(c.lookup("tok", &p, &r, now()).is_none());
    c.insert("tok", ISSUER, &accepted(NOW + 300), now());
    assert_eq!(
        c.lookup("tok", &p, &r, UnixTime(NOW + 59))
            .map(|x| x.map(|a| a.authn_id)),
        Some(Ok("u".into()))
    );
    assert!(
        c.lookup("tok", &p, &r, UnixTime(NOW + 60)).is_none(),
        "TTL bound"
    );
    assert!(c.is_empty(), "expired entry removed on lookup");
    c.insert("tok", ISSUER, &accepted(NOW + 20), now());
    assert!(c.lookup("tok", &p, &r, UnixTime(NOW + 19)).is_some());
    assert!(
        c.lookup("tok", &p, &r, UnixTime(NOW + 20)).is_none(),
        "token exp bound"
    );
    c.insert("tok", ISSUER, &accepted(NOW), now());
    assert!(c.is_empty(), "already expired tokens are not cached");
}

#[test]
fn cache_is_separated_by_issuer_and_rechecks_demands() {
    let mut c = IntrospectionCache::new(10, 600);
    c.insert("tok", ISSUER, &accepted(NOW + 300), now());
    let other = Requirements::from_hba("https://other.test", "openid");
    assert!(
        c.lookup("tok", &policy(), &other, now()).is_none(),
        "another issuer's line misses"
    );
    let more_scopes = Requirements::from_hba(ISSUER, "openid db:admin");
    assert_eq!(
        c.lookup("tok", &policy(), &more_scopes, now())
            .map(|x| x.map_err(|e| e.code()).err()),
        Some(Some("missing_scope"))
    );
    let mut p = policy();
    p.required_role = Some("db-admin".into());
    assert_eq!(
        c.lookup("tok", &p, &requirements(), now())
            .map(|x| x.map_err(|e| e.code()).err()),
        Some(Some("missing_role"))
    );
    assert!(
        c.lookup("tokX", &policy(), &requirements(), now())
            .is_none()
    );
}

#[test]
fn cache_evicts_least_recently_used_at_the_hard_limit() {
    let mut c = IntrospectionCache::new(3, 600);
    let (p, r) = (policy(), requirements());
    for t in ["a", "b", "c"] {
        c.insert(t, ISSUER, &accepted(NOW + 300), now());
    }
    assert!(c.lookup("a", &p, &r, now()).is_some()); // a is now the most recent
    c.insert("d", ISSUER, &accepted(NOW + 300), now());
    assert_eq!(c.len(), 3);
    assert!(
        c.lookup("b", &p, &r, now()).is_none(),
        "b was least recently used"
    );
    for t in ["a", "c", "d"] {
        assert!(c.lookup(t, &p, &r, now()).is_some(), "{t}");
    }
    // Expired entries go first when full.
    let mut c = IntrospectionCache::new(2, 600);
    c.insert("short", ISSUER, &accepted(NOW + 5), now());
    c.insert("long", ISSUER, &accepted(NOW + 300), now());
    c.insert("new", ISSUER, &accepted(NOW + 300), UnixTime(NOW + 10));
    assert!(c.lookup("long", &p, &r, UnixTime(NOW + 10)).is_some());
    assert!(c.lookup("new", &p, &r, UnixTime(NOW + 10)).is_some());
    // Many inserts never exceed the limit.
    let mut c = IntrospectionCache::new(50, 600);
    for i in 0..1000 {
        c.insert(&format!("t{i}"), ISSUER, &accepted(NOW + 300), now());
        assert!(c.len() <= 50);
    }
    c.clear();
    assert!(c.is_empty());
    let mut zero = IntrospectionCache::new(0, 600);
    zero.insert("a", ISSUER, &accepted(NOW + 300), now());
    assert!(zero.is_empty());
}

#[test]
fn cache_never_holds_the_token() {
    let mut c = IntrospectionCache::new(10, 600);
    let token = "very-secret-opaque-token-value";
    c.insert(token, ISSUER, &accepted(NOW + 300), now());
    assert!(!format!("{c:?}").contains(token));
}

#[test]
fn classification() {
    use pgrator_token::{TokenKind, classify};
    let s = Signer::eddsa("d");
    assert_eq!(classify(&s.mint(&claims())), TokenKind::Jws);
    let none = format!("{}.{}.", b64(br#"{"alg":"none"}"#), b64(b"{}"));
    assert_eq!(
        classify(&none),
        TokenKind::Jws,
        "goes the JWT way and is refused there"
    );
    for t in [
        "opaque-token",
        "a.b.c",
        "",
        "x.y",
        &format!("{}.e30.AA", b64(br#"{"typ":"JWT"}"#)),
        &format!("{}.e30.AA", b64(br#"{"alg":1}"#)),
        &format!("{}.a.b.c", b64(br#"{"alg":"RS256"}"#)),
    ] {
        assert_eq!(classify(t), TokenKind::Opaque, "{t}");
    }
}

#[test]
fn opaque_tokens_are_checked_before_introspection() {
    use pgrator_token::check_opaque;
    let p = policy();
    for ok in ["abc", "a-b.c_d~e+f/g==", "dGVzdA", &"x".repeat(16 * 1024)] {
        assert!(check_opaque(ok, &p).is_ok(), "{ok}");
    }
    for bad in ["", "=", "a b", "a\nb", "a=b", "tok\u{0}", "é"] {
        assert_eq!(
            check_opaque(bad, &p).map_err(|r| r.code()),
            Err("malformed"),
            "{bad:?}"
        );
    }
    assert_eq!(
        check_opaque(&"x".repeat(16 * 1024 + 1), &p).map_err(|r| r.code()),
        Err("oversized")
    );
    // A huge three-segment token is not decoded by the classifier beyond its bound.
    let huge_header = format!("{}.e30.AA", "e".repeat(100_000));
    assert_eq!(
        pgrator_token::classify(&huge_header),
        pgrator_token::TokenKind::Opaque
    );
}
