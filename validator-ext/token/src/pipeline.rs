//! The validation chain: classify, then envelope -> header -> key -> signature -> claims -> scopes -> identity
//! -> policy. Each stage refuses with its own typed error; nothing is parsed that an earlier stage could refuse.

use serde_json::{Map, Value};

use crate::accepted::{Accepted, Verification};
use crate::base64url;
use crate::claims;
use crate::envelope;
use crate::header;
use crate::identity;
use crate::json;
use crate::jwks::KeySet;
use crate::key_select;
use crate::policy::{Policy, Requirements};
use crate::refusal::Refusal;
use crate::roles;
use crate::scopes;
use crate::signature;
use crate::time::UnixTime;

/// What kind of token a bearer string is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// Three segments whose first decodes to a JSON object with an `alg` string: validate as a JWT.
    Jws,
    /// Anything else: an opaque token (introspection) or garbage.
    Opaque,
}

/// Longest header segment `classify` decodes (a real JOSE header is well under 1 KiB).
const CLASSIFY_MAX_HEADER_CHARS: usize = 8 * 1024;

/// Classifies a bearer token without verifying anything (bounded work whatever the input size).
pub fn classify(token: &str) -> TokenKind {
    let mut parts = token.split('.');
    let (Some(h), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return TokenKind::Opaque;
    };
    if h.len() > CLASSIFY_MAX_HEADER_CHARS {
        return TokenKind::Opaque;
    }
    let is_jws = base64url::decode(h)
        .and_then(|bytes| json::parse_object(&bytes).ok())
        .is_some_and(|hdr| hdr.get("alg").is_some_and(Value::is_string));
    if is_jws {
        TokenKind::Jws
    } else {
        TokenKind::Opaque
    }
}

/// The envelope stage for opaque tokens, before they are sent to introspection: the size limit and the
/// RFC 6750 `b64token` syntax (`[A-Za-z0-9-._~+/]+=*`).
pub fn check_opaque(token: &str, policy: &Policy) -> Result<(), Refusal> {
    if token.len() > policy.max_token_bytes {
        return Err(envelope::EnvelopeError::Oversized {
            len: token.len(),
            max: policy.max_token_bytes,
        }
        .into());
    }
    let body = token.trim_end_matches('=');
    let valid = !body.is_empty()
        && body.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
        });
    if valid {
        Ok(())
    } else {
        Err(Refusal::OpaqueSyntax)
    }
}

/// Validates a JWT access token against the key set, the settings and the HBA line's demands at time `now`.
pub fn validate_jwt(
    token: &str,
    keys: &KeySet,
    policy: &Policy,
    req: &Requirements,
    now: UnixTime,
) -> Result<Accepted, Refusal> {
    let env = envelope::open(token, policy.max_token_bytes)?;
    let hdr = header::check(
        &env.header,
        policy.algorithms,
        policy.expected_typ.as_deref(),
    )?;
    let candidates = key_select::select(keys, &hdr)?;
    let key = signature::verify(
        &candidates,
        hdr.alg,
        env.signing_input.as_bytes(),
        &env.signature,
    )?;
    let claims = env.payload()?;
    let verification = Verification::Signature {
        alg: hdr.alg,
        kid: key.kid().map(str::to_string),
    };
    check_claims(&claims, policy, req, now, verification)
}

/// The claim stages shared by JWTs and introspection answers: claims -> scopes -> identity -> policy.
pub fn check_claims(
    claims: &Map<String, Value>,
    policy: &Policy,
    req: &Requirements,
    now: UnixTime,
    verification: Verification,
) -> Result<Accepted, Refusal> {
    let expires_at = claims::check(claims, policy, req, now)?;
    let scopes = scopes::check(claims, &req.scopes, policy.scope_check)?;
    let authn_id = identity::extract(claims, &policy.identity_claim)?;
    let roles = roles::check(
        claims,
        &policy.role_claim,
        policy.required_role.as_deref(),
        policy.role_organization.as_deref(),
    )?;
    Ok(Accepted {
        authn_id,
        expires_at,
        scopes,
        roles,
        verification,
    })
}

/// Re-checks the per-connection demands (issuer, scopes, role) against a cached acceptance.
pub fn recheck_cached(
    accepted: &Accepted,
    policy: &Policy,
    req: &Requirements,
    now: UnixTime,
) -> Result<(), Refusal> {
    if now >= accepted.expires_at.plus(policy.clock_skew_secs) {
        return Err(claims::ClaimsError::Expired {
            exp: accepted.expires_at.seconds(),
            now: now.seconds(),
            skew: policy.clock_skew_secs,
        }
        .into());
    }
    if policy.scope_check == crate::policy::ScopeCheck::Require {
        let missing: Vec<String> = req
            .scopes
            .iter()
            .filter(|r| !accepted.scopes.contains(r))
            .cloned()
            .collect();
        if !missing.is_empty() {
            return Err(scopes::ScopeError::Missing { missing }.into());
        }
    }
    if let Some(role) = &policy.required_role
        && !accepted.roles.contains(role)
    {
        return Err(roles::RoleError::Missing {
            role: role.clone(),
            claim: policy.role_claim.clone(),
        }
        .into());
    }
    Ok(())
}
