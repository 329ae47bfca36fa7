//! The custom resources the operator owns.

pub mod access;
pub mod postgres;

pub use access::{AccessLevel, PostgresAccess, PostgresAccessSpec, PostgresAccessStatus};
pub use postgres::{Postgres, PostgresSpec, PostgresStatus};
