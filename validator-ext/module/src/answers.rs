//! Positive introspection answers shared by all backends (preloaded only): a fixed table in shared memory,
//! keyed by SHA-256 of (issuer, token) — never the token — kept until min(token exp, now + max TTL), the least
//! recently used entry evicted when full. A hit is re-checked against the connection's policy and scopes, so a
//! cached answer never lets in what a fresh one would not. Without preloading, every opaque login introspects.

use pgrator_token::introspection::cache_key;
use pgrator_token::pipeline::recheck_cached;
use pgrator_token::{Accepted, Policy, Refusal, Requirements, UnixTime, Verification};
use pgrx::prelude::*;
use pgrx::{PGRXSharedMemory, PgLwLock, pg_shmem_init};

use crate::shmem;

pub const SLOTS: usize = 512;
const MAX_ID: usize = 256;
const MAX_LIST: usize = 512;

#[derive(Clone, Copy)]
#[repr(C)]
struct Answer {
    key: [u8; 32],
    /// 0 = free.
    expires_at: i64,
    last_used: u64,
    token_exp: i64,
    authn_id_len: u16,
    authn_id: [u8; MAX_ID],
    scopes_len: u16,
    scopes: [u8; MAX_LIST],
    roles_len: u16,
    roles: [u8; MAX_LIST],
}

impl Answer {
    const FREE: Answer = Answer {
        key: [0; 32],
        expires_at: 0,
        last_used: 0,
        token_exp: 0,
        authn_id_len: 0,
        authn_id: [0; MAX_ID],
        scopes_len: 0,
        scopes: [0; MAX_LIST],
        roles_len: 0,
        roles: [0; MAX_LIST],
    };

    fn accepted(&self) -> Accepted {
        let text = |b: &[u8], n: u16| {
            String::from_utf8_lossy(&b[..usize::from(n).min(b.len())]).into_owned()
        };
        let list = |b: &[u8], n: u16| -> Vec<String> {
            let t = text(b, n);
            t.split('\n')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        };
        Accepted {
            authn_id: text(&self.authn_id, self.authn_id_len),
            expires_at: UnixTime(self.token_exp),
            scopes: list(&self.scopes, self.scopes_len),
            roles: list(&self.roles, self.roles_len),
            verification: Verification::Introspection,
        }
    }

    /// `None` when the answer does not fit a slot (then it is simply not cached).
    fn from_accepted(
        key: [u8; 32],
        accepted: &Accepted,
        expires_at: i64,
        tick: u64,
    ) -> Option<Answer> {
        let mut a = Answer::FREE;
        a.key = key;
        a.expires_at = expires_at;
        a.last_used = tick;
        a.token_exp = accepted.expires_at.seconds();
        a.authn_id_len = put(&mut a.authn_id, accepted.authn_id.as_bytes())?;
        a.scopes_len = put(&mut a.scopes, accepted.scopes.join("\n").as_bytes())?;
        a.roles_len = put(&mut a.roles, accepted.roles.join("\n").as_bytes())?;
        Some(a)
    }
}

fn put<const N: usize>(dst: &mut [u8; N], src: &[u8]) -> Option<u16> {
    if src.len() > N {
        return None;
    }
    dst[..src.len()].copy_from_slice(src);
    Some(src.len() as u16)
}

#[derive(Clone, Copy)]
#[repr(C)]
pub struct AnswersShm {
    tick: u64,
    slots: [Answer; SLOTS],
}

impl Default for AnswersShm {
    fn default() -> Self {
        AnswersShm {
            tick: 0,
            slots: [Answer::FREE; SLOTS],
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
    let key = cache_key(&req.issuer, token);
    let accepted = {
        let mut table = ANSWERS.exclusive();
        table.tick += 1;
        let tick = table.tick;
        let slot = table
            .slots
            .iter_mut()
            .find(|s| s.expires_at != 0 && s.key == key)?;
        if now.seconds() >= slot.expires_at {
            *slot = Answer::FREE;
            return None;
        }
        slot.last_used = tick;
        slot.accepted()
    };
    Some(recheck_cached(&accepted, policy, req, now).map(|()| accepted))
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
    if !shmem::preloaded() || max_entries == 0 {
        return;
    }
    let expires_at = accepted.expires_at.min(now.plus(max_ttl_secs)).seconds();
    if expires_at <= now.seconds() {
        return;
    }
    let key = cache_key(issuer, token);
    let mut table = ANSWERS.exclusive();
    table.tick += 1;
    let tick = table.tick;
    let Some(answer) = Answer::from_accepted(key, accepted, expires_at, tick) else {
        return;
    };
    let limit = max_entries.min(SLOTS);
    let slots = &mut table.slots[..limit];
    // The same token, else a free or expired slot, else the least recently used.
    let index = slots
        .iter()
        .position(|s| s.expires_at != 0 && s.key == key)
        .or_else(|| {
            slots
                .iter()
                .position(|s| s.expires_at == 0 || s.expires_at <= now.seconds())
        })
        .or_else(|| {
            slots
                .iter()
                .enumerate()
                .min_by_key(|(_, s)| s.last_used)
                .map(|(i, _)| i)
        });
    if let Some(i) = index {
        slots[i] = answer;
    }
}
