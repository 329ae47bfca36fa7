//! Bearer tokens of developers, verified with the same token library as the validator (one definition of a
//! valid token): the issuer's keys found through discovery, cached, refetched on an unknown key at most every
//! ten seconds. A refusal names the rule the token broke, never the token.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use pgrator_token::{
    Accepted, KeySet, Policy, ProviderMetadata, Requirements, ScopeCheck, TokenKind, UnixTime,
    classify, discovery_url, validate_jwt,
};

use crate::config::IdpConfig;

const KEYS_FRESH_FOR: Duration = Duration::from_secs(300);
const REFETCH_AT_MOST_EVERY: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("the token was refused: {reason} [{code}]")]
    Refused { code: &'static str, reason: String },
    #[error(
        "only JWT access tokens are accepted here (the IdP application must issue JWT access tokens)"
    )]
    Opaque,
    #[error("the IdP could not be reached to check the token: {0}")]
    Idp(String),
    #[error("the IdP CA file {path}: {reason}")]
    CaFile { path: String, reason: String },
}

struct Keys {
    set: KeySet,
    fetched: Instant,
    userinfo: Option<String>,
}

pub struct Verifier {
    issuer: String,
    policy: Policy,
    requirements: Requirements,
    agent: ureq::Agent,
    keys: Mutex<Option<Keys>>,
}

impl Verifier {
    pub fn new(idp: &IdpConfig) -> Result<Verifier, VerifyError> {
        let mut policy = Policy::new(vec![idp.audience.clone()]);
        // Tokens of other applications of the project carry the project id in `aud` too.
        policy.allowed_clients = idp.allowed_clients();
        // Team membership is a project role granted in the platform's organisation, not in any.
        policy.role_organization = idp.organization_id.clone();
        // Zitadel's JWT access tokens carry no scope claim; issuer, audience and lifetime are what count here.
        policy.scope_check = ScopeCheck::Off;
        Ok(Verifier {
            issuer: idp.issuer.clone(),
            policy,
            requirements: Requirements::from_hba(&idp.issuer, &idp.scopes.join(" ")),
            agent: agent(idp.ca_file.as_deref(), &idp.issuer)?,
            keys: Mutex::new(None),
        })
    }

    /// Verifies a token (blocking: HTTP to the IdP when the keys are not cached; call from a blocking thread).
    pub fn verify(&self, token: &str) -> Result<Accepted, VerifyError> {
        if classify(token) != TokenKind::Jws {
            return Err(VerifyError::Opaque);
        }
        let now = UnixTime::from(std::time::SystemTime::now());
        let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        if keys
            .as_ref()
            .is_none_or(|k| k.fetched.elapsed() > KEYS_FRESH_FOR)
        {
            *keys = Some(self.fetch_keys()?);
        }
        let set = &keys
            .as_ref()
            .ok_or_else(|| VerifyError::Idp("no keys".into()))?
            .set;
        match validate_jwt(token, set, &self.policy, &self.requirements, now) {
            Ok(accepted) => Ok(accepted),
            Err(refusal)
                if refusal.may_need_key_refresh()
                    && keys
                        .as_ref()
                        .is_some_and(|k| k.fetched.elapsed() > REFETCH_AT_MOST_EVERY) =>
            {
                *keys = Some(self.fetch_keys()?);
                let set = &keys
                    .as_ref()
                    .ok_or_else(|| VerifyError::Idp("no keys".into()))?
                    .set;
                validate_jwt(token, set, &self.policy, &self.requirements, now).map_err(refused)
            }
            Err(refusal) => Err(refused(refusal)),
        }
    }

    fn fetch_keys(&self) -> Result<Keys, VerifyError> {
        let discovery = self.get(&discovery_url(&self.issuer))?;
        let meta = ProviderMetadata::parse(&discovery, &self.issuer)
            .map_err(|e| VerifyError::Idp(format!("discovery: {e}")))?;
        let jwks = self.get(&meta.jwks_uri)?;
        let set = KeySet::parse(&jwks).map_err(|e| VerifyError::Idp(format!("JWKS: {e}")))?;
        Ok(Keys {
            set,
            fetched: Instant::now(),
            userinfo: meta.userinfo_endpoint,
        })
    }

    /// The person's verified e-mail from the IdP's userinfo endpoint (Zitadel's access tokens carry none), for
    /// people to read in role names and audit lines; None when the IdP does not say (never an error: it decides
    /// nothing). Blocking, like `verify`; call it only with a token `verify` accepted.
    pub fn email(&self, token: &str) -> Option<String> {
        let endpoint = self
            .keys
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .and_then(|k| k.userinfo.clone())?;
        let mut response = self
            .agent
            .get(&endpoint)
            .header("Authorization", &format!("Bearer {token}"))
            .call()
            .ok()?;
        if response.status() != 200 {
            return None;
        }
        let body = response
            .body_mut()
            .with_config()
            .limit(64 * 1024)
            .read_to_vec()
            .ok()?;
        let info: serde_json::Value = serde_json::from_slice(&body).ok()?;
        let email = info.get("email")?.as_str()?;
        let verified = info
            .get("email_verified")
            .and_then(serde_json::Value::as_bool)
            == Some(true);
        (verified
            && email.len() <= 254
            && email.contains('@')
            && !email.chars().any(|c| c.is_control() || c.is_whitespace()))
        .then(|| email.to_owned())
    }

    fn get(&self, url: &str) -> Result<Vec<u8>, VerifyError> {
        let mut response = self
            .agent
            .get(url)
            .call()
            .map_err(|e| VerifyError::Idp(format!("GET {url}: {e}")))?;
        if response.status() != 200 {
            return Err(VerifyError::Idp(format!(
                "GET {url}: HTTP {}",
                response.status()
            )));
        }
        response
            .body_mut()
            .with_config()
            .limit(1 << 20)
            .read_to_vec()
            .map_err(|e| VerifyError::Idp(format!("GET {url}: {e}")))
    }
}

fn refused(refusal: pgrator_token::Refusal) -> VerifyError {
    VerifyError::Refused {
        code: refusal.code(),
        reason: refusal.to_string(),
    }
}

/// HTTPS only, unless the issuer itself is the loopback `http://127.0.0.1:` the configuration allows for tests.
fn agent(ca_file: Option<&str>, issuer: &str) -> Result<ureq::Agent, VerifyError> {
    let insecure = issuer.starts_with("http://127.0.0.1:");
    crate::https::agent(
        ca_file,
        Duration::from_secs(5),
        "pgrator-access-api",
        insecure,
    )
    .map_err(|reason| VerifyError::CaFile {
        path: ca_file.unwrap_or("the system bundle").to_owned(),
        reason,
    })
}
