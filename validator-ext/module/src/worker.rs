//! The key refresher: a background worker (preloaded only) that fetches each known issuer's keys ahead of their
//! expiry, so logins find fresh keys in shared memory and never wait on the IdP in steady state.

use std::time::Duration;

use pgrator_token::KeyDecision;
use pgrx::bgworkers::{BackgroundWorker, BackgroundWorkerBuilder, SignalWakeFlags};
use pgrx::pg_sys;

use crate::{guc, keys, store};

const NAME: &str = "pgrator_validator key refresher";
/// How often the refresher looks at the cache (refreshes are planned well ahead of expiry).
const TICK: Duration = Duration::from_secs(1);

/// Registers the worker; called from _PG_init while shared_preload_libraries are processed.
pub fn register() {
    BackgroundWorkerBuilder::new(NAME)
        .set_type("pgrator_validator")
        .set_library("pgrator_validator")
        .set_function("pgrator_validator_refresher_main")
        .enable_shmem_access(None)
        .set_restart_time(Some(Duration::from_secs(5)))
        .load();
}

/// # Safety
/// Called by the postmaster as the worker's entry point.
#[pgrx::pg_guard]
#[unsafe(no_mangle)]
pub extern "C-unwind" fn pgrator_validator_refresher_main(_arg: pg_sys::Datum) {
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGHUP | SignalWakeFlags::SIGTERM);
    pgrx::log!("{NAME} started");
    while BackgroundWorker::wait_latch(Some(TICK)) {
        if BackgroundWorker::sighup_received() {
            // SAFETY: main thread of the worker, outside any transaction; re-reads postgresql.conf as backends do.
            unsafe { pg_sys::ProcessConfigFile(pg_sys::GucContext::PGC_SIGHUP) };
        }
        refresh_due();
    }
    pgrx::log!("{NAME} stopping");
}

fn refresh_due() {
    let policy = match guc::config() {
        Ok(config) => config.key_cache,
        Err(problem) => {
            pgrx::log!("{NAME}: not refreshing, bad settings: {problem}");
            return;
        }
    };
    let http = guc::http();
    for issuer in store::issuers() {
        let now = keys::now();
        let due =
            store::read(&issuer).is_some_and(|s| s.state.decide(now) == KeyDecision::UseAndRefresh);
        if !due || store::update(&issuer, |e| e.state.claim_fetch(now, &policy)) != Some(true) {
            continue;
        }
        match keys::refresh(&issuer, &http, &policy) {
            Ok(keys) => pgrx::debug1!("{NAME}: refreshed {} key(s) of {issuer}", keys.len()),
            Err(reason) => pgrx::log!("{NAME}: refreshing the keys of {issuer} failed: {reason}"),
        }
    }
}
