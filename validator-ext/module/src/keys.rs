//! Finding the issuer's keys and deciding about a token with them.
//!
//! This is the per-process path: discovery and JWKS are fetched by this backend (bounded, interruptible) and kept
//! for the rest of its life. One login is one backend, so each login pays the fetch here.

use std::cell::RefCell;
use std::time::SystemTime;

use pgrator_token::{KeySet, Policy, ProviderMetadata, Requirements, UnixTime, discovery_url, validate_jwt};

use crate::fetch::{self, HttpSettings};
use crate::guc;
use crate::hba::OAuthHba;
use crate::validate::Decision;

/// Keys fetched by this backend, per issuer.
struct Cached {
    issuer: String,
    keys: KeySet,
}

thread_local! {
    static CACHE: RefCell<Option<Cached>> = const { RefCell::new(None) };
}

pub fn validate(token: &[u8], line: &OAuthHba) -> Decision {
    let Ok(token) = std::str::from_utf8(token) else {
        return refuse("malformed", "the token is not valid UTF-8".into());
    };
    let audiences = guc::audience();
    if audiences.is_empty() {
        return refuse("config_error", "pgrator_validator.audience is not set; every token is refused".into());
    }
    let mut policy = Policy::new(audiences);
    policy.identity_claim = guc::identity_claim();
    let requirements = Requirements::from_hba(&line.issuer, &line.scope);
    let http = guc::http();

    let keys = match cached_or_fetch(&line.issuer, &http, false) {
        Ok(keys) => keys,
        Err(reason) => return refuse("idp_error", reason),
    };
    let now = UnixTime::from(SystemTime::now());
    let first = validate_jwt(token, &keys, &policy, &requirements, now);
    let outcome = match first {
        Err(r) if r.may_need_key_refresh() => match cached_or_fetch(&line.issuer, &http, true) {
            Ok(fresh) => validate_jwt(token, &fresh, &policy, &requirements, now),
            Err(reason) => return refuse("idp_error", reason),
        },
        other => other,
    };
    match outcome {
        Ok(accepted) => Decision::Accept { authn_id: accepted.authn_id },
        Err(refusal) => Decision::Refuse { code: refusal.code(), reason: refusal.to_string(), authn_id: None },
    }
}

fn refuse(code: &'static str, reason: String) -> Decision {
    Decision::Refuse { code, reason, authn_id: None }
}

/// The issuer's key set: from this backend's cache unless `refresh` or absent.
fn cached_or_fetch(issuer: &str, http: &HttpSettings, refresh: bool) -> Result<KeySet, String> {
    if !refresh {
        let hit = CACHE.with(|c| c.borrow().as_ref().filter(|c| c.issuer == issuer).map(|c| c.keys.clone()));
        if let Some(keys) = hit {
            return Ok(keys);
        }
    }
    let keys = fetch_keys(issuer, http)?;
    CACHE.with(|c| *c.borrow_mut() = Some(Cached { issuer: issuer.to_string(), keys: keys.clone() }));
    Ok(keys)
}

fn fetch_keys(issuer: &str, http: &HttpSettings) -> Result<KeySet, String> {
    let url = discovery_url(issuer);
    let doc = fetch::get(&url, http).map_err(|e| format!("fetching the discovery document {url}: {e}"))?;
    if doc.status != 200 {
        return Err(format!("the discovery document {url} answered HTTP {}", doc.status));
    }
    let meta = ProviderMetadata::parse(&doc.body, issuer).map_err(|e| format!("discovery document {url}: {e}"))?;
    let jwks_uri = meta.jwks_uri;
    let jwks = fetch::get(&jwks_uri, http).map_err(|e| format!("fetching the JWKS {jwks_uri}: {e}"))?;
    if jwks.status != 200 {
        return Err(format!("the JWKS {jwks_uri} answered HTTP {}", jwks.status));
    }
    let keys = KeySet::parse(&jwks.body).map_err(|e| format!("JWKS {jwks_uri}: {e}"))?;
    for skipped in keys.skipped() {
        pgrx::log!("pgrator_validator: JWKS {jwks_uri}: skipped a key: {}", skipped.reason);
    }
    Ok(keys)
}
