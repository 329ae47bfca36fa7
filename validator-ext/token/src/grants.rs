//! Personal access grants as the operator hands them to the validator (`pgrator_validator.grants`): for a listed
//! role, a login is let in only for the grant's person and only before the grant's end. This holds by itself in
//! the database, even when the operator is down and the pg_ident line outlives the grant.
//!
//! Format: `<role> <subject> <unix end>` per grant, comma-separated; empty for none.

use crate::time::UnixTime;

/// At most this many grants (the setting is bounded like everything else).
pub const MAX_GRANTS: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq)]
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
}

fn valid_role(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

fn valid_subject(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 255
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._@:-".contains(&b))
}

impl Grants {
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
            if !valid_role(role) {
                return Err(GrantsError::Invalid {
                    index,
                    what: format!("{role:?} is not a role name"),
                });
            }
            if !valid_subject(subject) {
                return Err(GrantsError::Invalid {
                    index,
                    what: "the subject has characters an IdP subject does not".into(),
                });
            }
            let until = until.parse::<i64>().map_err(|_| GrantsError::Invalid {
                index,
                what: format!("{until:?} is not a unix time"),
            })?;
            grants.push(Grant {
                role: role.to_owned(),
                subject: subject.to_owned(),
                until: UnixTime(until),
            });
        }
        Ok(Grants { grants })
    }

    pub fn is_empty(&self) -> bool {
        self.grants.is_empty()
    }

    pub fn len(&self) -> usize {
        self.grants.len()
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

    proptest! {
        #[test]
        fn parsing_never_panics(s in "\\PC{0,200}") {
            let _ = Grants::parse(&s);
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
