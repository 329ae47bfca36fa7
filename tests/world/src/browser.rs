//! A person approving a device login in a real browser: headless Chromium, driven by playwright-core, opens the
//! IdP's verification page, types the code and the user name, and presses "Approve".

use std::process::Command;

use crate::env::WorldEnv;
use crate::error::{Result, WorldError};
use crate::psql::DevicePrompt;

/// Approves `prompt` as `username` through the IdP's login page. Fails with what the browser saw otherwise.
pub fn approve_in_browser(prompt: &DevicePrompt, username: &str) -> Result<String> {
    let world = WorldEnv::load()?;
    let dir = world.require("PGRATOR_BROWSER_DIR")?;
    let chromium = world.require("PGRATOR_CHROMIUM")?;
    let out = Command::new("node")
        .arg(dir.join("approve.mjs"))
        .args([&prompt.verification_uri, &prompt.user_code, username])
        .env("PGRATOR_CHROMIUM", chromium)
        .env("NODE_PATH", dir.join("node_modules"))
        .current_dir(&dir)
        .output()
        .map_err(|e| WorldError::io("running node approve.mjs (is Node.js installed?)", e))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        return Err(WorldError::Service {
            service: "browser".into(),
            message: format!(
                "the approval page did not confirm ({}):\n{stdout}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ),
        });
    }
    Ok(stdout)
}
