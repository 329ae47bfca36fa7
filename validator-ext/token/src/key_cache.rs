//! The key-set cache as a pure state machine: data plus transition functions, clock injected.
//!
//! The PostgreSQL module keeps one [`KeyCacheState`] per issuer in shared memory next to the raw JWKS bytes of
//! the last good fetch (and a per-process copy as fallback); every backend drives the same transitions:
//!
//! 1. [`KeyCacheState::decide`] says whether the keys at hand may be used and whether to fetch first, refresh
//!    after, or give up for now (IdP down, backoff running, no usable keys).
//! 2. A backend that wants to fetch calls [`KeyCacheState::claim_fetch`]; only one wins per claim window, so a
//!    fleet of backends does not stampede the IdP. The fetch itself happens outside any lock.
//! 3. The result goes to [`KeyCacheState::on_fetch`], which parses the JWKS and moves the timestamps; a failed
//!    fetch keeps the old keys (served stale up to `max_stale_secs` past their freshness) and backs off.
//! 4. A token with an unknown `kid` may trigger one refresh per `unknown_kid_cooldown_secs`
//!    ([`KeyCacheState::claim_unknown_kid_refresh`]), so garbage kids cannot make us hammer the IdP.
//!
//! Shared form of the keys: the raw JWKS bytes, not a binary key format. One parser (the fuzzed one) decides
//! what a key is, nothing needs versioning across module upgrades, and re-parsing costs tens of microseconds
//! once per backend per key rotation (see the `jwks_parse` benchmark).

use crate::http_freshness;
use crate::jwks::{JwksError, KeySet};
use crate::time::UnixTime;

/// Tunables of the key cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyCachePolicy {
    /// Refresh when this share of the freshness lifetime has passed.
    pub refresh_percent: u8,
    /// Bounds of the refresh interval (whatever the IdP's caching headers say).
    pub min_refresh_secs: u64,
    pub max_refresh_secs: u64,
    /// Freshness assumed when the response has no caching headers.
    pub default_max_age_secs: u64,
    /// At most one unknown-kid refresh per this many seconds.
    pub unknown_kid_cooldown_secs: u64,
    /// How long past their freshness keys are still served while fetches fail.
    pub max_stale_secs: u64,
    /// Backoff after failed fetches: doubles from min to max.
    pub retry_min_secs: u64,
    pub retry_max_secs: u64,
    /// How long one backend's claim on a fetch holds off the others (longer than the HTTP timeout).
    pub fetch_claim_secs: u64,
}

impl Default for KeyCachePolicy {
    fn default() -> Self {
        KeyCachePolicy {
            refresh_percent: 80,
            min_refresh_secs: 30,
            max_refresh_secs: 3600,
            default_max_age_secs: 300,
            unknown_kid_cooldown_secs: 30,
            max_stale_secs: 3600,
            retry_min_secs: 2,
            retry_max_secs: 60,
            fetch_claim_secs: 15,
        }
    }
}

/// Cache bookkeeping for one issuer's key set. Plain `Copy` data without pointers, so it can live in shared
/// memory; all times are unix seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KeyCacheState {
    /// Bumped on every successful fetch; 0 = never fetched. Backends re-parse their copy when it changes.
    pub generation: u64,
    pub fetched_at: Option<UnixTime>,
    /// Keys are fresh until then.
    pub fresh_until: UnixTime,
    /// A refresh is due from then on.
    pub refresh_at: UnixTime,
    /// Keys may be served (while fetches fail) until then.
    pub stale_until: UnixTime,
    /// Consecutive failed fetches.
    pub failures: u32,
    /// No new attempt before then (backoff after failures).
    pub retry_at: UnixTime,
    /// A fetch is in flight (claimed by some backend) until then.
    pub claimed_until: UnixTime,
    pub last_unknown_kid_refresh: Option<UnixTime>,
}

/// How usable the cached keys are now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Usability {
    Missing,
    Fresh,
    /// Past freshness, inside the stale window.
    Stale,
}

/// What to do before validating a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyDecision {
    /// Use the cached keys.
    Use,
    /// Use the cached keys; a refresh is due and no one is fetching: claim it and refresh.
    UseAndRefresh,
    /// No usable keys: claim a fetch and wait for it.
    FetchFirst,
    /// No usable keys and no fetch allowed now (backoff, or another backend is fetching): refuse with
    /// `idp_error` (or wait briefly and decide again when another backend is fetching).
    Unavailable { retry_at: UnixTime },
}

