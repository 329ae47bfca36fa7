//! State shared by every backend when the library is in `shared_preload_libraries`: each issuer's key set (the
//! raw JWKS bytes of the last good fetch plus the pure cache state machine of `pgrator-token`) and the outcome
//! counters. Without preloading there is no shared memory and each backend keeps its own copy (see `store`).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use pgrator_token::Outcome;
use pgrator_token::key_cache::KeyCacheState;
use pgrx::prelude::*;
use pgrx::{PGRXSharedMemory, PgLwLock, pg_shmem_init};

/// Issuers one server can cache keys for (one per distinct `issuer=` in pg_hba.conf).
pub const ISSUER_SLOTS: usize = 4;
pub const MAX_URL: usize = 512;
/// Largest JWKS kept; `pgrator-token` refuses larger documents anyway.
pub const MAX_JWKS: usize = 64 * 1024;

/// One issuer's keys. Plain bytes and numbers only: it lives in shared memory.
#[derive(Clone, Copy)]
#[repr(C)]
pub struct IssuerSlot {
    pub issuer_len: u16,
    pub issuer: [u8; MAX_URL],
    pub jwks_uri_len: u16,
    pub jwks_uri: [u8; MAX_URL],
    pub introspection_uri_len: u16,
    pub introspection_uri: [u8; MAX_URL],
    pub state: KeyCacheState,
    pub jwks_len: u32,
    pub jwks: [u8; MAX_JWKS],
}

impl IssuerSlot {
    pub fn issuer(&self) -> &[u8] {
        &self.issuer[..usize::from(self.issuer_len).min(MAX_URL)]
    }

    pub fn jwks_uri(&self) -> Option<String> {
        let uri = &self.jwks_uri[..usize::from(self.jwks_uri_len).min(MAX_URL)];
        (!uri.is_empty()).then(|| String::from_utf8_lossy(uri).into_owned())
    }

    pub fn introspection_uri(&self) -> Option<String> {
        let uri = &self.introspection_uri[..usize::from(self.introspection_uri_len).min(MAX_URL)];
        (!uri.is_empty()).then(|| String::from_utf8_lossy(uri).into_owned())
    }

    pub fn set_introspection_uri(&mut self, uri: &str) {
        copy_into(
            &mut self.introspection_uri,
            &mut self.introspection_uri_len,
            uri.as_bytes(),
        );
    }

    pub fn jwks(&self) -> &[u8] {
        &self.jwks[..(self.jwks_len as usize).min(MAX_JWKS)]
    }

    pub fn is_free(&self) -> bool {
        self.issuer_len == 0
    }

    /// Claims a free slot for `issuer` (callers checked it fits).
    pub fn assign(&mut self, issuer: &str) {
        *self = IssuerSlot::empty();
        copy_into(&mut self.issuer, &mut self.issuer_len, issuer.as_bytes());
    }

    pub fn set_jwks_uri(&mut self, uri: &str) {
        copy_into(&mut self.jwks_uri, &mut self.jwks_uri_len, uri.as_bytes());
    }

    pub fn set_jwks(&mut self, body: &[u8]) -> bool {
        if body.len() > MAX_JWKS {
            return false;
        }
        self.jwks[..body.len()].copy_from_slice(body);
        self.jwks_len = body.len() as u32;
        true
    }

    fn empty() -> IssuerSlot {
        IssuerSlot {
            issuer_len: 0,
            issuer: [0; MAX_URL],
            jwks_uri_len: 0,
            jwks_uri: [0; MAX_URL],
            introspection_uri_len: 0,
            introspection_uri: [0; MAX_URL],
            state: KeyCacheState::new(),
            jwks_len: 0,
            jwks: [0; MAX_JWKS],
        }
    }
}

fn copy_into<const N: usize>(dst: &mut [u8; N], len: &mut u16, src: &[u8]) {
    let n = src.len().min(N);
    dst[..n].copy_from_slice(&src[..n]);
    *len = n as u16;
}

/// Every issuer's slot.
#[derive(Clone, Copy)]
#[repr(C)]
pub struct KeyCacheShm {
    pub slots: [IssuerSlot; ISSUER_SLOTS],
}

