//! The real psql 18 (built with libcurl), logging in with OAuth: libpq runs the Device Authorization flow and
//! prints the code to enter; the test approves it at the IdP as a scripted person would.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::env::WorldEnv;
use crate::error::{Result, WorldError};
use crate::tls::SYSTEM_CA_BUNDLE;

/// Where a psql login connects and with which OAuth client.
#[derive(Debug, Clone)]
pub struct OAuthConnect {
    pub host: String,
    pub port: u16,
    pub dbname: String,
    pub user: String,
    pub issuer: String,
    pub client_id: String,
    pub scope: Option<String>,
}

impl OAuthConnect {
    /// The libpq connection string (what the CLI later prints for developers).
    pub fn conninfo(&self) -> String {
        let mut s = format!(
            "host={} port={} dbname={} user={} oauth_issuer={} oauth_client_id={}",
            self.host, self.port, self.dbname, self.user, self.issuer, self.client_id
        );
        if let Some(scope) = &self.scope {
            s += &format!(" oauth_scope='{}'", scope.replace('\'', "\\'"));
        }
        s
    }
}

/// What psql printed to ask the person to log in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevicePrompt {
    pub verification_uri: String,
    pub user_code: String,
}

impl DevicePrompt {
    /// Parses libpq's `Visit <uri> and enter the code: <code>` line.
    pub fn parse(line: &str) -> Option<DevicePrompt> {
        let rest = line.trim().strip_prefix("Visit ")?;
        let (uri, code) = rest.split_once(" and enter the code: ")?;
        Some(DevicePrompt {
            verification_uri: uri.trim().to_string(),
            user_code: code.trim().to_string(),
        })
    }
}

/// How a psql run ended.
#[derive(Debug, Clone)]
pub struct PsqlOutcome {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
    pub prompt: Option<DevicePrompt>,
    pub elapsed: Duration,
}

/// The psql binary of the test world.
#[derive(Debug, Clone)]
pub struct Psql {
    home: PathBuf,
}

impl Psql {
    pub fn locate() -> Result<Psql> {
        Ok(Psql {
            home: WorldEnv::load()?.require("PGRATOR_PSQL_HOME")?,
        })
    }

    pub fn bin(&self) -> PathBuf {
        self.home.join("bin/psql")
    }

    pub fn lib_dir(&self) -> PathBuf {
        self.home.join("lib")
    }

    /// Runs `sql` through an OAuth login. libcurl in psql trusts only the system store (without the UNSAFE debug
    /// mode), so psql runs in a private mount namespace where `trust_bundle` (system CAs + the test CA) is
    /// bind-mounted over the system bundle: the machine's own store is never touched.
    /// `on_prompt` is called once with the code psql asks the person to enter.
    pub fn oauth_sql<F>(
        &self,
        connect: &OAuthConnect,
        sql: &str,
        trust_bundle: &Path,
        timeout: Duration,
        on_prompt: F,
    ) -> Result<PsqlOutcome>
    where
        F: FnOnce(&DevicePrompt) -> std::result::Result<(), String> + Send + 'static,
    {
        let started = Instant::now();
        let mut child = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "--", "sh", "-c"])
            .arg(r#"mount --bind "$1" "$2" && shift 2 && exec "$@""#)
            .arg("sh")
            .arg(trust_bundle)
            .arg(SYSTEM_CA_BUNDLE)
            .arg(self.bin())
            .args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql])
            .arg(connect.conninfo())
            .env("PGCONNECT_TIMEOUT", "30")
            .env_remove("PGOAUTHDEBUG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| WorldError::io("starting psql under unshare", e))?;

        let stdout = child.stdout.take();
        let stdout_reader = std::thread::spawn(move || {
            let mut s = String::new();
            if let Some(mut out) = stdout {
                let _ = out.read_to_string(&mut s);
            }
            s
        });
        let stderr = child.stderr.take();
        let stderr_reader = std::thread::spawn(move || {
            let mut text = String::new();
            let mut prompt = None;
            let mut on_prompt = Some(on_prompt);
            if let Some(err) = stderr {
                for line in BufReader::new(err)
                    .lines()
                    .map_while(std::result::Result::ok)
                {
                    if prompt.is_none()
                        && let Some(p) = DevicePrompt::parse(&line)
                    {
                        if let Some(f) = on_prompt.take()
                            && let Err(e) = f(&p)
                        {
                            text += &format!("[harness] approving {} failed: {e}\n", p.user_code);
                        }
                        prompt = Some(p);
                    }
                    text += &line;
                    text.push('\n');
                }
            }
            (text, prompt)
        });

        let status = loop {
            if let Some(status) = child
                .try_wait()
                .map_err(|e| WorldError::io("waiting for psql", e))?
            {
                break Some(status);
            }
            if started.elapsed() > timeout {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let stdout = stdout_reader.join().unwrap_or_default();
        let (mut stderr, prompt) = stderr_reader.join().unwrap_or_default();
        if status.is_none() {
            stderr += &format!("[harness] psql killed after {timeout:?}\n");
        }
        Ok(PsqlOutcome {
            success: status.is_some_and(|s| s.success()),
            stdout,
            stderr,
            prompt,
            elapsed: started.elapsed(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_libpq_device_prompt() {
        let p = DevicePrompt::parse(
            "Visit https://127.0.0.1:1234/device and enter the code: ABCD-EFGH",
        );
        assert_eq!(
            p,
            Some(DevicePrompt {
                verification_uri: "https://127.0.0.1:1234/device".into(),
                user_code: "ABCD-EFGH".into()
            })
        );
        assert_eq!(DevicePrompt::parse("psql: error: connection refused"), None);
    }
}
