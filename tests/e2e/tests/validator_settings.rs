//! The validator's settings are checked when they are set: a bad value is refused with a message that names the
//! setting and says what is wrong, and the value in force stays.

use pgrator_e2e::oauth_db::OAuthDb;
use pgrator_world::idp::defaults::{ALICE, ALICE_SUB};
use pgrator_world::postgres::PgConfig;

#[test]
fn a_bad_setting_is_refused_with_a_message_that_names_it() {
    let config = PgConfig::default().setting("shared_preload_libraries", "'pgrator_validator'");
    let db = OAuthDb::start(&[(ALICE_SUB, "alice")], config).expect("start the IdP and PostgreSQL");
    db.pg
        .sql("postgres", "CREATE ROLE alice LOGIN")
        .expect("create role alice");

    for (setting, value, problem) in [
        // The problem is the parser's explanation, never just the echoed value.
        ("algorithms", "HS256", "none and HMAC are never accepted"),
        ("clock_skew", "ten minutes", "not a duration"),
        ("max_token_bytes", "12", "1024"),
        ("scope_check", "sometimes", "is not one of: require, off"),
        (
            "allowed_clients",
            "psql, two words",
            "no spaces or control characters",
        ),
    ] {
        let err = db
            .pg
            .sql(
                "postgres",
                &format!("ALTER SYSTEM SET pgrator_validator.{setting} = '{value}'"),
            )
            .expect_err("a bad value must be refused");
        let text = err.to_string();
        assert!(
            text.contains(&format!(
                "invalid value for parameter \"pgrator_validator.{setting}\""
            )),
            "{setting}: {text}"
        );
        assert!(
            text.contains(problem),
            "{setting}: the message does not say what is wrong: {text}"
        );
    }

    // A good value is taken, and logins still work after the reload.
    db.pg
        .sql(
            "postgres",
            "ALTER SYSTEM SET pgrator_validator.clock_skew = '10s'",
        )
        .expect("a good value");
    db.pg
        .sql("postgres", "SELECT pg_reload_conf()")
        .expect("reload");
    let out = db
        .psql_login(
            "alice",
            ALICE,
            "SELECT current_setting('pgrator_validator.clock_skew')",
        )
        .expect("psql");
    assert!(
        out.success,
        "login after the reload failed:\n{}",
        out.stderr
    );
    assert_eq!(out.stdout.trim(), "10s");
}
