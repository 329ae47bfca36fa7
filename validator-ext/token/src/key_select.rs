//! Stage 3, key: find the key(s) that may verify this token.
//!
//! With a `kid`, only keys with that id are considered; without one, the keys fitting the algorithm are used
//! only when exactly one fits (a guess among several would turn the key set into an oracle).

use crate::algorithm::Algorithm;
use crate::header::Header;
use crate::jwk::VerifyingKey;
use crate::jwks::KeySet;
use crate::outcome::Outcome;
use crate::shown::Shown;

/// Why no key could be chosen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("no key with kid {} in the key set", Shown(.0))]
    UnknownKid(String),
    #[error("token has no kid and {fitting} keys fit alg {alg} (exactly one is required)")]
    NoUniqueKey { alg: Algorithm, fitting: usize },
    #[error("key {} does not fit alg {alg}", Shown(.kid))]
    AlgMismatch { kid: String, alg: Algorithm },
}

impl KeyError {
    pub fn outcome(&self) -> Outcome {
        match self {
            KeyError::UnknownKid(_) | KeyError::NoUniqueKey { .. } => Outcome::UnknownKid,
            KeyError::AlgMismatch { .. } => Outcome::KeyAlgMismatch,
        }
    }

    /// Whether refreshing the key set might help (the IdP may have rotated keys).
    pub fn may_need_refresh(&self) -> bool {
        matches!(
            self,
            KeyError::UnknownKid(_) | KeyError::NoUniqueKey { fitting: 0, .. }
        )
    }
}

/// The candidate keys for `header`, at least one.
pub fn select<'k>(keys: &'k KeySet, header: &Header) -> Result<Vec<&'k VerifyingKey>, KeyError> {
    match &header.kid {
        Some(kid) => {
            let mut with_kid = keys
                .keys()
                .iter()
                .filter(|k| k.kid() == Some(kid.as_str()))
                .peekable();
            if with_kid.peek().is_none() {
                return Err(KeyError::UnknownKid(kid.clone()));
            }
            let fitting: Vec<&VerifyingKey> = with_kid.filter(|k| k.fits(header.alg)).collect();
            if fitting.is_empty() {
                return Err(KeyError::AlgMismatch {
                    kid: kid.clone(),
                    alg: header.alg,
                });
            }
            Ok(fitting)
        }
        None => {
            let fitting: Vec<&VerifyingKey> =
                keys.keys().iter().filter(|k| k.fits(header.alg)).collect();
            if fitting.len() != 1 {
                return Err(KeyError::NoUniqueKey {
                    alg: header.alg,
                    fitting: fitting.len(),
                });
            }
            Ok(fitting)
        }
    }
}
