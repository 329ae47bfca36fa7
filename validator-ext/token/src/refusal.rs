//! A refused token: which stage refused it, with a stable reason code.
//!
//! `Display` explains the refusal for a log line; it never contains the token, its payload or its signature
//! (only the kid, alg, claim names, and expected versus found issuer/audience, escaped and truncated).

use crate::claims::ClaimsError;
use crate::envelope::EnvelopeError;
use crate::header::HeaderError;
use crate::identity::IdentityError;
use crate::key_select::KeyError;
use crate::outcome::Outcome;
use crate::roles::RoleError;
use crate::scopes::ScopeError;
use crate::signature::SignatureError;

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
    #[error(transparent)]
    Header(#[from] HeaderError),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Signature(#[from] SignatureError),
    #[error(transparent)]
    Claims(#[from] ClaimsError),
    #[error(transparent)]
    Scope(#[from] ScopeError),
    #[error(transparent)]
    Identity(#[from] IdentityError),
    #[error(transparent)]
    Role(#[from] RoleError),
    /// Introspection said the token is not active (revoked, expired, unknown, or not for us).
    #[error("the IdP reports the token as not active")]
    Inactive,
    /// An opaque token that is not RFC 6750 `b64token` syntax.
    #[error("opaque token is not valid bearer token syntax")]
    OpaqueSyntax,
    /// Neither a JWS nor introspection configured for opaque tokens.
    #[error("token is not a JWS and opaque tokens are not accepted (no introspection configured)")]
    OpaqueNotAccepted,
}

impl Refusal {
    /// The outcome (counter slot) of this refusal.
    pub fn outcome(&self) -> Outcome {
        match self {
            Refusal::Envelope(e) => e.outcome(),
            Refusal::Header(e) => e.outcome(),
            Refusal::Key(e) => e.outcome(),
            Refusal::Signature(e) => e.outcome(),
            Refusal::Claims(e) => e.outcome(),
            Refusal::Scope(e) => e.outcome(),
            Refusal::Identity(e) => e.outcome(),
            Refusal::Role(e) => e.outcome(),
            Refusal::Inactive => Outcome::Inactive,
            Refusal::OpaqueSyntax | Refusal::OpaqueNotAccepted => Outcome::Malformed,
        }
    }

    /// The stable reason code, e.g. `"expired"`.
    pub fn code(&self) -> &'static str {
        self.outcome().name()
    }

    /// Whether fetching the key set again might turn this refusal into an acceptance (unknown kid after a
    /// key rotation). Ask the key cache whether a refresh is allowed now before acting on it.
    pub fn may_need_key_refresh(&self) -> bool {
        matches!(self, Refusal::Key(e) if e.may_need_refresh())
    }
}
