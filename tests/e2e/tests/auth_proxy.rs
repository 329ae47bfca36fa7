//! Issue 13's proof on the real CloudNativePG world: `pgrator postgres proxy` logs alice in once and lets clients
//! that cannot do OAuth (Debian bookworm's psql 15, psycopg, node-postgres, pgjdbc), each in its own process, connect
//! as her personal role to PostgreSQL 18 pods that validate her token with our validator, through a kubelet
//! port-forward with TLS verified against the cluster's CA. Her token lives 45 s: a session stays open across its
//! expiry, a later connection is logged in with a refreshed token and no new approval; without a refresh token
//! the proxy shows a device-flow code on its terminal and the waiting client gets in once it is approved.
//! Settings pass through, cancel requests work, a wrong TCP password and other local users are kept out, a revoked
//! grant reaches the client as the server's refusal, Ctrl-C ends the proxy and removes its socket;
//! `pgrator postgres psql` goes through it with no second approval.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kube::api::Api;
use pgrator_e2e::access_world::{cli_as, cli_env};
use pgrator_e2e::cnpg_world::{postgres_with_access, psql_in_db, team_idp_with, world};
use pgrator_e2e::operator::{cli_binary, install_crds, wait_for};
use pgrator_operator::api::PostgresAccess;
use pgrator_world::clients::Clients;
use pgrator_world::idp::defaults::{ALICE, PSQL};

/// Alice's access tokens live this long: the test outlives one.
const TOKEN_LIFETIME: u64 = 45;

/// A running `pgrator postgres proxy`: its output lines as they come.
struct ProxyRun {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    errors: Arc<Mutex<Vec<String>>>,
}