/// What the HTTP layer got for the JWKS URL.
#[derive(Debug, Clone, Copy)]
pub struct FetchedDocument<'a> {
    pub status: u16,
    pub cache_control: Option<&'a str>,
    pub expires: Option<&'a str>,
    pub date: Option<&'a str>,
    pub body: &'a [u8],
}

/// Why a fetch result was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyFetchError {
    #[error("JWKS fetch answered HTTP {0}")]
    Status(u16),
    #[error(transparent)]
    Document(#[from] JwksError),
    #[error("JWKS has no usable key ({skipped} skipped)")]
    NoUsableKey { skipped: usize },
    #[error("JWKS fetch failed: {0}")]
    Transport(String),
}

impl KeyCacheState {
    /// An empty cache (no keys yet).
    pub fn new() -> KeyCacheState {
        KeyCacheState::default()
    }

    pub fn usability(&self, now: UnixTime) -> Usability {
        if self.generation == 0 || now >= self.stale_until {
            Usability::Missing
        } else if now < self.fresh_until {
            Usability::Fresh
        } else {
            Usability::Stale
        }
    }

    /// Whether a fetch could start now (no backoff running, no fetch in flight).
    pub fn may_fetch(&self, now: UnixTime) -> bool {
        now >= self.retry_at && now >= self.claimed_until
    }

    /// What to do before validating at `now`.
    pub fn decide(&self, now: UnixTime) -> KeyDecision {
        match self.usability(now) {
            Usability::Fresh | Usability::Stale => {
                let due = now >= self.refresh_at;
                if due && self.may_fetch(now) {
                    KeyDecision::UseAndRefresh
                } else {
                    KeyDecision::Use
                }
            }
            Usability::Missing if self.may_fetch(now) => KeyDecision::FetchFirst,
            Usability::Missing => KeyDecision::Unavailable {
                retry_at: self.retry_at.max(self.claimed_until),
            },
        }
    }

    /// Claims the next fetch for the caller; `false` when someone else holds it or backoff runs.
    pub fn claim_fetch(&mut self, now: UnixTime, policy: &KeyCachePolicy) -> bool {
        if !self.may_fetch(now) {
            return false;
        }
        self.claimed_until = now.plus(policy.fetch_claim_secs.max(1));
        true
    }

    /// Whether an unknown `kid` may trigger a refresh now; if so, claims the fetch and starts the cooldown.
    pub fn claim_unknown_kid_refresh(&mut self, now: UnixTime, policy: &KeyCachePolicy) -> bool {
        let cooled = self
            .last_unknown_kid_refresh
            .is_none_or(|t| now >= t.plus(policy.unknown_kid_cooldown_secs));
        if !cooled || !self.claim_fetch(now, policy) {
            return false;
        }
        self.last_unknown_kid_refresh = Some(now);
        true
    }

    /// Takes a fetch result: on success returns the parsed keys (store `doc.body` as the shared raw JWKS);
    /// on failure keeps the old keys and schedules a retry with backoff.
    pub fn on_fetch(
        &mut self,
        now: UnixTime,
        doc: &FetchedDocument<'_>,
        policy: &KeyCachePolicy,
    ) -> Result<KeySet, KeyFetchError> {
        let parsed = if doc.status == 200 {
            KeySet::parse(doc.body)
                .map_err(KeyFetchError::from)
                .and_then(|set| {
                    if set.is_empty() {
                        Err(KeyFetchError::NoUsableKey {
                            skipped: set.skipped().len(),
                        })
                    } else {
                        Ok(set)
                    }
                })
        } else {
            Err(KeyFetchError::Status(doc.status))
        };
        match parsed {
            Ok(set) => {
                let max_age =
                    http_freshness::max_age(doc.cache_control, doc.expires, doc.date, now);
                self.record_success(now, max_age, policy);
                Ok(set)
            }
            Err(e) => {
                self.record_failure(now, policy);
                Err(e)
            }
        }
    }

    /// A good key set arrived at `now`, fresh for `max_age` seconds per its headers.
    pub fn record_success(&mut self, now: UnixTime, max_age: Option<u64>, policy: &KeyCachePolicy) {
        let max_age = max_age.unwrap_or(policy.default_max_age_secs);
        let ahead = max_age.saturating_mul(u64::from(policy.refresh_percent.min(100))) / 100;
        let interval = ahead.clamp(
            policy.min_refresh_secs,
            policy.max_refresh_secs.max(policy.min_refresh_secs),
        );
        // Never call keys expired before the next planned refresh, even for max-age=0.
        let fresh_for = max_age.max(interval);
        self.generation = self.generation.wrapping_add(1).max(1);
        self.fetched_at = Some(now);
        self.refresh_at = now.plus(interval);
        self.fresh_until = now.plus(fresh_for);
        self.stale_until = self.fresh_until.plus(policy.max_stale_secs);
        self.failures = 0;
        self.retry_at = now;
        self.claimed_until = now;
    }

