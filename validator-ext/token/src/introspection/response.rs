//! Evaluating an introspection answer (RFC 7662 section 2.2): `active` must be true, then the same claim rules
//! as for JWTs (issuer, audience, lifetime, scopes, identity, role).

use serde_json::Value;

use crate::accepted::{Accepted, Verification};
use crate::json::{self, JsonError};
use crate::outcome::Outcome;
use crate::pipeline::check_claims;
use crate::policy::{Policy, Requirements};
use crate::refusal::Refusal;
use crate::time::UnixTime;

/// Largest introspection answer parsed.
pub const MAX_INTROSPECTION_BYTES: usize = 256 * 1024;

/// Why an introspection did not accept the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IntrospectionError {
    /// The IdP answered, but not with a usable introspection response.
    #[error("introspection answered HTTP {0}")]
    Status(u16),
    #[error("introspection answer of {0} bytes exceeds the limit of {MAX_INTROSPECTION_BYTES}")]
    TooLarge(usize),
    #[error("introspection answer: {0}")]
    Document(JsonError),
    #[error("introspection answer has no boolean \"active\"")]
    NoActive,
    /// The token itself was refused.
    #[error(transparent)]
    Refused(#[from] Refusal),
}

impl IntrospectionError {
    /// The outcome: the IdP's fault is `idp_error`, the token's fault its refusal code.
    pub fn outcome(&self) -> Outcome {
        match self {
            IntrospectionError::Refused(r) => r.outcome(),
            _ => Outcome::IdpError,
        }
    }

    pub fn code(&self) -> &'static str {
        self.outcome().name()
    }
}

/// Evaluates the IdP's answer (`status` and `body`) to an introspection request at `now`.
pub fn evaluate(
    status: u16,
    body: &[u8],
    policy: &Policy,
    req: &Requirements,
    now: UnixTime,
) -> Result<Accepted, IntrospectionError> {
    if status != 200 {
        return Err(IntrospectionError::Status(status));
    }
    if body.len() > MAX_INTROSPECTION_BYTES {
        return Err(IntrospectionError::TooLarge(body.len()));
    }
    let claims = json::parse_object(body).map_err(IntrospectionError::Document)?;
    match claims.get("active") {
        Some(Value::Bool(true)) => {}
        Some(Value::Bool(false)) => return Err(Refusal::Inactive.into()),
        _ => return Err(IntrospectionError::NoActive),
    }
    Ok(check_claims(
        &claims,
        policy,
        req,
        now,
        Verification::Introspection,
    )?)
}
