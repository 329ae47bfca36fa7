//! A libpq 18 client that logs in with a bearer token it already has (through `PQsetAuthDataHook`), for tests of
//! the validator with crafted tokens and for login benchmarks: the same libpq psql uses, minus the device flow.
//! This file is an FFI edge: every unsafe block says why it is sound.
#![allow(unsafe_code)]

use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::sync::Mutex;

use crate::env::WorldEnv;
use crate::error::{Result, WorldError};

const PQAUTHDATA_OAUTH_BEARER_TOKEN: c_int = 1;
const CONNECTION_OK: c_int = 0;
const PGRES_TUPLES_OK: c_int = 2;

/// `PGoauthBearerRequest` of libpq-fe.h (PostgreSQL 18).
#[repr(C)]
struct OAuthBearerRequest {
    openid_configuration: *const c_char,
    scope: *const c_char,
    async_cb: *const c_void,
    cleanup: *const c_void,
    token: *mut c_char,
    user: *mut c_void,
}
const _: () = assert!(std::mem::size_of::<OAuthBearerRequest>() == 48);

type AuthDataHook =
    unsafe extern "C" fn(kind: c_int, conn: *mut c_void, data: *mut c_void) -> c_int;

struct Api {
    _lib: libloading::Library,
    connectdb: unsafe extern "C" fn(*const c_char) -> *mut c_void,
    status: unsafe extern "C" fn(*const c_void) -> c_int,
    error_message: unsafe extern "C" fn(*const c_void) -> *const c_char,
    finish: unsafe extern "C" fn(*mut c_void),
    exec: unsafe extern "C" fn(*mut c_void, *const c_char) -> *mut c_void,
    result_status: unsafe extern "C" fn(*const c_void) -> c_int,
    get_value: unsafe extern "C" fn(*const c_void, c_int, c_int) -> *const c_char,
    ntuples: unsafe extern "C" fn(*const c_void) -> c_int,
    clear: unsafe extern "C" fn(*mut c_void),
    set_auth_data_hook: unsafe extern "C" fn(Option<AuthDataHook>),
}

/// The token handed to libpq by the hook during one `connect`; connections with a token are serialized because
/// libpq's hook is process-wide.
static CURRENT_TOKEN: Mutex<Option<CString>> = Mutex::new(None);
static CONNECT_LOCK: Mutex<()> = Mutex::new(());

unsafe extern "C" fn token_hook(kind: c_int, _conn: *mut c_void, data: *mut c_void) -> c_int {
    if kind != PQAUTHDATA_OAUTH_BEARER_TOKEN || data.is_null() {
        return 0;
    }
    let slot = CURRENT_TOKEN.lock().unwrap_or_else(|p| p.into_inner());
    let Some(token) = slot.as_ref() else {
        return 0;
    };
    // SAFETY: libpq passes a valid PGoauthBearerRequest for this kind; the token's buffer stays alive in
    // CURRENT_TOKEN until `connect` returns, which is after libpq is done with it.
    unsafe {
        (*(data as *mut OAuthBearerRequest)).token = token.as_ptr() as *mut c_char;
    }
    1
}

/// The libpq of the test world's psql part.
pub struct TokenClient {
    api: Api,
}

/// An open connection.
pub struct Connection<'a> {
    client: &'a TokenClient,
    conn: *mut c_void,
}

