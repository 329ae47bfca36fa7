//! The decision about one token: settings from the GUCs, the issuer and scopes from the HBA line, keys from the
//! cache, the rules from `pgrator-token`.

use pgrator_token::{GrantCheck, Outcome, Requirements, TokenKind, classify, validate_jwt};

use crate::hba::OAuthHba;
use crate::{guc, introspect, keys};

/// What the validator decided about one token.
pub enum Decision {
    Accept { authn_id: String },
    Refuse { outcome: Outcome, reason: String },
}

impl Decision {
    pub fn refuse(outcome: Outcome, reason: impl Into<String>) -> Decision {
        Decision::Refuse {
            outcome,
            reason: reason.into(),
        }
    }

    pub fn outcome(&self) -> Outcome {
        match self {
            Decision::Accept { .. } => Outcome::Accepted,
            Decision::Refuse { outcome, .. } => *outcome,
        }
    }
}

pub fn decide(token: &[u8], line: &OAuthHba) -> Decision {
    #[cfg(feature = "fault-injection")]
    if token == b"pgrator-fault.panic" {
        panic!("fault injected: a panic inside the validator");
    }
    let Ok(token) = std::str::from_utf8(token) else {
        return Decision::refuse(Outcome::Malformed, "the token is not valid UTF-8");
    };
    let config = match guc::config() {
        Ok(config) => config,
        Err(problem) => {
            return Decision::refuse(Outcome::ConfigError, format!("bad settings: {problem}"));
        }
    };
    let policy = &config.policy;
    let requirements = Requirements::from_hba(&line.issuer, &line.scope);
    let http = guc::http();

    if classify(token) == TokenKind::Opaque {
        return match introspect::validate(token, &line.issuer, &config, &requirements, &http) {
            Ok(accepted) => Decision::Accept {
                authn_id: accepted.authn_id,
            },
            Err(refused) => Decision::refuse(refused.outcome, refused.reason),
        };
    }
    let keys = match keys::for_login(&line.issuer, &http, &config.key_cache) {
        Ok(keys) => keys,
        Err(reason) => return Decision::refuse(Outcome::IdpError, reason),
    };
    let now = keys::now();
    let verdict = match validate_jwt(token, &keys, policy, &requirements, now) {
        Err(refusal) if refusal.may_need_key_refresh() => {
            match keys::after_unknown_kid(&line.issuer, &http, &config.key_cache) {
                Some(Ok(fresh)) => validate_jwt(token, &fresh, policy, &requirements, now),
                Some(Err(reason)) => {
                    return Decision::refuse(
                        Outcome::IdpError,
                        format!("{refusal}; refreshing the keys failed: {reason}"),
                    );
                }
                None => Err(refusal),
            }
        }
        other => other,
    };
    match verdict {
        Ok(accepted) => Decision::Accept {
            authn_id: accepted.authn_id,
        },
        Err(refusal) => Decision::refuse(refusal.outcome(), refusal.to_string()),
    }
}

/// Personal access (`pgrator_validator.grants`): a role listed there admits only its person, and only until the
/// grant's end, whatever pg_ident.conf still says.
pub fn within_grants(role: &str, decision: Decision) -> Decision {
    let Decision::Accept { authn_id } = decision else {
        return decision;
    };
    match guc::grants().check(role, &authn_id, keys::now()) {
        GrantCheck::NotListed | GrantCheck::Open { .. } => Decision::Accept { authn_id },
        GrantCheck::Ended { at } => Decision::refuse(
            Outcome::GrantEnded,
            format!(
                "the personal grant of identity \"{authn_id}\" to this role ended at {} (unix time)",
                at.seconds()
            ),
        ),
        GrantCheck::OtherPerson => Decision::refuse(
            Outcome::NotGrantee,
            format!("this is the personal role of someone else, not of identity \"{authn_id}\""),
        ),
        GrantCheck::Unreadable => Decision::refuse(
            Outcome::GrantsUnreadable,
            "pgrator_validator.grants cannot be read, so no personal grant can be shown to be open: personal \
             roles are refused until the operator writes a readable list"
                .to_owned(),
        ),
    }
}
