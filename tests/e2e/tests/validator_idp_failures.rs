//! The validator and an IdP that is gone or hangs: a login never hangs, every wait ends on the timeout, on
//! pg_terminate_backend and on authentication_timeout, and a warm key cache keeps logins working while the IdP
//! is down.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use pgrator_e2e::oauth_db::OAuthDb;
use pgrator_world::idp::Fault;
use pgrator_world::idp::defaults::{ALICE_SUB, PSQL};
use pgrator_world::libpq::TokenClient;
use pgrator_world::postgres::PgConfig;
use serde_json::json;

const KEYS: &str = "/oauth/v2/keys";

fn db(config: PgConfig) -> OAuthDb {
    let db = OAuthDb::start(&[(ALICE_SUB, "alice")], config).expect("start the IdP and PostgreSQL");
    db.pg
        .sql("postgres", "CREATE ROLE alice LOGIN")
        .expect("create role alice");
    db
}

fn token(db: &OAuthDb) -> String {
    db.mint_for_alice(json!({})).expect("mint")
}

/// Logs in with `token` on another thread; the receiver gets (result, time taken).
fn login_in_background(
    db: &OAuthDb,
    token: String,
) -> mpsc::Receiver<(Result<String, String>, Duration)> {
    let conninfo = db.connect_as("alice", PSQL).conninfo();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let started = Instant::now();
        let client = TokenClient::load().expect("load libpq");
        let result = client
            .connect(&conninfo, token.as_bytes())
            .and_then(|c| c.query_one("SELECT current_user"));
        let _ = tx.send((result, started.elapsed()));
    });
    rx
}

fn login(db: &OAuthDb, token: &str) -> (Result<String, String>, Duration) {
    login_in_background(db, token.to_string())
        .recv_timeout(Duration::from_secs(60))
        .expect("the login ended")
}

/// The pid of a client backend waiting inside the validator (wait event type Extension).
fn backend_waiting_in_validator(db: &OAuthDb) -> i32 {
    let started = Instant::now();
    loop {
        let pid = db
            .pg
            .sql(
                "postgres",
                "SELECT pid FROM pg_stat_activity WHERE backend_type = 'client backend' \
                 AND wait_event_type = 'Extension' LIMIT 1",
            )
            .expect("query pg_stat_activity");
        if let Ok(pid) = pid.trim().parse() {
            return pid;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no backend ever waited in the validator"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_dead_idp_with_a_cold_cache_refuses_fast_with_a_clear_log_line() {
    let mut db = db(PgConfig::default().setting("pgrator_validator.http_timeout_ms", "3000"));
    let token = token(&db);
    db.idp.stop();
    let before = db.pg.log_len();
    let (result, took) = login(&db, &token);
    assert!(result.is_err(), "logged in without keys");
    // Two connections (libpq's discovery, then the token) on a shared 2-core machine: fast means seconds at most,
    // not the HTTP timeout times retries.
    assert!(took < Duration::from_secs(3), "refusing took {took:?}");
    let log = db.pg.log_since(before);
    assert!(
        log.contains("[idp_error]") && log.contains("fetching"),
        "no clear log line:\n{log}"
    );
    assert!(!log.contains(&token));
}

#[test]
fn a_hanging_idp_ends_the_login_on_the_http_timeout() {
    let db = db(PgConfig::default().setting("pgrator_validator.http_timeout_ms", "1500"));
    let token = token(&db);
    db.idp
        .fault(Fault::Hang, &[KEYS])
        .expect("make the keys endpoint hang");
    let before = db.pg.log_len();
    let (result, took) = login(&db, &token);
    assert!(result.is_err(), "logged in without keys");
    let log = db.pg.log_since(before);
    assert!(log.contains("[idp_error]"), "log:\n{log}");
    // The validator's own account of the wait: "timed out after N ms", N at the timeout, not beyond it.
    let waited: u64 = log
        .split("timed out after ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|ms| ms.parse().ok())
        .unwrap_or_else(|| panic!("no 'timed out after N ms' in the log:\n{log}"));
    assert!(
        (1500..2000).contains(&waited),
        "waited {waited} ms for a 1500 ms timeout"
    );
    assert!(took < Duration::from_secs(6), "the login hung: {took:?}");
}

#[test]
fn pg_terminate_backend_ends_a_login_stuck_on_the_idp_within_a_second() {
    let db = db(PgConfig::default().setting("pgrator_validator.http_timeout_ms", "30000"));
    let token = token(&db);
    db.idp
        .fault(Fault::Hang, &[KEYS])
        .expect("make the keys endpoint hang");
    let pending = login_in_background(&db, token);
    let pid = backend_waiting_in_validator(&db);
    let killed_at = Instant::now();
    let ok = db
        .pg
        .sql("postgres", &format!("SELECT pg_terminate_backend({pid})"))
        .expect("terminate");
    assert_eq!(ok, "t");
    // The backend is gone from the server within a second (measured on the server, not through the client).
    let alive = |pid: i32| {
        db.pg
            .sql(
                "postgres",
                &format!("SELECT count(*) FROM pg_stat_activity WHERE pid = {pid}"),
            )
            .expect("query")
            == "1"
    };
    while alive(pid) && killed_at.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(10));
    }
    let after_kill = killed_at.elapsed();
    assert!(
        after_kill < Duration::from_secs(1),
        "the backend lived {after_kill:?} after pg_terminate_backend"
    );
    let (result, _) = pending
        .recv_timeout(Duration::from_secs(30))
        .expect("the login ended");
    assert!(result.is_err(), "the terminated login succeeded");
}

#[test]
fn authentication_timeout_ends_a_login_stuck_on_the_idp() {
    let db = db(PgConfig::default()
        .setting("pgrator_validator.http_timeout_ms", "30000")
        .setting("authentication_timeout", "'2s'"));
    let token = token(&db);
    db.idp
        .fault(Fault::Hang, &[KEYS])
        .expect("make the keys endpoint hang");
    let before = db.pg.log_len();
    let (result, took) = login(&db, &token);
    assert!(result.is_err(), "logged in without keys");
    // PostgreSQL's own timeout ended the wait inside the validator (not our 30 s HTTP timeout).
    let log = db.pg.log_since(before);
    assert!(
        log.contains("canceling authentication due to timeout"),
        "not ended by authentication_timeout:\n{log}"
    );
    assert!(
        took < Duration::from_secs(2 + 3),
        "the login outlived authentication_timeout: {took:?}"
    );
}

#[test]
fn a_dead_idp_with_a_warm_cache_still_lets_valid_tokens_in() {
    let mut db = db(PgConfig::default().setting("shared_preload_libraries", "'pgrator_validator'"));
    let first = token(&db);
    let (result, _) = login(&db, &first);
    assert_eq!(result.as_deref(), Ok("alice"), "warming the cache");
    let second = token(&db);
    db.idp.stop();
    let (result, took) = login(&db, &second);
    assert_eq!(
        result.as_deref(),
        Ok("alice"),
        "a valid token while the IdP is down"
    );
    assert!(
        took < Duration::from_secs(3),
        "the login waited on the dead IdP: {took:?}"
    );
}
