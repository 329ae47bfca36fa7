//! The session reaper: a background worker (preloaded only) that ends the sessions of personal roles whose grants
//! have all ended (`pgrator_validator.grants`), within a second or two of the end, whether or not the operator
//! is running. New logins to such a role are already refused by `validate_cb`; this closes the open ones.
//!
//! It connects to the `postgres` database to read pg_stat_activity; it is a worker of its own so that a failure
//! there never stops the key refresher.

use std::time::Duration;

use pgrx::bgworkers::{BackgroundWorker, BackgroundWorkerBuilder, SignalWakeFlags};
use pgrx::{Spi, pg_sys};

use pgrator_token::{PERSONAL_ROLE_PREFIX, SessionsToEnd};

use crate::{guc, keys};

const NAME: &str = "pgrator_validator session reaper";
const TICK: Duration = Duration::from_secs(1);

/// Registers the worker; called from _PG_init while shared_preload_libraries are processed.
pub fn register() {
    BackgroundWorkerBuilder::new(NAME)
        .set_type("pgrator_validator")
        .set_library("pgrator_validator")
        .set_function("pgrator_validator_reaper_main")
        .enable_spi_access()
        .set_restart_time(Some(Duration::from_secs(5)))
        .load();
}

/// # Safety
/// Called by the postmaster as the worker's entry point.
#[pgrx::pg_guard]
#[unsafe(no_mangle)]
pub extern "C-unwind" fn pgrator_validator_reaper_main(_arg: pg_sys::Datum) {
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGHUP | SignalWakeFlags::SIGTERM);
    BackgroundWorker::connect_worker_to_spi(Some("postgres"), None);
    pgrx::log!("{NAME} started");
    while BackgroundWorker::wait_latch(Some(TICK)) {
        if BackgroundWorker::sighup_received() {
            // SAFETY: main thread of the worker, outside any transaction; re-reads postgresql.conf as backends do.
            unsafe { pg_sys::ProcessConfigFile(pg_sys::GucContext::PGC_SIGHUP) };
        }
        let (ended, all_personal) = match guc::grants().sessions_to_end(keys::now()) {
            SessionsToEnd::Roles(roles) if roles.is_empty() => continue,
            SessionsToEnd::Roles(roles) => (roles, false),
            SessionsToEnd::AllPersonal => (Vec::new(), true),
        };
        // Fail closed: while the list is unreadable, no personal session is shown to be within a grant.
        let result = BackgroundWorker::transaction(|| {
            Spi::get_one_with_args::<i64>(
                "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity \
                 WHERE (usename = ANY($1) OR ($2 AND starts_with(usename, $3))) AND pid <> pg_backend_pid()",
                &[
                    ended.clone().into(),
                    all_personal.into(),
                    PERSONAL_ROLE_PREFIX.into(),
                ],
            )
        });
        match result {
            Ok(Some(n)) if n > 0 && all_personal => pgrx::warning!(
                "{NAME}: ended {n} personal session(s): pgrator_validator.grants cannot be read"
            ),
            Ok(Some(n)) if n > 0 => pgrx::log!(
                "{NAME}: ended {n} session(s) of role(s) whose personal grant is over: {}",
                ended.join(", ")
            ),
            Ok(_) => {}
            Err(error) => pgrx::log!("{NAME}: could not end sessions: {error}"),
        }
    }
    pgrx::log!("{NAME} stopping");
}
