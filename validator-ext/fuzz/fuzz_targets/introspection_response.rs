//! Any bytes as an introspection answer: never panics; an accepted answer really said active=true for our
//! issuer and audience.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pgrator_token::introspection::evaluate;
use pgrator_token::{Policy, Requirements, UnixTime, json};

fuzz_target!(|data: &[u8]| {
    let policy = Policy::new(vec!["aud".into()]);
    let req = Requirements::from_hba("https://issuer.test", "");
    if let Ok(accepted) = evaluate(200, data, &policy, &req, UnixTime(1_700_000_000)) {
        let doc = json::parse_object(data).expect("accepted answers are valid JSON");
        assert_eq!(doc.get("active").and_then(|v| v.as_bool()), Some(true));
        assert_eq!(
            doc.get("iss").and_then(|v| v.as_str()),
            Some("https://issuer.test")
        );
        assert!(!accepted.authn_id.is_empty());
    }
});
