//! One public key from a JWKS, decoded once into the form ring verifies with.

use std::fmt;

use ring::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};
use serde_json::{Map, Value};

use crate::algorithm::{AlgName, Algorithm, KeyType, classify_alg};
use crate::base64url;

/// Longest `kid` kept; longer ones make the key unusable (they are never legitimate and bloat logs).
pub const MAX_KID_BYTES: usize = 256;

/// A verification key, decoded and checked once when the key set is parsed.
#[derive(Clone, PartialEq, Eq)]
pub struct VerifyingKey {
    kid: Option<String>,
    /// The JWK's own `alg`, when it pins one.
    alg: Option<Algorithm>,
    material: KeyMaterial,
}

#[derive(Clone, PartialEq, Eq)]
enum KeyMaterial {
    /// Big-endian modulus without leading zeros and public exponent.
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
    },
    /// Uncompressed SEC1 point 0x04 || x || y.
    EcP256 {
        point: Vec<u8>,
    },
    EcP384 {
        point: Vec<u8>,
    },
    Ed25519 {
        public: [u8; 32],
    },
}

/// Why a JWK was left out of the key set (not fatal: the other keys stay usable).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SkipReason {
    #[error("entry is not a JSON object")]
    NotAnObject,
    #[error("use is {0:?}, not \"sig\"")]
    NotForSignatures(String),
    #[error("key_ops does not include \"verify\"")]
    NoVerifyOperation,
    #[error("kty {0:?} is not supported (RSA, EC, OKP)")]
    UnsupportedKeyType(String),
    #[error("symmetric (oct) keys are never used")]
    SymmetricKey,
    #[error("curve {0:?} is not supported")]
    UnsupportedCurve(String),
    #[error("alg {0:?} is not a supported signature algorithm")]
    UnsupportedAlgorithm(String),
    #[error("alg {alg} does not fit key type {kty}")]
    AlgorithmKeyMismatch { alg: Algorithm, kty: &'static str },
    #[error("member {0} is missing or not a string")]
    MissingMember(&'static str),
    #[error("member {0} is not valid unpadded base64url")]
    BadEncoding(&'static str),
    #[error("member {member} has {found} bytes, expected {expected}")]
    WrongLength {
        member: &'static str,
        found: usize,
        expected: usize,
    },
    #[error("RSA modulus has {0} bits (2048 to 8192 accepted)")]
    RsaModulusSize(usize),
    #[error("RSA public exponent is not an odd number between 3 and 2^33")]
    RsaExponent,
    #[error("kid is not a string of at most {MAX_KID_BYTES} bytes")]
    BadKid,
    #[error("more keys than the limit of {0}")]
    TooManyKeys(usize),
}

impl VerifyingKey {
    /// Decodes one JWK; `Err` says why it cannot be used.
    pub fn from_jwk(jwk: &Value) -> Result<VerifyingKey, SkipReason> {
        let obj = jwk.as_object().ok_or(SkipReason::NotAnObject)?;
        if let Some(u) = obj.get("use") {
            match u.as_str() {
                Some("sig") => {}
                Some(other) => return Err(SkipReason::NotForSignatures(other.to_string())),
                None => return Err(SkipReason::NotForSignatures(u.to_string())),
            }
        }
        if let Some(ops) = obj.get("key_ops") {
            let verify = ops
                .as_array()
                .is_some_and(|a| a.iter().any(|o| o.as_str() == Some("verify")));
            if !verify {
                return Err(SkipReason::NoVerifyOperation);
            }
        }
        let kid = match obj.get("kid") {
            None => None,
            Some(Value::String(k)) if k.len() <= MAX_KID_BYTES => Some(k.clone()),
            Some(_) => return Err(SkipReason::BadKid),
        };
        let alg = match obj.get("alg") {
            None => None,
            Some(Value::String(a)) => match classify_alg(a) {
                AlgName::Known(a) => Some(a),
                _ => return Err(SkipReason::UnsupportedAlgorithm(a.clone())),
            },
            Some(other) => return Err(SkipReason::UnsupportedAlgorithm(other.to_string())),
        };
        let kty = obj
            .get("kty")
            .and_then(Value::as_str)
            .ok_or(SkipReason::MissingMember("kty"))?;
        let material = match kty {
            "RSA" => rsa_material(obj)?,
            "EC" => ec_material(obj)?,
            "OKP" => okp_material(obj)?,
            "oct" => return Err(SkipReason::SymmetricKey),
            other => return Err(SkipReason::UnsupportedKeyType(other.to_string())),
        };
        let key = VerifyingKey { kid, alg, material };
        if let Some(a) = alg
            && a.key_type() != key.key_type()
        {
            return Err(SkipReason::AlgorithmKeyMismatch {
                alg: a,
                kty: key.kty_name(),
            });
        }
        Ok(key)
    }

    /// The key's id, if it has one.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The algorithm the JWK pins, if any.
    pub fn pinned_alg(&self) -> Option<Algorithm> {
        self.alg
    }

    /// The kind of key.
    pub fn key_type(&self) -> KeyType {
        match self.material {
            KeyMaterial::Rsa { .. } => KeyType::Rsa,
            KeyMaterial::EcP256 { .. } => KeyType::EcP256,
            KeyMaterial::EcP384 { .. } => KeyType::EcP384,
            KeyMaterial::Ed25519 { .. } => KeyType::Ed25519,
        }
    }

    fn kty_name(&self) -> &'static str {
        match self.key_type() {
            KeyType::Rsa => "RSA",
            KeyType::EcP256 => "EC P-256",
            KeyType::EcP384 => "EC P-384",
            KeyType::Ed25519 => "OKP Ed25519",
        }
    }

    /// Whether this key may verify a token signed with `alg` (type fits and the JWK does not pin another alg).
    pub fn fits(&self, alg: Algorithm) -> bool {
        alg.key_type() == self.key_type() && self.alg.is_none_or(|pinned| pinned == alg)
    }

    /// Verifies `signature` over `message` with `alg`. The caller has checked [`VerifyingKey::fits`].
    pub fn verify(&self, alg: Algorithm, message: &[u8], sig: &[u8]) -> bool {
        if !self.fits(alg) {
            return false;
        }
        match &self.material {
            KeyMaterial::Rsa { n, e } => match alg.rsa_parameters() {
                Some(params) => RsaPublicKeyComponents {
                    n: n.as_slice(),
                    e: e.as_slice(),
                }
                .verify(params, message, sig)
                .is_ok(),
                None => false,
            },
            KeyMaterial::EcP256 { point } => {
                UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                    .verify(message, sig)
                    .is_ok()
            }
            KeyMaterial::EcP384 { point } => {
                UnparsedPublicKey::new(&signature::ECDSA_P384_SHA384_FIXED, point)
                    .verify(message, sig)
                    .is_ok()
            }
            KeyMaterial::Ed25519 { public } => UnparsedPublicKey::new(&signature::ED25519, public)
                .verify(message, sig)
                .is_ok(),
        }
    }
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("type", &self.kty_name())
            .finish()
    }
}

