//! The introspection POST (RFC 7662 section 2.1) with client authentication.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ring::rand::SecureRandom;

use crate::introspection::client_assertion::{self, AssertionClaims, AssertionError, SigningKey};
use crate::introspection::form;
use crate::time::UnixTime;

/// `client_assertion_type` of RFC 7523.
pub const JWT_BEARER_ASSERTION: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// Default lifetime of a client assertion.
pub const DEFAULT_ASSERTION_LIFETIME_SECS: u64 = 60;

/// How the validator authenticates to the introspection endpoint.
pub enum ClientAuth {
    /// HTTP Basic with the form-urlencoded client id and secret (RFC 6749 section 2.3.1).
    SecretBasic { secret: String },
    /// A signed client assertion (RFC 7523, OpenID Connect `private_key_jwt`).
    PrivateKeyJwt {
        key: Box<SigningKey>,
        key_id: Option<String>,
        audience: String,
        lifetime_secs: u64,
    },
}

impl std::fmt::Debug for ClientAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientAuth::SecretBasic { .. } => f.write_str("SecretBasic { secret: <hidden> }"),
            ClientAuth::PrivateKeyJwt {
                key,
                key_id,
                audience,
                lifetime_secs,
            } => f
                .debug_struct("PrivateKeyJwt")
                .field("key", key)
                .field("key_id", key_id)
                .field("audience", audience)
                .field("lifetime_secs", lifetime_secs)
                .finish(),
        }
    }
}

/// The introspection endpoint and our credentials for it.
#[derive(Debug)]
pub struct IntrospectionClient {
    pub endpoint: String,
    pub client_id: String,
    pub auth: ClientAuth,
}

/// A ready-to-send `POST` (Content-Type application/x-www-form-urlencoded).
#[derive(Clone, PartialEq, Eq)]
pub struct PreparedRequest {
    pub url: String,
    pub headers: Vec<(String, String)>,
    /// Contains the token and possibly an assertion: never log it.
    pub body: String,
}

impl std::fmt::Debug for PreparedRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.headers.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("PreparedRequest")
            .field("url", &self.url)
            .field("headers", &names)
            .field("body", &format_args!("<{} bytes hidden>", self.body.len()))
            .finish()
    }
}

impl IntrospectionClient {
    /// Builds the POST that asks whether `token` is active. `rng` supplies the assertion's jti and signing
    /// randomness (ring's `SystemRandom` in production).
    pub fn request(
        &self,
        token: &str,
        now: UnixTime,
        rng: &dyn SecureRandom,
    ) -> Result<PreparedRequest, AssertionError> {
        let mut headers = vec![
            (
                "Content-Type".to_string(),
                "application/x-www-form-urlencoded".to_string(),
            ),
            ("Accept".to_string(), "application/json".to_string()),
        ];
        let mut pairs: Vec<(&str, &str)> =
            vec![("token", token), ("token_type_hint", "access_token")];
        let assertion;
        match &self.auth {
            ClientAuth::SecretBasic { secret } => {
                headers.push((
                    "Authorization".to_string(),
                    basic_credentials(&self.client_id, secret),
                ));
            }
            ClientAuth::PrivateKeyJwt {
                key,
                key_id,
                audience,
                lifetime_secs,
            } => {
                let claims = AssertionClaims {
                    client_id: &self.client_id,
                    key_id: key_id.as_deref(),
                    audience,
                    lifetime_secs: *lifetime_secs,
                };
                assertion = client_assertion::sign(&claims, key, now, rng)?;
                pairs.push(("client_assertion_type", JWT_BEARER_ASSERTION));
                pairs.push(("client_assertion", &assertion));
            }
        }
        Ok(PreparedRequest {
            url: self.endpoint.clone(),
            headers,
            body: form::body(&pairs),
        })
    }
}

/// `Basic base64(urlencode(id) ":" urlencode(secret))`.
pub fn basic_credentials(client_id: &str, secret: &str) -> String {
    let pair = format!("{}:{}", form::encode(client_id), form::encode(secret));
    format!("Basic {}", STANDARD.encode(pair.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_form_encoded_first() {
        // RFC 6749 2.3.1: id and secret are form-urlencoded, then joined with ':' and base64-encoded.
        assert_eq!(
            basic_credentials("client", "secret"),
            "Basic Y2xpZW50OnNlY3JldA=="
        );
        let header = basic_credentials("my client@proj", "p:a+s/s w%");
        let decoded = STANDARD
            .decode(header.trim_start_matches("Basic "))
            .expect("base64");
        assert_eq!(
            String::from_utf8(decoded).expect("utf8"),
            "my+client%40proj:p%3Aa%2Bs%2Fs+w%25"
        );
    }

    #[test]
    fn secret_basic_request() {
        let c = IntrospectionClient {
            endpoint: "https://idp.test/oauth/v2/introspect".into(),
            client_id: "db".into(),
            auth: ClientAuth::SecretBasic {
                secret: "s3cret".into(),
            },
        };
        let rng = ring::rand::SystemRandom::new();
        let r = c.request("tok en&=", UnixTime(0), &rng).expect("built");
        assert_eq!(r.url, "https://idp.test/oauth/v2/introspect");
        assert_eq!(r.body, "token=tok+en%26%3D&token_type_hint=access_token");
        assert!(
            r.headers
                .contains(&("Authorization".into(), basic_credentials("db", "s3cret")))
        );
        assert!(r.headers.contains(&(
            "Content-Type".into(),
            "application/x-www-form-urlencoded".into()
        )));
        let dbg = format!("{r:?} {c:?}");
        assert!(
            !dbg.contains("tok")
                && !dbg.contains("s3cret")
                && !dbg.contains(&basic_credentials("db", "s3cret")),
            "{dbg}"
        );
    }
}
