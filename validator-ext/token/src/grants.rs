//! Personal access grants as the operator hands them to the validator (`pgrator_validator.grants`): for a listed
//! role, a login is let in only for the grant's person and only before the grant's end. This holds by itself in
//! the database, even when the operator is down and the pg_ident line outlives the grant.
//!
//! The one definition of the contract: the operator renders the setting with [`Grants::render`], the validator
//! reads it with [`GrantList::read`]; a round-trip property test holds the two together.
//!
//! Format: `<role> <subject> <unix end>` per grant, comma-separated; empty for none.
//!
//! A list that cannot be read fails closed: every personal role (name starting with [`PERSONAL_ROLE_PREFIX`]) is
//! refused and its sessions are ended, until a readable list arrives.

use crate::time::UnixTime;

/// At most this many grants (the setting is bounded like everything else).
pub const MAX_GRANTS: usize = 4096;
/// Every personal role's name starts with this (the operator names them `p_<who>_<level>_<hash>`), so the
/// validator knows which roles to refuse when the list is unreadable.
pub const PERSONAL_ROLE_PREFIX: &str = "p_";

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Grant {
    pub role: String,
    pub subject: String,
    pub until: UnixTime,
}

/// The parsed setting.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    grants: Vec<Grant>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GrantsError {
    #[error("grant {index}: expected \"<role> <subject> <unix end>\", got {got:?}")]
    Shape { index: usize, got: String },
    #[error("grant {index}: {what}")]
    Invalid { index: usize, what: String },
    #[error("more than {MAX_GRANTS} grants")]
    TooMany,
}

/// What the grants say about a login to `role` by `identity`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GrantCheck {
    /// No grant names the role: the grants have nothing to say (pg_ident decides).
    NotListed,
    /// A grant of this person to this role is open.
    Open { until: UnixTime },
    /// The person's grants to this role have all ended.
    Ended { at: UnixTime },
    /// The role is a personal role of someone else.
    OtherPerson,
    /// The list cannot be read and the role is a personal role: refused until the list is readable again.
    Unreadable,
}

