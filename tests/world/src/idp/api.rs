//! Speaking to the IdP: its test API (approve, rotate, mint, faults, counts) and its OAuth endpoints as a
//! client would.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::Result;

use super::*;

/// An HTTP answer of the IdP, whatever its status.
#[derive(Debug, Clone)]
pub struct HttpReply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpReply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Result<Value> {
        serde_json::from_str(&self.body)
            .map_err(|e| idp_err(format!("answer is not JSON ({e}): {}", self.body)))
    }

    /// The JSON body of a 200 answer; any other status is an error naming it and the body.
    pub fn ok_json(&self) -> Result<Value> {
        if self.status != 200 {
            return Err(idp_err(format!(
                "expected 200, got {}: {}",
                self.status, self.body
            )));
        }
        self.json()
    }
}

/// How a client authenticates at the introspection and revocation endpoints.
#[derive(Debug, Clone)]
pub enum ClientCredentials {
    /// A public client: only its id in the form.
    Public(String),
    /// client_secret_basic.
    Secret { client_id: String, secret: String },
    /// private_key_jwt with a Zitadel key file.
    PrivateKeyJwt(ClientKeyFile),
}

/// Zitadel's JSON key file of an application key. Debug output leaves the private key out.
#[derive(Clone, Deserialize)]
pub struct ClientKeyFile {
    #[serde(rename = "type")]
    pub key_type: String,
    #[serde(rename = "keyId")]
    pub key_id: String,
    /// The RSA private key, PEM.
    pub key: String,
    #[serde(rename = "appId")]
    pub app_id: String,
    #[serde(rename = "clientId")]
    pub client_id: String,
}

impl std::fmt::Debug for ClientKeyFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientKeyFile")
            .field("key_id", &self.key_id)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

impl ClientKeyFile {
    /// A client assertion (RFC 7523) for `audience` (the issuer), valid for a minute: iss = sub = client id,
    /// kid = the key id, RS256, as Zitadel expects.
    pub fn assertion(&self, audience: &str) -> Result<String> {
        let now = unix_now();
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        header.kid = Some(self.key_id.clone());
        let claims = json!({
            "iss": self.client_id, "sub": self.client_id, "aud": audience,
            "iat": now, "exp": now + 60,
        });
        let key = jsonwebtoken::EncodingKey::from_rsa_pem(self.key.as_bytes())
            .map_err(|e| idp_err(format!("key file of {}: {e}", self.client_id)))?;
        jsonwebtoken::encode(&header, &claims, &key)
            .map_err(|e| idp_err(format!("signing an assertion: {e}")))
    }
}

/// The Device Authorization response (RFC 8628 section 3.2).
#[derive(Debug, Clone, Deserialize)]
pub struct DeviceAuthorization {
    pub device_code: String,
    pub user_code: String,
    pub verification_uri: String,
    pub verification_uri_complete: Option<String>,
    pub expires_in: u64,
    pub interval: Option<u64>,
}

/// A successful token response.
#[derive(Debug, Clone, Deserialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: String,
    pub expires_in: Option<u64>,
    pub id_token: Option<String>,
    pub scope: Option<String>,
    /// Given for `offline_access` to a client allowed the refresh_token grant.
    #[serde(default)]
    pub refresh_token: Option<String>,
}

/// One poll of the token endpoint in the device flow.
#[derive(Debug, Clone)]
pub enum TokenPoll {
    Token(TokenResponse),
    /// `authorization_pending` or `slow_down`.
    Pending(String),
    /// Any other error (`access_denied`, `expired_token`, ...), with its HTTP status.
    Failed {
        status: u16,
        error: String,
        body: String,
    },
}

/// A token made by `POST /test/mint`.
#[derive(Debug, Clone, Deserialize)]
pub struct MintedToken {
    pub access_token: String,
    pub kid: Option<String>,
    pub alg: Option<String>,
    pub header: Option<Value>,
    pub claims: Value,
}

/// Request counts per path since the start or the last reset.
#[derive(Debug, Clone, Deserialize)]
pub struct IdpStats {
    pub total: u64,
    pub paths: BTreeMap<String, u64>,
}

impl IdpStats {
    pub fn count(&self, path: &str) -> u64 {
        self.paths.get(path).copied().unwrap_or(0)
    }
}

/// How an endpoint misbehaves (`POST /test/fault`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    None,
    /// No answer until the client gives up or the fault is lifted.
    Hang,
    /// 503.
    Down,
    /// A delay before the normal answer.
    Slow(Duration),
    /// A fixed error status.
    Status(u16),
}

