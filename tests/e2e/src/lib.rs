//! End-to-end tests live in `tests/`, one feature per file; this library holds what several of them (and the
//! demo) share.

pub mod oauth_db;
pub mod operator;
