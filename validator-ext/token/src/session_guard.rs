//! What a personal session may not do: leave a door open that outlives its grant.
//!
//! A personal grant ends at its end: the role loses LOGIN and its group, the validator refuses it, its sessions are
//! ended. What must not survive is access created *during* the grant: a password someone can log in with later, a
//! new role, a membership, a `SECURITY DEFINER` function that runs with borrowed rights, default privileges or
//! grants that hand rights to roles the person may hold later. The validator (preloaded) asks [`check`] for every
//! utility statement; this module is pure, the FFI edge only describes the statement.
//!
//! Passwords are the platform's (CNPG sets them from its Secrets, as superuser): no session of an ordinary role
//! sets one, not even its own. That closes the way round through the application: a trigger planted by a personal
//! admin that makes `app` change its own password later.

use crate::grants::is_personal_role;

/// Group roles the operator makes for personal access (`pgrator_read`, ...): a personal session may not grant
/// anything to them, since every later grant of that level would inherit it.
pub const ACCESS_GROUP_PREFIX: &str = "pgrator_";

/// A grantee of an object privilege.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grantee {
    Public,
    Role(String),
    /// CURRENT_USER, SESSION_USER, CURRENT_ROLE (resolved by PostgreSQL to the session's own roles).
    Own,
}

/// A utility statement, as far as the guard cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Statement {
    /// `CREATE/ALTER ROLE ... PASSWORD` (or `\password`).
    SetsPassword,
    /// `CREATE ROLE` (any).
    CreatesRole,
    /// `ALTER ROLE` attributes other than a password (LOGIN, CREATEROLE, VALID UNTIL, ...), not `SET` settings.
    ChangesRoleAttributes,
    /// `GRANT role TO ...` / `REVOKE role FROM ...`.
    RoleMembership,
    /// `CREATE FUNCTION/PROCEDURE ... SECURITY DEFINER` or `ALTER FUNCTION ... SECURITY DEFINER`.
    SecurityDefiner,
    /// `ALTER DEFAULT PRIVILEGES`.
    DefaultPrivileges,
    /// `GRANT <privileges> ON ... TO <grantees>`.
    GrantPrivileges(Vec<Grantee>),
    /// `SET SESSION AUTHORIZATION`.
    SessionAuthorization,
    /// Anything else: not the guard's business.
    Other,
}

/// Who runs the statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Session<'a> {
    /// The role that logged in (`session_user`), whatever `SET ROLE` made current since.
    pub session_user: &'a str,
    pub superuser: bool,
}

/// Why a statement is refused: the message names what is not allowed and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GuardRefusal {
    #[error(
        "passwords are set by the platform (CloudNativePG, from its Secrets), not in a session: a password set here could outlive a personal grant"
    )]
    Password,
    #[error("a personal session ({0}) may not {1}: it would outlive the grant")]
    Personal(String, &'static str),
}

/// Decides a statement for a session.
pub fn check(statement: &Statement, session: Session<'_>) -> Result<(), GuardRefusal> {
    if session.superuser {
        return Ok(());
    }
    if *statement == Statement::SetsPassword {
        return Err(GuardRefusal::Password);
    }
    if !is_personal_role(session.session_user) {
        return Ok(());
    }
    let refuse = |what| {
        Err(GuardRefusal::Personal(
            session.session_user.to_owned(),
            what,
        ))
    };
    match statement {
        Statement::CreatesRole => refuse("create roles"),
        Statement::ChangesRoleAttributes => refuse("change role attributes"),
        Statement::RoleMembership => refuse("grant or revoke role memberships"),
        Statement::SecurityDefiner => refuse("make SECURITY DEFINER functions"),
        Statement::DefaultPrivileges => refuse("change default privileges"),
        Statement::SessionAuthorization => refuse("change the session authorization"),
        Statement::GrantPrivileges(grantees) => {
            let lasting = grantees.iter().any(|g| match g {
                Grantee::Public => true,
                Grantee::Own => true,
                Grantee::Role(r) => is_personal_role(r) || r.starts_with(ACCESS_GROUP_PREFIX),
            });
            if lasting {
                refuse("grant privileges to PUBLIC, to itself, or to personal or access roles")
            } else {
                Ok(())
            }
        }
        Statement::SetsPassword | Statement::Other => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALICE: Session = Session {
        session_user: "p_alice_admin_1a2b3c4d5e6f",
        superuser: false,
    };
    const APP: Session = Session {
        session_user: "app",
        superuser: false,
    };
    const POSTGRES: Session = Session {
        session_user: "postgres",
        superuser: true,
    };

    #[test]
    fn a_personal_session_cannot_leave_a_door_open() {
        for statement in [
            Statement::SetsPassword,
            Statement::CreatesRole,
            Statement::ChangesRoleAttributes,
            Statement::RoleMembership,
            Statement::SecurityDefiner,
            Statement::DefaultPrivileges,
            Statement::SessionAuthorization,
            Statement::GrantPrivileges(vec![Grantee::Public]),
            Statement::GrantPrivileges(vec![Grantee::Own]),
            Statement::GrantPrivileges(vec![
                Grantee::Role("reporting".into()),
                Grantee::Role("p_alice_read_1".into()),
            ]),
            Statement::GrantPrivileges(vec![Grantee::Role("pgrator_read".into())]),
        ] {
            assert!(check(&statement, ALICE).is_err(), "{statement:?}");
        }
        assert_eq!(
            check(
                &Statement::GrantPrivileges(vec![Grantee::Role("reporting".into())]),
                ALICE
            ),
            Ok(())
        );
        assert_eq!(check(&Statement::Other, ALICE), Ok(()));
    }

    #[test]
    fn no_ordinary_role_sets_a_password_and_others_are_untouched() {
        assert_eq!(
            check(&Statement::SetsPassword, APP),
            Err(GuardRefusal::Password)
        );
        for statement in [
            Statement::SecurityDefiner,
            Statement::DefaultPrivileges,
            Statement::GrantPrivileges(vec![Grantee::Public]),
            Statement::Other,
        ] {
            assert_eq!(check(&statement, APP), Ok(()), "{statement:?}");
        }
        assert_eq!(check(&Statement::SetsPassword, POSTGRES), Ok(()));
        assert_eq!(check(&Statement::CreatesRole, POSTGRES), Ok(()));
    }

    #[test]
    fn refusals_say_what_and_why() {
        let e = check(&Statement::SecurityDefiner, ALICE).expect_err("refused");
        assert!(e.to_string().contains("SECURITY DEFINER"), "{e}");
        assert!(e.to_string().contains("p_alice_admin_1a2b3c4d5e6f"), "{e}");
    }
}
