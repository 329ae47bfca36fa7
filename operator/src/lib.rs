//! The pgrator operator: `Postgres` (data.nais.io/v1) to a complete CloudNativePG database.
//!
//! `api` holds the custom resource types; the schema the API server enforces (OpenAPI and CEL rules) is generated
//! from them (`pgrator-crdgen`, committed under `deploy/crds/`).
#![forbid(unsafe_code)]

pub mod access_api;
pub mod api;
pub mod config;
pub mod controller;
pub mod desired;
pub mod https;
pub mod manifests;
pub mod names;
pub mod quantity;
