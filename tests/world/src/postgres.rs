//! A PostgreSQL 18 server for one test: its own data directory, a free loopback port, run as an unprivileged
//! user, configured through plain files (postgresql.conf additions, pg_hba.conf, pg_ident.conf) so a test sees
//! exactly what an operator (or CNPG's instance manager) would write.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::env::WorldEnv;
use crate::error::{Result, WorldError};
use crate::ports::free_port;
use crate::process::{RunAs, Service, ServiceSpec};

/// How to configure the server before it starts.
#[derive(Debug, Clone, Default)]
pub struct PgConfig {
    /// Lines appended to postgresql.conf (`name = value`).
    pub settings: Vec<(String, String)>,
    /// pg_hba.conf lines placed before the default local trust line.
    pub hba: Vec<String>,
    /// pg_ident.conf lines.
    pub ident: Vec<String>,
    /// Extra environment for the server process (e.g. LD_LIBRARY_PATH into an extension's `system/`).
    pub env: Vec<(String, String)>,
}

impl PgConfig {
    pub fn setting(mut self, name: &str, value: impl Into<String>) -> Self {
        self.settings.push((name.to_string(), value.into()));
        self
    }

    pub fn hba(mut self, line: impl Into<String>) -> Self {
        self.hba.push(line.into());
        self
    }

    pub fn ident(mut self, line: impl Into<String>) -> Self {
        self.ident.push(line.into());
        self
    }

    pub fn env(mut self, key: &str, value: impl Into<String>) -> Self {
        self.env.push((key.to_string(), value.into()));
        self
    }
}

/// A running PostgreSQL 18 server.
pub struct Postgres {
    service: Service,
    home: PathBuf,
    data: PathBuf,
    socket_dir: PathBuf,
    port: u16,
    run_as: Option<RunAs>,
    // Dropped last: the server must be stopped before its directory goes.
    _dir: tempfile::TempDir,
}

/// Quotes a value for postgresql.conf.
pub fn conf_quote(value: &str) -> String {
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "''"))
}

impl Postgres {
    /// Initializes a cluster (superuser `postgres`, local trust for the harness) and starts it.
    pub fn start(config: PgConfig) -> Result<Postgres> {
        let world = WorldEnv::load()?;
        let home = world.require("PGRATOR_PG_HOME")?;
        let run_as = RunAs::unprivileged();
        let dir = tempfile::Builder::new()
            .prefix("pgrator-pg-")
            .tempdir()
            .map_err(|e| WorldError::io("creating the PostgreSQL directory", e))?;
        let data = dir.path().join("data");
        let socket_dir = dir.path().join("socket");
        for d in [dir.path(), socket_dir.as_path()] {
            std::fs::create_dir_all(d)
                .map_err(|e| WorldError::io(format!("creating {}", d.display()), e))?;
            if let Some(who) = run_as {
                who.chown(d)?;
            }
        }
        initdb(&home, &data, run_as)?;
        let port = free_port();
        write_config(&data, port, &socket_dir, &config)?;

        let mut spec = ServiceSpec::new("postgres", home.join("bin/postgres"))
            .arg("-D")
            .arg(&data)
            .run_as(run_as);
        for (k, v) in &config.env {
            spec = spec.env(k, v);
        }
        let mut service = Service::start(spec)?;
        let pg_isready = home.join("bin/pg_isready");
        let probe_socket = socket_dir.clone();
        service.wait_ready(Duration::from_secs(30), || {
            Command::new(&pg_isready)
                .args(["-q", "-h"])
                .arg(&probe_socket)
                .args(["-p", &port.to_string()])
                .status()
                .map(|s| s.success())
                .unwrap_or(false)
        })?;
        Ok(Postgres {
            service,
            home,
            data,
            socket_dir,
            port,
            run_as,
            _dir: dir,
        })
    }

    /// Replaces pg_hba.conf (see [`write_hba`]); takes effect on [`Postgres::reload`].
    pub fn write_hba(&self, lines: &[String]) -> Result<()> {
        write_hba(&self.data, lines)
    }

    /// Replaces pg_ident.conf; takes effect on [`Postgres::reload`].
    pub fn write_ident(&self, lines: &[String]) -> Result<()> {
        write(&self.data.join("pg_ident.conf"), &(lines.join("\n") + "\n"))
    }

