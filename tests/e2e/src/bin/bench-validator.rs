//! `just bench-validator`: the cost of an OAuth login through the validator next to trust and SCRAM logins, in
//! one run against one PostgreSQL 18 (validator preloaded, keys warm), interleaved so the machine's noise falls
//! on all three alike. Prints figures; asserts nothing.
//!
//! Also: the time spent inside the validator per login (from its debug1 timing line), logins per second, and IdP
//! requests per 1000 OAuth logins in steady state. PGRATOR_BENCH_LOGINS sets the logins per kind (default 300).

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use pgrator_e2e::oauth_db::{OAuthDb, hba_scope};
use pgrator_e2e::wire::login_select_close;
use pgrator_world::idp::defaults::{ALICE, ALICE_SUB, PROJECT_ID, PSQL};
use pgrator_world::libpq::TokenClient;
use pgrator_world::postgres::PgConfig;
use serde_json::json;

struct Kind {
    name: &'static str,
    conninfo: String,
    token: Vec<u8>,
    times: Vec<Duration>,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() -> Result<()> {
    let n: usize = std::env::var("PGRATOR_BENCH_LOGINS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let config = PgConfig::default()
        .setting("shared_preload_libraries", "'pgrator_validator'")
        .setting("password_encryption", "'scram-sha-256'")
        .hba("host all bench_trust 127.0.0.1/32 trust")
        .hba("host all bench_scram 127.0.0.1/32 scram-sha-256");
    // (These lines come before the catch-all oauth line that OAuthDb adds.)
    let db =
        OAuthDb::start(&[(ALICE_SUB, "alice")], config).context("start the IdP and PostgreSQL")?;
    db.pg.sql(
        "postgres",
        "CREATE ROLE alice LOGIN; CREATE ROLE bench_trust LOGIN; \
         CREATE ROLE bench_scram LOGIN PASSWORD 'bench-password'",
    )?;
    let token = db
        .idp
        .mint(&json!({"user": ALICE, "client_id": PSQL, "aud": [PSQL, PROJECT_ID], "scope": hba_scope()}))?
        .access_token;
    let base = |user: &str| {
        format!(
            "host=127.0.0.1 port={} dbname=postgres user={user}",
            db.pg.port()
        )
    };
    let oauth = db.connect_as("alice", PSQL).conninfo();
    let client = TokenClient::load()?;
    let mut kinds = vec![
        Kind {
            name: "trust",
            conninfo: base("bench_trust"),
            token: vec![],
            times: vec![],
        },
        Kind {
            name: "scram-sha-256",
            conninfo: format!("{} password=bench-password", base("bench_scram")),
            token: vec![],
            times: vec![],
        },
        Kind {
            name: "oauth (validator)",
            conninfo: oauth,
            token: token.into_bytes(),
            times: vec![],
        },
    ];

    // Warm-up: keys into the shared cache, connections and caches primed.
    for kind in &kinds {
        for _ in 0..10 {
            let conn = client
                .connect(&kind.conninfo, &kind.token)
                .map_err(anyhow::Error::msg)?;
            conn.query_one("SELECT 1").map_err(anyhow::Error::msg)?;
        }
    }
    db.idp.reset_stats()?;

    println!(
        "{n} logins per kind, interleaved (connect + SELECT 1 + close), PostgreSQL 18 on loopback"
    );
    let started = Instant::now();
    for _ in 0..n {
        for kind in kinds.iter_mut() {
            let t = Instant::now();
            let conn = client
                .connect(&kind.conninfo, &kind.token)
                .map_err(anyhow::Error::msg)?;
            conn.query_one("SELECT 1").map_err(anyhow::Error::msg)?;
            drop(conn);
            kind.times.push(t.elapsed());
        }
    }
    let wall = started.elapsed();
    let idp = db.idp.stats()?;

    // The same, one connection each, with a client that sends the token in its first message (no discovery
    // connection), next to trust through the same client.
    let port = db.pg.port();
    let token_text = String::from_utf8_lossy(&kinds[2].token).into_owned();
    let mut raw_trust = Vec::with_capacity(n);
    let mut raw_oauth = Vec::with_capacity(n);
    for _ in 0..10 {
        login_select_close(port, "bench_trust", "postgres", None)?;
        login_select_close(port, "alice", "postgres", Some(&token_text))?;
    }
    for _ in 0..n {
        let t = Instant::now();
        login_select_close(port, "bench_trust", "postgres", None)?;
        raw_trust.push(t.elapsed());
        let t = Instant::now();
        login_select_close(port, "alice", "postgres", Some(&token_text))?;
        raw_oauth.push(t.elapsed());
    }

    println!(
        "\n{:<20} {:>9} {:>9} {:>9} {:>10}",
        "login", "p50 ms", "p99 ms", "mean ms", "logins/s"
    );
    let mut means = Vec::new();
    for kind in kinds.iter_mut() {
        kind.times.sort();
        let total: Duration = kind.times.iter().sum();
        let mean = total / kind.times.len() as u32;
        means.push(mean);
        println!(
            "{:<20} {:>9.2} {:>9.2} {:>9.2} {:>10.0}",
            kind.name,
            ms(percentile(&kind.times, 0.5)),
            ms(percentile(&kind.times, 0.99)),
            ms(mean),
            1.0 / mean.as_secs_f64()
        );
    }
    println!(
        "\nratio of means: oauth/trust = {:.2}x, oauth/scram = {:.2}x, scram/trust = {:.2}x",
        means[2].as_secs_f64() / means[0].as_secs_f64(),
        means[2].as_secs_f64() / means[1].as_secs_f64(),
        means[1].as_secs_f64() / means[0].as_secs_f64()
    );
    let oauth_p50 = percentile(&kinds[2].times, 0.5).as_secs_f64()
        / percentile(&kinds[0].times, 0.5).as_secs_f64();
    println!("ratio of medians: oauth/trust = {oauth_p50:.2}x");
    println!("(an OAuth login is two connections in libpq 18: discovery, then the token)");
    raw_trust.sort();
    raw_oauth.sort();
    let mean = |v: &[Duration]| v.iter().sum::<Duration>() / v.len() as u32;
    println!(
        "\none connection, token in the first message (a client holding a token, e.g. a pooler):"
    );
    for (name, times) in [("trust", &raw_trust), ("oauth (validator)", &raw_oauth)] {
        println!(
            "{:<20} {:>9.2} {:>9.2} {:>9.2} {:>10.0}",
            name,
            ms(percentile(times, 0.5)),
            ms(percentile(times, 0.99)),
            ms(mean(times)),
            1.0 / mean(times).as_secs_f64()
        );
    }
    println!(
        "ratio of means: oauth/trust = {:.2}x, ratio of medians: {:.2}x",
        mean(&raw_oauth).as_secs_f64() / mean(&raw_trust).as_secs_f64(),
        percentile(&raw_oauth, 0.5).as_secs_f64() / percentile(&raw_trust, 0.5).as_secs_f64()
    );
    println!(
        "IdP requests per 1000 OAuth logins (steady state): {:.1} ({} requests, {} logins, run {:.1} s)",
        idp.total as f64 * 1000.0 / n as f64,
        idp.total,
        n,
        wall.as_secs_f64()
    );

    // Time inside the validator, from its debug1 line ("decided in N us").
    db.pg
        .sql("postgres", "ALTER SYSTEM SET log_min_messages = 'debug1'")?;
    db.pg.sql("postgres", "SELECT pg_reload_conf()")?;
    std::thread::sleep(Duration::from_millis(300));
    let offset = db.pg.log_len();
    for _ in 0..n {
        let conn = client
            .connect(&kinds[2].conninfo, &kinds[2].token)
            .map_err(anyhow::Error::msg)?;
        drop(conn);
    }
    let mut us: Vec<u64> = db
        .pg
        .log_since(offset)
        .lines()
        .filter_map(|l| {
            l.split("decided in ")
                .nth(1)?
                .split(' ')
                .next()?
                .parse()
                .ok()
        })
        .collect();
    if us.is_empty() {
        bail!("no timing lines from the validator in the server log");
    }
    us.sort_unstable();
    let pick = |p: f64| us[(((us.len() - 1) as f64) * p).round() as usize];
    println!(
        "\nvalidate_cb (warm, RS256, inside the backend): p50 {} us, p99 {} us, max {} us over {} logins",
        pick(0.5),
        pick(0.99),
        us[us.len() - 1],
        us.len()
    );
    Ok(())
}