fn member_bytes(obj: &Map<String, Value>, member: &'static str) -> Result<Vec<u8>, SkipReason> {
    let s = obj
        .get(member)
        .and_then(Value::as_str)
        .ok_or(SkipReason::MissingMember(member))?;
    base64url::decode(s).ok_or(SkipReason::BadEncoding(member))
}

fn rsa_material(obj: &Map<String, Value>) -> Result<KeyMaterial, SkipReason> {
    let n = strip_leading_zeros(member_bytes(obj, "n")?);
    let e = strip_leading_zeros(member_bytes(obj, "e")?);
    let bits = bit_length(&n);
    if !(2048..=8192).contains(&bits) {
        return Err(SkipReason::RsaModulusSize(bits));
    }
    // ring accepts odd exponents 3 <= e < 2^33.
    let e_bits = bit_length(&e);
    let odd = e.last().is_some_and(|b| b & 1 == 1);
    if !odd || !(2..=33).contains(&e_bits) {
        return Err(SkipReason::RsaExponent);
    }
    Ok(KeyMaterial::Rsa { n, e })
}

fn ec_material(obj: &Map<String, Value>) -> Result<KeyMaterial, SkipReason> {
    let crv = obj
        .get("crv")
        .and_then(Value::as_str)
        .ok_or(SkipReason::MissingMember("crv"))?;
    let len = match crv {
        "P-256" => 32,
        "P-384" => 48,
        other => return Err(SkipReason::UnsupportedCurve(other.to_string())),
    };
    let x = member_bytes(obj, "x")?;
    let y = member_bytes(obj, "y")?;
    for (member, v) in [("x", &x), ("y", &y)] {
        if v.len() != len {
            return Err(SkipReason::WrongLength {
                member,
                found: v.len(),
                expected: len,
            });
        }
    }
    let mut point = Vec::with_capacity(1 + 2 * len);
    point.push(0x04);
    point.extend_from_slice(&x);
    point.extend_from_slice(&y);
    Ok(if len == 32 {
        KeyMaterial::EcP256 { point }
    } else {
        KeyMaterial::EcP384 { point }
    })
}

