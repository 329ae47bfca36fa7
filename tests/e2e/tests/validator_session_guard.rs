//! The admin level cannot outlive its grant: a personal session (logged in through the validator, preloaded as
//! the Cluster has it) can do the application owner's work, but not leave a door open for later: no password
//! (not even `app`'s after `SET ROLE app`), no role, no membership, no SECURITY DEFINER function, no default
//! privileges, no grants to PUBLIC or to personal roles. And no ordinary role sets a password at all, so a trigger
//! planted for `app` to run later cannot either.

use pgrator_e2e::oauth_db::OAuthDb;
use pgrator_world::idp::defaults::{ALICE_SUB, PSQL};
use pgrator_world::libpq::TokenClient;
use pgrator_world::postgres::PgConfig;
use serde_json::json;

const ADMIN: &str = "p_alice_admin_1a2b3c4d5e6f";

#[test]
fn a_personal_admin_can_work_but_cannot_leave_a_door_open() {
    let db = OAuthDb::start(
        &[(ALICE_SUB, ADMIN)],
        PgConfig::default().setting("shared_preload_libraries", "'pgrator_validator'"),
    )
    .expect("the IdP and PostgreSQL 18");
    // As the operator's Cluster and CNPG make them: app owns the data, pgrator_admin is a member of app, the
    // personal role a member of pgrator_admin.
    db.pg
        .sql(
            "postgres",
            &format!(
                "CREATE ROLE app LOGIN; CREATE ROLE reporting NOLOGIN; CREATE ROLE pgrator_admin NOLOGIN IN ROLE app; \
                 CREATE ROLE {ADMIN} LOGIN IN ROLE pgrator_admin; CREATE SCHEMA shop AUTHORIZATION app; \
                 SET ROLE app; CREATE TABLE shop.orders (id int); INSERT INTO shop.orders VALUES (1); RESET ROLE;"
            ),
        )
        .expect("the roles and the application's table");

    let token = db.mint_for_alice(json!({})).expect("alice's token");
    let client = TokenClient::load().expect("libpq");
    let alice = client
        .connect(&db.connect_as(ADMIN, PSQL).conninfo(), token.as_bytes())
        .expect("alice logs in as her personal admin role");
    let run = |sql: &str| alice.query_one(&format!("{sql}; SELECT 'done'"));

    // The work an admin is for.
    assert_eq!(
        run("ALTER TABLE shop.orders ADD COLUMN note text").as_deref(),
        Ok("done")
    );
    assert_eq!(
        run("UPDATE shop.orders SET note = 'fixed' WHERE id = 1").as_deref(),
        Ok("done")
    );
    assert_eq!(
        run("CREATE INDEX ON shop.orders (id)").as_deref(),
        Ok("done")
    );
    assert_eq!(
        run("GRANT SELECT ON shop.orders TO reporting").as_deref(),
        Ok("done")
    );

    // Every door that would outlive the grant.
    for (what, sql, says) in [
        (
            "app's password after SET ROLE app",
            "SET ROLE app; ALTER ROLE app PASSWORD 'door'",
            "passwords are set by the platform",
        ),
        (
            "app's password after set_config",
            "SELECT set_config('role', 'app', false); ALTER ROLE app PASSWORD 'door'",
            "passwords are set by the platform",
        ),
        (
            "its own password",
            &format!("ALTER ROLE {ADMIN} PASSWORD 'door'"),
            "passwords are set by the platform",
        ),
        (
            "a new role",
            "CREATE ROLE backdoor LOGIN",
            "may not create roles",
        ),
        (
            "a role attribute",
            &format!("ALTER ROLE {ADMIN} VALID UNTIL 'infinity'"),
            "may not change role attributes",
        ),
        (
            "a membership",
            &format!("GRANT app TO {ADMIN}"),
            "may not grant or revoke role memberships",
        ),
        (
            "a SECURITY DEFINER function",
            "CREATE FUNCTION shop.door() RETURNS int LANGUAGE sql SECURITY DEFINER AS 'SELECT 1'",
            "SECURITY DEFINER",
        ),
        (
            "a function made SECURITY DEFINER",
            "CREATE FUNCTION shop.plain() RETURNS int LANGUAGE sql AS 'SELECT 1'; ALTER FUNCTION shop.plain() SECURITY DEFINER",
            "SECURITY DEFINER",
        ),
        (
            "default privileges",
            "ALTER DEFAULT PRIVILEGES IN SCHEMA shop GRANT SELECT ON TABLES TO PUBLIC",
            "may not change default privileges",
        ),
        (
            "a grant to PUBLIC",
            "GRANT ALL ON shop.orders TO PUBLIC",
            "may not grant privileges to PUBLIC",
        ),
        (
            "a grant to a personal role",
            "GRANT ALL ON shop.orders TO p_alice_read_1a2b3c4d5e6f",
            "may not grant privileges",
        ),
        (
            "a grant to an access group",
            "GRANT ALL ON shop.orders TO pgrator_admin",
            "may not grant privileges",
        ),
        (
            "another session authorization",
            "SET SESSION AUTHORIZATION app",
            "may not change the session authorization",
        ),
    ] {
        let refused = run(sql).expect_err(what);
        assert!(refused.contains(says), "{what}: {refused}");
        let _ = alice.query_one("RESET ROLE; SELECT 1");
    }

    // No ordinary role sets a password, not even its own: a trigger planted for app could not do it either.
    let own = db
        .pg
        .sql("postgres", "SET ROLE app; ALTER ROLE app PASSWORD 'door'")
        .expect_err("app set its own password");
    assert!(
        own.to_string()
            .contains("passwords are set by the platform"),
        "{own}"
    );
    // The platform (a superuser, as CNPG) still can.
    db.pg
        .sql("postgres", "ALTER ROLE app PASSWORD 'from-the-secret'")
        .expect("a superuser sets a password");
    let nothing_left = db
        .pg
        .sql(
            "postgres",
            "SELECT count(*) FROM pg_proc WHERE prosecdef AND pronamespace = 'shop'::regnamespace",
        )
        .expect("query");
    assert_eq!(
        nothing_left.trim(),
        "0",
        "a SECURITY DEFINER function was left behind"
    );
}
