//! Any bytes as a bearer token: the whole JWT pipeline and the classifier must never panic, and nothing
//! validates without a signature from the key set's private key (which the fuzzer does not have).
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use pgrator_token::{
    KeySet, Policy, Requirements, UnixTime, base64url, check_opaque, classify, envelope,
    validate_jwt,
};
use ring::signature::{Ed25519KeyPair, KeyPair};

fn keys() -> &'static KeySet {
    static KEYS: OnceLock<KeySet> = OnceLock::new();
    KEYS.get_or_init(|| {
        let pair = Ed25519KeyPair::from_seed_unchecked(&[7u8; 32]).expect("fixed seed");
        let x = base64url::encode(pair.public_key().as_ref());
        let doc = format!(r#"{{"keys":[{{"kty":"OKP","crv":"Ed25519","kid":"k","x":"{x}"}}]}}"#);
        KeySet::parse(doc.as_bytes()).expect("fixed JWKS")
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    let _ = classify(token);
    if let Ok(env) = envelope::open(token, 64 * 1024) {
        let _ = env.payload();
    }
    let policy = Policy::new(vec!["aud".into()]);
    let req = Requirements::from_hba("https://issuer.test", "openid");
    let _ = check_opaque(token, &policy);
    let verdict = validate_jwt(token, keys(), &policy, &req, UnixTime(1_700_000_000));
    assert!(
        verdict.is_err(),
        "a token validated without the private key"
    );
    if let Err(r) = verdict {
        let _ = (r.code(), r.to_string());
    }
});
