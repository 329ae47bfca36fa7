//! Personal access: from the `PostgresAccess` objects of a database to its personal roles (CNPG `DatabaseRole`),
//! its pg_ident lines and the validator's list of grants. Pure: the time is an input.
//!
//! The grant's end reaches the validator through the Cluster's `pgrator_validator.grants` setting
//! (`<role> <subject> <unix end>` per grant, comma-separated): the validator refuses a login to a listed role by
//! anyone else or after the end, and its worker ends the sessions of expired roles, even when the operator is down.

use jiff::Timestamp;
use serde_json::json;
use sha2::{Digest, Sha256};

use pgrator_token::{Grant, Grants, PERSONAL_ROLE_PREFIX, UnixTime};

use super::{Child, Context, IdentLine, Kind};
use crate::api::access::Identity;
use crate::api::{AccessLevel, PostgresAccess, PostgresAccessSpec};
use crate::names;

/// The CNPG kind of a personal role (made for a PostgresAccess, owned by it).
pub const DATABASE_ROLE: Kind = Kind {
    group: "postgresql.cnpg.io",
    version: "v1",
    kind: "DatabaseRole",
    plural: "databaseroles",
    keeps_data: false,
};

/// The label with the grantee's subject (to list a person's grants; the spec decides).
pub const SUBJECT_LABEL: &str = "data.nais.io/subject";

/// The PostgresAccess the access API creates for a checked request made at `now`: ends `ttl` after `now` (whole
/// seconds), labelled for listing, and held by the revocation finalizer from the start.
pub fn requested(
    namespace: &str,
    postgres: &str,
    identity: Identity,
    level: AccessLevel,
    reason: &str,
    ttl: std::time::Duration,
    now: Timestamp,
) -> PostgresAccess {
    let expires = now + jiff::SignedDuration::try_from(ttl).unwrap_or_default();
    let expires = expires.round(jiff::Unit::Second).unwrap_or(expires);
    let mut labels = std::collections::BTreeMap::from([
        (names::MANAGED_BY.to_owned(), names::MANAGER.to_owned()),
        (names::POSTGRES_LABEL.to_owned(), postgres.to_owned()),
    ]);
    if is_label_value(&identity.subject) {
        labels.insert(SUBJECT_LABEL.to_owned(), identity.subject.clone());
    }
    PostgresAccess {
        metadata: kube::core::ObjectMeta {
            generate_name: Some(format!("{postgres}-")),
            namespace: Some(namespace.to_owned()),
            labels: Some(labels),
            finalizers: Some(vec![FINALIZER.to_owned()]),
            ..Default::default()
        },
        spec: PostgresAccessSpec {
            postgres: postgres.to_owned(),
            identity,
            level,
            reason: reason.to_owned(),
            expires_at: expires.to_string(),
        },
        status: None,
    }
}

/// A Kubernetes label value: at most 63 of `[A-Za-z0-9_.-]`, starting and ending alphanumeric.
pub fn is_label_value(s: &str) -> bool {
    s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && s.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && s.bytes().last().is_some_and(|b| b.is_ascii_alphanumeric())
}

/// The group role a level is a member of (made in every cluster, see `cluster::ACCESS_ROLES`).
pub fn group_role(level: AccessLevel) -> &'static str {
    match level {
        AccessLevel::Read => "pgrator_read",
        AccessLevel::Readwrite => "pgrator_readwrite",
        AccessLevel::Admin => "pgrator_admin",
    }
}

/// The personal role: `p_<readable>_<level>_<hash of the subject>`, readable from the e-mail's local part,
/// unique by the subject's hash (48 bits), at most 63 bytes, and never a reserved prefix (pg_, cnpg_). The `p_`
/// prefix is how the validator knows a personal role when it must fail closed.
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
    let hash: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
    format!("{PERSONAL_ROLE_PREFIX}{readable}_{}_{hash}", level.as_str())
}

/// Where a grant stands at `now`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Standing {
    /// Within its time: its line and role should exist.
    Open { until: Timestamp },
    /// Its time is over.
    Expired { at: Timestamp },
    /// Deleted before its time was over (a revocation): over from the moment of the deletion.
    Revoked { at: Timestamp },
    /// Not valid (the message says why); over since `at`. A grant that was valid when it was made and no longer is
    /// (the platform's maximum was lowered) is over since it was made.
    Invalid { why: String, at: Timestamp },
}

