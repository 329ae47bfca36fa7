//! Everything that can go wrong while building, pushing or pulling an image, each with what was being done.

use std::path::PathBuf;

use crate::platform::{Arch, UnknownPlatform};

#[derive(Debug, thiserror::Error)]
pub enum OciError {
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid input: {0}")]
    InvalidInput(String),

    #[error("{path} does not exist")]
    LibraryMissing { path: PathBuf },
    #[error("{path} is not an ELF file (it does not start with the ELF magic bytes)")]
    NotElf { path: PathBuf },
    #[error("{path} is not a valid ELF file: {message}")]
    BadElf { path: PathBuf, message: String },
    #[error("{path} is a {kind}, not a shared library (ET_DYN)")]
    NotSharedLibrary { path: PathBuf, kind: String },
    #[error(
        "{path} is built for {found}, but the image targets {expected} ({expected_machine}): wrong architecture"
    )]
    WrongArchitecture {
        path: PathBuf,
        found: String,
        expected: Arch,
        expected_machine: &'static str,
    },
    #[error("{path} is not an executable program")]
    NotExecutable { path: PathBuf },
    #[error(
        "{path} is not a PostgreSQL module: it does not export Pg_magic_func (PG_MODULE_MAGIC)"
    )]
    NotPostgresModule { path: PathBuf },
    #[error(
        "{path} needs {needed} but {distro} ships glibc {available}: build it on (or for) {distro} or older"
    )]
    GlibcTooNew {
        path: PathBuf,
        needed: String,
        distro: String,
        available: String,
    },
    #[error(
        "{path} needs shared libraries that cannot be found on this machine: {missing:?} (ldd says 'not found')"
    )]
    UnresolvedDependencies { path: PathBuf, missing: Vec<String> },
    #[error("running ldd on {path} failed: {message}")]
    Ldd { path: PathBuf, message: String },
    #[error(
        "{path} ({arch}) needs {libraries:?}, which the stock PostgreSQL image may lack; bundling libraries into /system \
         is only supported for the build machine's architecture"
    )]
    ForeignDependencies {
        path: PathBuf,
        arch: Arch,
        libraries: Vec<String>,
    },

    #[error("{what}: {source}")]
    Json {
        what: String,
        #[source]
        source: serde_json::Error,
    },
    #[error(
        "{path} already exists and is not an empty directory or an OCI image layout; refusing to overwrite it"
    )]
    OutputExists { path: PathBuf },
    #[error("OCI image layout {dir}: {message}")]
    Layout { dir: PathBuf, message: String },

    #[error("invalid image reference '{reference}': {message}")]
    Reference { reference: String, message: String },
    #[error("cannot reach registry {registry}: {message}")]
    Unreachable { registry: String, message: String },
    #[error("registry {registry} refused the credentials (unauthorized): {message}")]
    Unauthorized { registry: String, message: String },
    #[error("registry {registry}: {message}")]
    Registry { registry: String, message: String },
    #[error("reading CA certificates from {path}: {message}")]
    CaFile { path: PathBuf, message: String },

    #[error(
        "digest mismatch for {what}: expected {expected}, got {actual} (corrupted or tampered content)"
    )]
    DigestMismatch {
        what: String,
        expected: String,
        actual: String,
    },
    #[error("size mismatch for {what}: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        what: String,
        expected: u64,
        actual: u64,
    },
    #[error("{what} has media type '{media_type}', which this tool does not handle")]
    UnsupportedMediaType { what: String, media_type: String },
    #[error("the image index has no manifest for {wanted} (it has: {available})")]
    NoPlatform { wanted: String, available: String },
    #[error("layer {layer} holds an unsafe path '{path}' (absolute, or climbing out with '..')")]
    UnsafePath { layer: String, path: String },
}

impl OciError {
    pub fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        OciError::Io {
            what: what.into(),
            source,
        }
    }

    pub fn json(what: impl Into<String>, source: serde_json::Error) -> Self {
        OciError::Json {
            what: what.into(),
            source,
        }
    }
}

pub type Result<T, E = OciError> = std::result::Result<T, E>;

impl From<UnknownPlatform> for OciError {
    fn from(e: UnknownPlatform) -> Self {
        OciError::InvalidInput(e.0)
    }
}
