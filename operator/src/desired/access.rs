//! Personal access: from the `PostgresAccess` objects of a database to its personal roles (CNPG `DatabaseRole`),
//! its pg_ident lines and the validator's list of grants. Pure: the time is an input.
//!
//! The grant's end reaches the validator through the Cluster's `pgrator_validator.grants` setting
//! (`<role> <subject> <unix end>` per grant, comma-separated): the validator refuses a login to a listed role by
//! anyone else or after the end, and its worker ends the sessions of expired roles, even when the operator is down.

use jiff::Timestamp;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::{Child, IdentLine, Kind};
use crate::api::{AccessLevel, PostgresAccess};
use crate::names::{self, MANAGED_BY, MANAGER, POSTGRES_LABEL};

/// The CNPG kind of a personal role (made for a PostgresAccess, owned by it).
pub const DATABASE_ROLE: Kind = Kind {
    group: "postgresql.cnpg.io",
    version: "v1",
    kind: "DatabaseRole",
    plural: "databaseroles",
    keeps_data: false,
};

/// The label naming the PostgresAccess a DatabaseRole was made for.
pub const ACCESS_LABEL: &str = "data.nais.io/postgres-access";

/// The group role a level is a member of (made in every cluster, see `cluster::ACCESS_ROLES`).
pub fn group_role(level: AccessLevel) -> &'static str {
    match level {
        AccessLevel::Read => "pgrator_read",
        AccessLevel::Readwrite => "pgrator_readwrite",
        AccessLevel::Admin => "pgrator_admin",
    }
}

/// The personal role: `p_<readable>_<level>_<hash of the subject>`, readable from the e-mail's local part,
/// unique by the subject's hash, at most 63 bytes, and never a reserved prefix (pg_, cnpg_).
pub fn role_name(subject: &str, email: Option<&str>, level: AccessLevel) -> String {
    let readable: String = email
        .and_then(|e| e.split('@').next())
        .unwrap_or("user")
        .chars()
        .map(|c| c.to_ascii_lowercase())
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .take(24)
        .collect();
    let readable = readable.trim_matches('_');
    let readable = if readable.is_empty() {
        "user"
    } else {
        readable
    };
    let digest = Sha256::digest(subject.as_bytes());
    let hash: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
    format!("p_{readable}_{}_{hash}", level.as_str())
}

/// Where a grant stands at `now`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Standing {
    /// Within its time: its line and role should exist.
    Open {
        until: Timestamp,
    },
    Expired {
        at: Timestamp,
    },
    /// Never valid (the message says why).
    Invalid(String),
}

/// Judges one grant against the platform's maximum length and the clock.
pub fn standing(access: &PostgresAccess, max_ttl_seconds: u64, now: Timestamp) -> Standing {
    let Ok(until) = access.spec.expires_at.parse::<Timestamp>() else {
        return Standing::Invalid(format!(
            "expiresAt {:?} is not an RFC 3339 time",
            access.spec.expires_at
        ));
    };
    let created = access
        .metadata
        .creation_timestamp
        .as_ref()
        .map(|t| t.0)
        .unwrap_or(now);
    let longest = i64::try_from(max_ttl_seconds).unwrap_or(i64::MAX);
    // A minute of grace for clocks and the time between the API's check and the object's creation.
    if until.duration_since(created).as_secs() > longest.saturating_add(60) {
        return Standing::Invalid(format!(
            "expiresAt is more than the platform's maximum of {} hours after creation",
            max_ttl_seconds / 3600
        ));
    }
    if now >= until {
        Standing::Expired { at: until }
    } else {
        Standing::Open { until }
    }
}

/// How long an ended grant stays in the validator's list: long enough for the validator's session reaper to end
/// the role's open sessions, and for the validator to keep refusing the role while pg_ident.conf might still map
/// it (the operator down). Its pg_ident line goes at the end itself.
pub const ENDED_KEPT_FOR_SECS: i64 = 600;

/// One grant as the Cluster needs it: open (pg_ident line and list entry), or recently ended (list entry only).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct OpenGrant {
    pub role: String,
    pub subject: String,
    pub until: i64,
    pub open: bool,
}

