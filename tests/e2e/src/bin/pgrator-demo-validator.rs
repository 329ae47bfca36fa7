//! The demo on the embedded default: a Zitadel-like IdP and PostgreSQL 18 with our validator, and a real psql
//! login through the OAuth device flow, approved as the scripted person `alice`. Prints each step.

use std::time::Instant;

use anyhow::{Result, bail};
use pgrator_e2e::oauth_db::{IDENT_MAP, OAuthDb, VALIDATOR_NAME, hba_scope};
use pgrator_world::idp::defaults::{ALICE, ALICE_SUB, PROJECT_ID, PSQL};
use pgrator_world::postgres::PgConfig;

fn step(n: u32, text: &str) {
    println!("\n[{n}] {text}");
}

fn main() -> Result<()> {
    let started = Instant::now();
    step(
        1,
        "starting the IdP (Zitadel's OIDC library, HTTPS with a throw-away CA) and PostgreSQL 18",
    );
    let db = OAuthDb::start(&[(ALICE_SUB, "app_alice")], PgConfig::default())?;
    println!("    issuer:       {}", db.idp.issuer());
    println!(
        "    postgres:     127.0.0.1:{} (data in {})",
        db.pg.port(),
        db.pg.data_dir().display()
    );

    step(
        2,
        "PostgreSQL is configured for OAuth through the validator",
    );
    println!("    oauth_validator_libraries = '{VALIDATOR_NAME}'");
    println!("    pgrator_validator.audience = '{PROJECT_ID}'");
    println!(
        "    pg_hba.conf:   host all all 127.0.0.1/32 oauth issuer=\"{}\" scope=\"{}\" map={IDENT_MAP}",
        db.idp.issuer(),
        hba_scope()
    );
    println!(
        "    pg_ident.conf: {IDENT_MAP} {ALICE_SUB} app_alice   (alice's IdP subject -> role app_alice)"
    );
    db.pg.sql("postgres", "CREATE ROLE app_alice LOGIN")?;

    let connect = db.connect_as("app_alice", PSQL);
    step(
        3,
        "psql connects; libpq runs the OAuth Device Authorization flow",
    );
    println!("    psql \"{}\"", connect.conninfo());
    let approve = db.idp.approve_as(ALICE);
    let out = db.psql.oauth_sql(
        &connect,
        "SELECT format('logged in as %s (system_user %s) on PostgreSQL %s', current_user, system_user, current_setting('server_version'))",
        &db.trust_bundle,
        std::time::Duration::from_secs(60),
        move |prompt| {
            println!("    psql says: Visit {} and enter the code: {}", prompt.verification_uri, prompt.user_code);
            println!("\n[4] alice approves the code at the IdP");
            approve(prompt)
        },
    )?;
    if !out.success {
        bail!(
            "the login failed:\n{}\n--- server log ---\n{}",
            out.stderr,
            db.pg.log()
        );
    }

    step(
        5,
        "the validator verified the token against the IdP's keys; pg_ident mapped the identity",
    );
    println!("    {}", out.stdout.trim());
    for line in db.pg.log().lines().filter(|l| l.contains("method=oauth")) {
        println!("    server log: {}", line.trim());
    }
    println!(
        "\ndone in {:.1} s (psql login {:.1} s)",
        started.elapsed().as_secs_f64(),
        out.elapsed.as_secs_f64()
    );
    Ok(())
}
