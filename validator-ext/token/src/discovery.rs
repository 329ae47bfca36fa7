//! The IdP's discovery document (OpenID Connect Discovery / RFC 8414 metadata).

use serde_json::{Map, Value};

use crate::json::{self, JsonError};
use crate::shown::Shown;

/// Largest discovery document parsed.
pub const MAX_DISCOVERY_BYTES: usize = 256 * 1024;

/// The parts of the discovery document the validator uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderMetadata {
    pub issuer: String,
    pub jwks_uri: String,
    pub token_endpoint: Option<String>,
    pub introspection_endpoint: Option<String>,
    pub device_authorization_endpoint: Option<String>,
    pub userinfo_endpoint: Option<String>,
}

/// Why a discovery document was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DiscoveryError {
    #[error("discovery document of {0} bytes exceeds the limit of {MAX_DISCOVERY_BYTES}")]
    TooLarge(usize),
    #[error("discovery document: {0}")]
    Json(#[from] JsonError),
    #[error("discovery document: member {0} is missing or not a non-empty string")]
    Missing(&'static str),
    #[error("discovery document: member {0} is not a string")]
    NotAString(&'static str),
    #[error("discovery document: member {member} is not an absolute http(s) URL: {}", Shown(.value))]
    NotAUrl { member: &'static str, value: String },
    #[error("discovery document names issuer {} but the configured issuer is {}", Shown(.found), Shown(.expected))]
    IssuerMismatch { expected: String, found: String },
}

/// The URL of the OpenID Connect discovery document of `issuer`.
pub fn discovery_url(issuer: &str) -> String {
    format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    )
}

impl ProviderMetadata {
    /// Parses a discovery document; its `issuer` must equal `expected_issuer` exactly (byte for byte).
    pub fn parse(
        document: &[u8],
        expected_issuer: &str,
    ) -> Result<ProviderMetadata, DiscoveryError> {
        if document.len() > MAX_DISCOVERY_BYTES {
            return Err(DiscoveryError::TooLarge(document.len()));
        }
        let obj = json::parse_object(document)?;
        let issuer = required(&obj, "issuer")?;
        if issuer != expected_issuer {
            return Err(DiscoveryError::IssuerMismatch {
                expected: expected_issuer.to_string(),
                found: issuer,
            });
        }
        Ok(ProviderMetadata {
            issuer,
            jwks_uri: url(&obj, "jwks_uri")?.ok_or(DiscoveryError::Missing("jwks_uri"))?,
            token_endpoint: url(&obj, "token_endpoint")?,
            introspection_endpoint: url(&obj, "introspection_endpoint")?,
            device_authorization_endpoint: url(&obj, "device_authorization_endpoint")?,
            userinfo_endpoint: url(&obj, "userinfo_endpoint")?,
        })
    }
}

fn required(obj: &Map<String, Value>, member: &'static str) -> Result<String, DiscoveryError> {
    match obj.get(member) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        _ => Err(DiscoveryError::Missing(member)),
    }
}

fn url(obj: &Map<String, Value>, member: &'static str) -> Result<Option<String>, DiscoveryError> {
    match obj.get(member) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => {
            let lower = s.to_ascii_lowercase();
            let rest = lower
                .strip_prefix("https://")
                .or_else(|| lower.strip_prefix("http://"));
            let has_host = rest.is_some_and(|r| !r.is_empty() && !r.starts_with('/'));
            if !has_host || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(DiscoveryError::NotAUrl {
                    member,
                    value: s.clone(),
                });
            }
            Ok(Some(s.clone()))
        }
        Some(_) => Err(DiscoveryError::NotAString(member)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ISS: &str = "https://idp.example.test";

    fn doc(v: Value) -> Vec<u8> {
        v.to_string().into_bytes()
    }

    fn zitadel_like() -> Value {
        json!({
            "issuer": ISS,
            "authorization_endpoint": format!("{ISS}/oauth/v2/authorize"),
            "token_endpoint": format!("{ISS}/oauth/v2/token"),
            "introspection_endpoint": format!("{ISS}/oauth/v2/introspect"),
            "userinfo_endpoint": format!("{ISS}/oidc/v1/userinfo"),
            "device_authorization_endpoint": format!("{ISS}/oauth/v2/device_authorization"),
            "jwks_uri": format!("{ISS}/oauth/v2/keys"),
            "id_token_signing_alg_values_supported": ["RS256"],
        })
    }

    #[test]
    fn parses_the_endpoints() {
        let m = ProviderMetadata::parse(&doc(zitadel_like()), ISS).expect("valid");
        assert_eq!(m.jwks_uri, format!("{ISS}/oauth/v2/keys"));
        assert_eq!(
            m.introspection_endpoint.as_deref(),
            Some("https://idp.example.test/oauth/v2/introspect")
        );
        assert_eq!(
            m.token_endpoint.as_deref(),
            Some("https://idp.example.test/oauth/v2/token")
        );
        assert!(m.device_authorization_endpoint.is_some() && m.userinfo_endpoint.is_some());
    }

    #[test]
    fn issuer_must_match_byte_for_byte() {
        for configured in [
            format!("{ISS}/"),
            ISS.to_uppercase(),
            "https://other.test".to_string(),
        ] {
            let e =
                ProviderMetadata::parse(&doc(zitadel_like()), &configured).expect_err("mismatch");
            assert!(
                matches!(e, DiscoveryError::IssuerMismatch { .. }),
                "{configured}: {e}"
            );
        }
        let mut v = zitadel_like();
        v["issuer"] = json!(7);
        assert_eq!(
            ProviderMetadata::parse(&doc(v), ISS),
            Err(DiscoveryError::Missing("issuer"))
        );
    }

    #[test]
    fn jwks_uri_is_required_and_urls_checked() {
        let mut v = zitadel_like();
        v.as_object_mut().map(|o| o.remove("jwks_uri"));
        assert_eq!(
            ProviderMetadata::parse(&doc(v), ISS),
            Err(DiscoveryError::Missing("jwks_uri"))
        );
        let mut v = zitadel_like();
        v["introspection_endpoint"] = json!("/relative");
        assert!(matches!(
            ProviderMetadata::parse(&doc(v), ISS),
            Err(DiscoveryError::NotAUrl { .. })
        ));
        let mut v = zitadel_like();
        v["token_endpoint"] = json!(["x"]);
        assert_eq!(
            ProviderMetadata::parse(&doc(v), ISS),
            Err(DiscoveryError::NotAString("token_endpoint"))
        );
        let mut v = zitadel_like();
        v.as_object_mut()
            .map(|o| o.remove("introspection_endpoint"));
        assert_eq!(
            ProviderMetadata::parse(&doc(v), ISS)
                .expect("optional")
                .introspection_endpoint,
            None
        );
    }

    #[test]
    fn document_errors() {
        assert!(matches!(
            ProviderMetadata::parse(b"[]", ISS),
            Err(DiscoveryError::Json(JsonError::NotAnObject))
        ));
        let dup =
            format!(r#"{{"issuer":"{ISS}","issuer":"https://evil.test","jwks_uri":"{ISS}/k"}}"#);
        assert!(matches!(
            ProviderMetadata::parse(dup.as_bytes(), ISS),
            Err(DiscoveryError::Json(JsonError::DuplicateKey(_)))
        ));
    }

    #[test]
    fn discovery_url_appends_well_known() {
        assert_eq!(
            discovery_url(ISS),
            "https://idp.example.test/.well-known/openid-configuration"
        );
        assert_eq!(
            discovery_url("https://a.test/t/"),
            "https://a.test/t/.well-known/openid-configuration"
        );
    }
}
