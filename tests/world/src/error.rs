use std::path::PathBuf;

/// Why a part of the test world could not be used.
#[derive(Debug, thiserror::Error)]
pub enum WorldError {
    #[error(
        "test-world part '{part}' is not installed ({key} missing from {env_file}); run: tests/world/install.sh {part}"
    )]
    NotInstalled {
        part: &'static str,
        key: String,
        env_file: PathBuf,
    },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{service} did not become ready within {waited_ms} ms: {reason}\n--- last log lines of {service} ---\n{log_tail}"
    )]
    NotReady {
        service: String,
        waited_ms: u128,
        reason: String,
        log_tail: String,
    },
    #[error("{service}: {message}")]
    Service { service: String, message: String },
    #[error("certificate generation failed: {0}")]
    Tls(#[from] rcgen::Error),
}

impl WorldError {
    pub fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        WorldError::Io {
            what: what.into(),
            source,
        }
    }
}

pub type Result<T, E = WorldError> = std::result::Result<T, E>;
