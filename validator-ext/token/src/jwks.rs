//! A JSON Web Key Set parsed into verification keys; unusable entries are skipped with a reason.

use serde_json::Value;

use crate::json::{self, JsonError};
use crate::jwk::{SkipReason, VerifyingKey};

/// Largest JWKS document parsed.
pub const MAX_JWKS_BYTES: usize = 512 * 1024;
/// Most keys kept from one JWKS (IdPs publish a handful; more is a misconfiguration or an attack).
pub const MAX_KEYS: usize = 64;

/// A key that was left out, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedKey {
    /// Position in the document's `keys` array.
    pub index: usize,
    pub kid: Option<String>,
    pub reason: SkipReason,
}

/// The usable verification keys of one JWKS document.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeySet {
    keys: Vec<VerifyingKey>,
    skipped: Vec<SkippedKey>,
}

/// Why a whole JWKS document was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwksError {
    #[error("JWKS document of {0} bytes exceeds the limit of {MAX_JWKS_BYTES}")]
    TooLarge(usize),
    #[error("JWKS document: {0}")]
    Json(#[from] JsonError),
    #[error("JWKS document has no \"keys\" array")]
    NoKeysArray,
}

impl KeySet {
    /// Parses a JWKS document. Individual bad keys are skipped, not fatal; see [`KeySet::skipped`].
    pub fn parse(document: &[u8]) -> Result<KeySet, JwksError> {
        if document.len() > MAX_JWKS_BYTES {
            return Err(JwksError::TooLarge(document.len()));
        }
        let obj = json::parse_object(document)?;
        let entries = obj
            .get("keys")
            .and_then(Value::as_array)
            .ok_or(JwksError::NoKeysArray)?;
        let mut set = KeySet::default();
        for (index, entry) in entries.iter().enumerate() {
            let kid = entry
                .get("kid")
                .and_then(Value::as_str)
                .map(|k| k.chars().take(64).collect());
            if set.keys.len() == MAX_KEYS {
                set.skipped.push(SkippedKey {
                    index,
                    kid,
                    reason: SkipReason::TooManyKeys(MAX_KEYS),
                });
                continue;
            }
            match VerifyingKey::from_jwk(entry) {
                Ok(k) => set.keys.push(k),
                Err(reason) => set.skipped.push(SkippedKey { index, kid, reason }),
            }
        }
        Ok(set)
    }

    /// A key set made of already decoded keys.
    pub fn from_keys(keys: Vec<VerifyingKey>) -> KeySet {
        KeySet {
            keys,
            skipped: Vec::new(),
        }
    }

    /// The usable keys, in document order.
    pub fn keys(&self) -> &[VerifyingKey] {
        &self.keys
    }

    /// The entries that were left out, with reasons (for a log line after each fetch).
    pub fn skipped(&self) -> &[SkippedKey] {
        &self.skipped
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Whether a key with this id is present.
    pub fn has_kid(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid() == Some(kid))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base64url;
    use serde_json::json;

    fn ed(kid: &str) -> Value {
        json!({"kty":"OKP","crv":"Ed25519","kid": kid,"x": base64url::encode(&[9u8; 32])})
    }

    #[test]
    fn keeps_good_keys_and_explains_skipped_ones() {
        let doc = json!({"keys": [ed("a"), {"kty":"oct","kid":"s","k":"AA"}, ed("b"), 5, {"kty":"OKP","kid":"e","use":"enc","crv":"Ed25519","x":"AA"}]});
        let set = KeySet::parse(doc.to_string().as_bytes()).expect("parses");
        assert_eq!(set.len(), 2);
        assert!(set.has_kid("a") && set.has_kid("b") && !set.has_kid("s"));
        let reasons: Vec<(usize, Option<&str>, &SkipReason)> = set
            .skipped()
            .iter()
            .map(|s| (s.index, s.kid.as_deref(), &s.reason))
            .collect();
        assert_eq!(
            reasons,
            vec![
                (1, Some("s"), &SkipReason::SymmetricKey),
                (3, None, &SkipReason::NotAnObject),
                (4, Some("e"), &SkipReason::NotForSignatures("enc".into())),
            ]
        );
    }

    #[test]
    fn document_level_errors() {
        assert_eq!(KeySet::parse(b"{}"), Err(JwksError::NoKeysArray));
        assert_eq!(
            KeySet::parse(br#"{"keys":{}}"#),
            Err(JwksError::NoKeysArray)
        );
        assert!(matches!(
            KeySet::parse(b"[]"),
            Err(JwksError::Json(JsonError::NotAnObject))
        ));
        assert!(matches!(
            KeySet::parse(br#"{"keys":[],"keys":[]}"#),
            Err(JwksError::Json(JsonError::DuplicateKey(_)))
        ));
        let big = vec![b' '; MAX_JWKS_BYTES + 1];
        assert_eq!(
            KeySet::parse(&big),
            Err(JwksError::TooLarge(MAX_JWKS_BYTES + 1))
        );
        let empty = KeySet::parse(br#"{"keys":[]}"#).expect("empty set parses");
        assert!(empty.is_empty());
    }

    #[test]
    fn key_count_is_bounded() {
        let keys: Vec<Value> = (0..MAX_KEYS + 3).map(|i| ed(&format!("k{i}"))).collect();
        let set = KeySet::parse(json!({ "keys": keys }).to_string().as_bytes()).expect("parses");
        assert_eq!(set.len(), MAX_KEYS);
        assert_eq!(set.skipped().len(), 3);
        assert!(
            set.skipped()
                .iter()
                .all(|s| s.reason == SkipReason::TooManyKeys(MAX_KEYS))
        );
    }
}