impl Fault {
    fn mode(&self) -> String {
        match self {
            Fault::None => "none".into(),
            Fault::Hang => "hang".into(),
            Fault::Down => "down".into(),
            Fault::Slow(d) => format!("slow:{}", d.as_millis()),
            Fault::Status(s) => format!("status:{s}"),
        }
    }
}

/// A signing key of the IdP (`GET /test/keys`).
#[derive(Debug, Clone, Deserialize)]
pub struct KeyInfo {
    pub kid: String,
    pub alg: String,
    /// current, published or retired.
    pub status: String,
}

/// Speaks HTTPS to the IdP, trusting only its test CA. Cheap to clone; usable from any thread.
#[derive(Clone)]
pub struct IdpApi {
    agent: ureq::Agent,
    issuer: String,
}

impl std::fmt::Debug for IdpApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdpApi")
            .field("issuer", &self.issuer)
            .finish()
    }
}

enum Body<'a> {
    Empty,
    Form(&'a [(&'a str, &'a str)]),
    Json(&'a Value),
}

impl IdpApi {
    pub(super) fn new(issuer: String, ca_pem: &str) -> Result<IdpApi> {
        let ca = ureq::tls::Certificate::from_pem(ca_pem.as_bytes())
            .map_err(|e| idp_err(format!("reading the test CA: {e}")))?;
        let tls = ureq::tls::TlsConfig::builder()
            .root_certs(ureq::tls::RootCerts::new_with_certs(&[ca]))
            .build();
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .tls_config(tls)
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into();
        Ok(IdpApi { agent, issuer })
    }

    /// The issuer, exactly as served in discovery (`https://127.0.0.1:<port>`).
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.issuer, path)
    }

    fn send(
        &self,
        method: &str,
        path: &str,
        body: Body<'_>,
        authorization: Option<&str>,
        timeout: Option<Duration>,
    ) -> std::result::Result<HttpReply, ureq::Error> {
        let url = self.url(path);
        let mut response = match (method, body) {
            ("GET", _) => {
                let mut req = self.agent.get(&url);
                if let Some(a) = authorization {
                    req = req.header("Authorization", a);
                }
                req.config().timeout_global(timeout).build().call()?
            }
            (_, body) => {
                let mut req = self.agent.post(&url);
                if let Some(a) = authorization {
                    req = req.header("Authorization", a);
                }
                let req = req.config().timeout_global(timeout).build();
                match body {
                    Body::Empty => req.send_empty()?,
                    Body::Form(form) => req.send_form(form.iter().copied())?,
                    Body::Json(v) => req
                        .header("Content-Type", "application/json")
                        .send(v.to_string())?,
                }
            }
        };
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let body = response.body_mut().read_to_string()?;
        Ok(HttpReply {
            status,
            headers,
            body,
        })
    }

    fn call(
        &self,
        method: &str,
        path: &str,
        body: Body<'_>,
        authorization: Option<&str>,
    ) -> Result<HttpReply> {
        self.send(method, path, body, authorization, None)
            .map_err(|e| idp_err(format!("{method} {path}: {e}")))
    }

    pub fn get(&self, path: &str) -> Result<HttpReply> {
        self.call("GET", path, Body::Empty, None)
    }

    /// GET with a deadline: `Ok(None)` when the IdP did not answer in time (e.g. under [`Fault::Hang`]).
    pub fn get_within(&self, path: &str, timeout: Duration) -> Result<Option<HttpReply>> {
        match self.send("GET", path, Body::Empty, None, Some(timeout)) {
            Ok(reply) => Ok(Some(reply)),
            Err(ureq::Error::Timeout(_)) => Ok(None),
            Err(e) => Err(idp_err(format!("GET {path}: {e}"))),
        }
    }

    pub fn post_form(&self, path: &str, form: &[(&str, &str)]) -> Result<HttpReply> {
        self.call("POST", path, Body::Form(form), None)
    }

    pub fn post_json(&self, path: &str, body: &Value) -> Result<HttpReply> {
        self.call("POST", path, Body::Json(body), None)
    }

    /// A POST with client authentication as `creds` says (Basic header, assertion or client_id in the form).
    pub fn post_form_as(
        &self,
        path: &str,
        form: &[(&str, &str)],
        creds: &ClientCredentials,
    ) -> Result<HttpReply> {
        let mut fields: Vec<(&str, &str)> = form.to_vec();
        let assertion;
        let mut basic = None;
        match creds {
            ClientCredentials::Public(id) => fields.push(("client_id", id)),
            ClientCredentials::Secret { client_id, secret } => {
                basic = Some(format!("Basic {}", basic_credentials(client_id, secret)))
            }
            ClientCredentials::PrivateKeyJwt(key) => {
                assertion = key.assertion(&self.issuer)?;
                fields.push((
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                ));
                fields.push(("client_assertion", &assertion));
            }
        }
        self.call("POST", path, Body::Form(&fields), basic.as_deref())
    }

    // ---- discovery and keys ----

    pub fn discovery(&self) -> Result<Value> {
        self.get("/.well-known/openid-configuration")?.ok_json()
    }

    pub fn jwks(&self) -> Result<Value> {
        self.get("/oauth/v2/keys")?.ok_json()
    }

    /// The kids in the published JWKS.
    pub fn jwks_kids(&self) -> Result<Vec<String>> {
        let jwks = self.jwks()?;
        Ok(jwks["keys"]
            .as_array()
            .map(|keys| {
                keys.iter()
                    .filter_map(|k| k["kid"].as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default())
    }

    // ---- test API ----

    /// Approves a pending device code as `user`, as the person at the browser would.
    pub fn approve(&self, user_code: &str, user: &str) -> Result<()> {
        self.post_json(
            "/test/approve",
            &json!({"user_code": user_code, "user": user}),
        )?
        .ok_json()
        .map(|_| ())
    }

    pub fn deny(&self, user_code: &str) -> Result<()> {
        self.post_json(
            "/test/approve",
            &json!({"user_code": user_code, "deny": true}),
        )?
        .ok_json()
        .map(|_| ())
    }

    /// Pending user codes, oldest first.
    pub fn pending_user_codes(&self) -> Result<Vec<String>> {
        let list = self.get("/test/device/pending")?.ok_json()?;
        Ok(list
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|p| p["user_code"].as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Makes a new RS256 signing key current; returns its kid. The old keys stay published unless `retire_old`.
    pub fn rotate(&self, retire_old: bool) -> Result<String> {
        self.rotate_alg("RS256", retire_old)
    }

    /// As [`IdpApi::rotate`] with another algorithm (RS256, ES256, EdDSA, ...).
    pub fn rotate_alg(&self, alg: &str, retire_old: bool) -> Result<String> {
        let v = self
            .post_json(
                "/test/rotate",
                &json!({"alg": alg, "retire_old": retire_old}),
            )?
            .ok_json()?;
        v["kid"]
            .as_str()
            .map(String::from)
            .ok_or_else(|| idp_err(format!("rotate answered without kid: {v}")))
    }

    pub fn keys(&self) -> Result<Vec<KeyInfo>> {
        let v = self.get("/test/keys")?.ok_json()?;
        serde_json::from_value(v).map_err(|e| idp_err(format!("GET /test/keys: {e}")))
    }

    /// Mints a token (see the IdP README for the fields of `request`).
    pub fn mint(&self, request: &Value) -> Result<MintedToken> {
        let v = self.post_json("/test/mint", request)?.ok_json()?;
        serde_json::from_value(v).map_err(|e| idp_err(format!("POST /test/mint: {e}")))
    }

    /// Makes `paths` misbehave (all OAuth paths when empty; [`Fault::None`] with no paths lifts every fault).
    pub fn fault(&self, fault: Fault, paths: &[&str]) -> Result<()> {
        self.post_json(
            "/test/fault",
            &json!({"mode": fault.mode(), "paths": paths}),
        )?
        .ok_json()
        .map(|_| ())
    }

    pub fn stats(&self) -> Result<IdpStats> {
        let v = self.get("/test/stats")?.ok_json()?;
        serde_json::from_value(v).map_err(|e| idp_err(format!("GET /test/stats: {e}")))
    }

    pub fn reset_stats(&self) -> Result<()> {
        self.post_json("/test/stats/reset", &json!({}))?
            .ok_json()
            .map(|_| ())
    }

    /// The key file of a private_key_jwt client (generated by the IdP).
    pub fn client_key_file(&self, client_id: &str) -> Result<ClientKeyFile> {
        let v = self
            .get(&format!("/test/clients/{client_id}/key"))?
            .ok_json()?;
        serde_json::from_value(v).map_err(|e| idp_err(format!("key file of {client_id}: {e}")))
    }

    // ---- OAuth as a client ----

    /// Step 1 of the device flow for a public client.
    pub fn device_authorization(
        &self,
        client_id: &str,
        scope: &str,
    ) -> Result<DeviceAuthorization> {
        let v = self
            .post_form(
                "/oauth/v2/device_authorization",
                &[("client_id", client_id), ("scope", scope)],
            )?
            .ok_json()?;
        serde_json::from_value(v)
            .map_err(|e| idp_err(format!("device authorization response: {e}")))
    }

    /// One poll of the token endpoint with a device code.
    pub fn poll_token(&self, client_id: &str, device_code: &str) -> Result<TokenPoll> {
        let reply = self.post_form(
            "/oauth/v2/token",
            &[
                ("grant_type", GRANT_DEVICE_CODE),
                ("device_code", device_code),
                ("client_id", client_id),
            ],
        )?;
        let v = reply.json()?;
        if reply.status == 200 {
            let token =
                serde_json::from_value(v).map_err(|e| idp_err(format!("token response: {e}")))?;
            return Ok(TokenPoll::Token(token));
        }
        let error = v["error"].as_str().unwrap_or_default().to_string();
        if error == "authorization_pending" || error == "slow_down" {
            return Ok(TokenPoll::Pending(error));
        }
        Ok(TokenPoll::Failed {
            status: reply.status,
            error,
            body: reply.body,
        })
    }

    /// The whole device flow as psql runs it, with `user` approving: returns the token response.
    pub fn device_flow_token(
        &self,
        client_id: &str,
        scope: &str,
        user: &str,
    ) -> Result<TokenResponse> {
        let authz = self.device_authorization(client_id, scope)?;
        self.approve(&authz.user_code, user)?;
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match self.poll_token(client_id, &authz.device_code)? {
                TokenPoll::Token(t) => return Ok(t),
                TokenPoll::Pending(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(100))
                }
                other => {
                    return Err(idp_err(format!(
                        "device flow for {user} via {client_id} ended with {other:?}"
                    )));
                }
            }
        }
    }

    /// Credentials of a configured client as the IdP expects them (a private_key_jwt client's key file is
    /// fetched from the IdP).
    pub fn credentials(&self, client: &IdpClient) -> Result<ClientCredentials> {
        Ok(match client.auth {
            ClientAuthMethod::None => ClientCredentials::Public(client.client_id.clone()),
            ClientAuthMethod::ClientSecretBasic => ClientCredentials::Secret {
                client_id: client.client_id.clone(),
                secret: client.secret.clone().unwrap_or_default(),
            },
            ClientAuthMethod::PrivateKeyJwt => {
                ClientCredentials::PrivateKeyJwt(self.client_key_file(&client.client_id)?)
            }
        })
    }

    /// RFC 7662 introspection; the reply is returned whatever its status (401 for bad client credentials).
    pub fn introspect(&self, token: &str, creds: &ClientCredentials) -> Result<HttpReply> {
        self.post_form_as("/oauth/v2/introspect", &[("token", token)], creds)
    }

    /// RFC 7009 revocation.
    pub fn revoke(&self, token: &str, creds: &ClientCredentials) -> Result<HttpReply> {
        self.post_form_as(
            "/oauth/v2/revoke",
            &[("token", token), ("token_type_hint", "access_token")],
            creds,
        )
    }

    pub fn userinfo(&self, token: &str) -> Result<HttpReply> {
        let bearer = format!("Bearer {token}");
        self.call("GET", "/oidc/v1/userinfo", Body::Empty, Some(&bearer))
    }
}

/// RFC 6749 section 2.3.1: client id and secret are form-urlencoded, then Base64 for the Basic header.
fn basic_credentials(id: &str, secret: &str) -> String {
    use base64::Engine;
    let pair = format!("{}:{}", form_urlencode(id), form_urlencode(secret));
    base64::engine::general_purpose::STANDARD.encode(pair)
}

fn form_urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                (b as char).to_string()
            }
            b' ' => "+".to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_encode_like_rfc6749() {
        // "a b:c" -> "a+b" and "c%3A" before Base64.
        assert_eq!(basic_credentials("a b", "c:"), "YStiOmMlM0E=");
    }

    #[test]
    fn fault_modes_match_the_idp() {
        assert_eq!(Fault::Slow(Duration::from_millis(250)).mode(), "slow:250");
        assert_eq!(Fault::Status(500).mode(), "status:500");
        assert_eq!(Fault::Hang.mode(), "hang");
    }
}