impl Default for KeyCacheShm {
    fn default() -> Self {
        KeyCacheShm {
            slots: [IssuerSlot::empty(); ISSUER_SLOTS],
        }
    }
}

impl KeyCacheShm {
    pub fn find(&self, issuer: &str) -> Option<usize> {
        self.slots
            .iter()
            .position(|s| !s.is_free() && s.issuer() == issuer.as_bytes())
    }

    /// The slot of `issuer`, claiming a free one if needed; `None` when all are taken or the issuer is too long.
    pub fn find_or_assign(&mut self, issuer: &str) -> Option<usize> {
        if let Some(i) = self.find(issuer) {
            return Some(i);
        }
        if issuer.len() > MAX_URL {
            return None;
        }
        let i = self.slots.iter().position(IssuerSlot::is_free)?;
        self.slots[i].assign(issuer);
        Some(i)
    }
}

// SAFETY: plain-old-data without pointers, valid when zeroed, identical in every process (same binary).
unsafe impl PGRXSharedMemory for KeyCacheShm {}

/// Outcome counters; updated with atomics under a shared lock (the lock only guards initialization).
#[repr(C)]
pub struct Counters {
    pub by_outcome: [AtomicU64; Outcome::COUNT],
    pub key_fetches: AtomicU64,
    pub key_fetch_failures: AtomicU64,
    pub introspections: AtomicU64,
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            by_outcome: std::array::from_fn(|_| AtomicU64::new(0)),
            key_fetches: AtomicU64::new(0),
            key_fetch_failures: AtomicU64::new(0),
            introspections: AtomicU64::new(0),
        }
    }
}

impl Clone for Counters {
    fn clone(&self) -> Self {
        Counters {
            by_outcome: std::array::from_fn(|i| {
                AtomicU64::new(self.by_outcome[i].load(Ordering::Relaxed))
            }),
            key_fetches: AtomicU64::new(self.key_fetches.load(Ordering::Relaxed)),
            key_fetch_failures: AtomicU64::new(self.key_fetch_failures.load(Ordering::Relaxed)),
            introspections: AtomicU64::new(self.introspections.load(Ordering::Relaxed)),
        }
    }
}

// SAFETY: atomics only, valid when zeroed, no pointers.
unsafe impl PGRXSharedMemory for Counters {}

// SAFETY: the lock is initialized by pg_shmem_init! in _PG_init during shared_preload_libraries, and only used
// when `preloaded()` says so; the names are unique to this library.
pub static KEY_CACHE: PgLwLock<KeyCacheShm> = unsafe { PgLwLock::new(c"pgrator_validator_keys") };
// SAFETY: as above.
pub static COUNTERS: PgLwLock<Counters> = unsafe { PgLwLock::new(c"pgrator_validator_counters") };

/// Set in the postmaster (and inherited by every backend) when loaded through shared_preload_libraries.
static PRELOADED: AtomicBool = AtomicBool::new(false);

pub fn preloaded() -> bool {
    PRELOADED.load(Ordering::Relaxed)
}

/// Requests the shared memory; only during shared_preload_libraries processing.
pub fn init_if_preloading() -> bool {
    // SAFETY: reading a postmaster global flag from _PG_init on the main thread.
    let preloading = unsafe { pgrx::pg_sys::process_shared_preload_libraries_in_progress };
    if preloading {
        pg_shmem_init!(KEY_CACHE);
        pg_shmem_init!(COUNTERS);
        PRELOADED.store(true, Ordering::Relaxed);
    }
    preloading
}

/// Counts an outcome (no-op without shared memory).
pub fn count(outcome: Outcome) {
    if preloaded() {
        COUNTERS.share().by_outcome[outcome.index()].fetch_add(1, Ordering::Relaxed);
    }
}

pub fn count_introspection() {
    if preloaded() {
        COUNTERS
            .share()
            .introspections
            .fetch_add(1, Ordering::Relaxed);
    }
}

pub fn count_fetch(ok: bool) {
    if preloaded() {
        let c = COUNTERS.share();
        c.key_fetches.fetch_add(1, Ordering::Relaxed);
        if !ok {
            c.key_fetch_failures.fetch_add(1, Ordering::Relaxed);
        }
    }
}
