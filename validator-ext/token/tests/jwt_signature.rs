//! Signature: tampering with any segment, foreign keys, truncated and swapped signatures.

mod support;

use serde_json::json;
use support::*;

fn flip(token: &str, segment: usize, byte: usize) -> String {
    let mut parts: Vec<Vec<u8>> = token
        .split('.')
        .map(|p| {
            base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, p)
                .expect("b64")
        })
        .collect();
    let n = parts[segment].len();
    parts[segment][byte % n] ^= 0x01;
    parts.iter().map(|p| b64(p)).collect::<Vec<_>>().join(".")
}

#[test]
fn tampered_payload_is_refused() {
    for s in [Signer::rs256("r"), Signer::es256("e"), Signer::eddsa("d")] {
        let keys = key_set(&[&s]);
        let t = s.mint(&claims());
        let header = t.split('.').next().expect("header");
        // Re-encode a different payload under the original signature.
        let forged_payload = b64(with(claims(), "sub", Some(json!("admin")))
            .to_string()
            .as_bytes());
        let sig = t.rsplit('.').next().expect("sig");
        assert_eq!(
            verdict(&format!("{header}.{forged_payload}.{sig}"), &keys),
            Err("bad_signature"),
            "{}",
            s.alg()
        );
    }
}

#[test]
fn any_flipped_bit_in_payload_or_signature_is_refused() {
    let s = Signer::eddsa("d");
    let keys = key_set(&[&s]);
    let t = s.mint(&claims());
    let payload_len = t.split('.').nth(1).expect("payload").len() * 3 / 4;
    for i in 0..payload_len {
        assert!(verdict(&flip(&t, 1, i), &keys).is_err(), "payload byte {i}");
    }
    for i in 0..64 {
        assert_eq!(
            verdict(&flip(&t, 2, i), &keys),
            Err("bad_signature"),
            "signature byte {i}"
        );
    }
}

#[test]
fn signature_from_another_key_with_the_same_kid() {
    let real = Signer::rs256("k");
    let impostor = Signer::rsa(RSA_B_PEM, "RS256", "k");
    let keys = key_set(&[&real]);
    assert_eq!(
        verdict(&impostor.mint(&claims()), &keys),
        Err("bad_signature")
    );
    let real = Signer::es256("k");
    let impostor = Signer::es256("k");
    assert_eq!(
        verdict(&impostor.mint(&claims()), &key_set(&[&real])),
        Err("bad_signature")
    );
}

#[test]
fn truncated_empty_and_padded_signatures() {
    let s = Signer::es256("e");
    let keys = key_set(&[&s]);
    let t = s.mint(&claims());
    let (input, sig) = t.rsplit_once('.').expect("dot");
    assert_eq!(verdict(&format!("{input}."), &keys), Err("bad_signature"));
    let raw = base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, sig)
        .expect("b64");
    assert_eq!(
        verdict(&format!("{input}.{}", b64(&raw[..raw.len() - 1])), &keys),
        Err("bad_signature")
    );
    assert_eq!(
        verdict(&format!("{input}.{}", b64(&raw[..32])), &keys),
        Err("bad_signature")
    );
    assert_eq!(
        verdict(&format!("{input}.{sig}AAAA"), &keys),
        Err("bad_signature")
    );
    assert_eq!(verdict(&format!("{input}.{sig}="), &keys), Err("malformed"));
}

#[test]
fn ecdsa_der_signature_is_refused() {
    // JWS requires the fixed r||s form; a DER-encoded ECDSA signature must not verify.
    let rng = ring::rand::SystemRandom::new();
    let alg = &ring::signature::ECDSA_P256_SHA256_ASN1_SIGNING;
    let doc = ring::signature::EcdsaKeyPair::generate_pkcs8(alg, &rng).expect("gen");
    let pair = ring::signature::EcdsaKeyPair::from_pkcs8(alg, doc.as_ref(), &rng).expect("load");
    let fixed = ring::signature::EcdsaKeyPair::from_pkcs8(
        &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        doc.as_ref(),
        &rng,
    )
    .expect("load fixed");
    let signer = Signer {
        key: Key::Ec256(fixed),
        kid: Some("e".into()),
    };
    let keys = key_set(&[&signer]);
    let input = format!(
        "{}.{}",
        b64(signer.header().to_string().as_bytes()),
        b64(claims().to_string().as_bytes())
    );
    let der = pair.sign(&rng, input.as_bytes()).expect("sign");
    assert_eq!(
        verdict(&format!("{input}.{}", b64(der.as_ref())), &keys),
        Err("bad_signature")
    );
    assert!(
        verdict(&signer.mint(&claims()), &keys).is_ok(),
        "the fixed form verifies"
    );
}

#[test]
fn header_swap_between_tokens_is_refused() {
    // Signature covers the header: changing kid/typ after signing breaks it.
    let s = Signer::rs256("r");
    let keys = key_set(&[&s]);
    let t = s.mint(&claims());
    let (_, rest) = t.split_once('.').expect("dot");
    let other_header = b64(json!({"alg":"RS256","kid":"r","typ":"JWT"})
        .to_string()
        .as_bytes());
    assert_eq!(
        verdict(&format!("{other_header}.{rest}"), &keys),
        Err("bad_signature")
    );
}
