//! An issuer's keys for a login: from the cache when usable (a login never waits on the IdP then), fetched when
//! missing (bounded, interruptible), refreshed once on an unknown `kid` (at most once per cooldown).
//!
//! When the library is preloaded the cache is shared and the refresher (`worker`) keeps it fresh ahead of expiry;
//! otherwise each backend fetches for itself, which is correct but costs a fetch per login.

use std::time::{Duration, Instant, SystemTime};

use pgrator_token::key_cache::KeyCachePolicy;
use pgrator_token::{
    FetchedDocument, KeyDecision, KeySet, ProviderMetadata, UnixTime, discovery_url,
};

use crate::fetch::{self, HttpSettings};
use crate::shmem::{self, MAX_JWKS};
use crate::store;

pub fn now() -> UnixTime {
    UnixTime::from(SystemTime::now())
}

/// Keys usable for a login at `now`.
pub fn for_login(
    issuer: &str,
    http: &HttpSettings,
    policy: &KeyCachePolicy,
) -> Result<KeySet, String> {
    let started = Instant::now();
    loop {
        let now = now();
        let snapshot = store::read(issuer).unwrap_or_default();
        match snapshot.state.decide(now) {
            // The refresher (preloaded) fetches ahead of expiry; a login only reads.
            KeyDecision::Use | KeyDecision::UseAndRefresh => return parse(&snapshot.jwks),
            KeyDecision::FetchFirst => {
                let claimed = store::update(issuer, |e| e.state.claim_fetch(now, policy))
                    .ok_or_else(|| format!("no free key cache slot for issuer {issuer}"))?;
                if claimed {
                    return refresh(issuer, http, policy);
                }
            }
            KeyDecision::Unavailable { retry_at } if snapshot.state.claimed_until <= now => {
                return Err(format!(
                    "no usable keys for {issuer}: fetching them failed {} time(s); next attempt in {} s",
                    snapshot.state.failures,
                    retry_at.seconds() - now.seconds()
                ));
            }
            KeyDecision::Unavailable { .. } => {}
        }
        // Another backend is fetching: wait for it, but no longer than one fetch may take.
        if started.elapsed() > http.timeout {
            return Err(format!(
                "timed out waiting for another backend to fetch the keys of {issuer}"
            ));
        }
        fetch::sleep_interruptibly(Duration::from_millis(20));
    }
}

/// After an unknown `kid`: refetch if the cooldown allows, else `None` (the refusal stands).
pub fn after_unknown_kid(
    issuer: &str,
    http: &HttpSettings,
    policy: &KeyCachePolicy,
) -> Option<Result<KeySet, String>> {
    let now = now();
    let claimed = store::update(issuer, |e| e.state.claim_unknown_kid_refresh(now, policy))?;
    claimed.then(|| refresh(issuer, http, policy))
}

/// Fetches the JWKS (the caller holds the fetch claim) and records the result in the cache.
pub fn refresh(
    issuer: &str,
    http: &HttpSettings,
    policy: &KeyCachePolicy,
) -> Result<KeySet, String> {
    let known_uri = store::read(issuer).and_then(|s| s.jwks_uri);
    let fetched = fetch_jwks(issuer, known_uri, http);
    shmem::count_fetch(fetched.is_ok());
    let now = now();
    match fetched {
        Err(reason) => {
            store::update(issuer, |e| e.state.record_failure(now, policy));
            Err(reason)
        }
        Ok((uri, response)) => {
            let doc = FetchedDocument {
                status: response.status,
                cache_control: response.header("cache-control"),
                expires: response.header("expires"),
                date: response.header("date"),
                body: &response.body,
            };
            let outcome = store::update(issuer, |e| {
                let keys = e.state.on_fetch(now, &doc, policy);
                if keys.is_ok() {
                    e.new_jwks_uri = Some(uri.clone());
                    e.new_jwks = Some(response.body.clone());
                }
                keys
            })
            .ok_or_else(|| format!("no free key cache slot for issuer {issuer}"))?;
            let keys = outcome.map_err(|e| format!("JWKS {uri}: {e}"))?;
            for skipped in keys.skipped() {
                pgrx::log!(
                    "pgrator_validator: JWKS {uri}: skipped a key: {}",
                    skipped.reason
                );
            }
            Ok(keys)
        }
    }
}

/// The issuer's discovery document (its `issuer` must equal ours byte for byte).
pub fn discover(issuer: &str, http: &HttpSettings) -> Result<ProviderMetadata, String> {
    let url = discovery_url(issuer);
    let doc = fetch::get(&url, http)
        .map_err(|e| format!("fetching the discovery document {url}: {e}"))?;
    if doc.status != 200 {
        return Err(format!(
            "the discovery document {url} answered HTTP {}",
            doc.status
        ));
    }
    ProviderMetadata::parse(&doc.body, issuer).map_err(|e| format!("discovery document {url}: {e}"))
}

/// Discovery (unless the JWKS URI is known) and the JWKS itself.
fn fetch_jwks(
    issuer: &str,
    known_uri: Option<String>,
    http: &HttpSettings,
) -> Result<(String, fetch::HttpResponse), String> {
    let uri = match known_uri {
        Some(uri) => uri,
        None => {
            let meta = discover(issuer, http)?;
            if let Some(endpoint) = &meta.introspection_endpoint {
                store::update(issuer, |e| e.new_introspection_uri = Some(endpoint.clone()));
            }
            meta.jwks_uri
        }
    };
    let limited = HttpSettings {
        max_body: MAX_JWKS as u64,
        ..http.clone()
    };
    let response =
        fetch::get(&uri, &limited).map_err(|e| format!("fetching the JWKS {uri}: {e}"))?;
    Ok((uri, response))
}

fn parse(jwks: &[u8]) -> Result<KeySet, String> {
    KeySet::parse(jwks).map_err(|e| format!("cached JWKS: {e}"))
}
