//! JWS signature algorithms the validator can verify, and the names that are always refused.

use std::fmt;

use ring::signature::{self, RsaParameters};

/// An asymmetric JWS algorithm this library can verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    RS256,
    RS384,
    RS512,
    PS256,
    PS384,
    PS512,
    ES256,
    ES384,
    EdDSA,
}

/// The kind of public key an algorithm needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    Rsa,
    EcP256,
    EcP384,
    Ed25519,
}

/// What the `alg` header of a token names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlgName {
    Known(Algorithm),
    /// `none` in any letter case: an unsigned token.
    None,
    /// HS256/HS384/HS512 (any case): symmetric, refused because the verifier would need the signer's secret.
    Hmac,
    Unknown,
}

impl Algorithm {
    /// Every supported algorithm, in a stable order.
    pub const ALL: [Algorithm; 9] = [
        Algorithm::RS256,
        Algorithm::RS384,
        Algorithm::RS512,
        Algorithm::PS256,
        Algorithm::PS384,
        Algorithm::PS512,
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::EdDSA,
    ];

    /// The JOSE name (`alg` value).
    pub const fn name(self) -> &'static str {
        match self {
            Algorithm::RS256 => "RS256",
            Algorithm::RS384 => "RS384",
            Algorithm::RS512 => "RS512",
            Algorithm::PS256 => "PS256",
            Algorithm::PS384 => "PS384",
            Algorithm::PS512 => "PS512",
            Algorithm::ES256 => "ES256",
            Algorithm::ES384 => "ES384",
            Algorithm::EdDSA => "EdDSA",
        }
    }

    /// The algorithm with exactly this JOSE name (names are case-sensitive, RFC 7515 section 4.1.1).
    pub fn from_name(name: &str) -> Option<Algorithm> {
        Self::ALL.into_iter().find(|a| a.name() == name)
    }

    /// The key type a key must have to verify this algorithm.
    pub const fn key_type(self) -> KeyType {
        match self {
            Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512 => KeyType::Rsa,
            Algorithm::ES256 => KeyType::EcP256,
            Algorithm::ES384 => KeyType::EcP384,
            Algorithm::EdDSA => KeyType::Ed25519,
        }
    }

    /// ring's RSA parameters for the RSA algorithms (moduli 2048..8192 bits).
    pub(crate) fn rsa_parameters(self) -> Option<&'static RsaParameters> {
        Some(match self {
            Algorithm::RS256 => &signature::RSA_PKCS1_2048_8192_SHA256,
            Algorithm::RS384 => &signature::RSA_PKCS1_2048_8192_SHA384,
            Algorithm::RS512 => &signature::RSA_PKCS1_2048_8192_SHA512,
            Algorithm::PS256 => &signature::RSA_PSS_2048_8192_SHA256,
            Algorithm::PS384 => &signature::RSA_PSS_2048_8192_SHA384,
            Algorithm::PS512 => &signature::RSA_PSS_2048_8192_SHA512,
            _ => return None,
        })
    }

    const fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Classifies an `alg` value.
pub fn classify_alg(name: &str) -> AlgName {
    if let Some(a) = Algorithm::from_name(name) {
        return AlgName::Known(a);
    }
    if name.eq_ignore_ascii_case("none") {
        return AlgName::None;
    }
    let upper = name.to_ascii_uppercase();
    if upper.starts_with("HS") {
        return AlgName::Hmac;
    }
    AlgName::Unknown
}

/// A set of algorithms (the allowlist).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct AlgorithmSet(u16);

impl AlgorithmSet {
    /// The empty set.
    pub const EMPTY: AlgorithmSet = AlgorithmSet(0);

    /// The default allowlist: RS256 (Zitadel's default), ES256 and EdDSA.
    pub const DEFAULT: AlgorithmSet =
        AlgorithmSet(Algorithm::RS256.bit() | Algorithm::ES256.bit() | Algorithm::EdDSA.bit());

    /// Every supported algorithm.
    pub fn all() -> AlgorithmSet {
        Algorithm::ALL.into_iter().collect()
    }

    pub fn contains(self, a: Algorithm) -> bool {
        self.0 & a.bit() != 0
    }

    pub fn insert(&mut self, a: Algorithm) {
        self.0 |= a.bit();
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn iter(self) -> impl Iterator<Item = Algorithm> {
        Algorithm::ALL
            .into_iter()
            .filter(move |a| self.contains(*a))
    }
}

impl FromIterator<Algorithm> for AlgorithmSet {
    fn from_iter<I: IntoIterator<Item = Algorithm>>(iter: I) -> Self {
        let mut s = AlgorithmSet::EMPTY;
        for a in iter {
            s.insert(a);
        }
        s
    }
}

impl Default for AlgorithmSet {
    fn default() -> Self {
        AlgorithmSet::DEFAULT
    }
}

impl fmt::Debug for AlgorithmSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

impl fmt::Display for AlgorithmSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.iter().map(Algorithm::name).collect();
        f.write_str(&names.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_case_sensitively() {
        for a in Algorithm::ALL {
            assert_eq!(Algorithm::from_name(a.name()), Some(a));
        }
        assert_eq!(Algorithm::from_name("rs256"), None);
        assert_eq!(Algorithm::from_name("EDDSA"), None);
    }

    #[test]
    fn classifies_refused_families() {
        assert_eq!(classify_alg("RS256"), AlgName::Known(Algorithm::RS256));
        for n in ["none", "None", "NONE", "nOnE"] {
            assert_eq!(classify_alg(n), AlgName::None, "{n}");
        }
        for n in ["HS256", "HS384", "HS512", "hs256", "Hs999"] {
            assert_eq!(classify_alg(n), AlgName::Hmac, "{n}");
        }
        for n in ["", "RSA-OAEP", "ES512", "ES256K", "rs256", "dir"] {
            assert_eq!(classify_alg(n), AlgName::Unknown, "{n}");
        }
    }

    #[test]
    fn default_set() {
        let d = AlgorithmSet::default();
        assert_eq!(d.to_string(), "RS256, ES256, EdDSA");
        assert!(d.contains(Algorithm::RS256) && !d.contains(Algorithm::PS256));
        assert_eq!(AlgorithmSet::all().iter().count(), Algorithm::ALL.len());
        assert!(AlgorithmSet::EMPTY.is_empty());
    }

    #[test]
    fn key_types() {
        assert_eq!(Algorithm::PS512.key_type(), KeyType::Rsa);
        assert_eq!(Algorithm::ES256.key_type(), KeyType::EcP256);
        assert_eq!(Algorithm::ES384.key_type(), KeyType::EcP384);
        assert_eq!(Algorithm::EdDSA.key_type(), KeyType::Ed25519);
        assert!(Algorithm::ES256.rsa_parameters().is_none());
        assert!(Algorithm::RS256.rsa_parameters().is_some());
    }
}