    /// Re-reads the configuration files (SIGHUP), as CNPG's instance manager does on a change.
    pub fn reload(&self) -> Result<()> {
        self.service.signal(libc::SIGHUP)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn host(&self) -> &'static str {
        "127.0.0.1"
    }

    pub fn socket_dir(&self) -> &Path {
        &self.socket_dir
    }

    pub fn home(&self) -> &Path {
        &self.home
    }

    pub fn data_dir(&self) -> &Path {
        &self.data
    }

    pub fn run_as(&self) -> Option<RunAs> {
        self.run_as
    }

    /// The server log so far (stderr of the postmaster and its backends).
    pub fn log(&self) -> String {
        self.service.logs()
    }

    pub fn log_len(&self) -> u64 {
        self.service.log_len()
    }

    pub fn log_since(&self, offset: u64) -> String {
        self.service.logs_since(offset)
    }

    /// Runs SQL as the superuser over the Unix socket with the server's own psql; returns unaligned output.
    pub fn sql(&self, db: &str, sql: &str) -> Result<String> {
        let out = Command::new(self.home.join("bin/psql"))
            .args([
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-U",
                "postgres",
                "-h",
            ])
            .arg(&self.socket_dir)
            .args(["-p", &self.port.to_string(), "-d", db, "-c", sql])
            .output()
            .map_err(|e| WorldError::io("running psql", e))?;
        if !out.status.success() {
            return Err(WorldError::Service {
                service: "postgres".into(),
                message: format!(
                    "SQL failed: {sql}\n{}",
                    String::from_utf8_lossy(&out.stderr)
                ),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim_end().to_string())
    }

    /// Waits until the log shows `needle` after `offset`.
    pub fn wait_for_log_since(
        &self,
        offset: u64,
        needle: &str,
        timeout: Duration,
    ) -> Result<String> {
        let start = std::time::Instant::now();
        loop {
            let log = self.log_since(offset);
            if log.contains(needle) {
                return Ok(log);
            }
            if start.elapsed() > timeout {
                return Err(WorldError::Service {
                    service: "postgres".into(),
                    message: format!(
                        "log never showed {needle:?} within {timeout:?}; log since:\n{log}"
                    ),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn write_config(data: &Path, port: u16, socket_dir: &Path, config: &PgConfig) -> Result<()> {
    let mut conf = String::from("\n# pgrator test world\n");
    conf += &format!("port = {port}\n");
    conf += "listen_addresses = '127.0.0.1'\n";
    conf += &format!(
        "unix_socket_directories = {}\n",
        conf_quote(&socket_dir.to_string_lossy())
    );
    conf += "logging_collector = off\nlog_connections = 'authentication'\nfsync = off\n";
    conf += "shared_buffers = '32MB'\nmax_connections = 50\n";
    for (k, v) in &config.settings {
        conf += &format!("{k} = {v}\n");
    }
    append(&data.join("postgresql.conf"), &conf)?;
    write_hba(data, &config.hba)?;
    write(
        &data.join("pg_ident.conf"),
        &(config.ident.join("\n") + "\n"),
    )
}

/// pg_hba.conf: the given lines, then local trust for the harness's superuser (Unix socket only).
fn write_hba(data: &Path, lines: &[String]) -> Result<()> {
    let mut text = lines.join("\n");
    text += "\nlocal all postgres trust\n";
    write(&data.join("pg_hba.conf"), &text)
}

fn initdb(home: &Path, data: &Path, run_as: Option<RunAs>) -> Result<()> {
    let mut cmd = Command::new(home.join("bin/initdb"));
    cmd.arg("-D").arg(data).args([
        "-U",
        "postgres",
        "--auth=trust",
        "--no-sync",
        "-E",
        "UTF8",
        "--locale=C",
    ]);
    if let Some(who) = run_as {
        use std::os::unix::process::CommandExt;
        cmd.uid(who.uid).gid(who.gid);
    }
    let out = cmd
        .output()
        .map_err(|e| WorldError::io("running initdb", e))?;
    if !out.status.success() {
        return Err(WorldError::Service {
            service: "initdb".into(),
            message: format!(
                "initdb failed ({}):\n{}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        });
    }
    Ok(())
}

fn append(path: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .map_err(|e| WorldError::io(format!("opening {}", path.display()), e))?;
    f.write_all(text.as_bytes())
        .map_err(|e| WorldError::io(format!("writing {}", path.display()), e))
}

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(|e| WorldError::io(format!("writing {}", path.display()), e))
}
