//! A bounded cache of positive introspection answers, keyed by SHA-256 of (issuer, token): the token itself is
//! never stored. Entries live until min(token exp, insertion + max TTL); the least recently used entry is
//! evicted at the hard entry limit. Clock injected.

use std::collections::{BTreeMap, HashMap};

use ring::digest;

use crate::accepted::Accepted;
use crate::pipeline::recheck_cached;
use crate::policy::{Policy, Requirements};
use crate::refusal::Refusal;
use crate::time::UnixTime;

type Key = [u8; 32];

#[derive(Debug)]
struct Entry {
    accepted: Accepted,
    expires: UnixTime,
    last_used: u64,
}

/// The key a cached answer is stored under: SHA-256 of (issuer, NUL, token); the token itself is never kept.
/// The module's shared-memory cache keys its entries the same way.
pub fn cache_key(issuer: &str, token: &str) -> Key {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(issuer.as_bytes());
    ctx.update(&[0]);
    ctx.update(token.as_bytes());
    let mut key = [0u8; 32];
    key.copy_from_slice(ctx.finish().as_ref());
    key
}

/// Cache of accepted opaque tokens.
#[derive(Debug)]
pub struct IntrospectionCache {
    max_entries: usize,
    max_ttl_secs: u64,
    entries: HashMap<Key, Entry>,
    /// last_used tick -> key, for LRU eviction.
    recency: BTreeMap<u64, Key>,
    tick: u64,
}

impl IntrospectionCache {
    /// A cache of at most `max_entries` answers, each kept at most `max_ttl_secs`.
    pub fn new(max_entries: usize, max_ttl_secs: u64) -> IntrospectionCache {
        IntrospectionCache {
            max_entries,
            max_ttl_secs,
            entries: HashMap::new(),
            recency: BTreeMap::new(),
            tick: 0,
        }
    }

    fn key(issuer: &str, token: &str) -> Key {
        cache_key(issuer, token)
    }

    fn next_tick(&mut self) -> u64 {
        self.tick += 1;
        self.tick
    }

    /// A cached answer for `token`, re-checked against this connection's demands; `None` on a miss.
    pub fn lookup(
        &mut self,
        token: &str,
        policy: &Policy,
        req: &Requirements,
        now: UnixTime,
    ) -> Option<Result<Accepted, Refusal>> {
        let key = Self::key(&req.issuer, token);
        let expires = self.entries.get(&key)?.expires;
        if now >= expires {
            self.remove(&key);
            return None;
        }
        let tick = self.next_tick();
        let entry = self.entries.get_mut(&key)?;
        self.recency.remove(&entry.last_used);
        entry.last_used = tick;
        self.recency.insert(tick, key);
        let accepted = entry.accepted.clone();
        Some(recheck_cached(&accepted, policy, req, now).map(|()| accepted))
    }

    /// Remembers an accepted token of `issuer` at `now`.
    pub fn insert(&mut self, token: &str, issuer: &str, accepted: &Accepted, now: UnixTime) {
        if self.max_entries == 0 {
            return;
        }
        let expires = accepted.expires_at.min(now.plus(self.max_ttl_secs));
        if expires <= now {
            return;
        }
        let key = Self::key(issuer, token);
        self.remove(&key);
        if self.entries.len() >= self.max_entries {
            self.purge_expired(now);
        }
        while self.entries.len() >= self.max_entries {
            let Some((_, oldest)) = self.recency.pop_first() else {
                break;
            };
            self.entries.remove(&oldest);
        }
        let tick = self.next_tick();
        self.recency.insert(tick, key);
        self.entries.insert(
            key,
            Entry {
                accepted: accepted.clone(),
                expires,
                last_used: tick,
            },
        );
    }

    /// Drops every entry that has expired at `now`.
    pub fn purge_expired(&mut self, now: UnixTime) {
        let dead: Vec<Key> = self
            .entries
            .iter()
            .filter(|(_, e)| now >= e.expires)
            .map(|(k, _)| *k)
            .collect();
        for k in dead {
            self.remove(&k);
        }
    }

    fn remove(&mut self, key: &Key) {
        if let Some(e) = self.entries.remove(key) {
            self.recency.remove(&e.last_used);
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Forgets everything (e.g. after a configuration reload).
    pub fn clear(&mut self) {
        self.entries.clear();
        self.recency.clear();
    }
}
