//! The `pgrator` command line: personal database access for developers. Pieces: `http` (one HTTPS agent),
//! `login` (the OAuth device flow, with a token cache), `access` (the access API), `commands` (what each
//! subcommand does, with its output), `forward` (the way to the primary through the Kubernetes API), `pgwire`
//! and `auth_proxy` (the authenticating local proxy).

#![forbid(unsafe_code)]

pub mod access;
pub mod auth_proxy;
pub mod commands;
pub mod forward;
pub mod http;
pub mod login;
pub mod pgwire;

/// What a command failed on; the message is what the user reads, the exit code tells scripts the class.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    Usage(String),
    #[error("login failed: {0}")]
    Login(String),
    /// The access API said no (4xx): its message.
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Kubernetes(String),
}

impl CliError {
    /// 2 usage, 3 login, 4 refused, 5 a service unavailable, 6 Kubernetes.
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Usage(_) => 2,
            CliError::Login(_) => 3,
            CliError::Refused(_) => 4,
            CliError::Unavailable(_) => 5,
            CliError::Kubernetes(_) => 6,
        }
    }
}
