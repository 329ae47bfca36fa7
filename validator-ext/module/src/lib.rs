//! pgrator_validator: the PostgreSQL 18 OAuth validator module.
//!
//! This file only wires things up; the token rules live in the pure `pgrator-token` crate, the ABI in `abi`, the
//! settings in `guc`, network access in `fetch`, the callback in `validate`, and the personal-session guard (a
//! ProcessUtility hook) in `guard`.
//!
//! This crate is the FFI edge, so `unsafe` is allowed here (and only here); every block must say why it is sound.
#![allow(unsafe_code)]
#![deny(clippy::undocumented_unsafe_blocks)]
// pgrx's shared-memory macro tests features of older PostgreSQL majors that this crate does not declare.
#![allow(unexpected_cfgs)]

pgrx::pg_module_magic!();

mod abi;
mod answers;
mod decide;
mod fetch;
mod guard;
mod guc;
mod hba;
mod introspect;
mod keys;
mod reaper;
mod shmem;
mod stats;
mod store;
mod validate;
mod worker;

/// Called when the library is loaded (at the first OAuth login of a backend, or at start when preloaded).
#[pgrx::pg_guard]
pub extern "C-unwind" fn _PG_init() {
    guc::register();
    // Personal sessions may not leave doors open that outlive their grant (see pgrator_token::session_guard).
    guard::install();
    // Preloaded: keys and counters in shared memory, refreshed by a background worker. Otherwise (loaded at the
    // first OAuth login of a backend) each backend fetches keys for itself.
    if shmem::init_if_preloading() {
        answers::init();
        worker::register();
        reaper::register();
    }
}

/// The callbacks PostgreSQL calls; must live for the whole process.
static CALLBACKS: abi::OAuthValidatorCallbacks = abi::OAuthValidatorCallbacks {
    magic: abi::PG_OAUTH_VALIDATOR_MAGIC,
    startup_cb: None,
    shutdown_cb: None,
    validate_cb: Some(validate::validate_cb),
};

/// The entry point PostgreSQL looks up in a library named in `oauth_validator_libraries`.
#[unsafe(no_mangle)]
pub extern "C" fn _PG_oauth_validator_module_init() -> *const abi::OAuthValidatorCallbacks {
    &CALLBACKS
}
