//! The custom resources the operator owns.

pub mod postgres;

pub use postgres::{Postgres, PostgresSpec, PostgresStatus};
