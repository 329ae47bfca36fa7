//! What each `pgrator postgres ...` command does and prints.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::CliError;
use crate::access::AccessApi;
use crate::login::{LoginConfig, access_token};

/// Where the database is reached and how psql logs in to it.
pub struct Target {
    pub host: String,
    pub port: u16,
    pub issuer: String,
    pub client_id: String,
    pub scopes: Vec<String>,
}

impl Target {
    /// A libpq connection string that makes psql log in with the device flow as `role`.
    pub fn conninfo(&self, role: &str) -> String {
        let mut s = format!(
            "host={} port={} dbname=app user={role} sslmode=require oauth_issuer={} oauth_client_id={}",
            self.host, self.port, self.issuer, self.client_id
        );
        if !self.scopes.is_empty() {
            s.push_str(&format!(" oauth_scope='{}'", self.scopes.join(" ")));
        }
        s
    }
}

/// What is asked for.
pub struct Wanted<'a> {
    pub namespace: &'a str,
    pub postgres: &'a str,
    pub level: &'a str,
    pub ttl: &'a str,
    pub reason: &'a str,
}

pub struct Session<'a> {
    pub api_base: String,
    pub agent: ureq::Agent,
    pub login: LoginConfig,
    pub out: &'a mut dyn Write,
}

impl Session<'_> {
    fn api(&mut self) -> Result<AccessApi, CliError> {
        let token = access_token(&self.agent, &self.login, self.out)?;
        Ok(AccessApi {
            base: self.api_base.clone(),
            agent: self.agent.clone(),
            token,
        })
    }

    /// `postgres access`: request, then wait until the database takes the grant. Returns the role.
    pub fn access(
        &mut self,
        wanted: &Wanted<'_>,
        target: &Target,
        wait: Duration,
    ) -> Result<String, CliError> {
        let Wanted {
            namespace,
            postgres,
            level,
            ttl,
            reason,
        } = *wanted;
        let api = self.api()?;
        let grant = api.request(namespace, postgres, level, ttl, reason)?;
        let name = grant["name"].as_str().unwrap_or_default().to_owned();
        let _ = writeln!(
            self.out,
            "Requested {level} access to {namespace}/{postgres} for {ttl} ({name})"
        );
        let started = Instant::now();
        let spinner = std::io::stderr().is_terminal();
        let mut last_phase = String::new();
        let grant = loop {
            let now = api.get(namespace, &name)?;
            let phase = now["phase"].as_str().unwrap_or("Pending").to_owned();
            let message = now["message"]
                .as_str()
                .filter(|m| !m.is_empty())
                .unwrap_or("waiting for the operator")
                .to_owned();
            match phase.as_str() {
                "Active" => break now,
                "Failed" | "Expired" => {
                    return Err(CliError::Refused(format!(
                        "the grant is {phase}: {message}"
                    )));
                }
                _ => {}
            }
            if started.elapsed() > wait {
                return Err(CliError::Unavailable(format!(
                    "the grant is still {phase} after {} s: {message}",
                    wait.as_secs()
                )));
            }
            if spinner {
                const FRAMES: [char; 4] = ['|', '/', '-', '\\'];
                let frame = FRAMES[(started.elapsed().as_millis() / 250) as usize % FRAMES.len()];
                eprint!(
                    "\r{frame} {phase}: {message} ({} s)",
                    started.elapsed().as_secs()
                );
            } else if phase != last_phase {
                let _ = writeln!(self.out, "{phase}: {message}");
            }
            last_phase = phase;
            std::thread::sleep(Duration::from_millis(500));
        };
        if spinner {
            eprintln!();
        }
        let role = grant["role"].as_str().unwrap_or_default().to_owned();
        let _ = writeln!(
            self.out,
            "Access is active: log in as {role} until {} ({} left).\npsql \"{}\"",
            grant["expiresAt"].as_str().unwrap_or_default(),
            human(grant["secondsLeft"].as_i64().unwrap_or(0)),
            target.conninfo(&role)
        );
        Ok(role)
    }

    /// `postgres accesses`: the caller's grants with the time left.
    pub fn accesses(&mut self) -> Result<Vec<Value>, CliError> {
        let api = self.api()?;
        let list = api.mine()?;
        let items = list["items"].as_array().cloned().unwrap_or_default();
        if items.is_empty() {
            let _ = writeln!(self.out, "No grants.");
        } else {
            let _ = writeln!(
                self.out,
                "{:<24} {:<24} {:<10} {:<8} {:<36} LEFT",
                "NAMESPACE", "POSTGRES", "LEVEL", "PHASE", "ROLE"
            );
            for g in &items {
                let s = |k: &str| g[k].as_str().unwrap_or_default().to_owned();
                let _ = writeln!(
                    self.out,
                    "{:<24} {:<24} {:<10} {:<8} {:<36} {}",
                    s("namespace"),
                    s("postgres"),
                    s("level"),
                    s("phase"),
                    s("role"),
                    human(g["secondsLeft"].as_i64().unwrap_or(0))
                );
            }
        }
        Ok(items)
    }
}

/// `1h 05m`, `4m 10s`, `expired`.
pub fn human(seconds: i64) -> String {
    if seconds <= 0 {
        return "expired".into();
    }
    let (h, m, s) = (seconds / 3600, seconds % 3600 / 60, seconds % 60);
    if h > 0 {
        format!("{h}h {m:02}m")
    } else {
        format!("{m}m {s:02}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_left_reads_well() {
        assert_eq!(human(3900), "1h 05m");
        assert_eq!(human(250), "4m 10s");
        assert_eq!(human(0), "expired");
    }

    #[test]
    fn the_connection_string_makes_psql_use_the_device_flow() {
        let t = Target {
            host: "orders-rw.team-a.svc".into(),
            port: 5432,
            issuer: "https://auth.example.com".into(),
            client_id: "psql".into(),
            scopes: vec!["openid".into(), "urn:x:aud".into()],
        };
        assert_eq!(
            t.conninfo("p_alice_read_1"),
            "host=orders-rw.team-a.svc port=5432 dbname=app user=p_alice_read_1 sslmode=require \
             oauth_issuer=https://auth.example.com oauth_client_id=psql oauth_scope='openid urn:x:aud'"
        );
    }
}
