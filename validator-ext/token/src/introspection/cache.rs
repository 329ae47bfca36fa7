//! The cache of positive introspection answers: one implementation, over a fixed table of slots, so that the
//! module keeps the table in shared memory and only locks it, and the tests here are the tests of what runs.
//!
//! Entries are keyed by SHA-256 of (issuer, token): the token itself is never stored. They live until min(token
//! exp, insertion + max TTL); when the table is full, an expired slot is reused, else the least recently used one.
//! A hit is re-checked against the connection's policy and scopes, so a cached answer never lets in what a fresh
//! one would not. An answer too large for a slot is simply not cached. Clock injected.

use ring::digest;

use crate::accepted::{Accepted, Verification};
use crate::pipeline::recheck_cached;
use crate::policy::{Policy, Requirements};
use crate::refusal::Refusal;
use crate::time::UnixTime;

type Key = [u8; 32];

/// Slots of the module's shared table (a slot is about 1.3 KiB).
pub const SLOTS: usize = 512;
/// Bytes of an identity a slot holds.
pub const MAX_ID: usize = 256;
/// Bytes of the newline-joined scopes, and of the roles, a slot holds.
pub const MAX_LIST: usize = 512;

/// The key a cached answer is stored under: SHA-256 of (issuer, NUL, token); the token itself is never kept.
pub fn cache_key(issuer: &str, token: &str) -> Key {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(issuer.as_bytes());
    ctx.update(&[0]);
    ctx.update(token.as_bytes());
    let mut key = [0u8; 32];
    key.copy_from_slice(ctx.finish().as_ref());
    key
}

/// One cached answer, as plain fixed-size data (no pointers), so it can live in shared memory.
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(C)]
pub struct AnswerSlot {
    key: Key,
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

impl std::fmt::Debug for AnswerSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnswerSlot")
            .field("free", &self.is_free())
            .field("expires_at", &self.expires_at)
            .field("last_used", &self.last_used)
            .finish_non_exhaustive()
    }
}

