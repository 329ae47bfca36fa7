//! The custom resources the operator owns.

pub mod access;
pub mod postgres;

pub use access::{AccessLevel, PostgresAccess, PostgresAccessSpec, PostgresAccessStatus};
pub use postgres::{Postgres, PostgresSpec, PostgresStatus};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

/// Every CRD the operator owns, with the file it is committed as under `deploy/crds/`.
pub fn crds() -> Vec<(&'static str, CustomResourceDefinition)> {
    vec![
        ("postgres.yaml", Postgres::crd()),
        ("postgresaccess.yaml", PostgresAccess::crd()),
    ]
}