impl Standing {
    /// The grant's end: in the future while open, the moment it ended otherwise.
    pub fn end(&self) -> Timestamp {
        match self {
            Standing::Open { until } => *until,
            Standing::Expired { at } | Standing::Revoked { at } | Standing::Invalid { at, .. } => {
                *at
            }
        }
    }

    pub fn is_open(&self) -> bool {
        matches!(self, Standing::Open { .. })
    }
}

/// Judges one grant against the platform's maximum length and the clock. Every way a grant can stop being open
/// (its end, a deletion, a lowered maximum) gives an end in the past, so it closes the same way as expiry.
pub fn standing(access: &PostgresAccess, max_ttl_seconds: u64, now: Timestamp) -> Standing {
    let created = access
        .metadata
        .creation_timestamp
        .as_ref()
        .map(|t| t.0)
        .unwrap_or(now);
    let Ok(until) = access.spec.expires_at.parse::<Timestamp>() else {
        return Standing::Invalid {
            why: format!(
                "expiresAt {:?} is not an RFC 3339 time",
                access.spec.expires_at
            ),
            at: created,
        };
    };
    let longest = i64::try_from(max_ttl_seconds).unwrap_or(i64::MAX);
    // A minute of grace for clocks and the time between the API's check and the object's creation.
    if until.duration_since(created).as_secs() > longest.saturating_add(60) {
        return Standing::Invalid {
            why: format!(
                "expiresAt is more than the platform's maximum of {} hours after creation",
                max_ttl_seconds / 3600
            ),
            at: created,
        };
    }
    if let Some(deleted) = access.metadata.deletion_timestamp.as_ref().map(|t| t.0)
        && deleted < until
    {
        return Standing::Revoked { at: deleted };
    }
    if now >= until {
        Standing::Expired { at: until }
    } else {
        Standing::Open { until }
    }
}

/// How long a deleted (revoked) grant is held by its finalizer after the deletion: time for CNPG to write the
/// ended entry and NOLOGIN into the database and for the validator's reaper (every second) to end the sessions.
pub const REVOKE_GRACE_SECS: i64 = 30;
/// The finalizer that holds a deleted PostgresAccess until its grant is closed in the database.
pub const FINALIZER: &str = "data.nais.io/access-revocation";
/// At most this many grants go into one database's validator list (open ones first, then the latest ended);
/// far below what the validator reads ([`pgrator_token::grants::MAX_GRANTS`]).
pub const MAX_LISTED_GRANTS: usize = 512;
/// At most this many open grants per database: the access API refuses more.
pub const MAX_OPEN_GRANTS: usize = 128;

/// One person's grant to one personal role of a database, merged over their PostgresAccess objects: open while
/// any of them is open, until the latest end.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct OpenGrant {
    pub role: String,
    pub subject: String,
    pub level: AccessLevel,
    /// The end (unix seconds): in the future while open.
    pub until: i64,
    pub open: bool,
    /// The person as people read them (e-mail, else subject): for the role's comment.
    pub who: String,
}

/// The grants of the Postgres `postgres` at `now`: every PostgresAccess that still exists (open, ended, revoked or
/// invalid; ended ones are deleted after the retention period), merged per (role, subject). Sorted, so the
/// Cluster does not change with the listing order.
pub fn open_grants(
    accesses: &[&PostgresAccess],
    postgres: &str,
    max_ttl_seconds: u64,
    now: Timestamp,
) -> Vec<OpenGrant> {
    let mut grants: Vec<OpenGrant> = accesses
        .iter()
        .filter(|a| a.spec.postgres == postgres)
        .map(|a| {
            let standing = standing(a, max_ttl_seconds, now);
            let identity = &a.spec.identity;
            OpenGrant {
                role: role_name(&identity.subject, identity.email.as_deref(), a.spec.level),
                subject: identity.subject.clone(),
                level: a.spec.level,
                until: standing.end().as_second(),
                open: standing.is_open(),
                who: identity
                    .email
                    .clone()
                    .unwrap_or_else(|| identity.subject.clone()),
            }
        })
        .collect();
    // Merge per (role, subject): open if any is open, until the latest end of the open ones (else of all).
    grants.sort_by(|a, b| {
        (&a.role, &a.subject, a.open, a.until).cmp(&(&b.role, &b.subject, b.open, b.until))
    });
    let mut merged: Vec<OpenGrant> = Vec::with_capacity(grants.len());
    for g in grants {
        match merged.last_mut() {
            Some(last) if last.role == g.role && last.subject == g.subject => *last = g,
            _ => merged.push(g),
        }
    }
    merged
}

