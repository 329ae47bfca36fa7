//! Envelope: size, segments, encoding, trailing data, payload shape (signed, so it reaches payload parsing).

mod support;

use pgrator_token::validate_jwt;
use serde_json::json;
use support::*;

#[test]
fn oversized_tokens_are_refused_before_parsing() {
    let s = Signer::eddsa("d");
    let keys = key_set(&[&s]);
    let big = with(claims(), "padding", Some(json!("x".repeat(17 * 1024))));
    assert_eq!(verdict(&s.mint(&big), &keys), Err("oversized"));
    assert_eq!(verdict(&"a".repeat(100_000), &keys), Err("oversized"));
    // The limit is configurable and inclusive.
    let t = s.mint(&claims());
    let mut p = policy();
    p.max_token_bytes = t.len();
    assert!(validate_jwt(&t, &keys, &p, &requirements(), now()).is_ok());
    p.max_token_bytes = t.len() - 1;
    assert_eq!(
        validate_jwt(&t, &keys, &p, &requirements(), now())
            .map_err(|r| r.code())
            .err(),
        Some("oversized")
    );
}

#[test]
fn bad_base64_and_segments_are_malformed() {
    let s = Signer::eddsa("d");
    let keys = key_set(&[&s]);
    let t = s.mint(&claims());
    let sig_start = t.rfind('.').expect("dot") + 1;
    let cases = [
        String::new(),
        "abc".into(),
        "a.b".into(),
        format!("{t}.x"),
        format!("{t}.x.y"),
        t.replace('.', ".."),
        format!(" {t}"),
        format!("{t}\n"),
        // Standard-alphabet characters in the signature (not base64url), whatever the signature's bytes are.
        format!("{}+{}", &t[..sig_start], &t[sig_start + 1..]),
        format!("{}/{}", &t[..sig_start], &t[sig_start + 1..]),
        format!(
            "{}=={}",
            &t[..t.find('.').expect("dot")],
            &t[t.find('.').expect("dot")..]
        ),
    ];
    for c in cases {
        assert_eq!(verdict(&c, &keys), Err("malformed"), "{c:?}");
    }
}

#[test]
fn payload_must_be_a_strict_object() {
    let s = Signer::eddsa("d");
    let keys = key_set(&[&s]);
    let h = s.header().to_string();
    for payload in [
        "[1,2]".to_string(),
        "\"sub\"".to_string(),
        "null".to_string(),
        format!("{} trailing", claims()),
        format!("{}{{}}", claims()),
        r#"{"sub":"a","sub":"b"}"#.to_string(),
        "{\"sub\":\"\u{0}".to_string(),
    ] {
        let t = s.mint_raw(h.as_bytes(), payload.as_bytes());
        assert_eq!(verdict(&t, &keys), Err("malformed"), "{payload}");
    }
    let t = s.mint_raw(h.as_bytes(), b"\xff\xfe");
    assert_eq!(verdict(&t, &keys), Err("malformed"), "not UTF-8");
}

#[test]
fn duplicate_claims_cannot_smuggle_a_second_subject() {
    let s = Signer::eddsa("d");
    let keys = key_set(&[&s]);
    let body = claims().to_string();
    let smuggled = format!("{},\"sub\":\"admin\"}}", &body[..body.len() - 1]);
    let t = s.mint_raw(s.header().to_string().as_bytes(), smuggled.as_bytes());
    assert_eq!(verdict(&t, &keys), Err("malformed"));
}

#[test]
fn jwe_shaped_tokens_are_malformed() {
    let keys = key_set(&[&Signer::eddsa("d")]);
    let jwe = format!(
        "{}.AAAA.BBBB.CCCC.DDDD",
        b64(br#"{"alg":"RSA-OAEP","enc":"A256GCM"}"#)
    );
    assert_eq!(verdict(&jwe, &keys), Err("malformed"));
}
