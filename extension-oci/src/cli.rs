//! Command-line options shared by the image-building binaries: registry access and logging.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;

use crate::registry::{Credentials, RegistryOptions};

/// How to reach and log in to the registry.
#[derive(Debug, Clone, Args)]
pub struct RegistryArgs {
    /// User name for basic auth (also used to obtain a bearer token when the registry asks for one).
    #[arg(long, env = "PGRATOR_REGISTRY_USERNAME")]
    pub username: Option<String>,
    /// File holding the password or token (first line); never pass secrets on the command line.
    #[arg(long, env = "PGRATOR_REGISTRY_PASSWORD_FILE", requires = "username")]
    pub password_file: Option<PathBuf>,
    /// PEM file of CA certificates to trust in addition to the system's.
    #[arg(long)]
    pub ca_file: Option<PathBuf>,
    /// Speak plain HTTP to the registry (only for a registry on loopback or in a test).
    #[arg(long)]
    pub insecure_http: bool,
    /// Seconds to wait for a TCP/TLS connection.
    #[arg(long, default_value_t = 10)]
    pub connect_timeout: u64,
}

impl RegistryArgs {
    pub fn options(&self) -> anyhow::Result<RegistryOptions> {
        let credentials = match (&self.username, &self.password_file) {
            (Some(username), Some(file)) => {
                let text = std::fs::read_to_string(file)
                    .with_context(|| format!("reading the password file {}", file.display()))?;
                let password = text.lines().next().unwrap_or("").to_string();
                Some(Credentials {
                    username: username.clone(),
                    password,
                })
            }
            (Some(_), None) => anyhow::bail!("--username needs --password-file"),
            _ => None,
        };
        Ok(RegistryOptions {
            credentials,
            ca_file: self.ca_file.clone(),
            insecure_http: self.insecure_http,
            connect_timeout: Duration::from_secs(self.connect_timeout),
            ..RegistryOptions::default()
        })
    }
}

/// Logs to stderr (stdout carries only the result), level from `RUST_LOG`, default `info`.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// Runs a future on a single-threaded runtime (the binaries do one thing at a time).
pub fn block_on<F: std::future::Future>(future: F) -> anyhow::Result<F::Output> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    Ok(runtime.block_on(future))
}
