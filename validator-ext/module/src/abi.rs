//! The PostgreSQL 18 OAuth validator ABI (`libpq/oauth.h`), which pgrx does not bind.
//!
//! Sizes and offsets are asserted here at compile time and, against the real header, in `csrc/shim.c`.

use std::ffi::{c_char, c_int, c_void};
use std::mem::{offset_of, size_of};

pub const PG_OAUTH_VALIDATOR_MAGIC: u32 = 0x2025_0220;

#[repr(C)]
pub struct ValidatorModuleState {
    pub sversion: c_int,
    pub private_data: *mut c_void,
}

#[repr(C)]
pub struct ValidatorModuleResult {
    pub authorized: bool,
    /// palloc'd; the server pfrees it.
    pub authn_id: *mut c_char,
}

pub type StartupCb = unsafe extern "C-unwind" fn(state: *mut ValidatorModuleState);
pub type ShutdownCb = unsafe extern "C-unwind" fn(state: *mut ValidatorModuleState);
pub type ValidateCb = unsafe extern "C-unwind" fn(
    state: *const ValidatorModuleState,
    token: *const c_char,
    role: *const c_char,
    result: *mut ValidatorModuleResult,
) -> bool;

#[repr(C)]
pub struct OAuthValidatorCallbacks {
    pub magic: u32,
    pub startup_cb: Option<StartupCb>,
    pub shutdown_cb: Option<ShutdownCb>,
    pub validate_cb: Option<ValidateCb>,
}

// The same numbers are passed to csrc/shim.c by build.rs, where the C compiler checks them against oauth.h.
const _: () = assert!(size_of::<ValidatorModuleState>() == 16);
const _: () = assert!(size_of::<ValidatorModuleResult>() == 16);
const _: () = assert!(offset_of!(ValidatorModuleResult, authn_id) == 8);
const _: () = assert!(size_of::<OAuthValidatorCallbacks>() == 32);
const _: () = assert!(offset_of!(OAuthValidatorCallbacks, validate_cb) == 24);

unsafe extern "C" {
    /// The `issuer` of the matched HBA line (csrc/shim.c), or NULL.
    pub fn pgrator_hba_oauth_issuer() -> *const c_char;
    /// The `scope` of the matched HBA line (csrc/shim.c), or NULL.
    pub fn pgrator_hba_oauth_scope() -> *const c_char;
    /// The line number of the matched HBA line (csrc/shim.c), or 0.
    pub fn pgrator_hba_line_number() -> c_int;
}
