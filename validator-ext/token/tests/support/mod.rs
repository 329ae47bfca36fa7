//! Test issuer: real keys (ring-generated EC/Ed25519, committed OpenSSL-generated RSA fixtures) that mint
//! signed tokens and publish the matching JWKS.
#![allow(dead_code)]

use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair};
use serde_json::{Value, json};

pub const ISSUER: &str = "https://idp.example.test";
pub const AUDIENCE: &str = "pgrator-db";
pub const NOW: i64 = 1_750_000_000;

pub const RSA_A_PEM: &str = include_str!("../fixtures/rsa2048-a.pem");
pub const RSA_B_PEM: &str = include_str!("../fixtures/rsa2048-b.pem");
pub const RSA_WEAK_MODULUS_HEX: &str = include_str!("../fixtures/rsa1024-weak.modulus.hex");
pub const P256_PEM: &str = include_str!("../fixtures/p256.pem");

pub fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

pub fn pem_to_der(pem: &str) -> Vec<u8> {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .expect("fixture PEM decodes")
}

/// A signing key with its JOSE algorithm and kid.
pub enum Key {
    Rsa { pair: RsaKeyPair, alg: &'static str },
    Ec256(EcdsaKeyPair),
    Ec384(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
}

pub struct Signer {
    pub key: Key,
    pub kid: Option<String>,
}

impl Signer {
    pub fn rsa(pem: &str, alg: &'static str, kid: &str) -> Signer {
        let pair = RsaKeyPair::from_pkcs8(&pem_to_der(pem)).expect("RSA fixture loads");
        Signer {
            key: Key::Rsa { pair, alg },
            kid: Some(kid.into()),
        }
    }

    pub fn rs256(kid: &str) -> Signer {
        Signer::rsa(RSA_A_PEM, "RS256", kid)
    }

    pub fn es256(kid: &str) -> Signer {
        let rng = SystemRandom::new();
        let alg = &signature::ECDSA_P256_SHA256_FIXED_SIGNING;
        let doc = EcdsaKeyPair::generate_pkcs8(alg, &rng).expect("generate P-256");
        Signer {
            key: Key::Ec256(EcdsaKeyPair::from_pkcs8(alg, doc.as_ref(), &rng).expect("load")),
            kid: Some(kid.into()),
        }
    }

    pub fn es384(kid: &str) -> Signer {
        let rng = SystemRandom::new();
        let alg = &signature::ECDSA_P384_SHA384_FIXED_SIGNING;
        let doc = EcdsaKeyPair::generate_pkcs8(alg, &rng).expect("generate P-384");
        Signer {
            key: Key::Ec384(EcdsaKeyPair::from_pkcs8(alg, doc.as_ref(), &rng).expect("load")),
            kid: Some(kid.into()),
        }
    }

    pub fn eddsa(kid: &str) -> Signer {
        let rng = SystemRandom::new();
        let doc = Ed25519KeyPair::generate_pkcs8(&rng).expect("generate Ed25519");
        Signer {
            key: Key::Ed(Ed25519KeyPair::from_pkcs8(doc.as_ref()).expect("load")),
            kid: Some(kid.into()),
        }
    }

    pub fn without_kid(mut self) -> Signer {
        self.kid = None;
        self
    }

    pub fn alg(&self) -> &'static str {
        match &self.key {
            Key::Rsa { alg, .. } => alg,
            Key::Ec256(_) => "ES256",
            Key::Ec384(_) => "ES384",
            Key::Ed(_) => "EdDSA",
        }
    }

    /// The public JWK (with `use: sig`, and `kid` when set).
    pub fn jwk(&self) -> Value {
        let mut v = match &self.key {
            Key::Rsa { pair, .. } => {
                let c = signature::RsaPublicKeyComponents::<Vec<u8>>::from(pair.public());
                json!({"kty":"RSA","n": b64(&c.n), "e": b64(&c.e)})
            }
            Key::Ec256(pair) => ec_jwk("P-256", pair.public_key().as_ref(), 32),
            Key::Ec384(pair) => ec_jwk("P-384", pair.public_key().as_ref(), 48),
            Key::Ed(pair) => {
                json!({"kty":"OKP","crv":"Ed25519","x": b64(pair.public_key().as_ref())})
            }
        };
        v["use"] = json!("sig");
        if let Some(k) = &self.kid {
            v["kid"] = json!(k);
        }
        v
    }

    /// Signature over `input` with this key (for the algorithm of the key).
    pub fn sign_bytes(&self, input: &[u8]) -> Vec<u8> {
        let rng = SystemRandom::new();
        match &self.key {
            Key::Rsa { pair, alg } => {
                let enc: &'static dyn signature::RsaEncoding = match *alg {
                    "RS256" => &signature::RSA_PKCS1_SHA256,
                    "RS384" => &signature::RSA_PKCS1_SHA384,
                    "RS512" => &signature::RSA_PKCS1_SHA512,
                    "PS256" => &signature::RSA_PSS_SHA256,
                    "PS384" => &signature::RSA_PSS_SHA384,
                    "PS512" => &signature::RSA_PSS_SHA512,
                    other => panic!("no RSA encoding for {other}"),
                };
                let mut sig = vec![0; pair.public().modulus_len()];
                pair.sign(enc, &rng, input, &mut sig).expect("RSA sign");
                sig
            }
            Key::Ec256(pair) | Key::Ec384(pair) => pair
                .sign(&rng, input)
                .expect("ECDSA sign")
                .as_ref()
                .to_vec(),
            Key::Ed(pair) => pair.sign(input).as_ref().to_vec(),
        }
    }

