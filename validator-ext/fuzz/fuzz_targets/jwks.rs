//! Any bytes as a JWKS or discovery document: parsers must never panic, and every kept key must be usable.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pgrator_token::{Algorithm, KeySet, ProviderMetadata};

fuzz_target!(|data: &[u8]| {
    if let Ok(set) = KeySet::parse(data) {
        for key in set.keys() {
            for alg in Algorithm::ALL {
                // Verifying garbage must fail, not crash.
                assert!(!key.verify(alg, b"message", b"signature"));
            }
        }
        for skipped in set.skipped() {
            let _ = skipped.reason.to_string();
        }
    }
    let _ = ProviderMetadata::parse(data, "https://issuer.test");
});
