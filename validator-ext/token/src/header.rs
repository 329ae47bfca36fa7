//! Stage 2, header: algorithm allowlist, refused key-carrying headers, `crit`, `typ`.

use serde_json::{Map, Value};

use crate::algorithm::{AlgName, Algorithm, AlgorithmSet, classify_alg};
use crate::jwk::MAX_KID_BYTES;
use crate::outcome::Outcome;
use crate::shown::Shown;

/// Header members that would let the token choose its own verification key; always refused.
pub const KEY_CARRYING_HEADERS: [&str; 4] = ["jku", "x5u", "jwk", "x5c"];

/// What the validator takes from the protected header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub alg: Algorithm,
    pub kid: Option<String>,
    pub typ: Option<String>,
}

/// Why a token's header was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error("header has no alg string")]
    AlgMissing,
    #[error("alg {} means an unsigned token", Shown(.0))]
    AlgNone(String),
    #[error("alg {} is symmetric (HMAC) and never accepted", Shown(.0))]
    Hmac(String),
    #[error("alg {} is not allowed (allowed: {allowed})", Shown(.alg))]
    NotAllowed { alg: String, allowed: String },
    #[error("header member {0} would let the token pick its own key")]
    KeyCarrying(&'static str),
    #[error("header lists critical extensions, none are supported")]
    Crit,
    #[error("kid is not a string of at most {MAX_KID_BYTES} bytes")]
    BadKid,
    #[error("typ is {} but {} is required", .found.as_deref().map_or_else(|| "absent".to_string(), |f| Shown(f).to_string()), Shown(.expected))]
    Typ {
        expected: String,
        found: Option<String>,
    },
}

impl HeaderError {
    pub fn outcome(&self) -> Outcome {
        match self {
            HeaderError::AlgMissing | HeaderError::BadKid => Outcome::Malformed,
            HeaderError::AlgNone(_) => Outcome::AlgNone,
            HeaderError::Hmac(_) => Outcome::HmacRefused,
            HeaderError::NotAllowed { .. } => Outcome::AlgNotAllowed,
            HeaderError::KeyCarrying(_) => Outcome::HeaderKeyRefused,
            HeaderError::Crit => Outcome::CritUnsupported,
            HeaderError::Typ { .. } => Outcome::TypMismatch,
        }
    }
}

/// Checks the header against the allowlist and, when configured, the expected `typ`.
pub fn check(
    header: &Map<String, Value>,
    allowed: AlgorithmSet,
    expected_typ: Option<&str>,
) -> Result<Header, HeaderError> {
    let alg_name = header
        .get("alg")
        .and_then(Value::as_str)
        .ok_or(HeaderError::AlgMissing)?;
    let alg = match classify_alg(alg_name) {
        AlgName::None => return Err(HeaderError::AlgNone(alg_name.to_string())),
        AlgName::Hmac => return Err(HeaderError::Hmac(alg_name.to_string())),
        AlgName::Known(a) if allowed.contains(a) => a,
        AlgName::Known(_) | AlgName::Unknown => {
            return Err(HeaderError::NotAllowed {
                alg: alg_name.to_string(),
                allowed: allowed.to_string(),
            });
        }
    };
    if let Some(member) = KEY_CARRYING_HEADERS
        .into_iter()
        .find(|m| header.contains_key(*m))
    {
        return Err(HeaderError::KeyCarrying(member));
    }
    if header.contains_key("crit") {
        return Err(HeaderError::Crit);
    }
    let kid = match header.get("kid") {
        None => None,
        Some(Value::String(k)) if k.len() <= MAX_KID_BYTES => Some(k.clone()),
        Some(_) => return Err(HeaderError::BadKid),
    };
    let typ = header
        .get("typ")
        .and_then(Value::as_str)
        .map(str::to_string);
    if let Some(expected) = expected_typ {
        let fits = typ.as_deref().is_some_and(|t| typ_matches(expected, t));
        if !fits {
            return Err(HeaderError::Typ {
                expected: expected.to_string(),
                found: typ,
            });
        }
    }
    Ok(Header { alg, kid, typ })
}

