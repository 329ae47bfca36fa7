//! The test world's OpenID Provider: `tests/world/idp` (Zitadel's own OIDC library, configured like Zitadel) on
//! a free loopback port, over HTTPS with a throw-away CA.
//!
//! [`Idp::start`] writes the configuration, starts the binary recorded as `PGRATOR_IDP_BIN` and waits until it
//! answers. [`IdpApi`] (reachable from an [`Idp`] through `Deref`, and cloneable into `'static` closures such as
//! psql's device prompt callback) speaks to it: the test API (approve a device code, rotate keys, mint tokens,
//! inject faults, count requests) and the OAuth endpoints as a client would (device flow, introspection,
//! revocation, userinfo). See `tests/world/idp/README.md` for the IdP itself.

use std::collections::BTreeMap;
use std::ops::Deref;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::env::WorldEnv;
use crate::error::{Result, WorldError};
use crate::ports::free_port;
use crate::process::{Service, ServiceSpec};
use crate::psql::DevicePrompt;
use crate::tls::TestCa;

/// The Zitadel scope that asks for the project roles claim.
pub const SCOPE_PROJECT_ROLES: &str = "urn:zitadel:iam:org:projects:roles";
/// The Zitadel claim with the user's project roles: `{"<role>": {"<org id>": "<org domain>"}}`.
pub const CLAIM_PROJECT_ROLES: &str = "urn:zitadel:iam:org:project:roles";
/// RFC 8628's grant type, as the token endpoint expects it.
pub const GRANT_DEVICE_CODE: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// The scope that puts `project_id` into the audience of a token.
pub fn scope_project_audience(project_id: &str) -> String {
    format!("urn:zitadel:iam:org:project:id:{project_id}:aud")
}

// ---------------------------------------------------------------------------------------------------------------
// Configuration (serialized to the JSON the IdP reads; field names are the IdP's)
// ---------------------------------------------------------------------------------------------------------------

/// What the IdP knows: organisation, project, users and applications.
#[derive(Debug, Clone, Serialize)]
pub struct IdpConfig {
    pub org: IdpOrg,
    pub project: IdpProject,
    pub access_token_lifetime_seconds: u64,
    pub device: IdpDevice,
    pub users: Vec<IdpUser>,
    pub clients: Vec<IdpClient>,
}

