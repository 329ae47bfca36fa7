//! SQL views of the validator's state (preloaded only): outcome counters and the key cache.
//! Installed by `CREATE EXTENSION pgrator_validator` (sql/pgrator_validator--<version>.sql).

use std::sync::atomic::Ordering;

use pgrator_token::Outcome;
use pgrx::prelude::*;

use crate::shmem::{self, COUNTERS};
use crate::{keys, store};

/// Logins by outcome since the server started (plus key fetches), all zero when not preloaded.
#[pg_extern]
fn pgrator_validator_counters() -> TableIterator<'static, (name!(name, String), name!(count, i64))>
{
    let mut rows: Vec<(String, i64)> = Vec::new();
    if shmem::preloaded() {
        let c = COUNTERS.share();
        for o in Outcome::ALL {
            rows.push((
                o.name().to_string(),
                c.by_outcome[o.index()].load(Ordering::Relaxed) as i64,
            ));
        }
        rows.push((
            "key_fetches".into(),
            c.key_fetches.load(Ordering::Relaxed) as i64,
        ));
        rows.push((
            "key_fetch_failures".into(),
            c.key_fetch_failures.load(Ordering::Relaxed) as i64,
        ));
        rows.push((
            "introspections".into(),
            c.introspections.load(Ordering::Relaxed) as i64,
        ));
    }
    TableIterator::new(rows)
}

/// The key cache, one row per issuer: how many keys, how old, when the next refresh is due.
#[allow(clippy::type_complexity)] // the row type is the SQL signature, spelled out on purpose
#[pg_extern]
fn pgrator_validator_key_cache() -> TableIterator<
    'static,
    (
        name!(issuer, String),
        name!(shared, bool),
        name!(keys, i32),
        name!(generation, i64),
        name!(age_seconds, Option<i64>),
        name!(refresh_in_seconds, i64),
        name!(fresh_for_seconds, i64),
        name!(failures, i32),
    ),
> {
    let now = keys::now().seconds();
    let rows: Vec<_> = store::issuers()
        .into_iter()
        .filter_map(|issuer| {
            let s = store::read(&issuer)?;
            let n = pgrator_token::KeySet::parse(&s.jwks)
                .map(|k| k.len() as i32)
                .unwrap_or(0);
            let st = s.state;
            Some((
                issuer,
                shmem::preloaded(),
                n,
                st.generation as i64,
                st.fetched_at.map(|t| now - t.seconds()),
                st.refresh_at.seconds() - now,
                st.fresh_until.seconds() - now,
                st.failures as i32,
            ))
        })
        .collect();
    TableIterator::new(rows)
}
