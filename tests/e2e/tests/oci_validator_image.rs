//! Issue 5's proof: the validator shipped the way CloudNativePG mounts it. The module is built into an extension
//! image, pushed to a registry (TLS, basic auth), pulled back by digest into an empty `/extensions/<name>` as a node
//! would, and PostgreSQL 18 is started with `dynamic_library_path` and `LD_LIBRARY_PATH` pointing into that tree
//! exactly as CNPG sets them; the real psql then logs in through the validator loaded from the image.

mod oci_support;

use std::time::Duration;

use oci_support::{block_on, client_options, host_arch, open_to_server};
use pgrator_e2e::oauth_db::{VALIDATOR_NAME, validator_pg_config};
use pgrator_e2e::validator_image::{EXTENSION, validator_spec};
use pgrator_extension_oci::extension::build_extension_layout;
use pgrator_extension_oci::registry::{Credentials, pull_image, push_layout};
use pgrator_world::idp::defaults::{ALICE, ALICE_SUB, PSQL};
use pgrator_world::idp::{Idp, IdpConfig};
use pgrator_world::postgres::{PgConfig, Postgres};
use pgrator_world::psql::{OAuthConnect, Psql};
use pgrator_world::registry::{Registry, RegistryOptions};

#[test]
fn psql_logs_in_through_the_validator_from_the_pulled_extension_image() {
    let work = tempfile::tempdir().expect("temp dir");
    let spec = validator_spec(host_arch()).expect("the validator module and its files");
    let layout = work.path().join("layout");
    let built = build_extension_layout(&spec, &layout).expect("build the validator image");
    assert_eq!(built.tag, "0.1.0-18-bookworm");

    let registry = Registry::start(
        RegistryOptions::plain()
            .tls()
            .basic_auth("ci", "push-secret"),
    )
    .expect("start the registry");
    let mut options = client_options(&registry);
    options.credentials = Some(Credentials {
        username: "ci".into(),
        password: "push-secret".into(),
    });
    let pushed = block_on(push_layout(
        &layout,
        &format!("{}/pgrator/{EXTENSION}", registry.address()),
        &options,
    ))
    .expect("push");
    assert!(
        pushed
            .reference
            .ends_with(&format!(":0.1.0-18-bookworm@{}", built.set.digest())),
        "{}",
        pushed.reference
    );

    // The node: an empty directory per extension, the image unpacked into it by digest.
    let extensions = work.path().join("extensions");
    let mount = extensions.join(EXTENSION);
    std::fs::create_dir_all(&mount).expect("mkdir");
    block_on(pull_image(&pushed.reference, &mount, &options, host_arch())).expect("pull by digest");
    open_to_server(work.path());
    open_to_server(&extensions);
    assert!(mount.join(format!("lib/{VALIDATOR_NAME}.so")).is_file());

    // PostgreSQL 18 configured as CNPG does for this extension (dynamic_library_path and extension_control_path
    // appended after the defaults, LD_LIBRARY_PATH from `ld_library_path: [system]`), plus the validator's own
    // settings the operator writes.
    let idp = Idp::start(IdpConfig::default()).expect("start the IdP");
    let pg = Postgres::start(validator_pg_config(
        &idp,
        &mount,
        &[(ALICE_SUB, "alice")],
        PgConfig::default(),
    ))
    .expect("start PostgreSQL 18");
    pg.sql(
        "postgres",
        "CREATE ROLE alice LOGIN; GRANT pg_read_server_files TO alice; \
         GRANT EXECUTE ON FUNCTION pg_read_file(text) TO alice",
    )
    .expect("create role alice");

    let connect = OAuthConnect {
        host: pg.host().to_string(),
        port: pg.port(),
        dbname: "postgres".into(),
        user: "alice".into(),
        issuer: idp.issuer().to_string(),
        client_id: PSQL.into(),
        scope: None,
    };
    let before = pg.log_len();
    let out = Psql::locate()
        .expect("psql")
        .oauth_sql(
            &connect,
            // Who we are, then where this backend mapped the validator from.
            "SELECT current_user || ' ' || system_user; \
             SELECT string_agg(DISTINCT substring(l from '/.*$'), ' ') \
             FROM regexp_split_to_table(pg_read_file('/proc/self/maps'), E'\\n') AS l \
             WHERE l LIKE '%pgrator_validator.so'",
            &idp.ca().system_bundle_with_ca().expect("trust bundle"),
            Duration::from_secs(60),
            idp.approve_as(ALICE),
        )
        .expect("run psql");
    assert!(out.success, "psql login failed:\n{}", out.stderr);
    let mut lines = out.stdout.lines();
    assert_eq!(
        lines.next(),
        Some(format!("alice oauth:{ALICE_SUB}").as_str())
    );
    assert_eq!(
        lines.next(),
        Some(format!("{}/lib/{VALIDATOR_NAME}.so", mount.display()).as_str()),
        "the validator must come from the pulled image"
    );
    let log = pg.log_since(before);
    assert!(
        log.contains(&format!(
            "connection authenticated: identity=\"{ALICE_SUB}\" method=oauth"
        )),
        "server log:\n{log}"
    );
    // The control and SQL files from the image's /share/extension are found through extension_control_path.
    pg.sql("postgres", "CREATE EXTENSION pgrator_validator")
        .expect("CREATE EXTENSION from the image's share/extension");
    assert_eq!(
        pg.sql(
            "postgres",
            "SELECT count(*) > 0 FROM pgrator_validator.counters()"
        )
        .expect("query the extension"),
        "f",
        "not preloaded here: the counters are empty, but the functions load from the image"
    );
}
