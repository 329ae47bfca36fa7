//! Stage 7, identity: the authenticated identity (`authn_id`) that pg_ident.conf maps onto a role.

use serde_json::{Map, Value};

use crate::outcome::Outcome;
use crate::shown::Shown;

/// Longest identity accepted, in bytes.
pub const MAX_IDENTITY_BYTES: usize = 512;

/// Why no identity could be taken from the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error("identity claim {} is missing", Shown(.0))]
    Missing(String),
    #[error("identity claim {} {problem}", Shown(.claim))]
    Invalid {
        claim: String,
        problem: &'static str,
    },
}

impl IdentityError {
    pub fn outcome(&self) -> Outcome {
        match self {
            IdentityError::Missing(_) => Outcome::IdentityClaimMissing,
            IdentityError::Invalid { .. } => Outcome::IdentityInvalid,
        }
    }
}

/// The value of `claim`: a non-empty string of at most [`MAX_IDENTITY_BYTES`] without control characters.
pub fn extract(claims: &Map<String, Value>, claim: &str) -> Result<String, IdentityError> {
    let invalid = |problem| IdentityError::Invalid {
        claim: claim.to_string(),
        problem,
    };
    match claims.get(claim) {
        None | Some(Value::Null) => Err(IdentityError::Missing(claim.to_string())),
        Some(Value::String(s)) => {
            if s.is_empty() {
                Err(invalid("is empty"))
            } else if s.len() > MAX_IDENTITY_BYTES {
                Err(invalid("is longer than 512 bytes"))
            } else if s.chars().any(char::is_control) {
                Err(invalid("contains control characters"))
            } else {
                Ok(s.clone())
            }
        }
        Some(_) => Err(invalid("is not a string")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn m(v: Value) -> Map<String, Value> {
        v.as_object().cloned().expect("object")
    }

    #[test]
    fn takes_the_configured_claim() {
        let c = m(json!({"sub":"123456","email":"a@b.test"}));
        assert_eq!(extract(&c, "sub"), Ok("123456".into()));
        assert_eq!(extract(&c, "email"), Ok("a@b.test".into()));
        assert_eq!(
            extract(&c, "preferred_username"),
            Err(IdentityError::Missing("preferred_username".into()))
        );
        assert_eq!(
            extract(&m(json!({"sub":null})), "sub").map_err(|e| e.outcome()),
            Err(Outcome::IdentityClaimMissing)
        );
    }

    #[test]
    fn refuses_unusable_values() {
        for v in [
            json!(""),
            json!(5),
            json!(["a"]),
            json!("a\nb"),
            json!("a\u{0}"),
            json!("\u{85}x"),
            json!("x".repeat(513)),
        ] {
            let e = extract(&m(json!({ "sub": v })), "sub").expect_err("invalid");
            assert_eq!(e.outcome(), Outcome::IdentityInvalid, "{v}");
        }
        assert!(
            extract(&m(json!({ "sub": "x".repeat(512) })), "sub").is_ok(),
            "boundary"
        );
        assert!(extract(&m(json!({ "sub": "Zoë O'Brien" })), "sub").is_ok());
    }
}