/// The entries of the validator's list: all open grants and the latest ended ones, at most
/// [`MAX_LISTED_GRANTS`], sorted by role. An ended grant cut from the list still has its role NOLOGIN.
pub fn listed(grants: &[OpenGrant]) -> Vec<&OpenGrant> {
    let mut by_priority: Vec<&OpenGrant> = grants.iter().collect();
    by_priority.sort_by(|a, b| b.open.cmp(&a.open).then(b.until.cmp(&a.until)));
    by_priority.truncate(MAX_LISTED_GRANTS);
    by_priority.sort();
    by_priority
}

/// The grants the validator's list carries ([`listed`]), each with its entry: a grant the format cannot carry (the
/// schema keeps them out) is left out, and so is its pg_ident line, so that a line never exists without its entry.
fn entries(grants: &[OpenGrant]) -> Vec<(&OpenGrant, Grant)> {
    listed(grants)
        .into_iter()
        .filter_map(|g| Some((g, Grant::new(&g.role, &g.subject, UnixTime(g.until)).ok()?)))
        .collect()
}

/// pg_ident lines of the open grants that are in the validator's list.
pub fn ident_lines(grants: &[OpenGrant]) -> Vec<IdentLine> {
    entries(grants)
        .into_iter()
        .filter(|(g, _)| g.open)
        .map(|(g, _)| IdentLine {
            identity: g.subject.clone(),
            role: g.role.clone(),
        })
        .collect()
}

/// The validator's `grants` setting, rendered by the token library (the validator parses it with the same code).
/// At most [`MAX_LISTED_GRANTS`], far below what the validator reads, so rendering cannot fail.
pub fn grants_setting(grants: &[OpenGrant]) -> String {
    let list: Vec<Grant> = entries(grants).into_iter().map(|(_, e)| e).collect();
    Grants::new(list).map(|g| g.render()).unwrap_or_default()
}

/// When the Postgres must be looked at again: the first end of an open grant.
pub fn next_expiry(grants: &[OpenGrant]) -> Option<i64> {
    grants.iter().filter(|g| g.open).map(|g| g.until).min()
}

/// The name of the DatabaseRole of the personal role `role` of the Postgres `postgres`.
pub fn database_role_name(postgres: &str, role: &str) -> String {
    names::bounded(postgres, &format!("-{}", role.replace('_', "-")), 63)
}

