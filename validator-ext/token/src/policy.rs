//! What a valid token must satisfy: the validated settings ([`Policy`]) and the per-connection demands of the
//! matching HBA line ([`Requirements`]).

use crate::algorithm::AlgorithmSet;
use crate::envelope::DEFAULT_MAX_TOKEN_BYTES;

/// Default tolerance for clock differences between the IdP and the database, in seconds.
pub const DEFAULT_CLOCK_SKEW_SECS: u64 = 30;
/// Default claim whose value becomes the authenticated identity.
pub const DEFAULT_IDENTITY_CLAIM: &str = "sub";
/// Zitadel's project role claim: an object whose keys are role names.
pub const DEFAULT_ROLE_CLAIM: &str = "urn:zitadel:iam:org:project:roles";

/// Whether the token itself must carry the scopes the HBA line requires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ScopeCheck {
    /// The `scope` (or `scp`) claim must contain every required scope (RFC 9068). The default.
    #[default]
    Require,
    /// Scopes are not checked (for IdPs whose JWT access tokens carry no scope claim, such as Zitadel today);
    /// audience, issuer, lifetime and roles still are.
    Off,
}

/// Validated settings shared by all connections (see `settings` for building one from strings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// The token's `aud` must contain at least one of these. Never empty.
    pub audiences: Vec<String>,
    /// The clients (`azp`, else `client_id`) whose tokens are accepted; empty: any client.
    pub allowed_clients: Vec<String>,
    /// Algorithm allowlist (`none` and HMAC are refused regardless).
    pub algorithms: AlgorithmSet,
    pub clock_skew_secs: u64,
    pub identity_claim: String,
    pub role_claim: String,
    /// A role the token must carry in `role_claim`, if any.
    pub required_role: Option<String>,
    /// When set, only roles granted in this organisation (Zitadel org id) count.
    pub role_organization: Option<String>,
    /// Required JOSE `typ` (e.g. `at+jwt`), if any.
    pub expected_typ: Option<String>,
    pub max_token_bytes: usize,
    pub scope_check: ScopeCheck,
}

impl Policy {
    /// A policy with the defaults and the given audiences.
    pub fn new(audiences: Vec<String>) -> Policy {
        Policy {
            audiences,
            allowed_clients: Vec::new(),
            algorithms: AlgorithmSet::DEFAULT,
            clock_skew_secs: DEFAULT_CLOCK_SKEW_SECS,
            identity_claim: DEFAULT_IDENTITY_CLAIM.to_string(),
            role_claim: DEFAULT_ROLE_CLAIM.to_string(),
            required_role: None,
            role_organization: None,
            expected_typ: None,
            max_token_bytes: DEFAULT_MAX_TOKEN_BYTES,
            scope_check: ScopeCheck::Require,
        }
    }
}

/// What the HBA line that matched this connection demands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirements {
    /// The HBA `issuer`: `iss` must equal it exactly.
    pub issuer: String,
    /// The HBA `scope`, split on spaces.
    pub scopes: Vec<String>,
}

impl Requirements {
    /// From the HBA line's `issuer` and space-separated `scope` options.
    pub fn from_hba(issuer: &str, scope: &str) -> Requirements {
        Requirements {
            issuer: issuer.to_string(),
            scopes: split_scopes(scope),
        }
    }
}

/// Splits a space-separated scope string (RFC 6749 section 3.3), dropping empty parts and duplicates.
pub fn split_scopes(scope: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for s in scope
        .split([' ', '\t', '\n', '\r'])
        .filter(|s| !s.is_empty())
    {
        if !out.iter().any(|o| o == s) {
            out.push(s.to_string());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hba_scopes_split_on_whitespace() {
        let r = Requirements::from_hba("https://i", "  openid  profile openid\turn:x ");
        assert_eq!(r.scopes, vec!["openid", "profile", "urn:x"]);
        assert!(Requirements::from_hba("https://i", "").scopes.is_empty());
    }

    #[test]
    fn defaults() {
        let p = Policy::new(vec!["a".into()]);
        assert_eq!(p.clock_skew_secs, 30);
        assert_eq!(p.identity_claim, "sub");
        assert_eq!(p.max_token_bytes, 16 * 1024);
        assert_eq!(p.scope_check, ScopeCheck::Require);
        assert_eq!(p.algorithms, AlgorithmSet::DEFAULT);
    }
}