fn okp_material(obj: &Map<String, Value>) -> Result<KeyMaterial, SkipReason> {
    let crv = obj
        .get("crv")
        .and_then(Value::as_str)
        .ok_or(SkipReason::MissingMember("crv"))?;
    if crv != "Ed25519" {
        return Err(SkipReason::UnsupportedCurve(crv.to_string()));
    }
    let x = member_bytes(obj, "x")?;
    let public: [u8; 32] = x
        .as_slice()
        .try_into()
        .map_err(|_| SkipReason::WrongLength {
            member: "x",
            found: x.len(),
            expected: 32,
        })?;
    Ok(KeyMaterial::Ed25519 { public })
}

fn strip_leading_zeros(mut v: Vec<u8>) -> Vec<u8> {
    let zeros = v.iter().take_while(|b| **b == 0).count();
    v.drain(..zeros);
    v
}

fn bit_length(be: &[u8]) -> usize {
    match be.first() {
        None => 0,
        Some(first) => (be.len() - 1) * 8 + (8 - first.leading_zeros() as usize),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bit_lengths() {
        assert_eq!(bit_length(&[]), 0);
        assert_eq!(bit_length(&[1]), 1);
        assert_eq!(bit_length(&[0x80, 0]), 16);
        assert_eq!(bit_length(&[0x01, 0, 0, 1]), 25);
        assert_eq!(strip_leading_zeros(vec![0, 0, 5, 0]), vec![5, 0]);
    }

    fn rsa_jwk(n_bytes: usize, e: &[u8]) -> Value {
        let mut n = vec![0xC5u8; n_bytes];
        n[n_bytes - 1] = 0x01;
        json!({"kty": "RSA", "n": base64url::encode(&n), "e": base64url::encode(e)})
    }

    #[test]
    fn rsa_size_and_exponent_rules() {
        assert!(VerifyingKey::from_jwk(&rsa_jwk(256, &[1, 0, 1])).is_ok());
        assert_eq!(
            VerifyingKey::from_jwk(&rsa_jwk(128, &[1, 0, 1])),
            Err(SkipReason::RsaModulusSize(1024))
        );
        assert_eq!(
            VerifyingKey::from_jwk(&rsa_jwk(1025, &[1, 0, 1])),
            Err(SkipReason::RsaModulusSize(8200))
        );
        assert_eq!(
            VerifyingKey::from_jwk(&rsa_jwk(256, &[1, 0, 0])),
            Err(SkipReason::RsaExponent),
            "even"
        );
        assert_eq!(
            VerifyingKey::from_jwk(&rsa_jwk(256, &[1])),
            Err(SkipReason::RsaExponent),
            "e=1"
        );
        assert_eq!(
            VerifyingKey::from_jwk(&rsa_jwk(256, &[2, 0, 0, 0, 1])),
            Err(SkipReason::RsaExponent),
            "34 bits"
        );
        assert!(VerifyingKey::from_jwk(&rsa_jwk(256, &[3])).is_ok(), "e=3");
    }

    #[test]
    fn member_rules() {
        let ok = json!({"kty":"OKP","crv":"Ed25519","x": base64url::encode(&[7u8; 32])});
        assert!(VerifyingKey::from_jwk(&ok).is_ok());
        let short = json!({"kty":"OKP","crv":"Ed25519","x": base64url::encode(&[7u8; 31])});
        assert!(matches!(
            VerifyingKey::from_jwk(&short),
            Err(SkipReason::WrongLength { .. })
        ));
        let ed448 = json!({"kty":"OKP","crv":"Ed448","x": base64url::encode(&[7u8; 57])});
        assert_eq!(
            VerifyingKey::from_jwk(&ed448),
            Err(SkipReason::UnsupportedCurve("Ed448".into()))
        );
        let padded =
            json!({"kty":"OKP","crv":"Ed25519","x": format!("{}=", base64url::encode(&[7u8; 32]))});
        assert_eq!(
            VerifyingKey::from_jwk(&padded),
            Err(SkipReason::BadEncoding("x"))
        );
        let num = json!({"kty":"OKP","crv":"Ed25519","x": 5});
        assert_eq!(
            VerifyingKey::from_jwk(&num),
            Err(SkipReason::MissingMember("x"))
        );
        assert_eq!(
            VerifyingKey::from_jwk(&json!({"crv":"P-256"})),
            Err(SkipReason::MissingMember("kty"))
        );
        assert_eq!(
            VerifyingKey::from_jwk(&json!([1])),
            Err(SkipReason::NotAnObject)
        );
        assert_eq!(
            VerifyingKey::from_jwk(&json!({"kty":"oct","k":"AAAA"})),
            Err(SkipReason::SymmetricKey)
        );
        assert_eq!(
            VerifyingKey::from_jwk(&json!({"kty":"EC","crv":"secp256k1","x":"AA","y":"AA"})),
            Err(SkipReason::UnsupportedCurve("secp256k1".into()))
        );
    }

    #[test]
    fn use_key_ops_alg_and_kid_rules() {
        let base = |extra: Value| {
            let mut v = json!({"kty":"OKP","crv":"Ed25519","x": base64url::encode(&[7u8; 32])});
            if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
                o.extend(e.clone());
            }
            v
        };
        assert_eq!(
            VerifyingKey::from_jwk(&base(json!({"use":"enc"}))),
            Err(SkipReason::NotForSignatures("enc".into()))
        );
        assert!(VerifyingKey::from_jwk(&base(json!({"use":"sig"}))).is_ok());
        assert_eq!(
            VerifyingKey::from_jwk(&base(json!({"key_ops":["sign"]}))),
            Err(SkipReason::NoVerifyOperation)
        );
        assert!(VerifyingKey::from_jwk(&base(json!({"key_ops":["verify"]}))).is_ok());
        assert_eq!(
            VerifyingKey::from_jwk(&base(json!({"alg":"HS256"}))),
            Err(SkipReason::UnsupportedAlgorithm("HS256".into()))
        );
        assert_eq!(
            VerifyingKey::from_jwk(&base(json!({"alg":"RS256"}))),
            Err(SkipReason::AlgorithmKeyMismatch {
                alg: Algorithm::RS256,
                kty: "OKP Ed25519"
            })
        );
        let pinned =
            VerifyingKey::from_jwk(&base(json!({"alg":"EdDSA","kid":"k1"}))).expect("usable");
        assert_eq!(pinned.kid(), Some("k1"));
        assert!(pinned.fits(Algorithm::EdDSA) && !pinned.fits(Algorithm::ES256));
        assert_eq!(
            VerifyingKey::from_jwk(&base(json!({"kid": 7}))),
            Err(SkipReason::BadKid)
        );
        assert_eq!(
            VerifyingKey::from_jwk(&base(json!({"kid": "k".repeat(300)}))),
            Err(SkipReason::BadKid)
        );
    }

    #[test]
    fn debug_does_not_dump_key_material() {
        let k = VerifyingKey::from_jwk(
            &json!({"kty":"OKP","crv":"Ed25519","x": base64url::encode(&[7u8; 32])}),
        )
        .expect("usable");
        let d = format!("{k:?}");
        assert!(d.contains("OKP Ed25519") && !d.contains("7, 7"), "{d}");
    }
}
