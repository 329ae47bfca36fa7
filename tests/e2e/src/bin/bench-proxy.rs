//! `just bench-proxy`: what a login through `pgrator postgres proxy` costs, side by side in one run, interleaved so
//! the machine's noise falls on every kind alike, against one PostgreSQL 18 (Debian's build, TLS on, the validator
//! preloaded, keys warm) on loopback:
//! - trust: a TLS connection straight to the server, trust login (the floor);
//! - oauth, token in the first message: a TLS connection straight to the server, the token in the first SASL
//!   message (what the proxy does on its server side);
//! - proxy: a client on the proxy's Unix socket, no password; the proxy opens its own TLS connection and logs in
//!   with the token;
//! - libpq 18 oauth: libpq's own flow with a token from its hook (two connections: discovery, then the token).
//!
//! Each login is connect + `SELECT 1` + close. Then 100 clients at once through one proxy, each holding its session
//! for half a second. Prints figures; asserts nothing. PGRATOR_BENCH_LOGINS sets the logins per kind (default 300).
//! Argument: the `pgrator` binary to run as the proxy (a release build).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use pgrator_cli::auth_proxy::upstream::{Route, Upstream};
use pgrator_cli::pgwire;
use pgrator_e2e::oauth_db::{hba_scope, validator_lib};
use pgrator_world::clients::Clients;
use pgrator_world::debian_postgres::{DebianPgSetup, DebianPostgres};
use pgrator_world::idp::defaults::{ALICE, ALICE_SUB, PROJECT_ID, PSQL};
use pgrator_world::idp::{Idp, IdpConfig};
use pgrator_world::libpq::TokenClient;
use pgrator_world::tls::TestCa;
use serde_json::json;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Logs in as `user` (answering OAUTHBEARER with `token` if asked), runs `sql`, reads to ReadyForQuery, closes.
async fn login_query_close<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    user: &str,
    token: Option<&str>,
    sql: &str,
) -> Result<()> {
    let startup = pgwire::Startup {
        version: 196_608,
        params: vec![
            ("user".into(), user.into()),
            ("database".into(), "postgres".into()),
        ],
    };
    s.write_all(&startup.encode()).await?;
    let mut queried = false;
    loop {
        let mut head = [0u8; 5];
        s.read_exact(&mut head).await.context("reading a message")?;
        let len = pgwire::message_len([head[1], head[2], head[3], head[4]], 1 << 20)?;
        let mut body = vec![0u8; len];
        s.read_exact(&mut body).await?;
        match head[0] {
            b'R' => {
                let (code, _) = pgwire::auth_request(&body)?;
                match (code, token) {
                    (pgwire::AUTH_OK, _) => {}
                    (pgwire::AUTH_SASL, Some(t)) => {
                        s.write_all(&pgwire::oauthbearer_initial(t)).await?
                    }
                    (other, _) => bail!("the server asked for authentication {other}"),
                }
            }
            b'E' => bail!("{}", pgwire::ServerError::parse(&body)),
            b'Z' if !queried => {
                let mut q = sql.as_bytes().to_vec();
                q.push(0);
                s.write_all(&pgwire::message(b'Q', &q)).await?;
                queried = true;
            }
            b'Z' => {
                s.write_all(&pgwire::message(b'X', &[])).await?;
                let _ = s.shutdown().await;
                return Ok(());
            }
            _ => {}
        }
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

struct ProxyProcess(Child);

impl Drop for ProxyProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the proxy on a socket in `dir`, logged in from a token cache holding `token`.
fn start_proxy(
    binary: &Path,
    idp: &Idp,
    token: &str,
    dir: &Path,
    server_port: u16,
    ca: &Path,
) -> Result<(ProxyProcess, PathBuf)> {
    let cache = dir.join("token.json");
    let now = jiff::Timestamp::now().as_second();
    std::fs::write(
        &cache,
        json!({"issuer": idp.issuer(), "client_id": PSQL, "access_token": token,
               "issued_at": now, "expires_at": now + 3600})
        .to_string(),
    )?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o600))?;
    let socket_dir = dir.join("socket");
    let mut child = Command::new(binary)
        .args([
            "postgres", "proxy", "bench", "-n", "bench", "--role", "alice",
        ])
        .arg("--socket-dir")
        .arg(&socket_dir)
        .args(["--upstream", &format!("127.0.0.1:{server_port}")])
        .arg("--upstream-ca")
        .arg(ca)
        .args(["--upstream-server-name", "localhost"])
        .env("PGRATOR_ISSUER", idp.issuer())
        .env("PGRATOR_CLIENT_ID", PSQL)
        .env("PGRATOR_TOKEN_CACHE", &cache)
        .env("PGRATOR_CA_FILE", idp.ca_pem_path())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))?;
    let mut first = String::new();
    let stdout = child.stdout.take().context("stdout")?;
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stdout));
    if let Some(line) = lines.next() {
        first = line?;
    }
    std::thread::spawn(move || lines.for_each(drop));
    if !first.contains("listening on") {
        bail!("the proxy did not start: {first:?}");
    }
    Ok((ProxyProcess(child), socket_dir))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let n: usize = std::env::var("PGRATOR_BENCH_LOGINS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let binary = PathBuf::from(
        std::env::args()
            .nth(1)
            .context("usage: bench-proxy <pgrator binary>")?,
    );
    let idp = Idp::start(IdpConfig::default()).context("starting the IdP")?;
    let ca = TestCa::new()?;
    let cert = ca.server_cert("postgres", &[])?;
    let module = std::fs::read(validator_lib()?).context("the validator module")?;
    let setup = DebianPgSetup {
        settings: vec![
            ("max_connections".into(), "250".into()),
            (
                "shared_preload_libraries".into(),
                "'pgrator_validator'".into(),
            ),
            ("dynamic_library_path".into(), "'$libdir:/bench/ext'".into()),
            (
                "oauth_validator_libraries".into(),
                "'pgrator_validator'".into(),
            ),
            (
                "pgrator_validator.audience".into(),
                format!("'{PROJECT_ID}'"),
            ),
            (
                "pgrator_validator.ca_file".into(),
                "'/bench/idp-ca.pem'".into(),
            ),
        ],
        hba: vec![
            "hostssl all bench_trust 127.0.0.1/32 trust".into(),
            format!(
                "hostssl all all 127.0.0.1/32 oauth issuer=\"{}\" scope=\"{}\" map=oauth",
                idp.issuer(),
                hba_scope()
            ),
        ],
        ident: vec![format!("oauth {ALICE_SUB} alice")],
        files: vec![
            ("/bench/ext/pgrator_validator.so".into(), module),
            (
                "/bench/idp-ca.pem".into(),
                idp.ca().ca_pem().as_bytes().to_vec(),
            ),
        ],
        tls: Some(cert),
    };
    let pg = DebianPostgres::start(&setup).context("starting Debian's PostgreSQL 18")?;
    let psql = Clients::locate()?.psql15_path().to_path_buf();
    pg.sql(
        &psql,
        "CREATE ROLE alice LOGIN; CREATE ROLE bench_trust LOGIN",
    )?;
    let token = idp
        .api()
        .mint(&json!({"user": ALICE, "client_id": PSQL, "aud": [PSQL, PROJECT_ID], "scope": hba_scope()}))?
        .access_token;
    let work = tempfile::tempdir()?;
    std::fs::set_permissions(
        work.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )?;
    let (_proxy, socket_dir) =
        start_proxy(&binary, &idp, &token, work.path(), pg.port(), &ca.ca_path())?;
    let socket = socket_dir.join(".s.PGSQL.5432");
    let direct = Upstream::new(
        Route::Direct(format!("127.0.0.1:{}", pg.port())),
        ca.ca_pem().as_bytes(),
        "localhost",
    )?;
    let libpq = TokenClient::load()?;
    let libpq_conninfo = format!(
        "host=127.0.0.1 port={} dbname=postgres user=alice sslmode=verify-full sslrootcert={} \
         oauth_issuer={} oauth_client_id={PSQL}",
        pg.port(),
        ca.ca_path().display(),
        idp.issuer()
    );

    const KINDS: [&str; 4] = [
        "trust (TLS, direct)",
        "oauth, token first (TLS)",
        "proxy (socket -> TLS)",
        "libpq 18 oauth (TLS)",
    ];
    let mut times: Vec<Vec<Duration>> = vec![Vec::with_capacity(n); KINDS.len()];
    for round in 0..n + 10 {
        for (k, kind) in times.iter_mut().enumerate() {
            let t = Instant::now();
            match k {
                0 => {
                    let s = direct.connect().await?;
                    login_query_close(s.tls, "bench_trust", None, "SELECT 1").await?
                }
                1 => {
                    let s = direct.connect().await?;
                    login_query_close(s.tls, "alice", Some(&token), "SELECT 1").await?
                }
                2 => {
                    let s = tokio::net::UnixStream::connect(&socket).await?;
                    login_query_close(s, "anyone", None, "SELECT 1").await?
                }
                _ => {
                    let conn = libpq
                        .connect(&libpq_conninfo, token.as_bytes())
                        .map_err(anyhow::Error::msg)?;
                    conn.query_one("SELECT 1").map_err(anyhow::Error::msg)?;
                }
            }
            // The first ten rounds warm keys, caches and connections up.
            if round >= 10 {
                kind.push(t.elapsed());
            }
        }
    }

    println!(
        "{n} logins per kind, interleaved (connect + SELECT 1 + close), PostgreSQL 18 (Debian, TLS) on loopback"
    );
    println!(
        "\n{:<28} {:>9} {:>9} {:>9} {:>10}",
        "login", "p50 ms", "p99 ms", "mean ms", "logins/s"
    );
    let mut means = Vec::new();
    let mut medians = Vec::new();
    for (name, kind) in KINDS.iter().zip(times.iter_mut()) {
        kind.sort();
        let mean = kind.iter().sum::<Duration>() / kind.len() as u32;
        means.push(mean.as_secs_f64());
        medians.push(percentile(kind, 0.5).as_secs_f64());
        println!(
            "{:<28} {:>9.2} {:>9.2} {:>9.2} {:>10.0}",
            name,
            ms(percentile(kind, 0.5)),
            ms(percentile(kind, 0.99)),
            ms(mean),
            1.0 / mean.as_secs_f64()
        );
    }
    println!(
        "\nproxy / trust: {:.2}x of means, {:.2}x of medians (target: at most 1.15x)",
        means[2] / means[0],
        medians[2] / medians[0]
    );
    println!(
        "proxy / libpq 18 oauth: {:.2}x of means; oauth token-first / trust: {:.2}x",
        means[2] / means[3],
        means[1] / means[0]
    );

    // 100 clients at once through the one proxy, each holding its session for half a second.
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let socket = socket.clone();
        tasks.push(tokio::spawn(async move {
            let s = tokio::net::UnixStream::connect(&socket).await?;
            login_query_close(s, "anyone", None, "SELECT pg_sleep(0.5)").await
        }));
    }
    let mut errors = Vec::new();
    for t in tasks {
        match t.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => errors.push(e.to_string()),
            Err(e) => errors.push(e.to_string()),
        }
    }
    println!(
        "\n100 concurrent clients through one proxy (each SELECT pg_sleep(0.5)): {} errors, all done in {:.2} s",
        errors.len(),
        started.elapsed().as_secs_f64()
    );
    for e in errors.iter().take(5) {
        println!("  error: {e}");
    }
    if !errors.is_empty() {
        bail!("{} of 100 concurrent clients failed", errors.len());
    }
    Ok(())
}
