//! Key selection: unknown kid, kid pointing to a key of another type, tokens without kid, pinned JWK alg.

mod support;

use pgrator_token::{KeySet, validate_jwt};
use serde_json::json;
use support::*;

#[test]
fn unknown_kid_is_refused_and_asks_for_a_refresh() {
    let s = Signer::rs256("old");
    let keys = key_set(&[&Signer::rs256("new")]);
    let r = validate_jwt(&s.mint(&claims()), &keys, &policy(), &requirements(), now())
        .expect_err("unknown");
    assert_eq!(r.code(), "unknown_kid");
    assert!(r.may_need_key_refresh());
}

#[test]
fn kid_pointing_to_a_key_of_another_type() {
    // The token says ES256 with kid "shared", the only key with that kid is RSA.
    let rsa = Signer::rs256("shared");
    let ec = Signer::es256("shared");
    let keys = key_set(&[&rsa]);
    let r = validate_jwt(
        &ec.mint(&claims()),
        &keys,
        &policy(),
        &requirements(),
        now(),
    )
    .expect_err("mismatch");
    assert_eq!(r.code(), "key_alg_mismatch");
    assert!(!r.may_need_key_refresh());
    // EdDSA header with an RSA kid.
    let ed = Signer::eddsa("shared");
    assert_eq!(verdict(&ed.mint(&claims()), &keys), Err("key_alg_mismatch"));
    // RS256 header signed with the EC key, kid of the RSA key: type mismatch never reaches ring with wrong bytes.
    let mut h = ec.header();
    h["alg"] = json!("RS256");
    assert_eq!(
        verdict(&ec.mint_with_header(&h, &claims()), &keys),
        Err("bad_signature")
    );
}

#[test]
fn same_kid_on_two_key_types_uses_the_fitting_one() {
    let rsa = Signer::rs256("shared");
    let ec = Signer::es256("shared");
    let keys = key_set(&[&rsa, &ec]);
    assert!(verdict(&ec.mint(&claims()), &keys).is_ok());
    assert!(verdict(&rsa.mint(&claims()), &keys).is_ok());
}

#[test]
fn no_kid_with_several_fitting_keys_is_refused() {
    let a = Signer::rs256("a");
    let b = Signer::rsa(RSA_B_PEM, "RS256", "b");
    let keys = key_set(&[&a, &b]);
    let t = Signer::rs256("a").without_kid().mint(&claims());
    assert_eq!(verdict(&t, &keys), Err("unknown_kid"));
    // No fitting key at all.
    let t = Signer::eddsa("x").without_kid().mint(&claims());
    assert_eq!(verdict(&t, &keys), Err("unknown_kid"));
}

#[test]
fn jwk_alg_pin_is_honoured() {
    // The JWK pins RS256; a PS256 token with the same key is refused even when PS256 is allowed.
    let rs = Signer::rsa(RSA_A_PEM, "RS256", "k");
    let ps = Signer::rsa(RSA_A_PEM, "PS256", "k");
    let mut jwk = rs.jwk();
    jwk["alg"] = json!("RS256");
    let keys = KeySet::parse(json!({"keys":[jwk]}).to_string().as_bytes()).expect("parses");
    let mut p = policy();
    p.algorithms = pgrator_token::AlgorithmSet::all();
    let run = |t: &str| {
        validate_jwt(t, &keys, &p, &requirements(), now())
            .map(|_| ())
            .map_err(|r| r.code())
    };
    assert_eq!(run(&rs.mint(&claims())), Ok(()));
    assert_eq!(run(&ps.mint(&claims())), Err("key_alg_mismatch"));
}

#[test]
fn encryption_keys_are_not_used_for_verification() {
    let s = Signer::rs256("r");
    let mut jwk = s.jwk();
    jwk["use"] = json!("enc");
    let keys = KeySet::parse(json!({"keys":[jwk]}).to_string().as_bytes()).expect("parses");
    assert!(keys.is_empty());
    assert_eq!(keys.skipped().len(), 1);
    assert_eq!(verdict(&s.mint(&claims()), &keys), Err("unknown_kid"));
}

#[test]
fn weak_rsa_keys_are_skipped() {
    let hex = RSA_WEAK_MODULUS_HEX.trim();
    let n: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
        .collect();
    let jwk = json!({"kty":"RSA","kid":"weak","use":"sig","n": b64(&n),"e":"AQAB"});
    let keys = KeySet::parse(json!({"keys":[jwk]}).to_string().as_bytes()).expect("parses");
    assert!(keys.is_empty());
    assert_eq!(
        keys.skipped()[0].reason.to_string(),
        "RSA modulus has 1024 bits (2048 to 8192 accepted)"
    );
    assert_eq!(
        verdict(&Signer::rs256("weak").mint(&claims()), &keys),
        Err("unknown_kid")
    );
}

#[test]
fn empty_key_set_refuses_everything() {
    let keys = KeySet::default();
    assert_eq!(
        verdict(&Signer::es256("e").mint(&claims()), &keys),
        Err("unknown_kid")
    );
}

#[test]
fn invalid_ec_point_is_a_bad_signature_not_a_crash() {
    let s = Signer::es256("e");
    let mut jwk = s.jwk();
    jwk["y"] = jwk["x"].clone(); // (x, x) is not on the curve
    let keys = KeySet::parse(json!({"keys":[jwk]}).to_string().as_bytes()).expect("parses");
    assert_eq!(verdict(&s.mint(&claims()), &keys), Err("bad_signature"));
}
