//! This project's annotation and label keys (reverse-DNS under io.pgrator), next to the org.opencontainers ones.

/// The PostgreSQL major version the module was built for.
pub const POSTGRESQL_MAJOR: &str = "io.pgrator.postgresql.major";
/// The Debian release of the PostgreSQL image it targets (bookworm, trixie).
pub const OS: &str = "io.pgrator.os";
/// The CPU architecture of this platform image.
pub const ARCH: &str = "io.pgrator.arch";
/// The extension's name in `Cluster.spec.postgresql.extensions[].name`.
pub const EXTENSION_NAME: &str = "io.pgrator.extension.name";
/// The module's file name under `/lib`.
pub const EXTENSION_LIBRARY: &str = "io.pgrator.extension.library";
/// Comma-separated sonames bundled under `/system` (empty: none needed).
pub const SYSTEM_LIBRARIES: &str = "io.pgrator.system.libraries";
