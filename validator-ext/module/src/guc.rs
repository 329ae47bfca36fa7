//! The validator's settings: GUCs named after the library (`pgrator_validator.*`), all reloadable with SIGHUP.
//!
//! The issuer and required scopes are not here: they come from the HBA line that matched the connection. Every
//! token rule setting is checked by `pgrator-token`'s configuration parser when it is set (postgresql.conf, ALTER
//! SYSTEM, reload): a bad value is refused with a message that names the setting, and the old value stays.

use std::ffi::{CStr, CString, c_char, c_void};
use std::time::Duration;

use pgrator_token::{GrantList, RawSettings, ValidatorConfig};
use pgrx::pg_sys;
use pgrx::{GucContext, GucFlags, GucRegistry, GucSetting};

use crate::fetch::HttpSettings;

pub const PREFIX: &str = "pgrator_validator";

type Setting = GucSetting<Option<CString>>;

macro_rules! settings {
    ($( $stat:ident, $field:ident, $hook:ident, $default:expr, $desc:literal; )*) => {
        $( pub static $stat: Setting = Setting::new($default); )*

        $(
            /// Check hook: validates this one setting with pgrator-token's parser.
            #[pgrx::pg_guard]
            unsafe extern "C-unwind" fn $hook(
                newval: *mut *mut c_char,
                _extra: *mut *mut c_void,
                _source: pg_sys::GucSource::Type,
            ) -> bool {
                // SAFETY: PostgreSQL passes a valid pointer to the candidate value (NULL or a C string).
                let value = unsafe { c_string(*newval) };
                let mut raw = RawSettings { audience: Some("-".into()), ..RawSettings::default() };
                raw.$field = value;
                accept_or_explain(&raw, stringify!($field))
            }
        )*

        fn register_rule_settings() {
            $(
                // SAFETY: the hook has the signature PostgreSQL expects; the setting lives for the whole process.
                unsafe {
                    GucRegistry::define_string_guc_with_hooks(
                        const_cstr(concat!("pgrator_validator.", stringify!($field), "\0")),
                        const_cstr(concat!($desc, "\0")),
                        c"",
                        &$stat,
                        GucContext::Sighup,
                        GucFlags::default(),
                        Some($hook),
                        None,
                        None,
                    );
                }
            )*
        }

        /// The token rule settings as the parser takes them.
        pub fn raw_settings() -> RawSettings {
            RawSettings { $( $field: string(&$stat), )* ..RawSettings::default() }
        }
    };
}

settings! {
    AUDIENCE, audience, check_audience, None,
        "Audiences a token must carry one of (comma-separated): the platform's client id or Zitadel project id.";
    ALLOWED_CLIENTS, allowed_clients, check_allowed_clients, None,
        "Client ids whose tokens are accepted (comma-separated; azp, else client_id); default: any client.";
    ALGORITHMS, algorithms, check_algorithms, None,
        "Signature algorithms accepted (comma-separated; default RS256, ES256, EdDSA; none and HMAC never).";
    CLOCK_SKEW, clock_skew, check_clock_skew, None,
        "Clock skew tolerated for exp, nbf and iat (default 30s).";
    IDENTITY_CLAIM, identity_claim, check_identity_claim, None,
        "Claim whose value is the identity (authn_id) pg_ident.conf maps to a role (default sub).";
    ROLE_CLAIM, role_claim, check_role_claim, None,
        "Claim holding the project roles (default urn:zitadel:iam:org:project:roles).";
    REQUIRED_ROLE, required_role, check_required_role, None,
        "A project role the person must have to log in (default: none required).";
    TYP, typ, check_typ, None,
        "Required JOSE typ header of JWT access tokens, e.g. at+jwt (default: not checked).";
    MAX_TOKEN_BYTES, max_token_bytes, check_max_token_bytes, None,
        "Largest token accepted, in bytes (default 16384).";
    SCOPE_CHECK, scope_check, check_scope_check, None,
        "require: JWTs must carry the HBA line's scopes (scope or scp claim); off: not checked (Zitadel JWTs).";
    JWKS_MIN_REFRESH, jwks_min_refresh, check_jwks_min_refresh, None,
        "Shortest interval between planned key refreshes.";
    JWKS_MAX_REFRESH, jwks_max_refresh, check_jwks_max_refresh, None,
        "Longest interval between planned key refreshes.";
    JWKS_MAX_STALE, jwks_max_stale, check_jwks_max_stale, None,
        "How long keys past their freshness are still used while the IdP cannot be reached.";
    JWKS_UNKNOWN_KID_COOLDOWN, jwks_unknown_kid_cooldown, check_jwks_unknown_kid_cooldown, None,
        "At most one key refresh per this interval for tokens with an unknown key id.";
}

pub static CA_FILE: Setting = Setting::new(None);
pub static INTROSPECTION_CLIENT_ID: Setting = Setting::new(None);
pub static INTROSPECTION_SECRET_FILE: Setting = Setting::new(None);
pub static INTROSPECTION_KEY_FILE: Setting = Setting::new(None);
pub static HTTP_TIMEOUT_MS: GucSetting<i32> = GucSetting::<i32>::new(3000);
/// Personal access grants from the operator (`<role> <subject> <unix end>`, comma-separated).
pub static GRANTS: Setting = Setting::new(None);