    /// The default protected header: alg, kid (when set), typ at+jwt.
    pub fn header(&self) -> Value {
        let mut h = json!({"alg": self.alg(), "typ": "at+jwt"});
        if let Some(k) = &self.kid {
            h["kid"] = json!(k);
        }
        h
    }

    /// A compact JWS of `claims` with the default header.
    pub fn mint(&self, claims: &Value) -> String {
        self.mint_with_header(&self.header(), claims)
    }

    pub fn mint_with_header(&self, header: &Value, claims: &Value) -> String {
        self.mint_raw(header.to_string().as_bytes(), claims.to_string().as_bytes())
    }

    /// Signs arbitrary header and payload bytes.
    pub fn mint_raw(&self, header: &[u8], payload: &[u8]) -> String {
        let input = format!("{}.{}", b64(header), b64(payload));
        let sig = self.sign_bytes(input.as_bytes());
        format!("{input}.{}", b64(&sig))
    }
}

fn ec_jwk(crv: &str, point: &[u8], len: usize) -> Value {
    assert_eq!(point.len(), 1 + 2 * len, "uncompressed point");
    json!({"kty":"EC","crv": crv,"x": b64(&point[1..1 + len]),"y": b64(&point[1 + len..])})
}

/// A JWKS document with the public keys of `signers`.
pub fn jwks(signers: &[&Signer]) -> Vec<u8> {
    json!({"keys": signers.iter().map(|s| s.jwk()).collect::<Vec<_>>()})
        .to_string()
        .into_bytes()
}

pub fn key_set(signers: &[&Signer]) -> pgrator_token::KeySet {
    pgrator_token::KeySet::parse(&jwks(signers)).expect("test JWKS parses")
}

/// Claims that pass the default policy and requirements at NOW.
pub fn claims() -> Value {
    json!({
        "iss": ISSUER,
        "sub": "308349723487234",
        "aud": [AUDIENCE, "project-123"],
        "exp": NOW + 300,
        "iat": NOW - 10,
        "nbf": NOW - 10,
        "jti": "j-1",
        "scope": "openid db:connect",
        "urn:zitadel:iam:org:project:roles": {"db-user": {"1": "org.example.test"}},
    })
}

pub fn policy() -> pgrator_token::Policy {
    pgrator_token::Policy::new(vec![AUDIENCE.to_string()])
}

pub fn requirements() -> pgrator_token::Requirements {
    pgrator_token::Requirements::from_hba(ISSUER, "openid db:connect")
}

pub fn now() -> pgrator_token::UnixTime {
    pgrator_token::UnixTime(NOW)
}

/// Validates with the default policy and requirements at NOW; returns the reason code or the authn_id.
pub fn verdict(token: &str, keys: &pgrator_token::KeySet) -> Result<String, &'static str> {
    pgrator_token::validate_jwt(token, keys, &policy(), &requirements(), now())
        .map(|a| a.authn_id)
        .map_err(|r| r.code())
}

/// Sets `claims[name] = value`, or removes it when `value` is None.
pub fn with(mut c: Value, name: &str, value: Option<Value>) -> Value {
    match value {
        Some(v) => c[name] = v,
        None => {
            c.as_object_mut().map(|o| o.remove(name));
        }
    }
    c
}
