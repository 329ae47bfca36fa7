//! Bearer tokens of developers, verified with the same token library as the validator (one definition of a
//! valid token): the issuer's keys found through discovery and cached by the library's key-cache state (the
//! validator's policy: Cache-Control, backoff, stale keys, unknown-kid cooldown), fetched outside the lock. A
//! refusal names the rule the token broke, never the token.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pgrator_token::{
    Accepted, FetchedDocument, KeyCachePolicy, KeyCacheState, KeyDecision, KeySet, Policy,
    ProviderMetadata, Requirements, ScopeCheck, TokenKind, UnixTime, classify, discovery_url,
    validate_jwt,
};

use crate::config::IdpConfig;

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

/// The issuer's keys and the cache's bookkeeping. The policy (refresh ahead of Cache-Control, backoff after
/// failures, stale keys while the IdP is down, one unknown-kid refresh per cooldown) is the token library's
/// `KeyCacheState`, the same the validator runs in PostgreSQL; the lock is never held across a request to the IdP.
#[derive(Default)]
struct Keys {
    state: KeyCacheState,
    set: Option<Arc<KeySet>>,
    userinfo: Option<String>,
}

pub struct Verifier {
    issuer: String,
    policy: Policy,
    requirements: Requirements,
    cache_policy: KeyCachePolicy,
    agent: ureq::Agent,
    keys: Mutex<Keys>,
}

/// How long a request waits for keys another request is fetching.
const WAIT_FOR_KEYS: Duration = Duration::from_secs(5);

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
            cache_policy: KeyCachePolicy::default(),
            agent: agent(idp.ca_file.as_deref(), &idp.issuer)?,
            keys: Mutex::new(Keys::default()),
        })
    }

    fn keys(&self) -> std::sync::MutexGuard<'_, Keys> {
        self.keys.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Verifies a token (blocking: HTTP to the IdP when the keys are not cached; call from a blocking thread).
    pub fn verify(&self, token: &str) -> Result<Accepted, VerifyError> {
        if classify(token) != TokenKind::Jws {
            return Err(VerifyError::Opaque);
        }
        let now = UnixTime::from(std::time::SystemTime::now());
        let set = self.usable_keys()?;
        match validate_jwt(token, &set, &self.policy, &self.requirements, now) {
            Ok(accepted) => Ok(accepted),
            Err(refusal) if refusal.may_need_key_refresh() => {
                // An unknown key id: the IdP may have rotated; one refresh per cooldown, whoever asks.
                let claimed = self
                    .keys()
                    .state
                    .claim_unknown_kid_refresh(now, &self.cache_policy);
                if !claimed {
                    return Err(refused(refusal));
                }
                let set = self.refresh(now)?;
                validate_jwt(token, &set, &self.policy, &self.requirements, now).map_err(refused)
            }
            Err(refusal) => Err(refused(refusal)),
        }
    }

    /// Keys to validate with now, fetching first when there are none (or refreshing when one is due).
    fn usable_keys(&self) -> Result<Arc<KeySet>, VerifyError> {
        let started = Instant::now();
        loop {
            let now = UnixTime::from(std::time::SystemTime::now());
            let (decision, set) = {
                let keys = self.keys();
                (keys.state.decide(now), keys.set.clone())
            };
            match (decision, set) {
                (KeyDecision::Use, Some(set)) => return Ok(set),
                (KeyDecision::UseAndRefresh, Some(set)) => {
                    if self.keys().state.claim_fetch(now, &self.cache_policy) {
                        // Due, not urgent: a failure keeps the keys we have (and backs off).
                        return Ok(self.refresh(now).unwrap_or(set));
                    }
                    return Ok(set);
                }
                (KeyDecision::FetchFirst, _)
                    if self.keys().state.claim_fetch(now, &self.cache_policy) =>
                {
                    return self.refresh(now);
                }
                (KeyDecision::Unavailable { retry_at }, _)
                    if retry_at.seconds() > now.seconds() + WAIT_FOR_KEYS.as_secs() as i64 =>
                {
                    return Err(VerifyError::Idp(format!(
                        "no keys; the last fetches failed, next try at unix time {}",
                        retry_at.seconds()
                    )));
                }
                _ => {}
            }
            // Someone else is fetching (or a short backoff runs): wait a little for their keys.
            if started.elapsed() >= WAIT_FOR_KEYS {
                return Err(VerifyError::Idp(
                    "no keys yet: the IdP is slow to answer".into(),
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Fetches discovery and the JWKS (no lock held), then records the outcome in the cache state.
    fn refresh(&self, now: UnixTime) -> Result<Arc<KeySet>, VerifyError> {
        let fetched = self.fetch_documents();
        let mut keys = self.keys();
        match fetched {
            Ok((response, userinfo)) => {
                let doc = FetchedDocument {
                    status: response.status,
                    cache_control: response.cache_control.as_deref(),
                    expires: response.expires.as_deref(),
                    date: response.date.as_deref(),
                    body: &response.body,
                };
                let set = keys
                    .state
                    .on_fetch(now, &doc, &self.cache_policy)
                    .map_err(|e| VerifyError::Idp(format!("JWKS: {e}")))?;
                let set = Arc::new(set);
                keys.set = Some(set.clone());
                keys.userinfo = userinfo;
                Ok(set)
            }
            Err(e) => {
                keys.state.record_failure(now, &self.cache_policy);
                Err(e)
            }
        }
    }

    /// The discovery document's key set URL, then the key set with its caching headers.
    fn fetch_documents(&self) -> Result<(Fetched, Option<String>), VerifyError> {
        let discovery = self.get(&discovery_url(&self.issuer))?;
        if discovery.status != 200 {
            return Err(VerifyError::Idp(format!(
                "discovery: HTTP {}",
                discovery.status
            )));
        }
        let meta = ProviderMetadata::parse(&discovery.body, &self.issuer)
            .map_err(|e| VerifyError::Idp(format!("discovery: {e}")))?;
        Ok((self.get(&meta.jwks_uri)?, meta.userinfo_endpoint))
    }

    /// The person's verified e-mail from the IdP's userinfo endpoint (Zitadel's access tokens carry none), for
    /// people to read in role names and audit lines; None when the IdP does not say (never an error: it decides
    /// nothing). Blocking, like `verify`; call it only with a token `verify` accepted.
    pub fn email(&self, token: &str) -> Option<String> {
        let endpoint = self.keys().userinfo.clone()?;
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

    fn get(&self, url: &str) -> Result<Fetched, VerifyError> {
        let mut response = self
            .agent
            .get(url)
            .call()
            .map_err(|e| VerifyError::Idp(format!("GET {url}: {e}")))?;
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let (cache_control, expires, date) =
            (header("cache-control"), header("expires"), header("date"));
        let status = response.status().as_u16();
        let body = crate::https::body(&mut response)
            .map_err(|e| VerifyError::Idp(format!("GET {url}: {e}")))?;
        Ok(Fetched {
            status,
            cache_control,
            expires,
            date,
            body,
        })
    }
}

/// One answer of the IdP, with what the key cache reads of its headers.
struct Fetched {
    status: u16,
    cache_control: Option<String>,
    expires: Option<String>,
    date: Option<String>,
    body: Vec<u8>,
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
