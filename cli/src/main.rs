//! `pgrator`: personal, time-limited database access for developers.
//!
//! Exit codes: 0 done, 2 usage, 3 login failed, 4 refused by the access API, 5 a service unavailable,
//! 6 Kubernetes.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use pgrator_cli::commands::{Session, Target, Wanted};
use pgrator_cli::login::LoginConfig;
use pgrator_cli::{CliError, http, proxy};

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
    /// Request access, then run psql logged in through the device flow (through the proxy unless --host is given).
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
    /// Forward a local port to the database's primary through the Kubernetes API, and print how to connect.
    Proxy {
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
            let mut t = target(&request.name, &request.namespace, &request.connect);
            let wait = Duration::from_secs(request.connect.wait);
            let role = session.access(&request.wanted(), &t, wait)?;
            if request.connect.host.is_none() {
                // Through a forwarded port: the proxy runs beside psql until psql ends.
                t.host = "127.0.0.1".into();
                t.port = start_proxy(&request.namespace, &request.name)?;
            }
            let status = std::process::Command::new(&psql)
                .arg(t.conninfo(&role))
                .args(&psql_args)
                .status()
                .map_err(|e| CliError::Usage(format!("running {}: {e}", psql.display())))?;
            if status.success() {
                Ok(())
            } else {
                Err(CliError::Unavailable(format!("psql ended with {status}")))
            }
        }
        Top::Postgres(PostgresCommand::Proxy {
            name,
            namespace,
            port,
            role,
        }) => {
            let runtime = runtime()?;
            runtime.block_on(async {
                let client = kube_client().await?;
                proxy::serve(client, &namespace, &name, port, |bound| {
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

async fn kube_client() -> Result<kube::Client, CliError> {
    let config = kube::Config::infer().await.map_err(|e| {
        CliError::Kubernetes(format!("finding the Kubernetes API (KUBECONFIG): {e}"))
    })?;
    kube::Client::try_from(config).map_err(|e| CliError::Kubernetes(e.to_string()))
}

/// Starts the proxy on a free local port in a background thread; returns the port once it listens.
fn start_proxy(namespace: &str, name: &str) -> Result<u16, CliError> {
    let (tx, rx) = std::sync::mpsc::channel::<Result<u16, CliError>>();
    let (namespace, name) = (namespace.to_owned(), name.to_owned());
    std::thread::spawn(move || {
        let runtime = match runtime() {
            Ok(r) => r,
            Err(e) => {
                let _ = tx.send(Err(e));
                return;
            }
        };
        runtime.block_on(async {
            let client = match kube_client().await {
                Ok(c) => c,
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return;
                }
            };
            let ready = tx.clone();
            if let Err(e) = proxy::serve(client, &namespace, &name, 0, move |port| {
                let _ = ready.send(Ok(port));
            })
            .await
            {
                let _ = tx.send(Err(e));
            }
        });
    });
    rx.recv()
        .map_err(|_| CliError::Kubernetes("the proxy stopped".into()))?
}
