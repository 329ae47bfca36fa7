//! Every way a validation can end, with a stable name and a dense index.
//!
//! The names are the outward reason codes (log lines, metrics labels); the index lets the PostgreSQL module keep
//! one counter per outcome in a shared-memory array. Never renumber or rename: append new outcomes at the end.

/// How one validation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Outcome {
    Accepted,
    Malformed,
    Oversized,
    AlgNone,
    HmacRefused,
    AlgNotAllowed,
    HeaderKeyRefused,
    CritUnsupported,
    TypMismatch,
    UnknownKid,
    KeyAlgMismatch,
    BadSignature,
    WrongIssuer,
    WrongAudience,
    Expired,
    NotYetValid,
    IssuedInFuture,
    MissingClaim,
    InvalidClaim,
    MissingScope,
    MissingRole,
    IdentityClaimMissing,
    IdentityInvalid,
    Inactive,
    IdpError,
    ConfigError,
    InternalError,
    /// The token's person had a personal grant to the role, and it has ended.
    GrantEnded,
    /// The role is someone else's personal role.
    NotGrantee,
    /// The role is a personal role and the list of grants cannot be read (fail closed).
    GrantsUnreadable,
    /// The token was issued to a client that is not allowed here (`azp`/`client_id` not in the allowlist).
    ClientNotAllowed,
    /// The token is not an access token (an ID token, or another kind the policy refuses).
    NotAccessToken,
}

impl Outcome {
    /// All outcomes in index order.
    pub const ALL: [Outcome; 32] = [
        Outcome::Accepted,
        Outcome::Malformed,
        Outcome::Oversized,
        Outcome::AlgNone,
        Outcome::HmacRefused,
        Outcome::AlgNotAllowed,
        Outcome::HeaderKeyRefused,
        Outcome::CritUnsupported,
        Outcome::TypMismatch,
        Outcome::UnknownKid,
        Outcome::KeyAlgMismatch,
        Outcome::BadSignature,
        Outcome::WrongIssuer,
        Outcome::WrongAudience,
        Outcome::Expired,
        Outcome::NotYetValid,
        Outcome::IssuedInFuture,
        Outcome::MissingClaim,
        Outcome::InvalidClaim,
        Outcome::MissingScope,
        Outcome::MissingRole,
        Outcome::IdentityClaimMissing,
        Outcome::IdentityInvalid,
        Outcome::Inactive,
        Outcome::IdpError,
        Outcome::ConfigError,
        Outcome::InternalError,
        Outcome::GrantEnded,
        Outcome::NotGrantee,
        Outcome::GrantsUnreadable,
        Outcome::ClientNotAllowed,
        Outcome::NotAccessToken,
    ];

    /// Number of outcomes: the length of a counter array.
    pub const COUNT: usize = Self::ALL.len();

    /// The stable reason code.
    pub const fn name(self) -> &'static str {
        match self {
            Outcome::Accepted => "accepted",
            Outcome::Malformed => "malformed",
            Outcome::Oversized => "oversized",
            Outcome::AlgNone => "alg_none",
            Outcome::HmacRefused => "hmac_refused",
            Outcome::AlgNotAllowed => "alg_not_allowed",
            Outcome::HeaderKeyRefused => "header_key_refused",
            Outcome::CritUnsupported => "crit_unsupported",
            Outcome::TypMismatch => "typ_mismatch",
            Outcome::UnknownKid => "unknown_kid",
            Outcome::KeyAlgMismatch => "key_alg_mismatch",
            Outcome::BadSignature => "bad_signature",
            Outcome::WrongIssuer => "wrong_issuer",
            Outcome::WrongAudience => "wrong_audience",
            Outcome::Expired => "expired",
            Outcome::NotYetValid => "not_yet_valid",
            Outcome::IssuedInFuture => "issued_in_future",
            Outcome::MissingClaim => "missing_claim",
            Outcome::InvalidClaim => "invalid_claim",
            Outcome::MissingScope => "missing_scope",
            Outcome::MissingRole => "missing_role",
            Outcome::IdentityClaimMissing => "identity_claim_missing",
            Outcome::IdentityInvalid => "identity_invalid",
            Outcome::Inactive => "inactive",
            Outcome::IdpError => "idp_error",
            Outcome::ConfigError => "config_error",
            Outcome::InternalError => "internal_error",
            Outcome::GrantEnded => "grant_ended",
            Outcome::NotGrantee => "not_grantee",
            Outcome::GrantsUnreadable => "grants_unreadable",
            Outcome::ClientNotAllowed => "client_not_allowed",
            Outcome::NotAccessToken => "not_access_token",
        }
    }

    /// Position in [`Outcome::ALL`]: the slot of this outcome's counter.
    pub const fn index(self) -> usize {
        self as usize
    }

    /// The outcome at `index`, if any.
    pub fn from_index(index: usize) -> Option<Outcome> {
        Self::ALL.get(index).copied()
    }

    /// The outcome with this reason code, if any.
    pub fn from_name(name: &str) -> Option<Outcome> {
        Self::ALL.iter().copied().find(|o| o.name() == name)
    }

    /// Whether the token was refused (as opposed to accepted or an error on our or the IdP's side).
    pub const fn is_refusal(self) -> bool {
        !matches!(
            self,
            Outcome::Accepted | Outcome::IdpError | Outcome::ConfigError | Outcome::InternalError
        )
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn indexes_are_dense_and_match_all() {
        for (i, o) in Outcome::ALL.iter().enumerate() {
            assert_eq!(o.index(), i, "{o}");
            assert_eq!(Outcome::from_index(i), Some(*o));
        }
        assert_eq!(Outcome::from_index(Outcome::COUNT), None);
    }

    #[test]
    fn names_are_unique_snake_case_and_round_trip() {
        let mut seen = HashSet::new();
        for o in Outcome::ALL {
            let n = o.name();
            assert!(seen.insert(n), "duplicate name {n}");
            assert!(n.chars().all(|c| c.is_ascii_lowercase() || c == '_'), "{n}");
            assert_eq!(Outcome::from_name(n), Some(o));
        }
        assert_eq!(Outcome::from_name("nope"), None);
    }

    #[test]
    fn stable_positions_of_the_first_codes() {
        // Counters in shared memory and dashboards rely on these never moving.
        assert_eq!(Outcome::Accepted.index(), 0);
        assert_eq!(Outcome::Malformed.index(), 1);
        assert_eq!(Outcome::InternalError.index(), 26);
        // Appended later, at the end.
        assert_eq!(Outcome::GrantEnded.index(), 27);
        assert_eq!(Outcome::NotGrantee.index(), 28);
        assert_eq!(Outcome::NotAccessToken.index(), Outcome::COUNT - 1);
    }

    #[test]
    fn refusals_exclude_acceptance_and_errors() {
        assert!(!Outcome::Accepted.is_refusal());
        assert!(!Outcome::IdpError.is_refusal());
        assert!(!Outcome::InternalError.is_refusal());
        assert!(!Outcome::ConfigError.is_refusal());
        assert!(Outcome::Expired.is_refusal());
        assert!(Outcome::Inactive.is_refusal());
    }
}
