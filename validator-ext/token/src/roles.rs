//! Stage 8, policy: an optional project role the token must carry.
//!
//! Zitadel puts project roles into `urn:zitadel:iam:org:project:roles` (or, per project,
//! `urn:zitadel:iam:org:project:<projectId>:roles`) as an object whose keys are role names:
//! `{"db-admin": {"<orgId>": "<org domain>"}}`.

use serde_json::{Map, Value};

use crate::outcome::Outcome;
use crate::shown::Shown;

/// Why the role requirement was not met.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoleError {
    #[error("required role {} is not in claim {}", Shown(.role), Shown(.claim))]
    Missing { role: String, claim: String },
    #[error("role claim {} is not an object of role names", Shown(.0))]
    Invalid(String),
}

impl RoleError {
    pub fn outcome(&self) -> Outcome {
        match self {
            RoleError::Missing { .. } => Outcome::MissingRole,
            RoleError::Invalid(_) => Outcome::InvalidClaim,
        }
    }
}

/// The role names in `claim`, checked against `required` when set. With `organization`, a role counts only where
/// it was granted in that organisation (its value names the organisation id): the same project role granted in
/// another organisation (a customer's, say) is not ours.
///
/// Without a requirement, a claim of the wrong shape yields no roles rather than a refusal.
pub fn check(
    claims: &Map<String, Value>,
    claim: &str,
    required: Option<&str>,
    organization: Option<&str>,
) -> Result<Vec<String>, RoleError> {
    let in_org = |grant: &Value| {
        organization.is_none_or(|org| grant.as_object().is_some_and(|orgs| orgs.contains_key(org)))
    };
    let roles: Option<Vec<String>> = match claims.get(claim) {
        None => Some(Vec::new()),
        Some(Value::Object(o)) => Some(
            o.iter()
                .filter(|(_, grant)| in_org(grant))
                .map(|(role, _)| role.clone())
                .collect(),
        ),
        Some(_) => None,
    };
    match (roles, required) {
        (Some(roles), None) => Ok(roles),
        (None, None) => Ok(Vec::new()),
        (None, Some(_)) => Err(RoleError::Invalid(claim.to_string())),
        (Some(roles), Some(role)) if roles.iter().any(|r| r == role) => Ok(roles),
        (Some(_), Some(role)) => Err(RoleError::Missing {
            role: role.to_string(),
            claim: claim.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::DEFAULT_ROLE_CLAIM;
    use serde_json::json;

    fn m(v: Value) -> Map<String, Value> {
        v.as_object().cloned().expect("object")
    }

    #[test]
    fn zitadel_role_object() {
        let c = m(
            json!({ DEFAULT_ROLE_CLAIM: {"db-admin": {"1": "org.test"}, "reader": {"1": "org.test"}} }),
        );
        let roles = check(&c, DEFAULT_ROLE_CLAIM, Some("reader"), None).expect("has role");
        assert_eq!(roles.len(), 2);
        assert!(roles.contains(&"db-admin".to_string()));
        let e = check(&c, DEFAULT_ROLE_CLAIM, Some("owner"), None).expect_err("lacks role");
        assert_eq!(e.outcome(), Outcome::MissingRole);
    }

    #[test]
    fn a_role_counts_only_in_the_organisation_asked_for() {
        let c = m(json!({ DEFAULT_ROLE_CLAIM: {
            "team-a": {"300000000000000001": "pgrator.test"},
            "team-b": {"999": "customer.example"},
        }}));
        assert_eq!(
            check(&c, DEFAULT_ROLE_CLAIM, None, Some("300000000000000001")),
            Ok(vec!["team-a".to_string()])
        );
        assert!(
            check(
                &c,
                DEFAULT_ROLE_CLAIM,
                Some("team-b"),
                Some("300000000000000001")
            )
            .is_err()
        );
        assert_eq!(
            check(&c, DEFAULT_ROLE_CLAIM, None, None).map(|r| r.len()),
            Ok(2)
        );
    }

    #[test]
    fn per_project_claim_name() {
        let name = "urn:zitadel:iam:org:project:42:roles";
        let c = m(json!({ name: {"db": {}} , DEFAULT_ROLE_CLAIM: {"other": {}} }));
        assert!(check(&c, name, Some("db"), None).is_ok());
        assert!(check(&c, DEFAULT_ROLE_CLAIM, Some("db"), None).is_err());
    }

    #[test]
    fn missing_or_misshapen_claim() {
        assert_eq!(
            check(&m(json!({})), DEFAULT_ROLE_CLAIM, None, None),
            Ok(vec![])
        );
        assert_eq!(
            check(&m(json!({})), DEFAULT_ROLE_CLAIM, Some("r"), None).map_err(|e| e.outcome()),
            Err(Outcome::MissingRole)
        );
        for v in [json!(["r"]), json!("r"), json!(null)] {
            let c = m(json!({ DEFAULT_ROLE_CLAIM: v }));
            assert_eq!(
                check(&c, DEFAULT_ROLE_CLAIM, Some("r"), None).map_err(|e| e.outcome()),
                Err(Outcome::InvalidClaim)
            );
            assert_eq!(check(&c, DEFAULT_ROLE_CLAIM, None, None), Ok(vec![]));
        }
    }
}