impl AnswerSlot {
    pub const FREE: AnswerSlot = AnswerSlot {
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

    pub fn is_free(&self) -> bool {
        self.expires_at == 0
    }

    /// The answer a slot holds.
    pub fn accepted(&self) -> Accepted {
        let text = |b: &[u8], n: u16| {
            String::from_utf8_lossy(&b[..usize::from(n).min(b.len())]).into_owned()
        };
        let list = |b: &[u8], n: u16| -> Vec<String> {
            text(b, n)
                .split('\n')
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

    /// A slot holding `accepted` under `key`; `None` when it does not fit (then it is not cached).
    pub fn encode(key: Key, accepted: &Accepted, expires_at: i64, tick: u64) -> Option<AnswerSlot> {
        // A newline inside a scope or role would split it when read back: such an answer is not cached.
        if accepted
            .scopes
            .iter()
            .chain(&accepted.roles)
            .any(|s| s.contains('\n'))
        {
            return None;
        }
        let mut a = AnswerSlot::FREE;
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
    u16::try_from(src.len()).ok()
}

fn used(slots: &[AnswerSlot]) -> usize {
    slots.iter().filter(|s| !s.is_free()).count()
}

/// The cache over a table of slots and its use counter, wherever they live (shared memory in the module, under
/// its lock; the heap in [`IntrospectionCache`]).
pub struct AnswerTable<'a> {
    pub tick: &'a mut u64,
    pub slots: &'a mut [AnswerSlot],
}

impl AnswerTable<'_> {
    fn next_tick(&mut self) -> u64 {
        *self.tick += 1;
        *self.tick
    }

    /// A cached answer for `token`, re-checked against this connection's demands; `None` on a miss. An expired
    /// entry is freed.
    pub fn lookup(
        &mut self,
        token: &str,
        policy: &Policy,
        req: &Requirements,
        now: UnixTime,
    ) -> Option<Result<Accepted, Refusal>> {
        let key = cache_key(&req.issuer, token);
        let tick = self.next_tick();
        let slot = self
            .slots
            .iter_mut()
            .find(|s| !s.is_free() && s.key == key)?;
        if now.seconds() >= slot.expires_at {
            *slot = AnswerSlot::FREE;
            return None;
        }
        slot.last_used = tick;
        let accepted = slot.accepted();
        Some(recheck_cached(&accepted, policy, req, now).map(|()| accepted))
    }

    /// Remembers an accepted token of `issuer` at `now`, for at most `max_ttl_secs` and never past its own expiry,
    /// in the first `max_entries` slots.
    pub fn insert(
        &mut self,
        token: &str,
        issuer: &str,
        accepted: &Accepted,
        now: UnixTime,
        max_entries: usize,
        max_ttl_secs: u64,
    ) {
        if max_entries == 0 {
            return;
        }
        let expires_at = accepted.expires_at.min(now.plus(max_ttl_secs)).seconds();
        if expires_at <= now.seconds() {
            return;
        }
        let key = cache_key(issuer, token);
        let tick = self.next_tick();
        let Some(answer) = AnswerSlot::encode(key, accepted, expires_at, tick) else {
            return;
        };
        let limit = max_entries.min(self.slots.len());
        let slots = &mut self.slots[..limit];
        // The same token, else a free or expired slot, else the least recently used.
        let index = slots
            .iter()
            .position(|s| !s.is_free() && s.key == key)
            .or_else(|| {
                slots
                    .iter()
                    .position(|s| s.is_free() || s.expires_at <= now.seconds())
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

    /// Slots in use.
    pub fn len(&self) -> usize {
        used(self.slots)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The same cache with its table on the heap (one process; tests and tools).
#[derive(Debug)]
pub struct IntrospectionCache {
    max_entries: usize,
    max_ttl_secs: u64,
    tick: u64,
    slots: Vec<AnswerSlot>,
}

impl IntrospectionCache {
    /// A cache of at most `max_entries` (and at most [`SLOTS`]) answers, each kept at most `max_ttl_secs`.
    pub fn new(max_entries: usize, max_ttl_secs: u64) -> IntrospectionCache {
        let max_entries = max_entries.min(SLOTS);
        IntrospectionCache {
            max_entries,
            max_ttl_secs,
            tick: 0,
            slots: vec![AnswerSlot::FREE; max_entries],
        }
    }

    fn table(&mut self) -> AnswerTable<'_> {
        AnswerTable {
            tick: &mut self.tick,
            slots: &mut self.slots,
        }
    }

    pub fn lookup(
        &mut self,
        token: &str,
        policy: &Policy,
        req: &Requirements,
        now: UnixTime,
    ) -> Option<Result<Accepted, Refusal>> {
        self.table().lookup(token, policy, req, now)
    }

    pub fn insert(&mut self, token: &str, issuer: &str, accepted: &Accepted, now: UnixTime) {
        let (max_entries, max_ttl_secs) = (self.max_entries, self.max_ttl_secs);
        self.table()
            .insert(token, issuer, accepted, now, max_entries, max_ttl_secs);
    }

    pub fn len(&self) -> usize {
        used(&self.slots)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets everything (e.g. after a configuration reload).
    pub fn clear(&mut self) {
        self.slots.fill(AnswerSlot::FREE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accepted(id: &str, scopes: &[&str]) -> Accepted {
        Accepted {
            authn_id: id.into(),
            expires_at: UnixTime(1_800_000_000),
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            roles: vec!["team-a".into(), "db-user".into()],
            verification: Verification::Introspection,
        }
    }

    #[test]
    fn a_slot_reads_back_what_was_written() {
        let a = accepted("310000000000000001", &["openid", "db:connect"]);
        let slot = AnswerSlot::encode([7; 32], &a, 1_800_000_000, 3).expect("fits");
        assert_eq!(slot.accepted(), a);
        assert!(!slot.is_free());
        assert!(AnswerSlot::FREE.is_free());
    }

    #[test]
    fn what_does_not_fit_a_slot_is_not_cached() {
        let long_id = "x".repeat(MAX_ID + 1);
        assert!(AnswerSlot::encode([1; 32], &accepted(&long_id, &[]), 1, 1).is_none());
        let many: Vec<String> = (0..200).map(|i| format!("scope-{i}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        assert!(AnswerSlot::encode([1; 32], &accepted("u", &many), 1, 1).is_none());
        assert!(
            AnswerSlot::encode([1; 32], &accepted("u", &["a\nb"]), 1, 1).is_none(),
            "a scope with a newline would come back as two"
        );
        assert!(AnswerSlot::encode([1; 32], &accepted(&"y".repeat(MAX_ID), &[]), 1, 1).is_some());
    }

    #[test]
    fn a_table_in_borrowed_slots_is_the_same_cache() {
        // As the module uses it: its own counter and slots, the limit below the table's size.
        let mut tick = 0;
        let mut slots = [AnswerSlot::FREE; 4];
        let mut table = AnswerTable {
            tick: &mut tick,
            slots: &mut slots,
        };
        let now = UnixTime(1_700_000_000);
        for t in ["a", "b", "c"] {
            table.insert(t, "https://i", &accepted("u", &[]), now, 2, 600);
        }
        assert_eq!(table.len(), 2, "max_entries holds below the table's size");
        assert!(slots[2..].iter().all(AnswerSlot::is_free));
        assert!(tick > 0);
    }
}
