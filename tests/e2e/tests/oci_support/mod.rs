//! What the oci_*.rs tests share: client options for a test registry, real PostgreSQL 18 modules to package, and
//! checks that a failed operation left nothing behind.
// Each test file uses a different subset of these helpers.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use pgrator_extension_oci::Arch;
use pgrator_extension_oci::registry::RegistryOptions as ClientOptions;
use pgrator_world::env::WorldEnv;
use pgrator_world::registry::Registry;

/// How the image tools reach `registry`: plain HTTP on loopback, or HTTPS trusting the registry's test CA.
pub fn client_options(registry: &Registry) -> ClientOptions {
    ClientOptions {
        ca_file: registry.ca_path(),
        insecure_http: !registry.is_tls(),
        ..ClientOptions::default()
    }
}

/// The architecture of this machine (the one the images are built for in these tests).
pub fn host_arch() -> Arch {
    Arch::host().expect("the tests run on amd64 or arm64")
}

/// The PostgreSQL 18 install of the test world.
pub fn pg_home() -> PathBuf {
    WorldEnv::load()
        .and_then(|w| w.require("PGRATOR_PG_HOME"))
        .expect("the postgres part of the test world")
}

/// A real PostgreSQL 18 module from the test world's server (`<libdir>/<name>.so`).
pub fn pg_module(name: &str) -> PathBuf {
    let path = pg_home().join("lib").join(format!("{name}.so"));
    assert!(
        path.is_file(),
        "{} is missing from the PostgreSQL install",
        path.display()
    );
    path
}

/// Runs a future to completion on a single-threaded runtime.
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(future)
}

/// Every path under `dir` (relative, sorted), hidden staging directories included.
pub fn tree(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let path = e.path();
            out.push(
                path.strip_prefix(root)
                    .expect("under root")
                    .display()
                    .to_string(),
            );
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                walk(root, &path, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// Makes `dir` traversable by the unprivileged PostgreSQL server (temp directories are 0700).
pub fn open_to_server(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

pub mod token_issuer;
