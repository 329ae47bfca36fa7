//! The HBA line this connection matched: the issuer and scopes the validator must enforce.

use std::ffi::CStr;

use crate::abi;

/// The `issuer` and `scope` options of the matched `oauth` HBA line.
#[derive(Debug, Clone)]
pub struct OAuthHba {
    pub issuer: String,
    pub scope: String,
    pub line: i32,
}

/// Reads the matched line; `None` outside an OAuth authentication (cannot happen in validate_cb).
pub fn current() -> Option<OAuthHba> {
    // SAFETY: the shim reads MyProcPort->hba, which the server set before calling the validator and keeps alive
    // for the whole authentication; the returned strings are owned by that HbaLine and copied at once.
    unsafe {
        let issuer = abi::pgrator_hba_oauth_issuer();
        if issuer.is_null() {
            return None;
        }
        let scope = abi::pgrator_hba_oauth_scope();
        Some(OAuthHba {
            issuer: CStr::from_ptr(issuer).to_string_lossy().into_owned(),
            scope: if scope.is_null() {
                String::new()
            } else {
                CStr::from_ptr(scope).to_string_lossy().into_owned()
            },
            line: abi::pgrator_hba_line_number(),
        })
    }
}
