//! `validate_cb`: the callback PostgreSQL calls with a bearer token. It never raises an error for a bad token and
//! never lets a panic reach PostgreSQL: every outcome is a refusal with a log line that explains it (without the
//! token), except an interrupt (terminate, authentication_timeout), which PostgreSQL handles as usual.

use std::ffi::{CStr, CString, c_char};
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};

use pgrx::pg_sys;
use pgrx::pg_sys::panic::CaughtError;

use crate::abi::{ValidatorModuleResult, ValidatorModuleState};
use crate::decide::{Decision, decide, within_grants};
use crate::{hba, shmem};
use pgrator_token::Outcome;

/// # Safety
/// Called by PostgreSQL with valid pointers: `token` and `role` NUL-terminated, `result` writable.
#[pgrx::pg_guard]
pub unsafe extern "C-unwind" fn validate_cb(
    _state: *const ValidatorModuleState,
    token: *const c_char,
    role: *const c_char,
    result: *mut ValidatorModuleResult,
) -> bool {
    if result.is_null() {
        return false;
    }
    // SAFETY: PostgreSQL passes a writable result and NUL-terminated token and role that outlive this call.
    let (result, token, role) = unsafe {
        (
            &mut *result,
            if token.is_null() {
                &[][..]
            } else {
                CStr::from_ptr(token).to_bytes()
            },
            if role.is_null() {
                String::new()
            } else {
                CStr::from_ptr(role).to_string_lossy().into_owned()
            },
        )
    };
    result.authorized = false;
    result.authn_id = std::ptr::null_mut();

    let started = std::time::Instant::now();
    let decision = match catch_unwind(AssertUnwindSafe(|| decide_for_connection(token, &role))) {
        Ok(decision) => decision,
        Err(payload) => {
            // An error raised by PostgreSQL itself (e.g. FATAL on pg_terminate_backend while we waited): let
            // PostgreSQL handle it as it would anywhere else.
            if payload
                .downcast_ref::<CaughtError>()
                .is_some_and(|e| !matches!(e, CaughtError::RustPanic { .. }))
            {
                resume_unwind(payload);
            }
            Decision::refuse(
                Outcome::InternalError,
                format!(
                    "internal error in the validator: {}",
                    panic_message(&*payload)
                ),
            )
        }
    };

    shmem::count(decision.outcome());
    // For benchmarks (log_min_messages = debug1): the time spent deciding, in microseconds.
    pgrx::debug1!(
        "pgrator_validator: decided in {} us [{}]",
        started.elapsed().as_micros(),
        decision.outcome().name()
    );
    match decision {
        Decision::Accept { authn_id } => {
            result.authn_id = palloc_str(&authn_id);
            result.authorized = !result.authn_id.is_null();
            pgrx::debug1!(
                "pgrator_validator: accepted token for identity \"{authn_id}\" (role \"{role}\")"
            );
        }
        Decision::Refuse { outcome, reason } => {
            pgrx::log!(
                "pgrator_validator: refused token for role \"{role}\" (pg_hba.conf line {}): {reason} [{}]",
                hba::current().map(|l| l.line).unwrap_or(0),
                outcome.name()
            );
        }
    }
    true
}

fn decide_for_connection(token: &[u8], role: &str) -> Decision {
    match hba::current() {
        Some(line) => within_grants(role, decide(token, &line)),
        None => Decision::refuse(
            Outcome::InternalError,
            "no oauth HBA line is in effect for this connection",
        ),
    }
}

/// Copies `s` into memory PostgreSQL owns (it pfrees authn_id). `None`-like null on an interior NUL.
fn palloc_str(s: &str) -> *mut c_char {
    let Ok(c) = CString::new(s) else {
        return std::ptr::null_mut();
    };
    // SAFETY: pstrdup copies a valid NUL-terminated string into the current memory context.
    unsafe { pg_sys::pstrdup(c.as_ptr()) }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else if let Some(CaughtError::RustPanic { ereport, .. }) =
        payload.downcast_ref::<CaughtError>()
    {
        ereport.message().to_string()
    } else {
        "panic".to_string()
    }
}
