//! The result of a successful validation.

use crate::algorithm::Algorithm;
use crate::time::UnixTime;

/// How the token was verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verification {
    /// A JWS verified with a key of the issuer's JWKS.
    Signature { alg: Algorithm, kid: Option<String> },
    /// An opaque token the IdP's introspection endpoint reported active.
    Introspection,
}

/// An accepted token: who it identifies and what it grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// The authenticated identity for pg_ident.conf (the configured identity claim).
    pub authn_id: String,
    /// The token's `exp`.
    pub expires_at: UnixTime,
    /// Granted scopes (`scope`/`scp`).
    pub scopes: Vec<String>,
    /// Role names of the configured role claim.
    pub roles: Vec<String>,
    pub verification: Verification,
}
