//! `pgrator`: personal, time-limited database access for developers.
//!
//! Exit codes: 0 done, 2 usage, 3 login failed, 4 refused by the access API, 5 a service unavailable,
//! 6 Kubernetes.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use pgrator_cli::auth_proxy::credentials::{Roles, Tokens};
use pgrator_cli::auth_proxy::upstream::{Route, Upstream};
use pgrator_cli::auth_proxy::{self, Listen, Listening, Proxy};
use pgrator_cli::commands::{Session, Target, Wanted};
use pgrator_cli::login::LoginConfig;
use pgrator_cli::{CliError, forward, http};

#[derive(Parser)]
#[command(
    name = "pgrator",
    version,
    about = "Personal, time-limited access to team databases"
)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Top,
}

#[derive(Args)]
struct Global {
    /// The access API.
    #[arg(
        long,
        env = "PGRATOR_API",
        global = true,
        default_value = "https://pgrator.example.com"
    )]
    api: String,
    /// The IdP issuer.
    #[arg(
        long,
        env = "PGRATOR_ISSUER",
        global = true,
        default_value = "https://auth.example.com"
    )]
    issuer: String,
    /// The OAuth client of the CLI and psql (a public client with the device flow).
    #[arg(long, env = "PGRATOR_CLIENT_ID", global = true, default_value = "psql")]
    client_id: String,
    /// Scopes to ask for (space-separated; `email` lets the access API name your role after you).
    #[arg(
        long,
        env = "PGRATOR_SCOPES",
        global = true,
        default_value = "openid email"
    )]
    scopes: String,
    /// CA file for the IdP and the API (default: the system's CAs).
    #[arg(long, env = "PGRATOR_CA_FILE", global = true)]
    ca_file: Option<String>,
    /// Allow plain http:// for the API and the IdP (a test world on loopback only; tokens would travel in clear).
    #[arg(long, env = "PGRATOR_INSECURE_HTTP", global = true, hide = true)]
    insecure_http: bool,
    /// Where the login is cached (default: ~/.cache/pgrator/token.json; `-` for none).
    #[arg(long, env = "PGRATOR_TOKEN_CACHE", global = true)]
    token_cache: Option<String>,
}

#[derive(Subcommand)]
enum Top {
    /// Team databases.
    #[command(subcommand)]
    Postgres(PostgresCommand),
}

#[derive(Subcommand)]
enum PostgresCommand {
    /// Request personal access and wait until it is active.
    Access {
        #[command(flatten)]
        request: Request,
    },
    /// Request access, then run psql through the authenticating proxy (repeated runs approve once); with --host,
    /// psql 18 logs in itself through the device flow.
    Psql {
        #[command(flatten)]
        request: Request,
        /// psql to run.
        #[arg(long, env = "PGRATOR_PSQL", default_value = "psql")]
        psql: PathBuf,
        /// Arguments for psql.
        #[arg(last = true)]
        psql_args: Vec<String>,
    },
    /// Log in once and let any PostgreSQL client connect as your personal role, with no password: a local
    /// proxy that logs each connection in with your OAuth token (TLS to the primary, through the Kubernetes API).
    Proxy {
        name: String,
        #[arg(long, short = 'n')]
        namespace: String,
        /// Directory of the Unix socket (made private; default under $XDG_RUNTIME_DIR or /tmp/pgrator-<uid>).
        #[arg(long)]
        socket_dir: Option<PathBuf>,
        /// The socket's port number (clients connect with host=<dir> port=<this>).
        #[arg(long, default_value_t = 5432)]
        socket_port: u16,
        /// Listen on 127.0.0.1:<port> instead of the socket (0: any free port), with a password made for this run
        /// (for clients without Unix sockets, such as JDBC).
        #[arg(long)]
        tcp: Option<u16>,
        /// The role to log in as (default: the one of your active grant on this database).
        #[arg(long)]
        role: Option<String>,
        #[command(flatten)]
        direct: Direct,
    },
    /// Forward a local port to the database's primary through the Kubernetes API, for clients that log in with
    /// OAuth themselves (libpq 18's psql); other clients want `proxy`.
    PortForward {
        name: String,
        #[arg(long, short = 'n')]
        namespace: String,
        /// Local port (0: any free one).
        #[arg(long, default_value_t = 5432)]
        port: u16,
        /// The role to put in the printed connection string.
        #[arg(long, default_value = "<your personal role>")]
        role: String,
    },
    /// Your grants, with the time left.
    Accesses,
}

