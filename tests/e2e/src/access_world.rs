//! What the personal-access test and the demo share: the operator's configuration for the test world, and running
//! the real `pgrator` CLI with its device-flow login approved at the test IdP.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pgrator_operator::config::OperatorConfig;
use pgrator_world::idp::defaults::{ORG_ID, PROJECT_ID, PSQL};
use pgrator_world::idp::{Idp, IdpApi};

use crate::oauth_db::hba_scope;

/// The operator's configuration for this world: the test IdP, the validator image `image`, the IdP's CA (readable
/// by the unprivileged server) for the validator and the access API.
pub fn operator_config(idp: &Idp, image: &str) -> OperatorConfig {
    let ca = idp.ca_pem_path().display().to_string();
    let text = format!(
        r#"
idp:
  issuer: {issuer}
  clientId: {PSQL}
  scopes: [{scopes}]
  audience: "{PROJECT_ID}"
  organizationId: "{ORG_ID}"
  caFile: {ca}
validator:
  image: {image}
  settings: {{ca_file: {ca}}}
postgres:
  images: {{"18": "ghcr.io/cloudnative-pg/postgresql:18.1-system-bookworm"}}
backup: {{bucketPrefix: pgrator-backup, location: europe-north1}}
gcp: {{project: platform-test}}
network: {{cnpgNamespace: cnpg-system, prometheusNamespace: monitoring}}
"#,
        issuer = idp.issuer(),
        scopes = hba_scope().split(' ').collect::<Vec<_>>().join(", "),
    );
    OperatorConfig::from_yaml(&text).expect("the test world's operator configuration is valid")
}

/// The CLI's environment for `person` in this world: API, IdP, scopes (with the project roles), CA, token cache.
pub fn cli_env(
    idp: &Idp,
    api_port: u16,
    cache_dir: &Path,
    person: &str,
) -> Vec<(&'static str, String)> {
    vec![
        ("PGRATOR_API", format!("http://127.0.0.1:{api_port}")),
        // The test API listens on plain HTTP on loopback; without this flag the CLI refuses http://.
        ("PGRATOR_INSECURE_HTTP", "true".to_string()),
        ("PGRATOR_ISSUER", idp.issuer().to_string()),
        ("PGRATOR_CLIENT_ID", PSQL.to_string()),
        (
            "PGRATOR_SCOPES",
            format!("{} email urn:zitadel:iam:org:projects:roles", hba_scope()),
        ),
        ("PGRATOR_CA_FILE", idp.ca_pem_path().display().to_string()),
        (
            "PGRATOR_TOKEN_CACHE",
            cache_dir
                .join(format!("{person}.json"))
                .display()
                .to_string(),
        ),
    ]
}

pub struct CliRun {
    pub stdout: String,
    pub stderr: String,
    pub code: Option<i32>,
    /// From the start until the CLI said the access is active.
    pub active_after: Option<Duration>,
}

impl CliRun {
    /// The personal role the CLI named when the access became active.
    pub fn role(&self) -> Option<String> {
        self.stdout
            .lines()
            .find_map(|l| l.strip_prefix("Access is active: log in as "))
            .and_then(|l| l.split(' ').next())
            .map(str::to_owned)
    }
}

/// Runs the CLI at `binary` with `args`, approving its device-flow login at the IdP as `person`; `echo` prints its
/// output as it comes (the demo).
pub fn run_cli(
    binary: &Path,
    env: &[(&str, String)],
    args: &[&str],
    idp: &IdpApi,
    person: &str,
    echo: bool,
) -> CliRun {
    let started = Instant::now();
    let mut child = Command::new(binary)
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start pgrator");
    let stderr = child.stderr.take().expect("stderr");
    let err_thread =
        std::thread::spawn(move || std::io::read_to_string(stderr).unwrap_or_default());
    let mut stdout = String::new();
    let mut active_after = None;
    for line in BufReader::new(child.stdout.take().expect("stdout")).lines() {
        let line = line.unwrap_or_default();
        if echo {
            println!("    | {line}");
        }
        if let Some(code) = line.split("enter the code ").nth(1) {
            if echo {
                println!("    ({person} approves the code at the IdP)");
            }
            idp.approve(code.trim(), person)
                .expect("approve the CLI's login");
        }
        if line.starts_with("Access is active") {
            active_after = Some(started.elapsed());
        }
        stdout.push_str(&line);
        stdout.push('\n');
    }
    let status = child.wait().expect("wait for pgrator");
    let stderr = err_thread.join().unwrap_or_default();
    if echo {
        for line in stderr.lines() {
            println!("    | {line}");
        }
    }
    CliRun {
        stdout,
        stderr,
        code: status.code(),
        active_after,
    }
}

/// [`run_cli`] with the CLI built for the tests, as `person`, on a blocking thread (it waits for the device-flow
/// approval at the IdP).
pub async fn cli_as(
    env: Vec<(&'static str, String)>,
    idp_api: IdpApi,
    person: &'static str,
    args: &[&str],
) -> CliRun {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_cli(
            &crate::operator::cli_binary(),
            &env,
            &args,
            &idp_api,
            person,
            false,
        )
    })
    .await
    .expect("the CLI ran")
}
