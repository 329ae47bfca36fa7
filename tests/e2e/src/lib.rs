//! End-to-end tests live in `tests/`, one feature per file; this library holds what several of them (and the
//! demo) share.

pub mod access_world;
pub mod cnpg_world;
pub mod oauth_db;
pub mod operator;
pub mod stalled_writes;
pub mod validator_image;
pub mod wire;
