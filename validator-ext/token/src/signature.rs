//! Stage 4, signature: verify the JWS signature with the chosen key(s).

use crate::algorithm::Algorithm;
use crate::jwk::VerifyingKey;
use crate::outcome::Outcome;
use crate::shown::Shown;

/// Why the signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("signature does not verify with alg {alg} and key {}", .kid.as_deref().map_or_else(|| "without kid".to_string(), |k| Shown(k).to_string()))]
    Invalid { alg: Algorithm, kid: Option<String> },
}

impl SignatureError {
    pub fn outcome(&self) -> Outcome {
        Outcome::BadSignature
    }
}

/// Returns the key that verified `signature` over `signing_input`.
pub fn verify<'k>(
    candidates: &[&'k VerifyingKey],
    alg: Algorithm,
    signing_input: &[u8],
    signature: &[u8],
) -> Result<&'k VerifyingKey, SignatureError> {
    candidates
        .iter()
        .copied()
        .find(|k| k.verify(alg, signing_input, signature))
        .ok_or_else(|| SignatureError::Invalid {
            alg,
            kid: candidates.first().and_then(|k| k.kid()).map(str::to_string),
        })
}
