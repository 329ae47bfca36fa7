//! `pgrator-operator`: runs the operator, checks a configuration file, or prints the install manifests.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use pgrator_operator::config::OperatorConfig;
use pgrator_operator::controller::{self, RunOptions, leader::LeaseConfig, metrics::Metrics};

#[derive(Parser)]
#[command(
    name = "pgrator-operator",
    version,
    about = "Postgres (data.nais.io/v1) to CloudNativePG databases"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args)]
struct RunArgs {
    /// The configuration file (YAML; see deploy/config.example.yaml).
    #[arg(long, env = "PGRATOR_CONFIG")]
    config: PathBuf,
    /// Address of /metrics and /healthz.
    #[arg(long, env = "PGRATOR_METRICS_ADDR", default_value = "0.0.0.0:8080")]
    metrics_addr: SocketAddr,
    /// Namespace of the leader lease; without it, no leader election (one replica only).
    #[arg(long, env = "PGRATOR_LEASE_NAMESPACE")]
    lease_namespace: Option<String>,
    /// This replica's identity (the pod name).
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    /// Postgres objects reconciled at once.
    #[arg(long, default_value_t = 16)]
    concurrency: u16,
    /// Serve the access API on this address (every replica serves it, leader or not).
    #[arg(long, env = "PGRATOR_ACCESS_API_ADDR")]
    access_api_addr: Option<SocketAddr>,
    /// Watch only this namespace (default: all namespaces).
    #[arg(long, env = "PGRATOR_WATCH_NAMESPACE")]
    watch_namespace: Option<String>,
    /// Log as JSON lines.
    #[arg(long, env = "PGRATOR_LOG_JSON")]
    log_json: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Run the operator.
    Run(RunArgs),
    /// Check a configuration file and exit (0 when valid).
    CheckConfig { config: PathBuf },
    /// Print the install manifests (CRDs, RBAC, Deployment) as YAML.
    Manifests {
        #[arg(long, default_value = "pgrator-system")]
        namespace: String,
        #[arg(long, default_value = DEFAULT_IMAGE)]
        image: String,
        /// The configuration to ship in the ConfigMap (validated first); default: the example.
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

/// The image reference in the committed manifests; `--image` sets the one pushed by `just push-image`.
const DEFAULT_IMAGE: &str = "registry.example.com/pgrator/pgrator-operator:0.1.0";
const EXAMPLE_CONFIG: &str = include_str!("../../deploy/config.example.yaml");

fn load(path: &PathBuf) -> anyhow::Result<OperatorConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the configuration {}", path.display()))?;
    OperatorConfig::from_yaml(&text).with_context(|| format!("configuration {}", path.display()))
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::CheckConfig { config } => {
            load(&config)?;
            println!("{}: valid", config.display());
            Ok(())
        }
        Command::Manifests {
            namespace,
            image,
            config,
        } => {
            let config_yaml = match config {
                Some(path) => {
                    load(&path)?;
                    std::fs::read_to_string(&path)?
                }
                None => EXAMPLE_CONFIG.to_owned(),
            };
            let objects =
                pgrator_operator::manifests::install(&pgrator_operator::manifests::Install {
                    namespace: &namespace,
                    image: &image,
                    config_yaml: &config_yaml,
                });
            print!("{}", pgrator_operator::manifests::to_yaml(&objects)?);
            Ok(())
        }
        Command::Run(args) => {
            init_logs(args.log_json);
            let config = Arc::new(load(&args.config)?);
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?
                .block_on(run(config, args))
        }
    }
}

async fn run(config: Arc<OperatorConfig>, args: RunArgs) -> anyhow::Result<()> {
    let metrics = Arc::new(Metrics::default());
    let kube_config = kube::Config::infer()
        .await
        .context("finding the Kubernetes API server (in-cluster or KUBECONFIG)")?;
    let client = controller::client::counted_client(kube_config, metrics.clone())?;
    let identity = args
        .identity
        .unwrap_or_else(|| format!("pgrator-{}", std::process::id()));
    tokio::spawn({
        let metrics = metrics.clone();
        async move {
            if let Err(error) = controller::server::serve(args.metrics_addr, metrics).await {
                tracing::error!(%error, "metrics server stopped");
            }
        }
    });
    if let Some(addr) = args.access_api_addr {
        let state = pgrator_operator::access_api::ApiState::new(client.clone(), config.clone())
            .context("setting up the access API")?;
        tokio::spawn(async move {
            if let Err(error) = pgrator_operator::access_api::serve(addr, Arc::new(state)).await {
                tracing::error!(%error, "access API stopped");
            }
        });
    }
    let options = RunOptions {
        lease: args
            .lease_namespace
            .map(|ns| LeaseConfig::new(&ns, &identity)),
        instance: Some(identity),
        concurrency: args.concurrency,
        namespace: args.watch_namespace,
    };
    controller::run(client, config, metrics, options, shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

/// SIGTERM (Kubernetes) or Ctrl-C.
async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
    tracing::info!("shutting down: finishing reconciles in flight");
}

fn init_logs(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}