/// What `access` and `psql` ask for.
#[derive(Args)]
struct Request {
    name: String,
    #[arg(long, short = 'n')]
    namespace: String,
    #[arg(long, value_parser = ["read", "readwrite", "admin"], default_value = "read")]
    level: String,
    /// How long: 30m, 2h, 1h30m.
    #[arg(long, default_value = "1h")]
    ttl: String,
    /// Why (kept in the audit trail).
    #[arg(long)]
    reason: String,
    #[command(flatten)]
    connect: Connect,
}

impl Request {
    fn wanted(&self) -> Wanted<'_> {
        Wanted {
            namespace: &self.namespace,
            postgres: &self.name,
            level: &self.level,
            ttl: &self.ttl,
            reason: &self.reason,
        }
    }
}

/// A database reached directly instead of through Kubernetes (a database outside Kubernetes; the benchmark).
#[derive(Args)]
struct Direct {
    /// host:port of the server.
    #[arg(long, hide = true, requires_all = ["upstream_ca", "upstream_server_name"])]
    upstream: Option<String>,
    /// CA file (PEM) of the server's certificate.
    #[arg(long, hide = true)]
    upstream_ca: Option<PathBuf>,
    /// The name the server's certificate must carry.
    #[arg(long, hide = true)]
    upstream_server_name: Option<String>,
}

#[derive(Args)]
struct Connect {
    /// Database host (default: a local port forwarded to the primary through the Kubernetes API for `psql`,
    /// the read-write service's in-cluster name for `access`).
    #[arg(long)]
    host: Option<String>,
    #[arg(long, default_value_t = 5432)]
    port: u16,
    /// How long to wait for the grant to become active, in seconds.
    #[arg(long, default_value_t = 300)]
    wait: u64,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pgrator: {e}");
            ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(1))
        }
    }
}