/// The grants of the Postgres `postgres` that the Cluster must carry at `now`: the open ones and those ended less
/// than [`ENDED_KEPT_FOR_SECS`] ago; sorted, so the Cluster does not change with the listing order.
pub fn open_grants(
    accesses: &[&PostgresAccess],
    postgres: &str,
    max_ttl_seconds: u64,
    now: Timestamp,
) -> Vec<OpenGrant> {
    let mut grants: Vec<OpenGrant> = accesses
        .iter()
        .filter(|a| a.spec.postgres == postgres && a.metadata.deletion_timestamp.is_none())
        .filter_map(|a| {
            let (until, open) = match standing(a, max_ttl_seconds, now) {
                Standing::Open { until } => (until, true),
                Standing::Expired { at }
                    if now.as_second() - at.as_second() < ENDED_KEPT_FOR_SECS =>
                {
                    (at, false)
                }
                _ => return None,
            };
            Some(OpenGrant {
                role: role_name(
                    &a.spec.identity.subject,
                    a.spec.identity.email.as_deref(),
                    a.spec.level,
                ),
                subject: a.spec.identity.subject.clone(),
                until: until.as_second(),
                open,
            })
        })
        .collect();
    grants.sort();
    grants.dedup_by(|a, b| {
        a.role == b.role && a.subject == b.subject && {
            b.until = b.until.max(a.until);
            true
        }
    });
    grants
}

/// pg_ident lines of the open grants.
pub fn ident_lines(grants: &[OpenGrant]) -> Vec<IdentLine> {
    grants
        .iter()
        .filter(|g| g.open)
        .map(|g| IdentLine {
            identity: g.subject.clone(),
            role: g.role.clone(),
        })
        .collect()
}

/// The validator's `grants` setting: `<role> <subject> <unix end>` per grant, comma-separated.
pub fn grants_setting(grants: &[OpenGrant]) -> String {
    grants
        .iter()
        .map(|g| format!("{} {} {}", g.role, g.subject, g.until))
        .collect::<Vec<_>>()
        .join(",")
}

/// When the Postgres must be looked at again: the first end of an open grant, or the time an ended one leaves
/// the list.
pub fn next_expiry(grants: &[OpenGrant]) -> Option<i64> {
    grants
        .iter()
        .map(|g| {
            if g.open {
                g.until
            } else {
                g.until + ENDED_KEPT_FOR_SECS
            }
        })
        .min()
}