    /// A fetch failed at `now` (transport error, bad status or unusable document).
    pub fn record_failure(&mut self, now: UnixTime, policy: &KeyCachePolicy) {
        self.failures = self.failures.saturating_add(1);
        let shift = (self.failures - 1).min(32);
        let backoff = policy
            .retry_min_secs
            .max(1)
            .saturating_mul(1u64 << shift)
            .min(policy.retry_max_secs.max(1));
        self.retry_at = now.plus(backoff);
        self.claimed_until = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: UnixTime = UnixTime(1_700_000_000);

    fn policy() -> KeyCachePolicy {
        KeyCachePolicy::default()
    }

    fn jwks() -> String {
        format!(
            r#"{{"keys":[{{"kty":"OKP","crv":"Ed25519","kid":"k","x":"{}"}}]}}"#,
            crate::base64url::encode(&[3u8; 32])
        )
    }

    fn ok_doc<'a>(body: &'a str, cc: Option<&'a str>) -> FetchedDocument<'a> {
        FetchedDocument {
            status: 200,
            cache_control: cc,
            expires: None,
            date: None,
            body: body.as_bytes(),
        }
    }

    #[test]
    fn empty_cache_fetches_first_then_uses() {
        let p = policy();
        let mut s = KeyCacheState::new();
        assert_eq!(s.usability(T0), Usability::Missing);
        assert_eq!(s.decide(T0), KeyDecision::FetchFirst);
        assert!(s.claim_fetch(T0, &p));
        assert!(!s.claim_fetch(T0, &p), "one fetch at a time");
        assert_eq!(
            s.decide(T0),
            KeyDecision::Unavailable {
                retry_at: T0.plus(p.fetch_claim_secs)
            }
        );
        let body = jwks();
        let set = s
            .on_fetch(T0, &ok_doc(&body, Some("max-age=300")), &p)
            .expect("good fetch");
        assert_eq!(set.len(), 1);
        assert_eq!(s.generation, 1);
        assert_eq!(s.decide(T0), KeyDecision::Use);
        assert!(s.claim_fetch(T0, &p), "claim released after the fetch");
    }

    #[test]
    fn refresh_ahead_at_80_percent_of_max_age() {
        let p = policy();
        let mut s = KeyCacheState::new();
        s.record_success(T0, Some(300), &p);
        assert_eq!(s.refresh_at, T0.plus(240));
        assert_eq!(s.fresh_until, T0.plus(300));
        assert_eq!(s.stale_until, T0.plus(300 + 3600));
        assert_eq!(s.decide(T0.plus(239)), KeyDecision::Use);
        assert_eq!(s.decide(T0.plus(240)), KeyDecision::UseAndRefresh);
        assert_eq!(s.usability(T0.plus(299)), Usability::Fresh);
        assert_eq!(s.usability(T0.plus(300)), Usability::Stale);
    }

    #[test]
    fn refresh_interval_is_clamped() {
        let p = policy();
        let mut s = KeyCacheState::new();
        s.record_success(T0, Some(0), &p);
        assert_eq!(
            s.refresh_at,
            T0.plus(p.min_refresh_secs),
            "no-cache still waits the minimum"
        );
        assert_eq!(s.fresh_until, T0.plus(p.min_refresh_secs));
        s.record_success(T0, Some(86_400 * 7), &p);
        assert_eq!(
            s.refresh_at,
            T0.plus(p.max_refresh_secs),
            "a week is capped"
        );
        assert_eq!(s.fresh_until, T0.plus(86_400 * 7));
        s.record_success(T0, None, &p);
        assert_eq!(s.refresh_at, T0.plus(240), "default max-age 300");
    }

    #[test]
    fn failures_keep_old_keys_stale_then_drop_them() {
        let p = policy();
        let mut s = KeyCacheState::new();
        s.record_success(T0, Some(300), &p);
        let t = T0.plus(300);
        assert!(s.claim_fetch(t, &p));
        let e = s.on_fetch(
            t,
            &FetchedDocument {
                status: 503,
                cache_control: None,
                expires: None,
                date: None,
                body: b"",
            },
            &p,
        );
        assert_eq!(e, Err(KeyFetchError::Status(503)));
        assert_eq!(s.generation, 1, "old keys kept");
        assert_eq!(s.usability(t), Usability::Stale);
        assert_eq!(s.decide(t), KeyDecision::Use, "backoff: no refresh yet");
        assert_eq!(
            s.decide(t.plus(p.retry_min_secs)),
            KeyDecision::UseAndRefresh
        );
        // Past the stale window the keys are gone.
        let end = T0.plus(300 + p.max_stale_secs);
        assert_eq!(s.usability(end.minus(1)), Usability::Stale);
        assert_eq!(s.usability(end), Usability::Missing);
        assert_eq!(s.decide(end), KeyDecision::FetchFirst);
    }

    #[test]
    fn backoff_doubles_and_is_bounded() {
        let p = policy();
        let mut s = KeyCacheState::new();
        let mut waits = Vec::new();
        for i in 0..10 {
            let now = T0.plus(i * 1000);
            s.record_failure(now, &p);
            waits.push(s.retry_at.since(now));
            assert_eq!(
                s.decide(now),
                KeyDecision::Unavailable {
                    retry_at: s.retry_at
                }
            );
        }
        assert_eq!(waits, vec![2, 4, 8, 16, 32, 60, 60, 60, 60, 60]);
        s.record_success(T0.plus(20_000), None, &p);
        assert_eq!(s.failures, 0);
    }

    #[test]
    fn broken_documents_count_as_failures() {
        let p = policy();
        let mut s = KeyCacheState::new();
        assert!(matches!(
            s.on_fetch(T0, &ok_doc("not json", None), &p),
            Err(KeyFetchError::Document(_))
        ));
        assert_eq!(s.failures, 1);
        let no_usable = r#"{"keys":[{"kty":"oct","k":"AA"}]}"#;
        assert_eq!(
            s.on_fetch(T0, &ok_doc(no_usable, None), &p),
            Err(KeyFetchError::NoUsableKey { skipped: 1 })
        );
        assert_eq!(s.failures, 2);
        assert_eq!(s.generation, 0);
    }

    #[test]
    fn unknown_kid_refresh_is_rate_limited() {
        let p = policy();
        let mut s = KeyCacheState::new();
        s.record_success(T0, Some(300), &p);
        assert!(s.claim_unknown_kid_refresh(T0.plus(1), &p));
        let body = jwks();
        s.on_fetch(T0.plus(1), &ok_doc(&body, None), &p)
            .expect("fetched");
        assert!(!s.claim_unknown_kid_refresh(T0.plus(2), &p), "cooldown");
        assert!(
            !s.claim_unknown_kid_refresh(T0.plus(30), &p),
            "cooldown boundary is exclusive"
        );
        assert!(s.claim_unknown_kid_refresh(T0.plus(31), &p));
        // That refresh is in flight: no second fetch, from any trigger, until it reports or its claim lapses.
        assert!(!s.claim_fetch(T0.plus(40), &p));
        assert_eq!(
            s.decide(T0.plus(280)),
            KeyDecision::UseAndRefresh,
            "claim lapsed, refresh due"
        );
    }

    #[test]
    fn unknown_kid_refresh_respects_backoff_and_claims() {
        let p = policy();
        let mut s = KeyCacheState::new();
        s.record_success(T0, Some(300), &p);
        s.record_failure(T0.plus(10), &p);
        assert!(!s.claim_unknown_kid_refresh(T0.plus(10), &p), "backoff");
        assert_eq!(
            s.last_unknown_kid_refresh, None,
            "a refused claim does not start the cooldown"
        );
        assert!(s.claim_fetch(T0.plus(12), &p));
        assert!(
            !s.claim_unknown_kid_refresh(T0.plus(13), &p),
            "someone is fetching"
        );
    }

    #[test]
    fn expired_claims_are_taken_over() {
        let p = policy();
        let mut s = KeyCacheState::new();
        assert!(s.claim_fetch(T0, &p));
        // The claimant died without reporting; after the claim window another backend may fetch.
        assert!(!s.claim_fetch(T0.plus(p.fetch_claim_secs - 1), &p));
        assert!(s.claim_fetch(T0.plus(p.fetch_claim_secs), &p));
    }

    #[test]
    fn generation_changes_on_each_success() {
        let p = policy();
        let mut s = KeyCacheState::new();
        s.record_success(T0, None, &p);
        s.record_success(T0.plus(5), None, &p);
        assert_eq!(s.generation, 2);
        assert_eq!(s.fetched_at, Some(T0.plus(5)));
    }
}