impl TokenClient {
    pub fn load() -> Result<TokenClient> {
        let home = WorldEnv::load()?.require("PGRATOR_PSQL_HOME")?;
        let path = home.join("lib/libpq.so.5");
        let fail = |e: libloading::Error| WorldError::Service {
            service: "libpq".into(),
            message: format!("{}: {e}", path.display()),
        };
        // SAFETY: loading the libpq we built; its initializers have no preconditions. The symbol types match
        // libpq-fe.h of PostgreSQL 18.
        unsafe {
            let lib = libloading::Library::new(&path).map_err(fail)?;
            let api = Api {
                connectdb: *lib.get(b"PQconnectdb\0").map_err(fail)?,
                status: *lib.get(b"PQstatus\0").map_err(fail)?,
                error_message: *lib.get(b"PQerrorMessage\0").map_err(fail)?,
                finish: *lib.get(b"PQfinish\0").map_err(fail)?,
                exec: *lib.get(b"PQexec\0").map_err(fail)?,
                result_status: *lib.get(b"PQresultStatus\0").map_err(fail)?,
                get_value: *lib.get(b"PQgetvalue\0").map_err(fail)?,
                ntuples: *lib.get(b"PQntuples\0").map_err(fail)?,
                clear: *lib.get(b"PQclear\0").map_err(fail)?,
                set_auth_data_hook: *lib.get(b"PQsetAuthDataHook\0").map_err(fail)?,
                _lib: lib,
            };
            (api.set_auth_data_hook)(Some(token_hook));
            Ok(TokenClient { api })
        }
    }

    /// Connects with `conninfo` (which must name oauth_issuer and oauth_client_id), presenting `token` when the
    /// server asks for a bearer token. Returns libpq's error message on failure.
    pub fn connect(
        &self,
        conninfo: &str,
        token: &[u8],
    ) -> std::result::Result<Connection<'_>, String> {
        let conninfo = CString::new(conninfo).map_err(|_| "conninfo contains NUL".to_string())?;
        let token = CString::new(token).map_err(|_| "token contains NUL".to_string())?;
        let _serial = CONNECT_LOCK.lock().unwrap_or_else(|p| p.into_inner());
        *CURRENT_TOKEN.lock().unwrap_or_else(|p| p.into_inner()) = Some(token);
        // SAFETY: PQconnectdb with a valid C string; the returned PGconn is owned by Connection (PQfinish on drop).
        let conn = unsafe { (self.api.connectdb)(conninfo.as_ptr()) };
        *CURRENT_TOKEN.lock().unwrap_or_else(|p| p.into_inner()) = None;
        let c = Connection { client: self, conn };
        // SAFETY: PQstatus on the PGconn just returned (NULL is handled by libpq as CONNECTION_BAD).
        let status = unsafe { (self.api.status)(conn) };
        if status != CONNECTION_OK {
            return Err(c.error_message());
        }
        Ok(c)
    }
}

impl Connection<'_> {
    fn error_message(&self) -> String {
        // SAFETY: PQerrorMessage returns a string owned by the PGconn, copied at once.
        unsafe {
            let msg = (self.client.api.error_message)(self.conn);
            if msg.is_null() {
                "out of memory".into()
            } else {
                CStr::from_ptr(msg).to_string_lossy().trim().to_string()
            }
        }
    }

    /// Runs a query and returns the first column of the first row.
    pub fn query_one(&self, sql: &str) -> std::result::Result<String, String> {
        let sql = CString::new(sql).map_err(|_| "query contains NUL".to_string())?;
        // SAFETY: PQexec on our open connection; the PGresult is cleared before returning, and the value is copied
        // before that.
        unsafe {
            let res = (self.client.api.exec)(self.conn, sql.as_ptr());
            if res.is_null() {
                return Err(self.error_message());
            }
            let out = if (self.client.api.result_status)(res) != PGRES_TUPLES_OK {
                Err(self.error_message())
            } else if (self.client.api.ntuples)(res) < 1 {
                Err("no rows".into())
            } else {
                Ok(CStr::from_ptr((self.client.api.get_value)(res, 0, 0))
                    .to_string_lossy()
                    .into_owned())
            };
            (self.client.api.clear)(res);
            out
        }
    }
}

impl Drop for Connection<'_> {
    fn drop(&mut self) {
        // SAFETY: the PGconn was returned by PQconnectdb and is finished exactly once.
        unsafe { (self.client.api.finish)(self.conn) }
    }
}
