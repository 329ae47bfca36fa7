//! Compiles `csrc/shim.c` against the server headers of the PostgreSQL that pgrx builds for
//! (`PGRX_PG_CONFIG_PATH`), passing the sizes Rust assumes for the validator ABI so the C compiler checks them.

use std::process::Command;

// Keep in step with src/abi.rs (which asserts the same numbers on the Rust side).
const SIZEOF_STATE: usize = 16;
const SIZEOF_RESULT: usize = 16;
const SIZEOF_CALLBACKS: usize = 32;
const OFFSETOF_AUTHN_ID: usize = 8;
const OFFSETOF_VALIDATE_CB: usize = 24;
const OAUTH_VALIDATOR_MAGIC: u32 = 0x2025_0220;

fn main() {
    println!("cargo:rerun-if-changed=csrc/shim.c");
    println!("cargo:rerun-if-env-changed=PGRX_PG_CONFIG_PATH");
    let pg_config = std::env::var("PGRX_PG_CONFIG_PATH").unwrap_or_else(|_| {
        panic!("PGRX_PG_CONFIG_PATH is not set: run `tests/world/install.sh postgres` (or `just build-validator`)")
    });
    let out = Command::new(&pg_config)
        .arg("--includedir-server")
        .output()
        .unwrap_or_else(|e| panic!("running {pg_config} --includedir-server: {e}"));
    assert!(
        out.status.success(),
        "{pg_config} --includedir-server failed"
    );
    let include = String::from_utf8_lossy(&out.stdout).trim().to_string();

    cc::Build::new()
        .file("csrc/shim.c")
        .include(&include)
        .define("PGRATOR_SIZEOF_STATE", SIZEOF_STATE.to_string().as_str())
        .define("PGRATOR_SIZEOF_RESULT", SIZEOF_RESULT.to_string().as_str())
        .define(
            "PGRATOR_SIZEOF_CALLBACKS",
            SIZEOF_CALLBACKS.to_string().as_str(),
        )
        .define(
            "PGRATOR_OFFSETOF_AUTHN_ID",
            OFFSETOF_AUTHN_ID.to_string().as_str(),
        )
        .define(
            "PGRATOR_OFFSETOF_VALIDATE_CB",
            OFFSETOF_VALIDATE_CB.to_string().as_str(),
        )
        .define(
            "PGRATOR_OAUTH_VALIDATOR_MAGIC",
            format!("{OAUTH_VALIDATOR_MAGIC:#x}").as_str(),
        )
        .flag_if_supported("-Wno-unused-parameter")
        .warnings(true)
        .compile("pgrator_shim");
}