fn run(cli: Cli) -> Result<(), CliError> {
    let g = cli.global;
    if g.insecure_http {
        for url in [&g.api, &g.issuer] {
            if url.starts_with("http://") && !http::is_loopback_url(url) {
                return Err(CliError::Usage(format!(
                    "--insecure-http is for a test world on loopback only; {url} is not"
                )));
            }
        }
    }
    let agent = http::agent(g.ca_file.as_deref(), g.insecure_http)?;
    let cache = match g.token_cache.as_deref() {
        Some("-") => None,
        Some(path) => Some(PathBuf::from(path)),
        None => {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/pgrator/token.json"))
        }
    };
    let scopes: Vec<String> = g.scopes.split_whitespace().map(str::to_owned).collect();
    let mut stdout = std::io::stdout();
    let mut session = Session {
        api_base: g.api,
        agent,
        login: LoginConfig {
            issuer: g.issuer.clone(),
            client_id: g.client_id.clone(),
            scopes: scopes.clone(),
            cache,
        },
        out: &mut stdout,
    };
    let target = |name: &str, namespace: &str, c: &Connect| Target {
        host: c
            .host
            .clone()
            .unwrap_or_else(|| format!("{name}-rw.{namespace}.svc")),
        port: c.port,
        issuer: g.issuer.clone(),
        client_id: g.client_id.clone(),
        scopes: scopes.clone(),
    };
    match cli.command {
        Top::Postgres(PostgresCommand::Access { request }) => {
            let t = target(&request.name, &request.namespace, &request.connect);
            let wait = Duration::from_secs(request.connect.wait);
            session.access(&request.wanted(), &t, wait)?;
            Ok(())
        }
        Top::Postgres(PostgresCommand::Psql {
            request,
            psql,
            psql_args,
        }) => {
            let t = target(&request.name, &request.namespace, &request.connect);
            let wait = Duration::from_secs(request.connect.wait);
            let role = session.access(&request.wanted(), &t, wait)?;
            // This run's own socket directory, removed when psql ends.
            let mut socket_dir = None;
            let conninfo = if request.connect.host.is_some() {
                t.conninfo(&role)
            } else {
                // Through the proxy on a socket of this run's own, running beside psql until psql ends: the login
                // is the CLI's (cached), so psql asks for no approval.
                let dir = listen_dir_for_psql(&request.namespace, &request.name)?;
                socket_dir = Some(dir.clone());
                let (namespace, name) = (request.namespace.clone(), request.name.clone());
                let (tokens, roles, agent) = (
                    Tokens::new(session.agent.clone(), session.login.clone()),
                    Roles::Fixed(role.clone()),
                    session.agent.clone(),
                );
                let listening = start_auth_proxy(Listen::Socket { dir, port: 5432 }, async move {
                    Ok(Proxy {
                        upstream: Upstream::for_cluster(kube_client().await?, &namespace, &name)
                            .await?,
                        tokens,
                        roles,
                        agent,
                        cancel_keys: Default::default(),
                    })
                })?;
                listening.conninfo(&role)
            };
            let status = std::process::Command::new(&psql)
                .arg(conninfo)
                .args(&psql_args)
                .status();
            if let Some(dir) = socket_dir {
                let _ = std::fs::remove_dir_all(dir);
            }
            let status =
                status.map_err(|e| CliError::Usage(format!("running {}: {e}", psql.display())))?;
            if status.success() {
                Ok(())
            } else {
                Err(CliError::Unavailable(format!("psql ended with {status}")))
            }
        }
        Top::Postgres(PostgresCommand::Proxy {
            name,
            namespace,
            socket_dir,
            socket_port,
            tcp,
            role,
            direct,
        }) => {
            // One thread: a session's bytes never hop between threads (a login through the proxy costs little more
            // than one straight to the server), and a developer's proxy is bound by the network, not the CPU.
            let runtime = proxy_runtime()?;
            let listen = match (tcp, socket_dir) {
                (Some(port), None) => Listen::Tcp { port },
                (Some(_), Some(_)) => {
                    return Err(CliError::Usage("--tcp and --socket-dir: choose one".into()));
                }
                (None, Some(dir)) => Listen::Socket {
                    dir,
                    port: socket_port,
                },
                (None, None) => {
                    let dir = auth_proxy::listen::default_socket_dir(&namespace, &name)?;
                    if let Some(parent) = dir.parent() {
                        auth_proxy::listen::private_dir(parent)?;
                    }
                    Listen::Socket {
                        dir,
                        port: socket_port,
                    }
                }
            };
            let tokens = Tokens::new(session.agent.clone(), session.login.clone());
            // Log in before listening, so the device flow (if any) comes first and alone.
            runtime.block_on(tokens.get())?;
            let roles = match role {
                Some(role) => Roles::Fixed(role),
                None => Roles::FromGrant {
                    api_base: session.api_base.clone(),
                    namespace: namespace.clone(),
                    postgres: name.clone(),
                    known: Default::default(),
                },
            };
            runtime.block_on(async {
                let upstream = match direct.upstream {
                    Some(addr) => {
                        let ca_path = direct.upstream_ca.unwrap_or_default();
                        let ca = std::fs::read(&ca_path).map_err(|e| {
                            CliError::Usage(format!("reading {}: {e}", ca_path.display()))
                        })?;
                        Upstream::new(
                            Route::Direct(addr),
                            &ca,
                            &direct.upstream_server_name.unwrap_or_default(),
                        )?
                    }
                    None => Upstream::for_cluster(kube_client().await?, &namespace, &name).await?,
                };
                let role = roles.get(&tokens, &session.agent).await?;
                let proxy = Arc::new(Proxy {
                    upstream,
                    tokens,
                    roles,
                    agent: session.agent.clone(),
                    cancel_keys: Default::default(),
                });
                let described = proxy.upstream.describe();
                auth_proxy::serve(
                    proxy,
                    listen,
                    |listening| print_listening(listening, &role, &described),
                    auth_proxy::interrupted(),
                )
                .await?;
                println!("Stopped.");
                Ok(())
            })
        }
        Top::Postgres(PostgresCommand::PortForward {
            name,
            namespace,
            port,
            role,
        }) => {
            let runtime = runtime()?;
            runtime.block_on(async {
                let client = kube_client().await?;
                forward::serve(client, &namespace, &name, port, |bound| {
                    let t = Target {
                        host: "127.0.0.1".into(),
                        port: bound,
                        issuer: g.issuer.clone(),
                        client_id: g.client_id.clone(),
                        scopes: scopes.clone(),
                    };
                    println!(
                        "Forwarding 127.0.0.1:{bound} to the primary of {namespace}/{name} (Ctrl-C to stop).\npsql \"{}\"",
                        t.conninfo(&role)
                    );
                })
                .await
            })
        }
        Top::Postgres(PostgresCommand::Accesses) => {
            session.accesses()?;
            Ok(())
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| CliError::Usage(format!("starting the runtime: {e}")))
}

fn proxy_runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Usage(format!("starting the runtime: {e}")))
}

