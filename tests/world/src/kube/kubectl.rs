//! kubectl of the server's version, pointed at one control plane.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::error::{Result, WorldError};

#[derive(Debug, Clone)]
pub struct Kubectl {
    program: PathBuf,
    kubeconfig: PathBuf,
}

impl Kubectl {
    pub(crate) fn new(program: PathBuf, kubeconfig: PathBuf) -> Kubectl {
        Kubectl {
            program,
            kubeconfig,
        }
    }

    pub fn program(&self) -> &Path {
        &self.program
    }

    /// Runs kubectl and returns its raw output, whatever its exit status.
    pub fn output<I, S>(&self, args: I) -> Result<Output>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        Command::new(&self.program)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .output()
            .map_err(|e| WorldError::io(format!("running {}", self.program.display()), e))
    }

    /// Runs kubectl; fails with its stderr unless it exits 0. Returns stdout.
    pub fn run<I, S>(&self, args: I) -> Result<String>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let args: Vec<S> = args.into_iter().collect();
        let out = self.output(&args)?;
        if !out.status.success() {
            let shown: Vec<String> = args
                .iter()
                .map(|a| a.as_ref().to_string_lossy().into_owned())
                .collect();
            // kubectl may dump whole objects into its error (a failed template); the start says what went wrong.
            let stderr: String = String::from_utf8_lossy(&out.stderr)
                .trim()
                .chars()
                .take(2000)
                .collect();
            return Err(WorldError::Service {
                service: "kubectl".to_string(),
                message: format!(
                    "kubectl {} exited with {}: {}",
                    shown.join(" "),
                    out.status,
                    stderr
                ),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}