/// Media type comparison of RFC 7515 section 4.1.9: case-insensitive, `application/` prefix optional.
pub fn typ_matches(expected: &str, found: &str) -> bool {
    fn short(t: &str) -> &str {
        match t.get(..12) {
            Some(p) if p.eq_ignore_ascii_case("application/") => &t[12..],
            _ => t,
        }
    }
    short(expected).eq_ignore_ascii_case(short(found))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn h(v: Value) -> Map<String, Value> {
        v.as_object().cloned().expect("object")
    }

    #[test]
    fn accepts_allowed_algorithms() {
        let got = check(
            &h(json!({"alg":"ES256","kid":"k","typ":"at+jwt"})),
            AlgorithmSet::DEFAULT,
            None,
        )
        .expect("ok");
        assert_eq!(
            got,
            Header {
                alg: Algorithm::ES256,
                kid: Some("k".into()),
                typ: Some("at+jwt".into())
            }
        );
    }

    #[test]
    fn refuses_none_and_hmac_even_when_listed() {
        let all = AlgorithmSet::all();
        assert_eq!(
            check(&h(json!({"alg":"none"})), all, None).map_err(|e| e.outcome()),
            Err(Outcome::AlgNone)
        );
        assert_eq!(
            check(&h(json!({"alg":"NoNe"})), all, None).map_err(|e| e.outcome()),
            Err(Outcome::AlgNone)
        );
        assert_eq!(
            check(&h(json!({"alg":"HS256"})), all, None).map_err(|e| e.outcome()),
            Err(Outcome::HmacRefused)
        );
        assert_eq!(
            check(&h(json!({"alg":"hs512"})), all, None).map_err(|e| e.outcome()),
            Err(Outcome::HmacRefused)
        );
    }

    #[test]
    fn refuses_algorithms_outside_the_allowlist() {
        let e = check(&h(json!({"alg":"PS256"})), AlgorithmSet::DEFAULT, None)
            .expect_err("not allowed");
        assert_eq!(e.outcome(), Outcome::AlgNotAllowed);
        assert_eq!(
            e.to_string(),
            "alg 'PS256' is not allowed (allowed: RS256, ES256, EdDSA)"
        );
        for alg in ["rs256", "RSA-OAEP", "ES512", ""] {
            let e =
                check(&h(json!({ "alg": alg })), AlgorithmSet::all(), None).expect_err("unknown");
            assert_eq!(e.outcome(), Outcome::AlgNotAllowed, "{alg}");
        }
        for v in [
            json!({}),
            json!({"alg": 256}),
            json!({"alg": null}),
            json!({"alg": ["RS256"]}),
        ] {
            assert_eq!(
                check(&h(v.clone()), AlgorithmSet::all(), None),
                Err(HeaderError::AlgMissing),
                "{v}"
            );
        }
    }

    #[test]
    fn refuses_key_carrying_headers_and_crit() {
        for m in KEY_CARRYING_HEADERS {
            let mut v = json!({"alg":"RS256"});
            v[m] = json!("https://attacker.test/keys");
            assert_eq!(
                check(&h(v), AlgorithmSet::DEFAULT, None),
                Err(HeaderError::KeyCarrying(m))
            );
        }
        let v = json!({"alg":"RS256","jwk":{"kty":"RSA","n":"AQAB","e":"AQAB"}});
        assert_eq!(
            check(&h(v), AlgorithmSet::DEFAULT, None).map_err(|e| e.outcome()),
            Err(Outcome::HeaderKeyRefused)
        );
        let v = json!({"alg":"RS256","crit":["b64"],"b64":false});
        assert_eq!(
            check(&h(v), AlgorithmSet::DEFAULT, None).map_err(|e| e.outcome()),
            Err(Outcome::CritUnsupported)
        );
    }

    #[test]
    fn kid_must_be_a_bounded_string() {
        assert_eq!(
            check(
                &h(json!({"alg":"RS256","kid":1})),
                AlgorithmSet::DEFAULT,
                None
            ),
            Err(HeaderError::BadKid)
        );
        let long = "k".repeat(MAX_KID_BYTES + 1);
        assert_eq!(
            check(
                &h(json!({"alg":"RS256","kid":long})),
                AlgorithmSet::DEFAULT,
                None
            ),
            Err(HeaderError::BadKid)
        );
    }

    #[test]
    fn typ_rules() {
        let ok = |typ: &str| {
            check(
                &h(json!({"alg":"RS256","typ":typ})),
                AlgorithmSet::DEFAULT,
                Some("at+jwt"),
            )
            .is_ok()
        };
        assert!(
            ok("at+jwt") && ok("AT+JWT") && ok("application/at+jwt") && ok("Application/At+Jwt")
        );
        assert!(
            !ok("JWT") && !ok("at+jwt ") && !ok("application/jwt") && !ok("xapplication/at+jwt")
        );
        let missing = check(
            &h(json!({"alg":"RS256"})),
            AlgorithmSet::DEFAULT,
            Some("at+jwt"),
        )
        .expect_err("missing");
        assert_eq!(missing.outcome(), Outcome::TypMismatch);
        assert_eq!(
            missing.to_string(),
            "typ is absent but 'at+jwt' is required"
        );
        let number = check(
            &h(json!({"alg":"RS256","typ":5})),
            AlgorithmSet::DEFAULT,
            Some("at+jwt"),
        );
        assert_eq!(number.map_err(|e| e.outcome()), Err(Outcome::TypMismatch));
        // Not configured: any typ passes.
        assert!(
            check(
                &h(json!({"alg":"RS256","typ":"JWT"})),
                AlgorithmSet::DEFAULT,
                None
            )
            .is_ok()
        );
        assert!(typ_matches("application/at+jwt", "at+jwt"));
    }
}