/// Check hook of `grants`: every value is taken as the operator wrote it, so an unreadable list is never replaced
/// by an older one or by the empty default (which would turn enforcement off); it fails closed when read (see
/// [`grants`]). The problem is logged here, once per change, as a WARNING with the reason.
#[pgrx::pg_guard]
unsafe extern "C-unwind" fn check_grants(
    newval: *mut *mut c_char,
    _extra: *mut *mut c_void,
    _source: pg_sys::GucSource::Type,
) -> bool {
    // SAFETY: PostgreSQL passes a valid pointer to the candidate value (NULL or a C string).
    let value = unsafe { c_string(*newval) }.unwrap_or_default();
    if let Some(problem) = GrantList::read(&value).problem() {
        pgrx::warning!(
            "pgrator_validator.grants cannot be read ({problem}): every personal role is refused and its sessions \
             are ended until the operator writes a readable list"
        );
    }
    true
}

/// The personal access grants in force now; unreadable grants fail closed (personal roles refused).
pub fn grants() -> GrantList {
    GrantList::read(&string(&GRANTS).unwrap_or_default())
}

/// Registers the settings; called once per process from `_PG_init`.
pub fn register() {
    register_rule_settings();
    GucRegistry::define_string_guc(
        c"pgrator_validator.ca_file",
        c"PEM file of the CAs trusted for the IdP's HTTPS endpoints (default: the system bundle).",
        c"",
        &CA_FILE,
        GucContext::Sighup,
        GucFlags::default(),
    );
    GucRegistry::define_string_guc(
        c"pgrator_validator.introspection_client_id",
        c"Client id the validator introspects opaque tokens with (unset: opaque tokens are refused).",
        c"",
        &INTROSPECTION_CLIENT_ID,
        GucContext::Sighup,
        GucFlags::default(),
    );
    GucRegistry::define_string_guc(
        c"pgrator_validator.introspection_secret_file",
        c"File holding the introspection client's secret (client_secret_basic).",
        c"",
        &INTROSPECTION_SECRET_FILE,
        GucContext::Sighup,
        GucFlags::SUPERUSER_ONLY,
    );
    GucRegistry::define_string_guc(
        c"pgrator_validator.introspection_key_file",
        c"Zitadel key file (JSON) of the introspection client (private_key_jwt); wins over the secret file.",
        c"",
        &INTROSPECTION_KEY_FILE,
        GucContext::Sighup,
        GucFlags::SUPERUSER_ONLY,
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
    // SAFETY: the hook has the signature PostgreSQL expects; the setting lives for the whole process.
    unsafe {
        GucRegistry::define_string_guc_with_hooks(
            c"pgrator_validator.grants",
            c"Personal access grants (role subject unix-end, comma-separated): a listed role admits only its person, only until the end.",
            c"",
            &GRANTS,
            GucContext::Sighup,
            GucFlags::default(),
            Some(check_grants),
            None,
            None,
        );
    }
    // SAFETY: called from _PG_init on the main thread with a static C string.
    unsafe { pg_sys::MarkGUCPrefixReserved(c"pgrator_validator".as_ptr()) };
}

/// The validated configuration of the token rules in force now.
pub fn config() -> Result<ValidatorConfig, String> {
    ValidatorConfig::from_settings(&raw_settings(), PREFIX).map_err(|e| e.to_string())
}

pub fn http() -> HttpSettings {
    HttpSettings {
        ca_file: string(&CA_FILE),
        timeout: Duration::from_millis(HTTP_TIMEOUT_MS.get().max(1) as u64),
        max_body: 1024 * 1024,
    }
}

pub fn introspection_client_id() -> Option<String> {
    string(&INTROSPECTION_CLIENT_ID)
}

pub fn introspection_secret_file() -> Option<String> {
    string(&INTROSPECTION_SECRET_FILE)
}

pub fn introspection_key_file() -> Option<String> {
    string(&INTROSPECTION_KEY_FILE)
}

fn string(setting: &Setting) -> Option<String> {
    setting
        .get()
        .map(|c| c.to_string_lossy().trim().to_string())
        .filter(|s| !s.is_empty())
}

/// A setting's candidate value from a check hook.
///
/// # Safety
/// `p` is NULL or a NUL-terminated string.
unsafe fn c_string(p: *const c_char) -> Option<String> {
    // SAFETY: per the contract above.
    (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
}

const fn const_cstr(s: &'static str) -> &'static CStr {
    match CStr::from_bytes_with_nul(s.as_bytes()) {
        Ok(c) => c,
        Err(_) => panic!("setting names and descriptions are NUL-terminated literals"),
    }
}

/// Accepts the value, or refuses it with the parser's explanation as the DETAIL of PostgreSQL's message
/// `invalid value for parameter "pgrator_validator.<name>"`.
fn accept_or_explain(raw: &RawSettings, field: &str) -> bool {
    // An empty audience is allowed here (logins are then refused with config_error, saying so).
    if field == "audience" && raw.audience.as_deref().is_none_or(|a| a.trim().is_empty()) {
        return true;
    }
    let Err(errors) = ValidatorConfig::from_settings(raw, PREFIX) else {
        return true;
    };
    let setting = format!("{PREFIX}.{field}");
    let Some(problem) = errors
        .0
        .iter()
        .find(|e| e.setting == setting)
        .map(|e| e.problem.clone())
    else {
        return true;
    };
    if let Ok(detail) = CString::new(problem) {
        // SAFETY: GUC_check_errdetail_string takes a palloc'd string, which pstrdup makes from our C string.
        unsafe { pg_sys::GUC_check_errdetail_string = pg_sys::pstrdup(detail.as_ptr()) };
    }
    false
}
