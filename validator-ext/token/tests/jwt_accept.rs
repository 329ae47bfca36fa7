//! Accepted tokens: every supported algorithm, and what the result carries.

mod support;

use pgrator_token::{Accepted, Algorithm, AlgorithmSet, Verification, validate_jwt};
use support::*;

fn accept(signer: &Signer, algorithms: AlgorithmSet) -> Accepted {
    let keys = key_set(&[signer]);
    let mut p = policy();
    p.algorithms = algorithms;
    let token = signer.mint(&claims());
    validate_jwt(&token, &keys, &p, &requirements(), now())
        .unwrap_or_else(|r| panic!("{} refused: {r}", signer.alg()))
}

#[test]
fn rs256_es256_eddsa_accepted_by_default() {
    for signer in [
        Signer::rs256("r1"),
        Signer::es256("e1"),
        Signer::eddsa("d1"),
    ] {
        let a = accept(&signer, AlgorithmSet::DEFAULT);
        assert_eq!(a.authn_id, "308349723487234");
        assert_eq!(a.expires_at.seconds(), NOW + 300);
        assert_eq!(a.scopes, vec!["openid", "db:connect"]);
        assert_eq!(a.roles, vec!["db-user"]);
        let alg = Algorithm::from_name(signer.alg()).expect("known");
        assert_eq!(
            a.verification,
            Verification::Signature {
                alg,
                kid: signer.kid.clone()
            }
        );
    }
}

#[test]
fn optional_algorithms_accepted_when_allowed() {
    let signers = [
        Signer::rsa(RSA_A_PEM, "RS384", "a"),
        Signer::rsa(RSA_A_PEM, "RS512", "b"),
        Signer::rsa(RSA_A_PEM, "PS256", "c"),
        Signer::rsa(RSA_B_PEM, "PS384", "d"),
        Signer::rsa(RSA_B_PEM, "PS512", "e"),
        Signer::es384("f"),
    ];
    for s in &signers {
        accept(s, AlgorithmSet::all());
    }
}

#[test]
fn optional_algorithms_refused_by_default() {
    for s in [Signer::rsa(RSA_A_PEM, "PS256", "c"), Signer::es384("f")] {
        let keys = key_set(&[&s]);
        assert_eq!(
            verdict(&s.mint(&claims()), &keys),
            Err("alg_not_allowed"),
            "{}",
            s.alg()
        );
    }
}

#[test]
fn picks_the_right_key_among_several() {
    let a = Signer::rs256("a");
    let b = Signer::rsa(RSA_B_PEM, "RS256", "b");
    let e = Signer::es256("e");
    let d = Signer::eddsa("d");
    let keys = key_set(&[&a, &b, &e, &d]);
    for s in [&a, &b, &e, &d] {
        assert_eq!(
            verdict(&s.mint(&claims()), &keys),
            Ok("308349723487234".into()),
            "kid {:?}",
            s.kid
        );
    }
}

#[test]
fn token_without_kid_uses_the_only_fitting_key() {
    let rsa = Signer::rs256("r").without_kid();
    let ec = Signer::es256("e");
    let keys = key_set(&[&Signer::rs256("r"), &ec]);
    let t = rsa.mint(&claims());
    let a = validate_jwt(&t, &keys, &policy(), &requirements(), now()).expect("one RSA key fits");
    assert_eq!(
        a.verification,
        Verification::Signature {
            alg: Algorithm::RS256,
            kid: Some("r".into())
        }
    );
}

#[test]
fn jwks_without_kids_and_token_without_kid() {
    let d = Signer::eddsa("x").without_kid();
    let keys = key_set(&[&d]);
    assert_eq!(
        verdict(&d.mint(&claims()), &keys),
        Ok("308349723487234".into())
    );
}

#[test]
fn configured_identity_claim_and_single_string_audience() {
    let s = Signer::es256("e");
    let keys = key_set(&[&s]);
    let mut p = policy();
    p.identity_claim = "preferred_username".into();
    let c = with(
        with(
            claims(),
            "preferred_username",
            Some("alice@example.test".into()),
        ),
        "aud",
        Some(AUDIENCE.into()),
    );
    let a = validate_jwt(&s.mint(&c), &keys, &p, &requirements(), now()).expect("accepted");
    assert_eq!(a.authn_id, "alice@example.test");
}

#[test]
fn accepted_with_one_of_several_configured_audiences() {
    let s = Signer::es256("e");
    let keys = key_set(&[&s]);
    let mut p = policy();
    p.audiences = vec!["other".into(), "project-123".into()];
    let c = with(claims(), "aud", Some(serde_json::json!(["project-123"])));
    assert!(validate_jwt(&s.mint(&c), &keys, &p, &requirements(), now()).is_ok());
}

#[test]
fn minimal_claims_are_enough() {
    let s = Signer::eddsa("d");
    let keys = key_set(&[&s]);
    let c = serde_json::json!({"iss": ISSUER, "aud": AUDIENCE, "exp": NOW + 1, "sub": "u"});
    let req = pgrator_token::Requirements::from_hba(ISSUER, "");
    let a = validate_jwt(&s.mint(&c), &keys, &policy(), &req, now()).expect("accepted");
    assert!(a.scopes.is_empty() && a.roles.is_empty());
}
