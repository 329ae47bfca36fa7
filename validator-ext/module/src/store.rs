//! Where an issuer's keys are kept: in shared memory when preloaded (every backend and the refresher see one
//! copy), otherwise in this backend only. Both hold the same data: the JWKS URI, the raw JWKS bytes of the last
//! good fetch, and the `KeyCacheState` that decides when to fetch.

use std::cell::RefCell;

use pgrator_token::KeyCacheState;

use crate::shmem::{self, KEY_CACHE, MAX_JWKS};

/// A copy of one issuer's entry, taken under the lock and used after releasing it.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub state: KeyCacheState,
    pub jwks_uri: Option<String>,
    pub introspection_uri: Option<String>,
    pub jwks: Vec<u8>,
}

/// This backend's entry when there is no shared memory.
struct Local {
    issuer: String,
    entry: Snapshot,
}

thread_local! {
    static LOCAL: RefCell<Option<Local>> = const { RefCell::new(None) };
}

/// The entry of `issuer`, if any.
pub fn read(issuer: &str) -> Option<Snapshot> {
    if shmem::preloaded() {
        let cache = KEY_CACHE.share();
        let slot = &cache.slots[cache.find(issuer)?];
        return Some(Snapshot {
            state: slot.state,
            jwks_uri: slot.jwks_uri(),
            introspection_uri: slot.introspection_uri(),
            jwks: slot.jwks().to_vec(),
        });
    }
    LOCAL.with(|l| {
        l.borrow()
            .as_ref()
            .filter(|l| l.issuer == issuer)
            .map(|l| l.entry.clone())
    })
}

/// Issuers with an entry (for the refresher).
pub fn issuers() -> Vec<String> {
    if !shmem::preloaded() {
        return LOCAL.with(|l| l.borrow().iter().map(|l| l.issuer.clone()).collect());
    }
    let cache = KEY_CACHE.share();
    cache
        .slots
        .iter()
        .filter(|s| !s.is_free())
        .map(|s| String::from_utf8_lossy(s.issuer()).into_owned())
        .collect()
}

/// An entry being updated: the state, and what to store when the update ends.
pub struct Entry {
    pub state: KeyCacheState,
    pub new_jwks_uri: Option<String>,
    pub new_introspection_uri: Option<String>,
    /// At most `MAX_JWKS` bytes (the fetch enforces it).
    pub new_jwks: Option<Vec<u8>>,
}

/// Runs `f` on the entry of `issuer` under the exclusive lock, creating the entry if needed. `None` when no
/// shared slot is free (more distinct issuers than slots). `f` must not block: no I/O under the lock.
pub fn update<R>(issuer: &str, f: impl FnOnce(&mut Entry) -> R) -> Option<R> {
    if shmem::preloaded() {
        let mut cache = KEY_CACHE.exclusive();
        let i = cache.find_or_assign(issuer)?;
        let slot = &mut cache.slots[i];
        let mut entry = Entry {
            state: slot.state,
            new_jwks_uri: None,
            new_introspection_uri: None,
            new_jwks: None,
        };
        let out = f(&mut entry);
        slot.state = entry.state;
        if let Some(uri) = &entry.new_jwks_uri {
            slot.set_jwks_uri(uri);
        }
        if let Some(uri) = &entry.new_introspection_uri {
            slot.set_introspection_uri(uri);
        }
        if let Some(body) = &entry.new_jwks
            && body.len() <= MAX_JWKS
        {
            slot.set_jwks(body);
        }
        return Some(out);
    }
    LOCAL.with(|l| {
        let mut l = l.borrow_mut();
        if l.as_ref().is_none_or(|l| l.issuer != issuer) {
            *l = Some(Local {
                issuer: issuer.to_string(),
                entry: Snapshot::default(),
            });
        }
        let local = l.as_mut()?;
        let mut entry = Entry {
            state: local.entry.state,
            new_jwks_uri: None,
            new_introspection_uri: None,
            new_jwks: None,
        };
        let out = f(&mut entry);
        local.entry.state = entry.state;
        if entry.new_jwks_uri.is_some() {
            local.entry.jwks_uri = entry.new_jwks_uri;
        }
        if entry.new_introspection_uri.is_some() {
            local.entry.introspection_uri = entry.new_introspection_uri;
        }
        if let Some(body) = entry.new_jwks {
            local.entry.jwks = body;
        }
        Some(out)
    })
}