/// The personal roles of a database, one CNPG DatabaseRole per role however many grants lead to it: it may log in
/// while any grant to it is open, and is a member of its level's group role only then. After the end it keeps
/// what the person made (CNPG retains the role) but can neither log in nor use the group's rights, so nothing it
/// left behind (a SECURITY DEFINER function, say) works with more than its own objects.
pub fn database_roles(cx: &Context<'_>, grants: &[OpenGrant]) -> Vec<Child> {
    let mut roles: Vec<&OpenGrant> = grants.iter().collect();
    roles.sort_by(|a, b| {
        a.role
            .cmp(&b.role)
            .then(b.open.cmp(&a.open))
            .then(b.until.cmp(&a.until))
    });
    roles.dedup_by(|later, first| later.role == first.role);
    roles
        .into_iter()
        .map(|g| {
            let name = database_role_name(&cx.names.postgres, &g.role);
            let until = Timestamp::from_second(g.until)
                .map(|t| t.to_string())
                .unwrap_or_else(|_| g.until.to_string());
            let in_roles: Vec<&str> = if g.open {
                vec![group_role(g.level)]
            } else {
                Vec::new()
            };
            cx.object(
                DATABASE_ROLE,
                name,
                json!({"spec": {
                    "cluster": {"name": cx.names.cluster()},
                    "name": g.role,
                    "ensure": "present",
                    "login": g.open,
                    "inherit": true,
                    "inRoles": in_roles,
                    "disablePassword": true,
                    "connectionLimit": if g.open { 10 } else { 0 },
                    "databaseRoleReclaimPolicy": "retain",
                    "comment": format!(
                        "personal {} access for {} {} {until}",
                        g.level.as_str(),
                        g.who,
                        if g.open { "until" } else { "ended at" },
                    ),
                }}),
            )
        })
        .collect()
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
    fn a_request_becomes_a_held_grant_ending_ttl_after_now() {
        let identity = Identity {
            subject: "310000000000000001".into(),
            email: Some("alice@example.com".into()),
        };
        let now = t("2026-11-24T10:00:00.600Z");
        let a = requested(
            "team-a",
            "orders",
            identity,
            AccessLevel::Read,
            "checking the nightly job",
            std::time::Duration::from_secs(3600),
            now,
        );
        assert_eq!(
            a.spec.expires_at, "2026-11-24T11:00:01Z",
            "rounded to whole seconds"
        );
        assert_eq!(a.metadata.generate_name.as_deref(), Some("orders-"));
        assert_eq!(a.metadata.finalizers, Some(vec![FINALIZER.to_owned()]));
        let labels = a.metadata.labels.expect("labels");
        assert_eq!(labels[SUBJECT_LABEL], "310000000000000001");
        assert_eq!(labels[names::POSTGRES_LABEL], "orders");
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
    fn a_grant_longer_than_the_maximum_is_invalid_and_over_since_it_was_made() {
        let a = access(
            "a",
            "s1",
            "read",
            "2026-11-24T10:00:00Z",
            "2026-11-24T20:00:00Z",
        );
        assert!(matches!(
            standing(&a, 8 * 3600, t("2026-11-24T11:00:00Z")),
            Standing::Invalid { why, at } if why.contains("8 hours") && at == t("2026-11-24T10:00:00Z")
        ));
    }

    fn deleted(mut a: PostgresAccess, at: &str) -> PostgresAccess {
        a.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(t(at)));
        a
    }

    fn setting_entries(grants: &[OpenGrant]) -> Vec<(String, String, i64)> {
        Grants::parse(&grants_setting(grants))
            .expect("the setting parses")
            .iter()
            .map(|g| (g.role.clone(), g.subject.clone(), g.until.seconds()))
            .collect()
    }

    #[test]
    fn a_deleted_grant_is_ended_at_its_deletion_and_stays_listed_as_ended() {
        // The hole this closes: a deleted access used to leave the list at once, so the reaper never ended its
        // sessions and the role kept LOGIN.
        let a = access(
            "a",
            "s1",
            "readwrite",
            "2026-11-24T10:00:00Z",
            "2026-11-24T12:00:00Z",
        );
        let revoked = deleted(a, "2026-11-24T10:30:00Z");
        let now = t("2026-11-24T10:30:05Z");
        assert_eq!(
            standing(&revoked, 8 * 3600, now),
            Standing::Revoked {
                at: t("2026-11-24T10:30:00Z")
            }
        );
        let grants = open_grants(&[&revoked], "orders", 8 * 3600, now);
        assert!(
            ident_lines(&grants).is_empty(),
            "no pg_ident line once revoked"
        );
        assert_eq!(
            setting_entries(&grants),
            vec![(
                grants[0].role.clone(),
                "s1".into(),
                t("2026-11-24T10:30:00Z").as_second()
            )],
            "listed as ended, so the validator refuses it and its reaper ends the sessions"
        );
        let pg = crate::desired::tests::postgres(crate::desired::tests::SMALL);
        let config = crate::config::tests::example();
        let cx = Context::new(&pg, &config).expect("context");
        let roles = database_roles(&cx, &grants);
        assert_eq!(roles.len(), 1);
        assert_eq!(roles[0].object.data["spec"]["login"], false);
        assert_eq!(roles[0].object.data["spec"]["inRoles"], json!([]));
    }

    #[test]
    fn a_grant_that_became_invalid_is_closed_like_an_expired_one() {
        // Created for 8 hours, then the platform's maximum went down to 1 hour.
        let a = access(
            "a",
            "s1",
            "admin",
            "2026-11-24T10:00:00Z",
            "2026-11-24T18:00:00Z",
        );
        let now = t("2026-11-24T13:00:00Z");
        let grants = open_grants(&[&a], "orders", 3600, now);
        assert!(ident_lines(&grants).is_empty());
        assert_eq!(grants.len(), 1);
        assert!(!grants[0].open);
        assert!(grants[0].until <= now.as_second());
        assert_eq!(setting_entries(&grants).len(), 1, "listed as ended");
    }

    #[test]
    fn renewals_overlaps_and_back_to_back_grants_all_work() {
        // The hole this closes: the merge of an ended and a new grant kept the old `open = false`.
        let old = access(
            "old",
            "s1",
            "read",
            "2026-11-24T08:00:00Z",
            "2026-11-24T10:00:00Z",
        );
        let new = access(
            "new",
            "s1",
            "read",
            "2026-11-24T10:00:00Z",
            "2026-11-24T12:00:00Z",
        );
        let overlap = access(
            "overlap",
            "s1",
            "read",
            "2026-11-24T09:00:00Z",
            "2026-11-24T11:00:00Z",
        );
        let now = t("2026-11-24T10:30:00Z");
        for set in [
            vec![&old, &new],
            vec![&new, &old],
            vec![&old, &overlap, &new],
            vec![&overlap, &new],
        ] {
            let grants = open_grants(&set, "orders", 8 * 3600, now);
            assert_eq!(grants.len(), 1, "one role for one person and level");
            assert!(grants[0].open);
            assert_eq!(grants[0].until, t("2026-11-24T12:00:00Z").as_second());
            assert_eq!(ident_lines(&grants).len(), 1);
            let pg = crate::desired::tests::postgres(crate::desired::tests::SMALL);
            let config = crate::config::tests::example();
            let cx = Context::new(&pg, &config).expect("context");
            let roles = database_roles(&cx, &grants);
            assert_eq!(roles.len(), 1, "one DatabaseRole, whatever the order");
            assert_eq!(roles[0].object.data["spec"]["login"], true);
            assert_eq!(
                roles[0].object.data["spec"]["inRoles"],
                json!(["pgrator_read"])
            );
        }
        // A revoked grant beside an open one of the same person and level: the open one stands.
        let revoked = deleted(old.clone(), "2026-11-24T09:30:00Z");
        let grants = open_grants(&[&revoked, &new], "orders", 8 * 3600, now);
        assert!(grants[0].open);
    }

    #[test]
    fn the_list_is_capped_keeping_open_grants_first() {
        let many: Vec<PostgresAccess> = (0..MAX_LISTED_GRANTS + 50)
            .map(|i| {
                let expires = if i < 40 {
                    "2026-11-24T12:00:00Z"
                } else {
                    "2026-11-24T10:10:00Z"
                };
                access(
                    &format!("a{i}"),
                    &format!("s{i}"),
                    "read",
                    "2026-11-24T10:00:00Z",
                    expires,
                )
            })
            .collect();
        let refs: Vec<&PostgresAccess> = many.iter().collect();
        let grants = open_grants(&refs, "orders", 8 * 3600, t("2026-11-24T11:00:00Z"));
        let entries = setting_entries(&grants);
        assert_eq!(entries.len(), MAX_LISTED_GRANTS);
        let open = t("2026-11-24T12:00:00Z").as_second();
        assert_eq!(
            entries.iter().filter(|e| e.2 == open).count(),
            40,
            "every open grant is listed"
        );
    }

    #[test]
    fn the_role_logs_in_and_has_its_group_only_while_open() {
        let a = access(
            "a",
            "s1",
            "readwrite",
            "2026-11-24T10:00:00Z",
            "2026-11-24T12:00:00Z",
        );
        let pg = crate::desired::tests::postgres(crate::desired::tests::SMALL);
        let config = crate::config::tests::example();
        let cx = Context::new(&pg, &config).expect("context");
        let open = &database_roles(
            &cx,
            &open_grants(&[&a], "orders", 8 * 3600, t("2026-11-24T11:00:00Z")),
        )[0];
        assert_eq!(open.object.data["spec"]["login"], true);
        assert_eq!(
            open.object.data["spec"]["inRoles"],
            json!(["pgrator_readwrite"])
        );
        assert_eq!(
            open.object.data["spec"]["databaseRoleReclaimPolicy"],
            "retain"
        );
        let closed = &database_roles(
            &cx,
            &open_grants(&[&a], "orders", 8 * 3600, t("2026-11-24T12:00:00Z")),
        )[0];
        assert_eq!(closed.object.data["spec"]["login"], false);
        assert_eq!(closed.object.data["spec"]["inRoles"], json!([]));
        assert_eq!(closed.object.data["spec"]["connectionLimit"], 0);
        assert!(
            crate::names::is_dns_label(closed.name()),
            "{}",
            closed.name()
        );
    }
}