#[derive(Debug, Clone, Serialize)]
pub struct IdpOrg {
    pub id: String,
    pub domain: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct IdpProject {
    pub id: String,
    pub name: String,
}

/// Device flow settings: the IdP advertises `interval` (1 s, so a psql login takes about a second).
#[derive(Debug, Clone, Serialize)]
pub struct IdpDevice {
    pub lifetime_seconds: u64,
    pub interval_seconds: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct IdpUser {
    pub username: String,
    pub sub: String,
    pub email: String,
    pub roles: Vec<String>,
}

impl IdpUser {
    pub fn new(username: &str, sub: &str, roles: &[&str]) -> IdpUser {
        IdpUser {
            username: username.to_string(),
            sub: sub.to_string(),
            email: format!("{username}@pgrator.test"),
            roles: roles.iter().map(|r| r.to_string()).collect(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientType {
    Public,
    Confidential,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuthMethod {
    None,
    ClientSecretBasic,
    PrivateKeyJwt,
}

/// Zitadel issues opaque access tokens unless an application is set to JWT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AccessTokenType {
    Jwt,
    Opaque,
}

/// One application. A `private_key_jwt` client gets its key pair from the IdP, as in Zitadel; fetch the key
/// file with [`IdpApi::client_key_file`].
#[derive(Debug, Clone, Serialize)]
pub struct IdpClient {
    pub client_id: String,
    #[serde(rename = "type")]
    pub client_type: ClientType,
    pub auth: ClientAuthMethod,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    pub access_token_type: AccessTokenType,
    /// None: the IdP's default (device code and authorization code for public clients, none for confidential).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grant_types: Option<Vec<String>>,
    /// None: the configured project.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project_id: Option<String>,
    /// Zitadel's "user roles inside access token": the roles claim without the roles scope.
    pub access_token_role_assertion: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_token_lifetime_seconds: Option<u64>,
}

impl IdpClient {
    /// A native app such as psql: no secret, device flow.
    pub fn public(client_id: &str, tokens: AccessTokenType) -> IdpClient {
        IdpClient {
            client_id: client_id.to_string(),
            client_type: ClientType::Public,
            auth: ClientAuthMethod::None,
            secret: None,
            access_token_type: tokens,
            grant_types: None,
            project_id: None,
            access_token_role_assertion: false,
            access_token_lifetime_seconds: None,
        }
    }

    /// An API app that introspects with HTTP Basic client authentication.
    pub fn secret_basic(client_id: &str, secret: &str) -> IdpClient {
        IdpClient {
            client_type: ClientType::Confidential,
            auth: ClientAuthMethod::ClientSecretBasic,
            secret: Some(secret.to_string()),
            ..IdpClient::public(client_id, AccessTokenType::Opaque)
        }
    }

    /// An API app that introspects with a private key JWT (its key is generated by the IdP).
    pub fn private_key_jwt(client_id: &str) -> IdpClient {
        IdpClient {
            client_type: ClientType::Confidential,
            auth: ClientAuthMethod::PrivateKeyJwt,
            ..IdpClient::public(client_id, AccessTokenType::Opaque)
        }
    }
}

/// Names of the default world.
pub mod defaults {
    pub const ORG_ID: &str = "300000000000000001";
    pub const ORG_DOMAIN: &str = "pgrator.test";
    pub const PROJECT_ID: &str = "300000000000000010";
    pub const ALICE: &str = "alice";
    pub const ALICE_SUB: &str = "310000000000000001";
    pub const BOB: &str = "bob";
    pub const BOB_SUB: &str = "310000000000000002";
    /// psql's client: JWT access tokens.
    pub const PSQL: &str = "psql";
    /// psql's client with Zitadel's default opaque access tokens.
    pub const PSQL_OPAQUE: &str = "psql-opaque";
    /// The validator's API app, client_secret_basic.
    pub const VALIDATOR: &str = "pgrator-validator";
    pub const VALIDATOR_SECRET: &str = "pgrator-validator-secret";
    /// The validator's API app, private_key_jwt.
    pub const VALIDATOR_JWT: &str = "pgrator-validator-jwt";
}

impl Default for IdpConfig {
    /// alice (role team-a) and bob (no roles); clients psql (JWT), psql-opaque, pgrator-validator (secret) and
    /// pgrator-validator-jwt (private key JWT).
    fn default() -> IdpConfig {
        use defaults::*;
        IdpConfig {
            org: IdpOrg {
                id: ORG_ID.into(),
                domain: ORG_DOMAIN.into(),
            },
            project: IdpProject {
                id: PROJECT_ID.into(),
                name: "pgrator".into(),
            },
            access_token_lifetime_seconds: 12 * 3600,
            device: IdpDevice {
                lifetime_seconds: 300,
                interval_seconds: 1,
            },
            users: vec![
                IdpUser::new(ALICE, ALICE_SUB, &["team-a"]),
                IdpUser::new(BOB, BOB_SUB, &[]),
            ],
            clients: vec![
                IdpClient::public(PSQL, AccessTokenType::Jwt),
                IdpClient::public(PSQL_OPAQUE, AccessTokenType::Opaque),
                IdpClient::secret_basic(VALIDATOR, VALIDATOR_SECRET),
                IdpClient::private_key_jwt(VALIDATOR_JWT),
            ],
        }
    }
}

impl IdpConfig {
    pub fn user(&self, username: &str) -> Option<&IdpUser> {
        self.users.iter().find(|u| u.username == username)
    }

    pub fn client(&self, client_id: &str) -> Option<&IdpClient> {
        self.clients.iter().find(|c| c.client_id == client_id)
    }
}

// ---------------------------------------------------------------------------------------------------------------
// The running IdP
// ---------------------------------------------------------------------------------------------------------------

/// A running IdP. Dropping it stops the process (logs are kept when a test panics).
pub struct Idp {
    service: Service,
    api: IdpApi,
    config: IdpConfig,
    ca: TestCa,
    spec: ServiceSpec,
    _dir: tempfile::TempDir,
}

impl Deref for Idp {
    type Target = IdpApi;
    fn deref(&self) -> &IdpApi {
        &self.api
    }
}

impl Idp {
    /// Starts the IdP with `config`, a fresh test CA and a state directory (so [`Idp::restart`] keeps keys and
    /// tokens), and waits until it serves.
    pub fn start(config: IdpConfig) -> Result<Idp> {
        let bin = WorldEnv::load()?.require("PGRATOR_IDP_BIN")?;
        let ca = TestCa::new()?;
        let cert = ca.server_cert("idp", &[])?;
        let dir = tempfile::Builder::new()
            .prefix("pgrator-idp-")
            .tempdir()
            .map_err(|e| WorldError::io("creating the IdP directory", e))?;
        let config_path = dir.path().join("idp-config.json");
        let text = serde_json::to_vec_pretty(&config)
            .map_err(|e| idp_err(format!("serializing the config: {e}")))?;
        std::fs::write(&config_path, text)
            .map_err(|e| WorldError::io(format!("writing {}", config_path.display()), e))?;
        let port = free_port();
        let issuer = format!("https://127.0.0.1:{port}");
        let spec = ServiceSpec::new("idp", bin)
            .arg("--addr")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--issuer")
            .arg(&issuer)
            .arg("--tls-cert")
            .arg(&cert.cert)
            .arg("--tls-key")
            .arg(&cert.key)
            .arg("--config")
            .arg(&config_path)
            .arg("--state-dir")
            .arg(dir.path().join("state"));
        let api = IdpApi::new(issuer, ca.ca_pem())?;
        let service = start_and_wait(&spec, &api)?;
        Ok(Idp {
            service,
            api,
            config,
            ca,
            spec,
            _dir: dir,
        })
    }

    /// Stops and starts the process again on the same port with the same state: keys, issued tokens and
    /// generated client keys survive, pending device codes and faults do not.
    pub fn restart(&mut self) -> Result<()> {
        self.service.stop();
        self.service = start_and_wait(&self.spec, &self.api)?;
        Ok(())
    }

    /// Stops the process (for tests of an IdP that is gone); [`Idp::restart`] brings it back.
    pub fn stop(&mut self) {
        self.service.stop();
    }

    pub fn api(&self) -> &IdpApi {
        &self.api
    }

    pub fn config(&self) -> &IdpConfig {
        &self.config
    }

    /// The CA that signed the IdP's certificate (for trust bundles, see [`TestCa::system_bundle_with_ca`]).
    pub fn ca(&self) -> &TestCa {
        &self.ca
    }

    pub fn ca_pem_path(&self) -> PathBuf {
        self.ca.ca_path()
    }

    pub fn service(&self) -> &Service {
        &self.service
    }

    /// The IdP's log (one JSON line per request, never a full token).
    pub fn logs(&self) -> String {
        self.service.logs()
    }

    /// A callback for [`crate::psql::Psql::oauth_sql`] that approves the code psql printed as `user`.
    pub fn approve_as(
        &self,
        user: &str,
    ) -> impl FnOnce(&DevicePrompt) -> std::result::Result<(), String> + Send + 'static {
        let api = self.api.clone();
        let user = user.to_string();
        move |prompt: &DevicePrompt| {
            api.approve(&prompt.user_code, &user)
                .map_err(|e| e.to_string())
        }
    }
}

fn start_and_wait(spec: &ServiceSpec, api: &IdpApi) -> Result<Service> {
    let mut service = Service::start(spec.clone())?;
    let ready_line = format!("READY {}", api.issuer());
    let log_path = service.log_path().to_path_buf();
    service.wait_ready(Duration::from_secs(30), || {
        let printed = std::fs::read(&log_path)
            .map(|b| String::from_utf8_lossy(&b).contains(&ready_line))
            .unwrap_or(false);
        printed && matches!(api.get_within("/healthz", Duration::from_secs(2)), Ok(Some(r)) if r.status == 200)
    })?;
    Ok(service)
}

fn idp_err(message: impl Into<String>) -> WorldError {
    WorldError::Service {
        service: "idp".into(),
        message: message.into(),
    }
}

// ---------------------------------------------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------------------------------------------

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
    fn new(issuer: String, ca_pem: &str) -> Result<IdpApi> {
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
    fn config_serializes_to_the_idp_field_names() {
        let v = serde_json::to_value(IdpConfig::default()).expect("serializes");
        assert_eq!(v["clients"][0]["type"], "public");
        assert_eq!(v["clients"][0]["auth"], "none");
        assert_eq!(v["clients"][0]["access_token_type"], "jwt");
        assert_eq!(v["clients"][2]["auth"], "client_secret_basic");
        assert_eq!(v["clients"][3]["auth"], "private_key_jwt");
        assert!(v["clients"][3].get("secret").is_none());
        assert_eq!(v["device"]["interval_seconds"], 1);
        assert_eq!(v["users"][0]["roles"][0], "team-a");
    }

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