/// The personal role of a grant. While the grant is open it may log in; after, it stays (with what the person
/// made) but cannot log in. Owned by the PostgresAccess; CNPG keeps the role itself (reclaim policy retain).
pub fn database_role(access: &PostgresAccess, open: bool) -> Option<Child> {
    let namespace = access.metadata.namespace.clone()?;
    let owner = kube::Resource::controller_owner_ref(access, &())?;
    let spec = &access.spec;
    let role = role_name(
        &spec.identity.subject,
        spec.identity.email.as_deref(),
        spec.level,
    );
    let who = spec
        .identity
        .email
        .clone()
        .unwrap_or_else(|| spec.identity.subject.clone());
    let name = names::bounded(&spec.postgres, &format!("-{}", role.replace('_', "-")), 63);
    let metadata = kube::core::ObjectMeta {
        name: Some(name),
        namespace: Some(namespace),
        labels: Some(
            [
                (MANAGED_BY.to_owned(), MANAGER.to_owned()),
                (POSTGRES_LABEL.to_owned(), spec.postgres.clone()),
                (
                    ACCESS_LABEL.to_owned(),
                    access.metadata.name.clone().unwrap_or_default(),
                ),
            ]
            .into(),
        ),
        owner_references: Some(vec![owner]),
        ..Default::default()
    };
    let body = json!({"spec": {
        "cluster": {"name": spec.postgres},
        "name": role,
        "ensure": "present",
        "login": open,
        "inherit": true,
        "inRoles": [group_role(spec.level)],
        "disablePassword": true,
        "connectionLimit": 10,
        "databaseRoleReclaimPolicy": "retain",
        "comment": format!("personal {} access for {who} until {}", spec.level.as_str(), spec.expires_at),
    }});
    Some(Child {
        kind: DATABASE_ROLE,
        object: kube::core::DynamicObject {
            types: Some(kube::core::TypeMeta {
                api_version: DATABASE_ROLE.api_version(),
                kind: DATABASE_ROLE.kind.to_owned(),
            }),
            metadata,
            data: body,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn access(
        name: &str,
        subject: &str,
        level: &str,
        created: &str,
        expires: &str,
    ) -> PostgresAccess {
        let mut a: PostgresAccess = serde_json::from_value(json!({
            "apiVersion": "data.nais.io/v1", "kind": "PostgresAccess",
            "metadata": {"name": name, "namespace": "team-a", "uid": "u-1", "creationTimestamp": created},
            "spec": {"postgres": "orders", "identity": {"subject": subject, "email": "alice.smith@example.com"},
                     "level": level, "reason": "debugging the nightly job", "expiresAt": expires},
        }))
        .expect("an access");
        a.metadata.namespace = Some("team-a".into());
        a
    }

    fn t(s: &str) -> Timestamp {
        s.parse().expect("time")
    }

    #[test]
    fn role_names_are_readable_unique_and_safe() {
        let r = role_name(
            "310000000000000001",
            Some("Alice.Smith@example.com"),
            AccessLevel::Readwrite,
        );
        assert!(r.starts_with("p_alice_smith_readwrite_"), "{r}");
        assert_ne!(
            r,
            role_name(
                "310000000000000002",
                Some("alice.smith@example.com"),
                AccessLevel::Readwrite
            )
        );
        assert!(role_name("x", None, AccessLevel::Read).starts_with("p_user_read_"));
    }

    proptest! {
        #[test]
        fn role_names_are_postgres_identifiers(subject in "\\PC{1,64}", email in "\\PC{0,80}") {
            for level in [AccessLevel::Read, AccessLevel::Readwrite, AccessLevel::Admin] {
                let r = role_name(&subject, Some(&email), level);
                prop_assert!(r.len() <= 63);
                prop_assert!(r.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'), "{}", r);
                prop_assert!(r.starts_with("p_"));
            }
        }
    }

    #[test]
    fn a_grant_is_open_until_its_end_and_then_expired() {
        let a = access(
            "a",
            "s1",
            "read",
            "2026-11-24T10:00:00Z",
            "2026-11-24T12:00:00Z",
        );
        assert_eq!(
            standing(&a, 8 * 3600, t("2026-11-24T11:59:59Z")),
            Standing::Open {
                until: t("2026-11-24T12:00:00Z")
            }
        );
        assert_eq!(
            standing(&a, 8 * 3600, t("2026-11-24T12:00:00Z")),
            Standing::Expired {
                at: t("2026-11-24T12:00:00Z")
            }
        );
    }

    #[test]
    fn a_grant_longer_than_the_maximum_is_invalid() {
        let a = access(
            "a",
            "s1",
            "read",
            "2026-11-24T10:00:00Z",
            "2026-11-24T20:00:00Z",
        );
        assert!(
            matches!(standing(&a, 8 * 3600, t("2026-11-24T11:00:00Z")), Standing::Invalid(m) if m.contains("8 hours"))
        );
    }

    #[test]
    fn open_grants_become_ident_lines_and_the_validator_setting() {
        let a = access(
            "a",
            "s1",
            "read",
            "2026-11-24T10:00:00Z",
            "2026-11-24T12:00:00Z",
        );
        let b = access(
            "b",
            "s2",
            "admin",
            "2026-11-24T10:00:00Z",
            "2026-11-24T11:00:00Z",
        );
        let grants = open_grants(&[&a, &b], "orders", 8 * 3600, t("2026-11-24T10:30:00Z"));
        assert_eq!(grants.len(), 2);
        assert_eq!(
            next_expiry(&grants),
            Some(t("2026-11-24T11:00:00Z").as_second())
        );
        let setting = grants_setting(&grants);
        assert!(
            setting.contains(&format!(
                "{} s2 {}",
                grants
                    .iter()
                    .find(|g| g.subject == "s2")
                    .map(|g| g.role.clone())
                    .unwrap_or_default(),
                t("2026-11-24T11:00:00Z").as_second()
            )),
            "{setting}"
        );
        assert_eq!(ident_lines(&grants).len(), 2);
        let later = open_grants(&[&a, &b], "orders", 8 * 3600, t("2026-11-24T11:00:00Z"));
        assert_eq!(
            ident_lines(&later).len(),
            1,
            "b has ended: no pg_ident line"
        );
        assert_eq!(
            later.len(),
            2,
            "b stays in the validator's list for a while"
        );
        assert!(!later.iter().find(|g| g.subject == "s2").expect("b").open);
        let much_later = open_grants(&[&b], "orders", 8 * 3600, t("2026-11-24T11:10:00Z"));
        assert!(
            much_later.is_empty(),
            "b has left the list after ten minutes"
        );
        assert!(open_grants(&[&a], "other", 8 * 3600, t("2026-11-24T10:30:00Z")).is_empty());
    }

    #[test]
    fn the_role_logs_in_only_while_open() {
        let a = access(
            "a",
            "s1",
            "readwrite",
            "2026-11-24T10:00:00Z",
            "2026-11-24T12:00:00Z",
        );
        let open = database_role(&a, true).expect("role");
        assert_eq!(open.object.data["spec"]["login"], true);
        assert_eq!(
            open.object.data["spec"]["inRoles"],
            json!(["pgrator_readwrite"])
        );
        assert_eq!(
            open.object.data["spec"]["databaseRoleReclaimPolicy"],
            "retain"
        );
        let closed = database_role(&a, false).expect("role");
        assert_eq!(closed.object.data["spec"]["login"], false);
        assert!(
            crate::names::is_dns_label(closed.name()),
            "{}",
            closed.name()
        );
    }
}
