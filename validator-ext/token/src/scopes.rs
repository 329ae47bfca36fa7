//! Stage 6, scopes: every scope the HBA line requires must be granted by the token.
//!
//! Granted scopes come from `scope` (a space-separated string, RFC 9068 / RFC 7662) and `scp` (an array of
//! strings or a space-separated string, as some IdPs issue).

use serde_json::{Map, Value};

use crate::outcome::Outcome;
use crate::policy::{ScopeCheck, split_scopes};
use crate::shown::{Shown, ShownList};

/// Why the scopes were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScopeError {
    #[error("claim {} is not {expected}", Shown(.claim))]
    Invalid {
        claim: &'static str,
        expected: &'static str,
    },
    #[error("required scopes {} are not granted", ShownList(.missing))]
    Missing { missing: Vec<String> },
}

impl ScopeError {
    pub fn outcome(&self) -> Outcome {
        match self {
            ScopeError::Invalid { .. } => Outcome::InvalidClaim,
            ScopeError::Missing { .. } => Outcome::MissingScope,
        }
    }
}

/// The scopes the token grants (union of `scope` and `scp`, deduplicated, in order).
pub fn granted(claims: &Map<String, Value>) -> Result<Vec<String>, ScopeError> {
    let mut out: Vec<String> = Vec::new();
    let mut add = |s: &str| {
        if !s.is_empty() && !out.iter().any(|o| o == s) {
            out.push(s.to_string());
        }
    };
    match claims.get("scope") {
        None => {}
        Some(Value::String(s)) => split_scopes(s).iter().for_each(|s| add(s)),
        Some(_) => {
            return Err(ScopeError::Invalid {
                claim: "scope",
                expected: "a space-separated string",
            });
        }
    }
    match claims.get("scp") {
        None => {}
        Some(Value::String(s)) => split_scopes(s).iter().for_each(|s| add(s)),
        Some(Value::Array(items)) => {
            for item in items {
                let s = item.as_str().ok_or(ScopeError::Invalid {
                    claim: "scp",
                    expected: "an array of strings",
                })?;
                add(s);
            }
        }
        Some(_) => {
            return Err(ScopeError::Invalid {
                claim: "scp",
                expected: "a string or an array of strings",
            });
        }
    }
    Ok(out)
}

/// Checks that every required scope is granted; returns the granted scopes.
pub fn check(
    claims: &Map<String, Value>,
    required: &[String],
    mode: ScopeCheck,
) -> Result<Vec<String>, ScopeError> {
    match mode {
        ScopeCheck::Off => Ok(granted(claims).unwrap_or_default()),
        ScopeCheck::Require => {
            let granted = granted(claims)?;
            let missing: Vec<String> = required
                .iter()
                .filter(|r| !granted.contains(r))
                .cloned()
                .collect();
            if missing.is_empty() {
                Ok(granted)
            } else {
                Err(ScopeError::Missing { missing })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn m(v: Value) -> Map<String, Value> {
        v.as_object().cloned().expect("object")
    }

    fn req(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn scope_string_and_scp_array() {
        let c = m(json!({"scope":"openid  db:read", "scp":["db:write","openid"]}));
        assert_eq!(granted(&c), Ok(req(&["openid", "db:read", "db:write"])));
        assert!(check(&c, &req(&["db:read", "db:write"]), ScopeCheck::Require).is_ok());
        assert!(check(&m(json!({"scp":"a b"})), &req(&["b"]), ScopeCheck::Require).is_ok());
    }

    #[test]
    fn missing_scopes_are_named() {
        let c = m(json!({"scope":"openid"}));
        let e = check(&c, &req(&["openid", "db", "x"]), ScopeCheck::Require).expect_err("missing");
        assert_eq!(
            e,
            ScopeError::Missing {
                missing: req(&["db", "x"])
            }
        );
        assert_eq!(e.outcome(), Outcome::MissingScope);
        assert!(matches!(
            check(&m(json!({})), &req(&["a"]), ScopeCheck::Require),
            Err(ScopeError::Missing { .. })
        ));
        // Scope matching is exact: no prefix, no case folding.
        assert!(
            check(
                &m(json!({"scope":"DB dbx"})),
                &req(&["db"]),
                ScopeCheck::Require
            )
            .is_err()
        );
    }

    #[test]
    fn no_requirement_accepts_no_scopes() {
        assert_eq!(check(&m(json!({})), &[], ScopeCheck::Require), Ok(vec![]));
    }

    #[test]
    fn wrong_types_are_refused() {
        for c in [
            json!({"scope":["a"]}),
            json!({"scope":5}),
            json!({"scp":5}),
            json!({"scp":["a",1]}),
            json!({"scope":null}),
        ] {
            let e = check(&m(c.clone()), &[], ScopeCheck::Require).expect_err("wrong type");
            assert_eq!(e.outcome(), Outcome::InvalidClaim, "{c}");
        }
    }

    #[test]
    fn off_mode_skips_the_requirement() {
        assert_eq!(
            check(&m(json!({})), &req(&["a"]), ScopeCheck::Off),
            Ok(vec![])
        );
        assert_eq!(
            check(&m(json!({"scope":"b"})), &req(&["a"]), ScopeCheck::Off),
            Ok(req(&["b"]))
        );
    }
}
