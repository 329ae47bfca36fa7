//! Positive introspection answers shared by all backends (preloaded only): the table of
//! `pgrator_token::introspection::AnswerTable` (keys, expiry, eviction, re-check, encoding: all there, tested
//! there) kept in shared memory; this file only requests the memory and takes the lock. Without preloading, every
//! opaque login introspects.

use pgrator_token::introspection::{AnswerSlot, AnswerTable, SLOTS};
use pgrator_token::{Accepted, Policy, Refusal, Requirements, UnixTime};
use pgrx::prelude::*;
use pgrx::{PGRXSharedMemory, PgLwLock, pg_shmem_init};

use crate::shmem;

#[derive(Clone, Copy)]
#[repr(C)]
pub struct AnswersShm {
    tick: u64,
    slots: [AnswerSlot; SLOTS],
}

impl Default for AnswersShm {
    fn default() -> Self {
        AnswersShm {
            tick: 0,
            slots: [AnswerSlot::FREE; SLOTS],
        }
    }
}

// SAFETY: plain-old-data without pointers, identical layout in every process of the server.
unsafe impl PGRXSharedMemory for AnswersShm {}

// SAFETY: initialized by pg_shmem_init! during shared_preload_libraries; used only when `shmem::preloaded()`.
static ANSWERS: PgLwLock<AnswersShm> = unsafe { PgLwLock::new(c"pgrator_validator_answers") };

/// Requests the table; called from `_PG_init` while shared_preload_libraries are processed.
pub fn init() {
    pg_shmem_init!(ANSWERS);
}

/// A cached answer for `token`, re-checked for this connection; `None` on a miss (or without preloading).
pub fn lookup(
    token: &str,
    policy: &Policy,
    req: &Requirements,
    now: UnixTime,
) -> Option<Result<Accepted, Refusal>> {
    if !shmem::preloaded() {
        return None;
    }
    let mut shared = ANSWERS.exclusive();
    let AnswersShm { tick, slots } = &mut *shared;
    AnswerTable { tick, slots }.lookup(token, policy, req, now)
}

/// Remembers an accepted opaque token for at most `max_ttl_secs` and never past its own expiry.
pub fn insert(
    token: &str,
    issuer: &str,
    accepted: &Accepted,
    now: UnixTime,
    max_entries: usize,
    max_ttl_secs: u64,
) {
    if !shmem::preloaded() {
        return;
    }
    let mut shared = ANSWERS.exclusive();
    let AnswersShm { tick, slots } = &mut *shared;
    AnswerTable { tick, slots }.insert(token, issuer, accepted, now, max_entries, max_ttl_secs);
}
