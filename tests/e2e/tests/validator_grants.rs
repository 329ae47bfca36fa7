//! Personal access enforced by the validator itself (`pgrator_validator.grants`), with no operator running: a
//! listed role admits only its person and only until the grant's end, even though pg_ident.conf still maps the
//! identity; at the end the open sessions of the role are ended by the session reaper; a list that cannot be read
//! fails closed (personal roles refused, their sessions ended).

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use pgrator_e2e::oauth_db::OAuthDb;
use pgrator_world::idp::defaults::{ALICE_SUB, BOB, BOB_SUB, PSQL};
use pgrator_world::libpq::TokenClient;
use pgrator_world::postgres::PgConfig;
use serde_json::json;

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Sets the validator's grants list as the operator would (postgresql.conf through ALTER SYSTEM) and reloads.
fn set_grants(db: &OAuthDb, list: &str) {
    db.pg
        .sql(
            "postgres",
            &format!("ALTER SYSTEM SET pgrator_validator.grants = '{list}'"),
        )
        .expect("set the grants");
    db.pg.reload().expect("reload");
    std::thread::sleep(Duration::from_millis(300));
}

/// How long after `since` the session `open` was found ended, if within `bound`.
fn ended_within(
    open: &pgrator_world::libpq::Connection<'_>,
    since: Instant,
    bound: Duration,
) -> Option<Duration> {
    while since.elapsed() < bound {
        if open.query_one("SELECT 1").is_err() {
            return Some(since.elapsed());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

#[test]
fn a_grant_admits_only_its_person_until_its_end_and_then_ends_the_sessions() {
    // pg_ident maps both people to the personal role: only the grant tells them apart and ends the access.
    let db = OAuthDb::start(
        &[(ALICE_SUB, "p_alice"), (BOB_SUB, "p_alice")],
        PgConfig::default().setting("shared_preload_libraries", "'pgrator_validator'"),
    )
    .expect("the IdP and PostgreSQL 18");
    db.pg
        .sql("postgres", "CREATE ROLE p_alice LOGIN")
        .expect("role");
    let end = unix_now() + 8;
    set_grants(&db, &format!("p_alice {ALICE_SUB} {end}"));

    let alice = db.mint_for_alice(json!({})).expect("alice's token");
    let bob = db
        .mint_for_alice(json!({"user": BOB}))
        .expect("bob's token");
    let before = db.pg.log_len();
    assert_eq!(db.token_login("p_alice", &alice).as_deref(), Ok("p_alice"));
    let refused = db.token_login("p_alice", &bob);
    assert!(refused.is_err(), "bob got into alice's personal role");
    let log = db.pg.log_since(before);
    assert!(log.contains("[not_grantee]"), "server log:\n{log}");

    // A session open across the end.
    let client = TokenClient::load().expect("libpq");
    let conninfo = db.connect_as("p_alice", PSQL).conninfo();
    let open = client
        .connect(&conninfo, alice.as_bytes())
        .expect("an open session");
    assert_eq!(open.query_one("SELECT 1").as_deref(), Ok("1"));
    // The log position before the end: the reaper may act within milliseconds of it.
    let after_end = db.pg.log_len();
    while unix_now() < end {
        std::thread::sleep(Duration::from_millis(100));
    }
    let ended = Instant::now();
    let refused = db.token_login("p_alice", &alice);
    assert!(refused.is_err(), "logged in after the grant's end");
    let log = db.pg.log_since(after_end);
    assert!(log.contains("[grant_ended]"), "server log:\n{log}");
    assert!(!log.contains(&alice), "the token is in the log");

    let gone = ended_within(&open, ended, Duration::from_secs(30))
        .expect("the open session outlived the grant by 30 s");
    eprintln!(
        "the open session ended {:.2} s after the grant's end",
        gone.as_secs_f64()
    );
    // The reaper's line may reach the log a moment after the session is gone (a loaded machine).
    let said = "ended 1 session(s) of role(s) whose personal grant is over: p_alice";
    let waited = Instant::now();
    while !db.pg.log_since(after_end).contains(said) && waited.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = db.pg.log_since(after_end);
    assert!(log.contains(said), "{log}");
}

#[test]
fn an_unreadable_grant_list_fails_closed_for_personal_roles() {
    // The hole this closes: a list the parser refused used to read as "no grants" (every personal role unlisted,
    // the reaper idle). Now: personal roles refused and their sessions ended, other roles untouched, loudly.
    let db = OAuthDb::start(
        &[(ALICE_SUB, "p_alice"), (BOB_SUB, "bob")],
        PgConfig::default().setting("shared_preload_libraries", "'pgrator_validator'"),
    )
    .expect("the IdP and PostgreSQL 18");
    db.pg
        .sql(
            "postgres",
            "CREATE ROLE p_alice LOGIN; CREATE ROLE bob LOGIN",
        )
        .expect("roles");
    let end = unix_now() + 3600;
    set_grants(&db, &format!("p_alice {ALICE_SUB} {end}"));
    let alice = db.mint_for_alice(json!({})).expect("alice's token");
    let bob = db
        .mint_for_alice(json!({"user": BOB}))
        .expect("bob's token");
    assert_eq!(db.token_login("p_alice", &alice).as_deref(), Ok("p_alice"));
    let client = TokenClient::load().expect("libpq");
    let open = client
        .connect(&db.connect_as("p_alice", PSQL).conninfo(), alice.as_bytes())
        .expect("an open session");

    // The operator (or anyone) writes a list the validator cannot read: it is taken as written, not refused.
    let before = db.pg.log_len();
    db.pg
        .sql(
            "postgres",
            "ALTER SYSTEM SET pgrator_validator.grants = 'p_alice only-two'",
        )
        .expect("taken as written (refusing it would keep an older list in force)");
    db.pg.reload().expect("reload");
    let gone = ended_within(&open, Instant::now(), Duration::from_secs(30))
        .expect("the personal session outlived an unreadable list by 30 s");
    eprintln!(
        "personal session ended {:.2} s after the unreadable list",
        gone.as_secs_f64()
    );
    let refused = db.token_login("p_alice", &alice);
    assert!(
        refused.is_err(),
        "a personal role got in with an unreadable list"
    );
    assert_eq!(
        db.token_login("bob", &bob).as_deref(),
        Ok("bob"),
        "a role that is not personal is not affected"
    );
    let log = db.pg.log_since(before);
    assert!(log.contains("[grants_unreadable]"), "server log:\n{log}");
    assert!(
        log.contains("pgrator_validator.grants cannot be read")
            && log.contains("expected \"<role> <subject> <unix end>\""),
        "the log says what is wrong:\n{log}"
    );

    // A readable list again: the grant works again.
    set_grants(&db, &format!("p_alice {ALICE_SUB} {end}"));
    assert_eq!(db.token_login("p_alice", &alice).as_deref(), Ok("p_alice"));
}
