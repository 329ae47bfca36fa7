//! Stage 5, claims: `iss`, `aud`, the client the token was issued to (`azp`, else `client_id`), that it is an
//! access token (no ID-token claims), `exp`, `nbf`, `iat`.
//!
//! Time rules with skew `s`: refused when `now >= exp + s` (exp is exclusive, RFC 7519 section 4.1.4), when
//! `now + s < nbf`, and when `iat > now + s`.

use serde_json::{Map, Value};

use crate::outcome::Outcome;
use crate::policy::{Policy, Requirements};
use crate::shown::{Shown, ShownList};
use crate::time::UnixTime;

/// Why the registered claims were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClaimsError {
    #[error("claim {0} is missing")]
    Missing(&'static str),
    #[error("claim {} is not {expected}", Shown(.claim))]
    Invalid {
        claim: String,
        expected: &'static str,
    },
    #[error("issuer is {} but {} is required", Shown(.found), Shown(.expected))]
    WrongIssuer { expected: String, found: String },
    #[error("audience {} contains none of {}", ShownList(.found), ShownList(.expected))]
    WrongAudience {
        expected: Vec<String>,
        found: Vec<String>,
    },
    #[error("issued to client {} but only {} may be used here", Shown(.found), ShownList(.allowed))]
    ClientNotAllowed { found: String, allowed: Vec<String> },
    #[error("names no client (azp or client_id), and only {} may be used here", ShownList(.allowed))]
    NoClient { allowed: Vec<String> },
    #[error("is an ID token (it has {0}), not an access token")]
    IdToken(&'static str),
    #[error("expired at {exp} (now {now}, skew {skew}s)")]
    Expired { exp: i64, now: i64, skew: u64 },
    #[error("not valid before {nbf} (now {now}, skew {skew}s)")]
    NotYetValid { nbf: i64, now: i64, skew: u64 },
    #[error("issued at {iat}, in the future (now {now}, skew {skew}s)")]
    IssuedInFuture { iat: i64, now: i64, skew: u64 },
}

impl ClaimsError {
    pub fn outcome(&self) -> Outcome {
        match self {
            ClaimsError::Missing(_) => Outcome::MissingClaim,
            ClaimsError::Invalid { .. } => Outcome::InvalidClaim,
            ClaimsError::WrongIssuer { .. } => Outcome::WrongIssuer,
            ClaimsError::WrongAudience { .. } => Outcome::WrongAudience,
            ClaimsError::ClientNotAllowed { .. } | ClaimsError::NoClient { .. } => {
                Outcome::ClientNotAllowed
            }
            ClaimsError::IdToken(_) => Outcome::NotAccessToken,
            ClaimsError::Expired { .. } => Outcome::Expired,
            ClaimsError::NotYetValid { .. } => Outcome::NotYetValid,
            ClaimsError::IssuedInFuture { .. } => Outcome::IssuedInFuture,
        }
    }
}

/// Checks the registered claims; returns the expiry.
pub fn check(
    claims: &Map<String, Value>,
    policy: &Policy,
    req: &Requirements,
    now: UnixTime,
) -> Result<UnixTime, ClaimsError> {
    check_issuer(claims, &req.issuer)?;
    check_audience(claims, &policy.audiences)?;
    check_access_token(claims)?;
    check_client(claims, &policy.allowed_clients)?;
    check_times(claims, now, policy.clock_skew_secs)
}

/// Claims only an OpenID Connect ID token carries (OIDC Core 3.1.3.6, 3.3.2.11): an ID token tells a client who
/// logged in; it is not a credential for a resource, even when its audience happens to match.
const ID_TOKEN_CLAIMS: [&str; 2] = ["at_hash", "c_hash"];

fn check_access_token(claims: &Map<String, Value>) -> Result<(), ClaimsError> {
    match ID_TOKEN_CLAIMS.iter().find(|c| claims.contains_key(**c)) {
        Some(claim) => Err(ClaimsError::IdToken(claim)),
        None => Ok(()),
    }
}

/// The client the token was issued to must be allowed: `aud` holding the project id is true of every
/// application's token in the project, so the audience alone does not say the token was meant for us. Off when
/// the allowlist is empty.
fn check_client(claims: &Map<String, Value>, allowed: &[String]) -> Result<(), ClaimsError> {
    if allowed.is_empty() {
        return Ok(());
    }
    let client = ["azp", "client_id"]
        .iter()
        .find_map(|c| claims.get(*c))
        .map(|v| {
            v.as_str().map(str::to_owned).ok_or(ClaimsError::Invalid {
                claim: "azp".into(),
                expected: "a string",
            })
        })
        .transpose()?;
    match client {
        None => Err(ClaimsError::NoClient {
            allowed: allowed.to_vec(),
        }),
        Some(found) if allowed.contains(&found) => Ok(()),
        Some(found) => Err(ClaimsError::ClientNotAllowed {
            found,
            allowed: allowed.to_vec(),
        }),
    }
}

fn check_issuer(claims: &Map<String, Value>, issuer: &str) -> Result<(), ClaimsError> {
    match claims.get("iss") {
        None => Err(ClaimsError::Missing("iss")),
        Some(Value::String(found)) if found == issuer => Ok(()),
        Some(Value::String(found)) => Err(ClaimsError::WrongIssuer {
            expected: issuer.to_string(),
            found: found.clone(),
        }),
        Some(_) => Err(ClaimsError::Invalid {
            claim: "iss".into(),
            expected: "a string",
        }),
    }
}

fn check_audience(claims: &Map<String, Value>, accepted: &[String]) -> Result<(), ClaimsError> {
    let found: Vec<String> = match claims.get("aud") {
        None => return Err(ClaimsError::Missing("aud")),
        Some(Value::String(a)) => vec![a.clone()],
        Some(Value::Array(items)) => {
            let strings: Option<Vec<String>> = items
                .iter()
                .map(|v| v.as_str().map(str::to_string))
                .collect();
            strings.ok_or(ClaimsError::Invalid {
                claim: "aud".into(),
                expected: "a string or an array of strings",
            })?
        }
        Some(_) => {
            return Err(ClaimsError::Invalid {
                claim: "aud".into(),
                expected: "a string or an array of strings",
            });
        }
    };
    if found.iter().any(|f| accepted.iter().any(|a| a == f)) {
        Ok(())
    } else {
        Err(ClaimsError::WrongAudience {
            expected: accepted.to_vec(),
            found,
        })
    }
}

fn check_times(
    claims: &Map<String, Value>,
    now: UnixTime,
    skew: u64,
) -> Result<UnixTime, ClaimsError> {
    let now_s = now.seconds();
    let exp = numeric_date(claims, "exp", Rounding::Down)?.ok_or(ClaimsError::Missing("exp"))?;
    if now_s >= UnixTime(exp).plus(skew).seconds() {
        return Err(ClaimsError::Expired {
            exp,
            now: now_s,
            skew,
        });
    }
    if let Some(nbf) = numeric_date(claims, "nbf", Rounding::Up)?
        && now.plus(skew).seconds() < nbf
    {
        return Err(ClaimsError::NotYetValid {
            nbf,
            now: now_s,
            skew,
        });
    }
    if let Some(iat) = numeric_date(claims, "iat", Rounding::Up)?
        && iat > now.plus(skew).seconds()
    {
        return Err(ClaimsError::IssuedInFuture {
            iat,
            now: now_s,
            skew,
        });
    }
    Ok(UnixTime(exp))
}

#[derive(Clone, Copy)]
enum Rounding {
    Down,
    Up,
}

/// A NumericDate (RFC 7519 section 2): seconds, possibly fractional, rounded in the strict direction.
fn numeric_date(
    claims: &Map<String, Value>,
    name: &'static str,
    rounding: Rounding,
) -> Result<Option<i64>, ClaimsError> {
    let invalid = || ClaimsError::Invalid {
        claim: name.into(),
        expected: "a NumericDate (seconds since the epoch)",
    };
    let Some(v) = claims.get(name) else {
        return Ok(None);
    };
    let Value::Number(n) = v else {
        return Err(invalid());
    };
    if let Some(i) = n.as_i64() {
        return Ok(Some(i));
    }
    if n.is_u64() {
        return Err(invalid());
    }
    let f = n.as_f64().ok_or_else(invalid)?;
    let r = match rounding {
        Rounding::Down => f.floor(),
        Rounding::Up => f.ceil(),
    };
    // Inside the exactly representable range so the cast is exact.
    const LIMIT: f64 = 9_007_199_254_740_992.0;
    if !r.is_finite() || r.abs() > LIMIT {
        return Err(invalid());
    }
    Ok(Some(r as i64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn m(v: Value) -> Map<String, Value> {
        v.as_object().cloned().expect("object")
    }

    #[test]
    fn numeric_dates() {
        let c = m(
            json!({"a": 10, "b": 10.5, "c": "10", "d": 1e300, "e": 18446744073709551615u64, "f": -5}),
        );
        assert_eq!(numeric_date(&c, "a", Rounding::Down), Ok(Some(10)));
        assert_eq!(numeric_date(&c, "b", Rounding::Down), Ok(Some(10)));
        assert_eq!(numeric_date(&c, "b", Rounding::Up), Ok(Some(11)));
        assert!(numeric_date(&c, "c", Rounding::Down).is_err());
        assert!(numeric_date(&c, "d", Rounding::Down).is_err());
        assert!(numeric_date(&c, "e", Rounding::Down).is_err());
        assert_eq!(numeric_date(&c, "f", Rounding::Down), Ok(Some(-5)));
        assert_eq!(numeric_date(&c, "zz", Rounding::Down), Ok(None));
    }

    #[test]
    fn exp_boundaries_with_skew() {
        let c = m(json!({"exp": 1000}));
        assert_eq!(check_times(&c, UnixTime(999), 0), Ok(UnixTime(1000)));
        assert_eq!(
            check_times(&c, UnixTime(1000), 0),
            Err(ClaimsError::Expired {
                exp: 1000,
                now: 1000,
                skew: 0
            })
        );
        assert_eq!(check_times(&c, UnixTime(1029), 30), Ok(UnixTime(1000)));
        assert!(matches!(
            check_times(&c, UnixTime(1030), 30),
            Err(ClaimsError::Expired { .. })
        ));
        let frac = m(json!({"exp": 1000.9}));
        assert!(
            matches!(
                check_times(&frac, UnixTime(1000), 0),
                Err(ClaimsError::Expired { .. })
            ),
            "rounded down"
        );
    }

    #[test]
    fn nbf_and_iat_boundaries_with_skew() {
        let c = m(json!({"exp": 5000, "nbf": 1000}));
        assert!(check_times(&c, UnixTime(1000), 0).is_ok());
        assert!(matches!(
            check_times(&c, UnixTime(999), 0),
            Err(ClaimsError::NotYetValid { .. })
        ));
        assert!(check_times(&c, UnixTime(970), 30).is_ok());
        assert!(matches!(
            check_times(&c, UnixTime(969), 30),
            Err(ClaimsError::NotYetValid { .. })
        ));
        let c = m(json!({"exp": 5000, "iat": 1000}));
        assert!(check_times(&c, UnixTime(1000), 0).is_ok());
        assert!(matches!(
            check_times(&c, UnixTime(999), 0),
            Err(ClaimsError::IssuedInFuture { .. })
        ));
        assert!(check_times(&c, UnixTime(970), 30).is_ok());
        assert!(matches!(
            check_times(&c, UnixTime(969), 30),
            Err(ClaimsError::IssuedInFuture { .. })
        ));
    }

    #[test]
    fn extreme_values_do_not_overflow() {
        let c = m(json!({"exp": i64::MAX, "nbf": i64::MIN, "iat": i64::MIN}));
        assert!(check_times(&c, UnixTime(0), u64::MAX).is_ok());
        let c = m(json!({"exp": i64::MIN}));
        assert!(check_times(&c, UnixTime(i64::MIN), 0).is_err());
    }

    #[test]
    fn only_allowed_clients_and_access_tokens() {
        let allowed = vec!["psql".to_string(), "pgrator-cli".to_string()];
        assert!(check_client(&m(json!({"azp":"psql"})), &allowed).is_ok());
        assert!(check_client(&m(json!({"client_id":"pgrator-cli"})), &allowed).is_ok());
        // azp wins over client_id when both are there.
        assert!(matches!(
            check_client(&m(json!({"azp":"other-app","client_id":"psql"})), &allowed),
            Err(ClaimsError::ClientNotAllowed { found, .. }) if found == "other-app"
        ));
        assert!(matches!(
            check_client(&m(json!({})), &allowed),
            Err(ClaimsError::NoClient { .. })
        ));
        assert!(matches!(
            check_client(&m(json!({"azp": 5})), &allowed),
            Err(ClaimsError::Invalid { .. })
        ));
        assert!(
            check_client(&m(json!({})), &[]).is_ok(),
            "off without a list"
        );
        assert!(check_access_token(&m(json!({"sub":"1"}))).is_ok());
        assert_eq!(
            check_access_token(&m(json!({"sub":"1","at_hash":"x"}))),
            Err(ClaimsError::IdToken("at_hash"))
        );
        assert_eq!(
            ClaimsError::ClientNotAllowed {
                found: "x".into(),
                allowed: allowed.clone()
            }
            .outcome(),
            Outcome::ClientNotAllowed
        );
        assert_eq!(
            ClaimsError::IdToken("c_hash").outcome(),
            Outcome::NotAccessToken
        );
    }

    #[test]
    fn audience_shapes() {
        let acc = vec!["db".to_string(), "project-1".to_string()];
        assert!(check_audience(&m(json!({"aud":"db"})), &acc).is_ok());
        assert!(check_audience(&m(json!({"aud":["x","project-1"]})), &acc).is_ok());
        assert_eq!(
            check_audience(&m(json!({})), &acc),
            Err(ClaimsError::Missing("aud"))
        );
        assert!(matches!(
            check_audience(&m(json!({"aud":"DB"})), &acc),
            Err(ClaimsError::WrongAudience { .. })
        ));
        assert!(matches!(
            check_audience(&m(json!({"aud":[]})), &acc),
            Err(ClaimsError::WrongAudience { .. })
        ));
        assert!(matches!(
            check_audience(&m(json!({"aud":5})), &acc),
            Err(ClaimsError::Invalid { .. })
        ));
        assert!(matches!(
            check_audience(&m(json!({"aud":["db",5]})), &acc),
            Err(ClaimsError::Invalid { .. })
        ));
        assert!(matches!(
            check_audience(&m(json!({"aud":{"db":1}})), &acc),
            Err(ClaimsError::Invalid { .. })
        ));
    }

    #[test]
    fn issuer_is_exact() {
        assert!(check_issuer(&m(json!({"iss":"https://i"})), "https://i").is_ok());
        for bad in ["https://i/", "https://I", " https://i", ""] {
            assert!(
                matches!(
                    check_issuer(&m(json!({"iss":bad})), "https://i"),
                    Err(ClaimsError::WrongIssuer { .. })
                ),
                "{bad}"
            );
        }
        assert_eq!(
            check_issuer(&m(json!({})), "https://i"),
            Err(ClaimsError::Missing("iss"))
        );
        assert!(matches!(
            check_issuer(&m(json!({"iss":["https://i"]})), "https://i"),
            Err(ClaimsError::Invalid { .. })
        ));
    }
}
