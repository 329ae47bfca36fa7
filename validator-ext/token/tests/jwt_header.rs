//! Header attacks and rules: alg none, HMAC with the RSA public key as secret, key-carrying headers, crit, typ.

mod support;

use pgrator_token::validate_jwt;
use ring::hmac;
use serde_json::json;
use support::*;

#[test]
fn alg_none_is_refused_with_or_without_signature() {
    let s = Signer::rs256("r");
    let keys = key_set(&[&s]);
    for alg in ["none", "None", "NONE"] {
        let h = json!({"alg": alg, "kid": "r"});
        let unsigned = format!(
            "{}.{}.",
            b64(h.to_string().as_bytes()),
            b64(claims().to_string().as_bytes())
        );
        assert_eq!(verdict(&unsigned, &keys), Err("alg_none"), "{alg}");
        // Same header with a real RSA signature attached still is "none".
        assert_eq!(
            verdict(&s.mint_with_header(&h, &claims()), &keys),
            Err("alg_none"),
            "{alg} signed"
        );
    }
}

#[test]
fn alg_none_is_refused_even_when_every_algorithm_is_allowed() {
    let s = Signer::rs256("r");
    let keys = key_set(&[&s]);
    let mut p = policy();
    p.algorithms = pgrator_token::AlgorithmSet::all();
    let t = format!(
        "{}.{}.",
        b64(br#"{"alg":"none"}"#),
        b64(claims().to_string().as_bytes())
    );
    let r = validate_jwt(&t, &keys, &p, &requirements(), now()).expect_err("refused");
    assert_eq!(r.code(), "alg_none");
}

/// The classic confusion attack: HS256 with the RSA public key (as the verifier would hold it) as HMAC secret.
#[test]
fn hs256_signed_with_the_rsa_public_key_is_refused() {
    let s = Signer::rs256("r");
    let keys = key_set(&[&s]);
    let jwk = s.jwk();
    let secrets: Vec<Vec<u8>> = vec![
        jwk.to_string().into_bytes(),
        support::pem_to_der(RSA_A_PEM),
        jwk["n"].as_str().expect("n").as_bytes().to_vec(),
    ];
    for secret in secrets {
        for kid in [Some("r"), None] {
            let mut h = json!({"alg": "HS256"});
            if let Some(k) = kid {
                h["kid"] = json!(k);
            }
            let input = format!(
                "{}.{}",
                b64(h.to_string().as_bytes()),
                b64(claims().to_string().as_bytes())
            );
            let tag = hmac::sign(
                &hmac::Key::new(hmac::HMAC_SHA256, &secret),
                input.as_bytes(),
            );
            let t = format!("{input}.{}", b64(tag.as_ref()));
            assert_eq!(verdict(&t, &keys), Err("hmac_refused"));
        }
    }
}

#[test]
fn key_carrying_headers_are_refused() {
    let s = Signer::rs256("r");
    let keys = key_set(&[&s]);
    let attacker = Signer::rsa(RSA_B_PEM, "RS256", "evil");
    let values = [
        ("jku", json!("https://attacker.test/jwks.json")),
        ("x5u", json!("https://attacker.test/cert.pem")),
        ("jwk", attacker.jwk()),
        (
            "x5c",
            json!(["MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA"]),
        ),
    ];
    for (member, value) in values {
        // Signed by the real key: the header is refused regardless.
        let mut h = s.header();
        h[member] = value.clone();
        assert_eq!(
            verdict(&s.mint_with_header(&h, &claims()), &keys),
            Err("header_key_refused"),
            "{member}"
        );
        // Signed by the attacker's key carried in the header.
        let mut h = attacker.header();
        h[member] = value;
        assert_eq!(
            verdict(&attacker.mint_with_header(&h, &claims()), &keys),
            Err("header_key_refused"),
            "{member}"
        );
    }
}

#[test]
fn crit_is_refused() {
    let s = Signer::es256("e");
    let keys = key_set(&[&s]);
    let mut h = s.header();
    h["crit"] = json!(["exp"]);
    assert_eq!(
        verdict(&s.mint_with_header(&h, &claims()), &keys),
        Err("crit_unsupported")
    );
}

#[test]
fn typ_is_checked_when_configured() {
    let s = Signer::es256("e");
    let keys = key_set(&[&s]);
    let mut p = policy();
    p.expected_typ = Some("at+jwt".into());
    let run = |typ: Option<&str>| {
        let mut h = json!({"alg": "ES256", "kid": "e"});
        if let Some(t) = typ {
            h["typ"] = json!(t);
        }
        validate_jwt(
            &s.mint_with_header(&h, &claims()),
            &keys,
            &p,
            &requirements(),
            now(),
        )
        .map(|_| ())
        .map_err(|r| r.code())
    };
    assert_eq!(run(Some("at+jwt")), Ok(()));
    assert_eq!(run(Some("AT+JWT")), Ok(()));
    assert_eq!(run(Some("application/at+jwt")), Ok(()));
    assert_eq!(run(Some("JWT")), Err("typ_mismatch"));
    assert_eq!(run(None), Err("typ_mismatch"));
    // Unconfigured: an ID-token-like typ passes.
    assert_eq!(
        verdict(
            &s.mint_with_header(&json!({"alg":"ES256","kid":"e","typ":"JWT"}), &claims()),
            &keys
        ),
        Ok("308349723487234".into())
    );
}

#[test]
fn header_shape_errors_are_malformed() {
    let s = Signer::es256("e");
    let keys = key_set(&[&s]);
    for h in [
        json!({"kid":"e"}),
        json!({"alg": 1, "kid":"e"}),
        json!({"alg":"ES256","kid": ["e"]}),
    ] {
        assert_eq!(
            verdict(&s.mint_with_header(&h, &claims()), &keys),
            Err("malformed"),
            "{h}"
        );
    }
    let dup = s.mint_raw(
        br#"{"alg":"ES256","kid":"e","alg":"none"}"#,
        claims().to_string().as_bytes(),
    );
    assert_eq!(verdict(&dup, &keys), Err("malformed"));
}

#[test]
fn refusal_messages_never_contain_the_token() {
    let s = Signer::rs256("r");
    let keys = key_set(&[&s]);
    let tokens = [
        s.mint_with_header(&json!({"alg":"HS256","kid":"r"}), &claims()),
        s.mint_with_header(&json!({"alg":"RS256","kid":"unknown"}), &claims()),
        s.mint(&with(claims(), "exp", Some(json!(NOW - 100)))),
        s.mint(&with(claims(), "iss", Some(json!("https://evil.test")))),
    ];
    for t in tokens {
        let r = validate_jwt(&t, &keys, &policy(), &requirements(), now()).expect_err("refused");
        let msg = format!("{r} {r:?}");
        for segment in t.split('.') {
            assert!(
                !msg.contains(segment),
                "message leaks a token segment: {msg}"
            );
        }
    }
}