/// True for a role name the operator can hand over: lowercase letters, digits and '_', at most 63 bytes.
pub fn valid_role(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// True for an IdP subject the list (and a pg_ident line) can carry: letters, digits and `._@:-`, at most 255.
/// The PostgresAccess schema holds subjects to the same rule.
pub fn valid_subject(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 255
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._@:-".contains(&b))
}

/// True for a role that personal access made (and that the fail-closed rule covers).
pub fn is_personal_role(role: &str) -> bool {
    role.starts_with(PERSONAL_ROLE_PREFIX)
}

impl Grant {
    /// A grant whose role and subject the format can carry, or why not.
    pub fn new(role: &str, subject: &str, until: UnixTime) -> Result<Grant, GrantsError> {
        if !valid_role(role) {
            return Err(GrantsError::Invalid {
                index: 0,
                what: format!("{role:?} is not a role name"),
            });
        }
        if !valid_subject(subject) {
            return Err(GrantsError::Invalid {
                index: 0,
                what: "the subject has characters an IdP subject does not".into(),
            });
        }
        Ok(Grant {
            role: role.to_owned(),
            subject: subject.to_owned(),
            until,
        })
    }
}

impl Grants {
    /// A list of grants (at most [`MAX_GRANTS`]).
    pub fn new(grants: Vec<Grant>) -> Result<Grants, GrantsError> {
        if grants.len() > MAX_GRANTS {
            return Err(GrantsError::TooMany);
        }
        Ok(Grants { grants })
    }

    pub fn parse(text: &str) -> Result<Grants, GrantsError> {
        let mut grants = Vec::new();
        for (index, entry) in text
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .enumerate()
        {
            if grants.len() == MAX_GRANTS {
                return Err(GrantsError::TooMany);
            }
            let parts: Vec<&str> = entry.split_whitespace().collect();
            let [role, subject, until] = parts[..] else {
                return Err(GrantsError::Shape {
                    index,
                    got: entry.chars().take(80).collect(),
                });
            };
            let until = until.parse::<i64>().map_err(|_| GrantsError::Invalid {
                index,
                what: format!("{until:?} is not a unix time"),
            })?;
            let grant = Grant::new(role, subject, UnixTime(until)).map_err(|e| match e {
                GrantsError::Invalid { what, .. } => GrantsError::Invalid { index, what },
                other => other,
            })?;
            grants.push(grant);
        }
        Ok(Grants { grants })
    }

    /// The setting's text: what [`Grants::parse`] reads back to the same list.
    pub fn render(&self) -> String {
        self.grants
            .iter()
            .map(|g| format!("{} {} {}", g.role, g.subject, g.until.seconds()))
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn is_empty(&self) -> bool {
        self.grants.is_empty()
    }

    pub fn len(&self) -> usize {
        self.grants.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Grant> {
        self.grants.iter()
    }

    /// Decides a login to `role` by `identity` at `now`. An end is exclusive: at `until` the grant is over.
    pub fn check(&self, role: &str, identity: &str, now: UnixTime) -> GrantCheck {
        let for_role: Vec<&Grant> = self.grants.iter().filter(|g| g.role == role).collect();
        if for_role.is_empty() {
            return GrantCheck::NotListed;
        }
        let mine: Vec<&Grant> = for_role
            .into_iter()
            .filter(|g| g.subject == identity)
            .collect();
        let Some(latest) = mine.iter().map(|g| g.until).max() else {
            return GrantCheck::OtherPerson;
        };
        if now < latest {
            GrantCheck::Open { until: latest }
        } else {
            GrantCheck::Ended { at: latest }
        }
    }

    /// Roles whose every grant has ended at `now`: their sessions must end.
    pub fn ended_roles(&self, now: UnixTime) -> Vec<&str> {
        let mut roles: Vec<&str> = self.grants.iter().map(|g| g.role.as_str()).collect();
        roles.sort_unstable();
        roles.dedup();
        roles.retain(|role| {
            self.grants
                .iter()
                .filter(|g| g.role == *role)
                .all(|g| g.until <= now)
        });
        roles
    }
}

/// The setting as the validator reads it: a list, or the reason it cannot be read (then it fails closed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GrantList {
    Readable(Grants),
    Unreadable(GrantsError),
}

/// Whose sessions the reaper must end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionsToEnd {
    /// These roles' (every grant of theirs has ended).
    Roles(Vec<String>),
    /// Every personal role's: the list cannot be read, so no personal grant can be shown to be open.
    AllPersonal,
}

impl GrantList {
    /// Reads the setting's text; never fails: an unreadable text is kept as such (and refuses personal roles).
    pub fn read(text: &str) -> GrantList {
        match Grants::parse(text) {
            Ok(grants) => GrantList::Readable(grants),
            Err(problem) => GrantList::Unreadable(problem),
        }
    }

    /// Decides a login as [`Grants::check`] does; while the list is unreadable a personal role is refused.
    pub fn check(&self, role: &str, identity: &str, now: UnixTime) -> GrantCheck {
        match self {
            GrantList::Readable(grants) => grants.check(role, identity, now),
            GrantList::Unreadable(_) if is_personal_role(role) => GrantCheck::Unreadable,
            GrantList::Unreadable(_) => GrantCheck::NotListed,
        }
    }

    /// The sessions to end at `now`.
    pub fn sessions_to_end(&self, now: UnixTime) -> SessionsToEnd {
        match self {
            GrantList::Readable(grants) => SessionsToEnd::Roles(
                grants
                    .ended_roles(now)
                    .into_iter()
                    .map(str::to_owned)
                    .collect(),
            ),
            GrantList::Unreadable(_) => SessionsToEnd::AllPersonal,
        }
    }

    /// Why the list cannot be read, if it cannot.
    pub fn problem(&self) -> Option<&GrantsError> {
        match self {
            GrantList::Readable(_) => None,
            GrantList::Unreadable(problem) => Some(problem),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const T: UnixTime = UnixTime(1_800_000_000);

    fn grants() -> Grants {
        Grants::parse("p_alice_read_1 310000000000000001 1800000000, p_bob_admin_2 310000000000000002 1800000600")
            .expect("valid")
    }

    #[test]
    fn a_listed_role_lets_in_its_person_until_the_end() {
        let g = grants();
        assert_eq!(
            g.check("p_alice_read_1", "310000000000000001", T.minus(1)),
            GrantCheck::Open { until: T }
        );
        assert_eq!(
            g.check("p_alice_read_1", "310000000000000001", T),
            GrantCheck::Ended { at: T }
        );
        assert_eq!(
            g.check("p_alice_read_1", "310000000000000002", T.minus(1)),
            GrantCheck::OtherPerson
        );
        assert_eq!(
            g.check("app", "310000000000000001", T),
            GrantCheck::NotListed
        );
    }

    #[test]
    fn a_renewal_beside_an_ended_grant_is_open() {
        let g = Grants::parse("p_a 1 100, p_a 1 300").expect("valid");
        assert_eq!(
            g.check("p_a", "1", UnixTime(200)),
            GrantCheck::Open {
                until: UnixTime(300)
            }
        );
        assert!(g.ended_roles(UnixTime(200)).is_empty());
    }

    #[test]
    fn ended_roles_are_those_with_no_open_grant() {
        let g = grants();
        assert!(g.ended_roles(T.minus(1)).is_empty());
        assert_eq!(g.ended_roles(T), vec!["p_alice_read_1"]);
        assert_eq!(
            g.ended_roles(T.plus(600)),
            vec!["p_alice_read_1", "p_bob_admin_2"]
        );
    }

    #[test]
    fn empty_and_bad_settings() {
        assert!(Grants::parse("").expect("empty").is_empty());
        assert!(Grants::parse(" , ").expect("blank").is_empty());
        assert!(matches!(
            Grants::parse("p_a 1"),
            Err(GrantsError::Shape { .. })
        ));
        assert!(matches!(
            Grants::parse("P_A 1 2"),
            Err(GrantsError::Invalid { .. })
        ));
        assert!(matches!(
            Grants::parse("p_a x'y 2"),
            Err(GrantsError::Invalid { .. })
        ));
        assert!(matches!(
            Grants::parse("p_a 1 soon"),
            Err(GrantsError::Invalid { .. })
        ));
        let many = vec!["p_a 1 2"; MAX_GRANTS + 1].join(",");
        assert_eq!(Grants::parse(&many), Err(GrantsError::TooMany));
    }

    #[test]
    fn an_unreadable_list_refuses_personal_roles_and_ends_their_sessions() {
        // The hole this closes: a bad or over-long list used to read as "no grants" (enforcement off).
        let too_long = vec!["p_a 1 2"; MAX_GRANTS + 1].join(",");
        for text in [
            "p_alice_read_1 3100 not-a-time",
            "garbage",
            too_long.as_str(),
        ] {
            let list = GrantList::read(text);
            assert!(list.problem().is_some(), "{text}");
            assert_eq!(
                list.check("p_alice_read_1", "3100", T),
                GrantCheck::Unreadable
            );
            assert_eq!(list.check("app", "3100", T), GrantCheck::NotListed);
            assert_eq!(list.sessions_to_end(T), SessionsToEnd::AllPersonal);
        }
        let readable = GrantList::read("p_alice_read_1 3100 1800000000");
        assert_eq!(readable.problem(), None);
        assert_eq!(
            readable.sessions_to_end(T),
            SessionsToEnd::Roles(vec!["p_alice_read_1".into()])
        );
        assert_eq!(
            GrantList::read("").sessions_to_end(T),
            SessionsToEnd::Roles(vec![])
        );
    }

    #[test]
    fn grants_the_format_cannot_carry_are_refused_when_made() {
        assert!(Grant::new("p_a", "310000000000000001", T).is_ok());
        assert!(Grant::new("p_a b", "1", T).is_err());
        assert!(Grant::new("p_a", "1,p_b 2", T).is_err());
        assert!(Grant::new("p_a", "a b", T).is_err());
        assert!(Grant::new("", "1", T).is_err());
        assert_eq!(
            Grants::new(vec![Grant::new("p_a", "1", T).expect("ok"); MAX_GRANTS + 1]),
            Err(GrantsError::TooMany)
        );
    }

    fn grant() -> impl Strategy<Value = Grant> {
        (
            "[a-z_][a-z0-9_]{0,62}",
            "[A-Za-z0-9._@:-]{1,255}",
            any::<i64>(),
        )
            .prop_map(|(role, subject, until)| Grant {
                role,
                subject,
                until: UnixTime(until),
            })
    }

    proptest! {
        #[test]
        fn parsing_never_panics(s in "\\PC{0,200}") {
            let _ = Grants::parse(&s);
        }

        /// The operator's rendering and the validator's parsing are one contract.
        #[test]
        fn what_is_rendered_parses_back_to_the_same_list(list in prop::collection::vec(grant(), 0..20)) {
            let grants = Grants::new(list).expect("few enough");
            let text = grants.render();
            prop_assert_eq!(Grants::parse(&text), Ok(grants));
        }

        #[test]
        fn a_grant_is_open_exactly_before_its_end(until in 0i64..4_000_000_000, now in 0i64..4_000_000_000) {
            let g = Grants::parse(&format!("p_x s {until}")).expect("valid");
            let open = matches!(g.check("p_x", "s", UnixTime(now)), GrantCheck::Open { .. });
            prop_assert_eq!(open, now < until);
            prop_assert_eq!(g.ended_roles(UnixTime(now)).is_empty(), now < until);
        }
    }
}
