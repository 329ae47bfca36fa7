//! The validator's settings: GUCs named after the library (`pgrator_validator.*`), all reloadable with SIGHUP.
//!
//! The issuer and required scopes are not here: they come from the HBA line that matched the connection.

use std::ffi::CString;
use std::time::Duration;

use pgrx::{GucContext, GucFlags, GucRegistry, GucSetting};

use crate::fetch::HttpSettings;

pub static AUDIENCE: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
pub static IDENTITY_CLAIM: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(Some(c"sub"));
pub static CA_FILE: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
pub static HTTP_TIMEOUT_MS: GucSetting<i32> = GucSetting::<i32>::new(3000);

/// Registers the settings; called once per process from `_PG_init`.
pub fn register() {
    GucRegistry::define_string_guc(
        c"pgrator_validator.audience",
        c"Audience an access token must carry (comma-separated: any one of them suffices).",
        c"The OAuth client id or Zitadel project id the database accepts tokens for. Logins are refused while empty.",
        &AUDIENCE,
        GucContext::Sighup,
        GucFlags::default(),
    );
    GucRegistry::define_string_guc(
        c"pgrator_validator.identity_claim",
        c"Claim whose value becomes the authenticated identity (authn_id) that pg_ident.conf maps to a role.",
        c"",
        &IDENTITY_CLAIM,
        GucContext::Sighup,
        GucFlags::default(),
    );
    GucRegistry::define_string_guc(
        c"pgrator_validator.ca_file",
        c"PEM file of the CAs trusted for the IdP's HTTPS endpoints (default: the system bundle).",
        c"",
        &CA_FILE,
        GucContext::Sighup,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"pgrator_validator.http_timeout_ms",
        c"Longest time one request to the IdP may take.",
        c"",
        &HTTP_TIMEOUT_MS,
        100,
        60_000,
        GucContext::Sighup,
        GucFlags::UNIT_MS,
    );
    // SAFETY: called from _PG_init on the backend's main thread with a static C string.
    unsafe { pgrx::pg_sys::MarkGUCPrefixReserved(c"pgrator_validator".as_ptr()) };
}

fn string(setting: &GucSetting<Option<CString>>) -> Option<String> {
    setting.get().map(|c| c.to_string_lossy().trim().to_string()).filter(|s| !s.is_empty())
}

pub fn audience() -> Vec<String> {
    string(&AUDIENCE)
        .map(|s| s.split(',').map(|a| a.trim().to_string()).filter(|a| !a.is_empty()).collect())
        .unwrap_or_default()
}

pub fn identity_claim() -> String {
    string(&IDENTITY_CLAIM).unwrap_or_else(|| "sub".to_string())
}

pub fn http() -> HttpSettings {
    HttpSettings {
        ca_file: string(&CA_FILE),
        timeout: Duration::from_millis(HTTP_TIMEOUT_MS.get().max(1) as u64),
        max_body: 1024 * 1024,
    }
}