impl ProxyRun {
    fn start(
        env: &[(&'static str, String)],
        kubeconfig: &Path,
        args: &[&str],
    ) -> (ProxyRun, Vec<String>) {
        let mut child = Command::new(cli_binary())
            .args(["postgres", "proxy"])
            .args(args)
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .env("KUBECONFIG", kubeconfig)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start pgrator postgres proxy");
        let lines: Arc<Mutex<Vec<String>>> = Arc::default();
        let errors: Arc<Mutex<Vec<String>>> = Arc::default();
        let (tx, rx) = mpsc::channel();
        let out = BufReader::new(child.stdout.take().expect("stdout"));
        let seen = Arc::clone(&lines);
        std::thread::spawn(move || {
            for line in out.lines().map_while(Result::ok) {
                seen.lock().expect("lines").push(line.clone());
                let _ = tx.send(line);
            }
        });
        let err = BufReader::new(child.stderr.take().expect("stderr"));
        let seen_err = Arc::clone(&errors);
        std::thread::spawn(move || {
            for line in err.lines().map_while(Result::ok) {
                eprintln!("    proxy: {line}");
                seen_err.lock().expect("errors").push(line);
            }
        });
        // The proxy says where it listens, then the connection string.
        let mut head = Vec::new();
        while head.len() < 2 || !head.iter().any(|l: &String| l.starts_with("psql \"")) {
            match rx.recv_timeout(Duration::from_secs(60)) {
                Ok(line) => head.push(line),
                Err(e) => panic!(
                    "the proxy did not say where it listens ({e}): {head:?} {:?}",
                    errors.lock().expect("errors")
                ),
            }
        }
        (
            ProxyRun {
                child,
                lines,
                errors,
            },
            head,
        )
    }

    fn stdout(&self) -> String {
        self.lines.lock().expect("lines").join("\n")
    }

    fn stderr(&self) -> String {
        self.errors.lock().expect("errors").join("\n")
    }
}

impl Drop for ProxyRun {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs a client to its end; a client that hangs fails the test instead of blocking it.
fn run(mut command: Command, what: &str) -> Output {
    let child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {what}: {e}"));
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    rx.recv_timeout(Duration::from_secs(120))
        .unwrap_or_else(|_| panic!("{what} did not end within 120 s"))
        .unwrap_or_else(|e| panic!("{what}: {e}"))
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
        String::from_utf8_lossy(&out.stderr).trim().to_string(),
    )
}

/// The client's one line of output, which must be `expected`.
fn answers(out: Output, what: &str, expected: &str) {
    let (stdout, stderr) = text(&out);
    assert!(
        out.status.success() && stdout == expected,
        "{what}: expected {expected:?}, got {stdout:?} ({}), stderr: {stderr}",
        out.status
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn clients_without_oauth_log_in_through_the_proxy() {
    let world = world();
    let clients = Clients::locate().expect("the clients part (tests/world/install.sh clients)");
    let client = world.client().await.expect("client");
    install_crds(&client).await;
    let ns = world.namespace("proxy").await.expect("namespace");
    // The CLI's client may refresh, and alice's tokens are short-lived.
    let idp = team_idp_with(world, &ns, |config| {
        for c in config.clients.iter_mut().filter(|c| c.client_id == PSQL) {
            c.grant_types = Some(vec![
                "urn:ietf:params:oauth:grant-type:device_code".into(),
                "authorization_code".into(),
                "refresh_token".into(),
            ]);
            c.access_token_lifetime_seconds = Some(TOKEN_LIFETIME);
        }
    })
    .expect("start the IdP where pods reach it");
    let (operator, api_port, clusters) = postgres_with_access(&client, &ns, &idp, "orders").await;
    let cluster = clusters.get("orders").await.expect("the Cluster");
    let primary = pgrator_e2e::cnpg_world::current_primary(&cluster);
    psql_in_db(
        world,
        &ns,
        &primary,
        "app",
        "CREATE TABLE orders (id int); ALTER TABLE orders OWNER TO app; INSERT INTO orders VALUES (4711);",
    );

    // Alice asks for access (the device flow, approved once, asking for a refresh token too).
    let home = tempfile::tempdir().expect("alice's home");
    let mut env = cli_env(&idp, api_port, home.path(), ALICE);
    for (key, value) in env.iter_mut() {
        if *key == "PGRATOR_SCOPES" {
            value.push_str(" offline_access");
        }
    }
    let access = cli_as(
        env.clone(),
        idp.api().clone(),
        ALICE,
        &[
            "postgres",
            "access",
            "orders",
            "-n",
            &ns,
            "--level",
            "readwrite",
            "--ttl",
            "10m",
            "--reason",
            "checking the proxy with every client",
        ],
    )
    .await;
    assert_eq!(access.code, Some(0), "{}\n{}", access.stdout, access.stderr);
    let role = access.role().expect("the CLI names the role");
    let approvals = || {
        idp.api()
            .stats()
            .expect("IdP stats")
            .paths
            .iter()
            .filter(|(p, _)| p.ends_with("device_authorization"))
            .map(|(_, n)| *n)
            .sum::<u64>()
    };
    let approvals_after_access = approvals();
    assert_eq!(approvals_after_access, 1, "one device-flow login so far");

    // The proxy on its default socket (under XDG_RUNTIME_DIR), alice's role from her grant.
    let runtime_dir = tempfile::tempdir().expect("runtime dir");
    let mut proxy_env = env.clone();
    proxy_env.push(("XDG_RUNTIME_DIR", runtime_dir.path().display().to_string()));
    let (mut proxy, head) = ProxyRun::start(&proxy_env, world.kubeconfig(), &["orders", "-n", &ns]);
    let socket_dir = runtime_dir.path().join(format!("pgrator/{ns}.orders"));
    assert!(
        head[0].contains(&format!(
            "as {role}, listening on {}",
            socket_dir.join(".s.PGSQL.5432").display()
        )),
        "{head:?}"
    );
    let conninfo = head
        .iter()
        .find_map(|l| l.strip_prefix("psql \"").and_then(|l| l.strip_suffix('"')))
        .expect("a connection string")
        .to_owned();
    assert_eq!(
        conninfo,
        format!(
            "host={} port=5432 dbname=app user={role}",
            socket_dir.display()
        )
    );
    assert_eq!(
        std::fs::metadata(&socket_dir)
            .expect("socket dir")
            .permissions()
            .mode()
            & 0o777,
        0o700
    );

    // Each client, its own process, as alice's personal role; the table the app owns is readable (readwrite).
    let who = "SELECT current_user || ' ' || (SELECT count(*) FROM orders WHERE id = 4711)";
    let expected = format!("{role} 1");
    let started = Instant::now();
    answers(
        run(clients.psql15(&conninfo, who), "psql 15"),
        "psql 15",
        &expected,
    );
    let psql_login = started.elapsed();
    answers(
        run(clients.psycopg(&conninfo, who), "psycopg"),
        "psycopg",
        &expected,
    );
    answers(
        run(
            clients.node(&socket_dir.display().to_string(), 5432, &role, "", who),
            "node-postgres",
        ),
        "node-postgres",
        &expected,
    );
    println!(
        "proxy: psql 15 connected and answered in {:.2} s",
        psql_login.as_secs_f64()
    );
    // The client's user name does not matter: the proxy logs in as the grant's role.
    answers(
        run(
            clients.psql15(
                &format!("host={} dbname=app user=postgres", socket_dir.display()),
                "SELECT current_user",
            ),
            "psql 15",
        ),
        "psql 15 as another user",
        &role,
    );
    // Settings pass through: application_name and options.
    answers(
        run(
            clients.psql15(
                &format!("{conninfo} application_name=billing-report options='-c search_path=audit,public'"),
                "SELECT current_setting('application_name') || ' ' || current_setting('search_path')",
            ),
            "psql 15",
        ),
        "settings",
        "billing-report audit,public",
    );

    // TCP, for JDBC: on 127.0.0.1 with a password of this run.
    let (tcp_proxy, tcp_head) = ProxyRun::start(
        &proxy_env,
        world.kubeconfig(),
        &["orders", "-n", &ns, "--tcp", "0"],
    );
    let jdbc_url = tcp_head
        .iter()
        .find(|l| l.starts_with("jdbc:postgresql://127.0.0.1:"))
        .expect("a JDBC URL")
        .to_owned();
    answers(
        run(clients.jdbc(&jdbc_url, who), "pgjdbc"),
        "pgjdbc",
        &expected,
    );
    let port: u16 = jdbc_url
        .trim_start_matches("jdbc:postgresql://127.0.0.1:")
        .split('/')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("the port");
    let wrong = run(
        clients.psql15(
            &format!(
                "host=127.0.0.1 port={port} dbname=app user={role} password=guess sslmode=disable"
            ),
            "SELECT 1",
        ),
        "psql 15 with a wrong password",
    );
    let (_, wrong_err) = text(&wrong);
    assert!(
        !wrong.status.success() && wrong_err.contains("password authentication failed"),
        "{wrong_err}"
    );
    drop(tcp_proxy);

    // Another local user cannot reach the socket: the directory is alice's alone.
    let nobody = |conninfo: &str| {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(clients.psql15_path())
            .args(["-XtAq", "-d", conninfo, "-c", "SELECT current_user"]);
        run(c, "psql 15 as nobody")
    };
    let out = nobody(&conninfo);
    let (stdout, stderr) = text(&out);
    assert!(
        !out.status.success() && stdout.is_empty(),
        "nobody got in: {stdout} {stderr}"
    );
    assert!(stderr.contains("Permission denied"), "{stderr}");
    // Even with the directories opened up by mistake, the proxy checks the peer's uid.
    let opened = [
        runtime_dir.path().to_path_buf(),
        runtime_dir.path().join("pgrator"),
        socket_dir.clone(),
    ];
    let chmod = |p: &Path, mode: u32| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).expect("chmod")
    };
    opened.iter().for_each(|d| chmod(d, 0o755));
    chmod(&socket_dir.join(".s.PGSQL.5432"), 0o777);
    let out = nobody(&conninfo);
    opened.iter().for_each(|d| chmod(d, 0o700));
    chmod(&socket_dir.join(".s.PGSQL.5432"), 0o600);
    let (stdout, stderr) = text(&out);
    assert!(
        !out.status.success() && stdout.is_empty() && !stderr.contains("Permission denied"),
        "nobody got in, or never reached the proxy: {stdout} {stderr}"
    );
    wait_for(
        "the proxy to refuse uid 65534",
        Duration::from_secs(10),
        || async {
            proxy
                .stderr()
                .contains("refused a connection from uid 65534")
                .then_some(())
        },
    )
    .await;

    // A cancel request (psql's Ctrl-C) reaches the server through the proxy.
    let mut sleeper = clients.psql15(&conninfo, "SELECT pg_sleep(60)");
    let sleeper = sleeper
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("psql");
    std::thread::sleep(Duration::from_secs(3));
    let cancel_sent = Instant::now();
    Command::new("kill")
        .args(["-INT", &sleeper.id().to_string()])
        .status()
        .expect("kill -INT");
    let out = sleeper.wait_with_output().expect("psql ended");
    let (_, stderr) = text(&out);
    assert!(
        stderr.contains("canceling statement due to user request")
            && cancel_sent.elapsed() < Duration::from_secs(30),
        "{stderr} after {:?}",
        cancel_sent.elapsed()
    );

    // A cancel request with a key no session of the proxy holds goes nowhere (no server connection for it).
    {
        use std::io::Write as _;
        let mut raw = std::os::unix::net::UnixStream::connect(socket_dir.join(".s.PGSQL.5432"))
            .expect("connect to the proxy");
        let mut packet = 16u32.to_be_bytes().to_vec();
        packet.extend_from_slice(&80_877_102u32.to_be_bytes());
        packet.extend_from_slice(&[0, 0, 0, 1, 9, 9, 9, 9]);
        raw.write_all(&packet).expect("send a cancel request");
    }
    wait_for(
        "the proxy to drop the stray cancel request",
        Duration::from_secs(10),
        || async {
            proxy
                .stderr()
                .contains("a cancel request for no session of this proxy")
                .then_some(())
        },
    )
    .await;

    // A session held open across the token's expiry stays open; a new connection after it is logged in with a
    // refreshed token, with no new approval.
    let mut held = Command::new(clients.psql15_path());
    held.args(["-XtAq", "-v", "ON_ERROR_STOP=1", "-d", &conninfo]);
    let mut held = held
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("psql held open");
    let mut stdin = held.stdin.take().expect("stdin");
    writeln!(stdin, "SELECT 'before ' || pg_backend_pid();").expect("write");
    stdin.flush().expect("flush");
    let tokens_before = idp.api().stats().expect("stats").count("/oauth/v2/token");
    std::thread::sleep(Duration::from_secs(TOKEN_LIFETIME + 5));
    writeln!(stdin, "SELECT 'after ' || pg_backend_pid();").expect("write");
    drop(stdin);
    let out = run_to_end(held);
    let (stdout, stderr) = text(&out);
    let pids: Vec<&str> = stdout
        .lines()
        .map(|l| l.rsplit(' ').next().unwrap_or_default())
        .collect();
    assert!(
        out.status.success() && stdout.lines().count() == 2 && pids[0] == pids[1],
        "the session did not outlive the token: {stdout} / {stderr}"
    );
    answers(
        run(clients.psql15(&conninfo, "SELECT current_user"), "psql 15"),
        "after the token expired",
        &role,
    );
    let tokens_after = idp.api().stats().expect("stats").count("/oauth/v2/token");
    assert!(
        tokens_after > tokens_before,
        "no token request: the token was not renewed ({tokens_before} -> {tokens_after})"
    );
    assert_eq!(
        approvals(),
        approvals_after_access,
        "a new approval was asked for"
    );
    assert!(
        !proxy.stdout().contains("enter the code"),
        "{}",
        proxy.stdout()
    );

    // `pgrator postgres psql` goes through the proxy (psql 15 here) and asks for no new approval.
    let mut psql_env = proxy_env.clone();
    psql_env.push(("PGRATOR_PSQL", clients.psql15_path().display().to_string()));
    let kubeconfig = world.kubeconfig().display().to_string();
    psql_env.push(("KUBECONFIG", kubeconfig));
    let via_cli = cli_as(
        psql_env,
        idp.api().clone(),
        ALICE,
        &[
            "postgres",
            "psql",
            "orders",
            "-n",
            &ns,
            "--level",
            "read",
            "--ttl",
            "5m",
            "--reason",
            "reading through pgrator postgres psql",
            "--",
            "-XtAq",
            "-c",
            "SELECT current_user",
        ],
    )
    .await;
    assert_eq!(
        via_cli.code,
        Some(0),
        "{}\n{}",
        via_cli.stdout,
        via_cli.stderr
    );
    let read_role = via_cli.role().expect("the CLI names the role");
    assert!(read_role.starts_with("p_alice_read_"), "{read_role}");
    assert!(
        via_cli.stdout.lines().any(|l| l == read_role),
        "{}",
        via_cli.stdout
    );
    assert_eq!(
        approvals(),
        approvals_after_access,
        "pgrator postgres psql asked for a new approval"
    );
    // Its run's socket directory is gone with it; the proxy's own stays.
    let left: Vec<_> = std::fs::read_dir(runtime_dir.path().join("pgrator"))
        .expect("the socket directories")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, vec![format!("{ns}.orders")], "left behind: {left:?}");

    // Without a refresh token (an IdP that gives none, or one refused), the proxy falls back to the device flow on
    // its terminal once its token runs out, and the waiting client gets in when the person approves.
    let cache_path = home.path().join(format!("{ALICE}.json"));
    let mut cached: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&cache_path).expect("alice's cache")).expect("json");
    let issued_at = cached["issued_at"].as_u64().expect("issued_at");
    cached
        .as_object_mut()
        .expect("an object")
        .remove("refresh_token")
        .expect("a refresh token was cached");
    std::fs::write(&cache_path, cached.to_string()).expect("rewrite the cache");
    // The proxy keeps its token in memory until the last quarter of its life.
    let stale_at = issued_at + TOKEN_LIFETIME * 3 / 4 + 1;
    let now = jiff::Timestamp::now().as_second() as u64;
    std::thread::sleep(Duration::from_secs(stale_at.saturating_sub(now)));
    let waiting = {
        let command = clients.psql15(&conninfo, "SELECT current_user");
        std::thread::spawn(move || run(command, "psql 15 waiting for the login"))
    };
    let code = wait_for(
        "the proxy to show a device-flow code",
        Duration::from_secs(60),
        || async {
            proxy.stdout().lines().find_map(|l| {
                l.split("enter the code ")
                    .nth(1)
                    .map(|c| c.trim().to_owned())
            })
        },
    )
    .await;
    idp.api().approve(&code, ALICE).expect("alice approves");
    answers(
        waiting.join().expect("the client ran"),
        "a client waiting for the new login",
        &role,
    );
    assert_eq!(approvals(), approvals_after_access + 1, "one new approval");

    // The grants end (revoked): a new connection gets the server's refusal as a client error.
    let grants: Api<PostgresAccess> = Api::namespaced(client.clone(), &ns);
    for g in grants
        .list(&Default::default())
        .await
        .expect("grants")
        .items
    {
        grants
            .delete(&g.metadata.name.clone().expect("name"), &Default::default())
            .await
            .expect("revoke");
    }
    let refused = wait_for(
        "a login through the proxy to be refused",
        Duration::from_secs(60),
        || async {
            // A session logged in just before the revocation is ended by the reaper ("terminating connection due
            // to administrator command"); what is waited for is a login refused.
            let out = run(clients.psql15(&conninfo, "SELECT 1"), "psql 15");
            let refused = !out.status.success()
                && !String::from_utf8_lossy(&out.stderr).contains("administrator command");
            refused.then_some(out)
        },
    )
    .await;
    let (_, stderr) = text(&refused);
    // The server no longer takes her token for the role (no OAuth line for it, or the validator's refusal): the
    // client reads it as a FATAL error, the terminal explains it.
    assert!(
        stderr.contains("FATAL")
            && (stderr.contains("instead of an OAuth token")
                || stderr.contains("OAuth bearer authentication failed")),
        "{stderr}"
    );
    // The terminal's line comes just after the client's error.
    let explained = format!("the database refused the login as {role}");
    wait_for(
        "the proxy to explain the refusal",
        Duration::from_secs(10),
        || async { proxy.stderr().contains(&explained).then_some(()) },
    )
    .await;
    // The refusal made the proxy look for her grant again: there is none now, and the client is told so.
    let out = run(clients.psql15(&conninfo, "SELECT 1"), "psql 15");
    let (_, stderr) = text(&out);
    assert!(
        !out.status.success() && stderr.contains("you have no active access to"),
        "{stderr}"
    );

    // Ctrl-C: the proxy ends cleanly and takes its socket with it.
    Command::new("kill")
        .args(["-INT", &proxy.child.id().to_string()])
        .status()
        .expect("kill -INT");
    let status = wait_child(&mut proxy.child, Duration::from_secs(20));
    assert!(status.success(), "the proxy ended with {status}");
    assert!(
        !socket_dir.join(".s.PGSQL.5432").exists(),
        "the socket stayed behind"
    );
    assert!(proxy.stdout().contains("Stopped."), "{}", proxy.stdout());
    operator.stop().await;
}

fn run_to_end(child: Child) -> Output {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    rx.recv_timeout(Duration::from_secs(60))
        .expect("the client ended")
        .expect("output")
}

fn wait_child(child: &mut Child, timeout: Duration) -> std::process::ExitStatus {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        assert!(
            started.elapsed() < timeout,
            "the proxy did not end within {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
