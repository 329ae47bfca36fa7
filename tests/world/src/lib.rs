//! The pgrator test world: starts real components on loopback for tests and tears them down on drop.
//!
//! Every part is installed by `tests/world/install.sh` into `${PGRATOR_CACHE:-~/.cache/pgrator}`; the installer
//! records where each part lives in `world.env`, which [`env::WorldEnv`] reads. A test that needs a part that is
//! not installed fails with a message naming the install command; nothing is skipped.

mod at_exit;
pub mod browser;
pub mod clients;
pub mod cluster_world;
pub mod debian_postgres;
pub mod env;
pub mod error;
pub mod idp;
pub mod kube;
pub mod libpq;
pub mod ports;
pub mod postgres;
pub mod process;
pub mod psql;
pub mod registry;
pub mod tls;

pub use error::WorldError;
