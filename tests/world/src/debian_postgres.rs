//! Debian's PostgreSQL 18 (built with OpenSSL, as in the database pods) outside Kubernetes: the `pgroot` part's
//! root filesystem unpacked into a temporary directory and the server run chrooted into it, in a mount namespace
//! of its own (so /dev and /proc mounted for it vanish with it), on a loopback port. For measurements that need a
//! TLS server without a cluster's port-forward in the way (the proxy's benchmark). Needs root.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::env::WorldEnv;
use crate::error::{Result, WorldError};
use crate::ports::free_port;
use crate::process::{Service, ServiceSpec};
use crate::tls::CertFiles;

/// The postgres account of Debian's package inside the root filesystem.
const PG_UID: u32 = 26;
const PG_BIN: &str = "/usr/lib/postgresql/18/bin";

/// What the server gets: postgresql.conf lines, pg_hba.conf and pg_ident.conf lines (a `local all all trust` line is
/// added last for the harness), files placed inside its root (path inside the root, bytes) and its TLS pair.
#[derive(Debug, Clone, Default)]
pub struct DebianPgSetup {
    pub settings: Vec<(String, String)>,
    pub hba: Vec<String>,
    pub ident: Vec<String>,
    pub files: Vec<(String, Vec<u8>)>,
    pub tls: Option<CertFiles>,
}

pub struct DebianPostgres {
    service: Service,
    port: u16,
    root: PathBuf,
    _dir: tempfile::TempDir,
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> WorldError {
    let what = what.into();
    move |e| WorldError::io(what, e)
}

/// Runs `program args` chrooted into `root` as the postgres account, with /dev and /proc mounted in a private
/// mount namespace.
fn chrooted(root: &Path, program: &str, args: &[&str]) -> (String, Vec<String>) {
    let script = "mount --rbind /dev \"$0/dev\" && mount -t proc proc \"$0/proc\" && \
                  exec chroot --userspec=26:26 \"$0\" \"$@\"";
    let mut argv = vec![
        "-m".to_string(),
        "--".into(),
        "sh".into(),
        "-c".into(),
        script.into(),
        root.display().to_string(),
        program.into(),
    ];
    argv.extend(args.iter().map(|a| a.to_string()));
    ("unshare".into(), argv)
}

impl DebianPostgres {
    pub fn start(setup: &DebianPgSetup) -> Result<DebianPostgres> {
        let tar = WorldEnv::load()?.require("PGRATOR_PGROOT_TAR")?;
        let dir = tempfile::Builder::new()
            .prefix("pgrator-debian-pg-")
            .tempdir()
            .map_err(io("creating a directory for the root filesystem"))?;
        let root = dir.path().join("root");
        std::fs::create_dir_all(&root).map_err(io("creating the root"))?;
        let status = Command::new("tar")
            .arg("-xf")
            .arg(&tar)
            .arg("-C")
            .arg(&root)
            .status()
            .map_err(io("running tar"))?;
        if !status.success() {
            return Err(WorldError::Service {
                service: "debian-postgres".into(),
                message: format!("unpacking {} failed: {status}", tar.display()),
            });
        }
        let bench = root.join("bench");
        for d in ["data", "run"] {
            std::fs::create_dir_all(bench.join(d)).map_err(io("creating /bench"))?;
        }
        let own = |p: &Path| {
            std::os::unix::fs::chown(p, Some(PG_UID), Some(PG_UID))
                .map_err(io(format!("chown {}", p.display())))
        };
        for p in [bench.clone(), bench.join("data"), bench.join("run")] {
            own(&p)?;
        }
        let mut files = setup.files.clone();
        if let Some(tls) = &setup.tls {
            files.push((
                "/bench/server.crt".into(),
                std::fs::read(&tls.cert).map_err(io("reading the certificate"))?,
            ));
            files.push((
                "/bench/server.key".into(),
                std::fs::read(&tls.key).map_err(io("reading the key"))?,
            ));
        }
        for (path, bytes) in &files {
            let host = root.join(path.trim_start_matches('/'));
            if let Some(parent) = host.parent() {
                std::fs::create_dir_all(parent).map_err(io("creating a file's directory"))?;
            }
            std::fs::write(&host, bytes).map_err(io(format!("writing {}", host.display())))?;
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&host, std::fs::Permissions::from_mode(0o600))
                .map_err(io("chmod"))?;
            own(&host)?;
        }

        let (program, args) = chrooted(
            &root,
            &format!("{PG_BIN}/initdb"),
            &[
                "-D",
                "/bench/data",
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
            ],
        );
        let out = Command::new(&program)
            .args(&args)
            .output()
            .map_err(io("running initdb"))?;
        if !out.status.success() {
            return Err(WorldError::Service {
                service: "debian-postgres".into(),
                message: format!(
                    "initdb failed ({}): {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr)
                ),
            });
        }

        let port = free_port();
        let mut conf = format!(
            "\nport = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '/bench/run'\n\
             fsync = off\n"
        );
        if setup.tls.is_some() {
            conf.push_str(
                "ssl = on\nssl_cert_file = '/bench/server.crt'\nssl_key_file = '/bench/server.key'\n",
            );
        }
        for (k, v) in &setup.settings {
            conf.push_str(&format!("{k} = {v}\n"));
        }
        let data = bench.join("data");
        let append = |name: &str, text: &str| -> Result<()> {
            use std::io::Write;
            let path = data.join(name);
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .open(&path)
                .map_err(io(format!("opening {}", path.display())))?;
            f.write_all(text.as_bytes())
                .map_err(io(format!("writing {}", path.display())))
        };
        append("postgresql.conf", &conf)?;
        let mut hba = setup.hba.join("\n");
        hba.push_str("\nlocal all all trust\n");
        std::fs::write(data.join("pg_hba.conf"), hba).map_err(io("writing pg_hba.conf"))?;
        std::fs::write(data.join("pg_ident.conf"), setup.ident.join("\n") + "\n")
            .map_err(io("writing pg_ident.conf"))?;

        let (program, args) =
            chrooted(&root, &format!("{PG_BIN}/postgres"), &["-D", "/bench/data"]);
        let mut service = Service::start(ServiceSpec::new("debian-postgres", program).args(args))?;
        service.wait_for_log(
            Duration::from_secs(30),
            "database system is ready to accept connections",
        )?;
        Ok(DebianPostgres {
            service,
            port,
            root,
            _dir: dir,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The directory of its Unix socket, seen from the host.
    pub fn socket_dir(&self) -> PathBuf {
        self.root.join("bench/run")
    }

    /// Runs SQL as the superuser over the socket with `psql` (any version), returning its output.
    pub fn sql(&self, psql: &Path, sql: &str) -> Result<String> {
        let out = Command::new(psql)
            .args(["-XtAq", "-v", "ON_ERROR_STOP=1", "-U", "postgres", "-h"])
            .arg(self.socket_dir())
            .args(["-p", &self.port.to_string(), "-d", "postgres", "-c", sql])
            .output()
            .map_err(io("running psql"))?;
        if !out.status.success() {
            return Err(WorldError::Service {
                service: "debian-postgres".into(),
                message: format!("{sql}: {}", String::from_utf8_lossy(&out.stderr)),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        self.service.logs()
    }
}
