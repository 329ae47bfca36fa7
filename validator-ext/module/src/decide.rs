//! The decision about one token: settings from the GUCs, the issuer and scopes from the HBA line, keys from the
//! cache, the rules from `pgrator-token`.

use pgrator_token::{Outcome, Policy, Requirements, validate_jwt};

use crate::hba::OAuthHba;
use crate::{guc, keys};

/// What the validator decided about one token.
pub enum Decision {
    Accept { authn_id: String },
    Refuse { outcome: Outcome, reason: String },
}

impl Decision {
    pub fn refuse(outcome: Outcome, reason: impl Into<String>) -> Decision {
        Decision::Refuse { outcome, reason: reason.into() }
    }

    pub fn outcome(&self) -> Outcome {
        match self {
            Decision::Accept { .. } => Outcome::Accepted,
            Decision::Refuse { outcome, .. } => *outcome,
        }
    }
}

pub fn decide(token: &[u8], line: &OAuthHba) -> Decision {
    let Ok(token) = std::str::from_utf8(token) else {
        return Decision::refuse(Outcome::Malformed, "the token is not valid UTF-8");
    };
    let audiences = guc::audience();
    if audiences.is_empty() {
        return Decision::refuse(Outcome::ConfigError, "pgrator_validator.audience is not set; every token is refused");
    }
    let mut policy = Policy::new(audiences);
    policy.identity_claim = guc::identity_claim();
    let requirements = Requirements::from_hba(&line.issuer, &line.scope);
    let http = guc::http();

    let keys = match keys::for_login(&line.issuer, &http) {
        Ok(keys) => keys,
        Err(reason) => return Decision::refuse(Outcome::IdpError, reason),
    };
    let now = keys::now();
    let verdict = match validate_jwt(token, &keys, &policy, &requirements, now) {
        Err(refusal) if refusal.may_need_key_refresh() => match keys::after_unknown_kid(&line.issuer, &http) {
            Some(Ok(fresh)) => validate_jwt(token, &fresh, &policy, &requirements, now),
            Some(Err(reason)) => {
                return Decision::refuse(Outcome::IdpError, format!("{refusal}; refreshing the keys failed: {reason}"));
            }
            None => Err(refusal),
        },
        other => other,
    };
    match verdict {
        Ok(accepted) => Decision::Accept { authn_id: accepted.authn_id },
        Err(refusal) => Decision::refuse(refusal.outcome(), refusal.to_string()),
    }
}