async fn kube_client() -> Result<kube::Client, CliError> {
    let config = kube::Config::infer().await.map_err(|e| {
        CliError::Kubernetes(format!("finding the Kubernetes API (KUBECONFIG): {e}"))
    })?;
    kube::Client::try_from(config).map_err(|e| CliError::Kubernetes(e.to_string()))
}

/// What the proxy prints once it listens: where, as whom, and how to connect.
fn print_listening(listening: &Listening, role: &str, upstream: &str) {
    match listening {
        Listening::Socket { dir, port } => println!(
            "Proxy to {upstream} as {role}, listening on {} (Ctrl-C to stop).",
            auth_proxy::listen::socket_path(dir, *port).display()
        ),
        Listening::Tcp { port, password } => println!(
            "Proxy to {upstream} as {role}, listening on 127.0.0.1:{port} with the password {password} \
             (this run only; Ctrl-C to stop).\njdbc:postgresql://127.0.0.1:{port}/app?user={role}&password={password}"
        ),
    }
    println!("psql \"{}\"", listening.conninfo(role));
}

/// A private socket directory for one `postgres psql` run.
fn listen_dir_for_psql(namespace: &str, name: &str) -> Result<PathBuf, CliError> {
    let dir = auth_proxy::listen::default_socket_dir(namespace, name)?;
    let parent = dir
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("/tmp"));
    auth_proxy::listen::private_dir(&parent)?;
    Ok(parent.join(format!("{namespace}.{name}.psql-{}", std::process::id())))
}

/// Starts the authenticating proxy in a background thread with its own runtime (the Kubernetes client lives
/// there, so `make` builds the proxy in it); returns where it listens once it does. It ends with the process.
fn start_auth_proxy(
    listen: Listen,
    make: impl std::future::Future<Output = Result<Proxy, CliError>> + Send + 'static,
) -> Result<Listening, CliError> {
    let (tx, rx) = std::sync::mpsc::channel::<Result<Listening, CliError>>();
    std::thread::spawn(move || {
        let runtime = match runtime() {
            Ok(r) => r,
            Err(e) => {
                let _ = tx.send(Err(e));
                return;
            }
        };
        let ready = tx.clone();
        let result = runtime.block_on(async move {
            let proxy = make.await?;
            auth_proxy::serve(
                Arc::new(proxy),
                listen,
                move |listening| {
                    let _ = ready.send(Ok(listening.clone()));
                },
                std::future::pending(),
            )
            .await
        });
        if let Err(e) = result {
            let _ = tx.send(Err(e));
        }
    });
    rx.recv()
        .map_err(|_| CliError::Unavailable("the proxy stopped".into()))?
}
