//! An OCI registry (the CNCF distribution registry, Debian's `docker-registry`) on a free loopback port, with
//! filesystem storage in a temporary directory, optionally TLS (a [`TestCa`] certificate) and htpasswd basic auth.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::env::WorldEnv;
use crate::error::{Result, WorldError};
use crate::ports::free_port;
use crate::process::{Service, ServiceSpec};
use crate::tls::TestCa;

/// How the registry is set up.
#[derive(Debug, Clone, Default)]
pub struct RegistryOptions {
    /// Serve HTTPS with a certificate from a fresh test CA.
    pub tls: bool,
    /// Require basic auth with this user name and password (htpasswd, bcrypt).
    pub basic_auth: Option<(String, String)>,
    /// Require bearer tokens from a token issuer (the distribution token-auth protocol).
    pub token_auth: Option<TokenAuth>,
}

/// Where the registry sends clients for a token, and which tokens it accepts: signed by a key whose certificate
/// chains to `root_cert_bundle`, issued by `issuer` for audience `service`.
#[derive(Debug, Clone)]
pub struct TokenAuth {
    pub realm: String,
    pub service: String,
    pub issuer: String,
    pub root_cert_bundle: PathBuf,
}

impl RegistryOptions {
    pub fn plain() -> Self {
        Self::default()
    }

    pub fn tls(mut self) -> Self {
        self.tls = true;
        self
    }

    pub fn basic_auth(mut self, user: &str, password: &str) -> Self {
        self.basic_auth = Some((user.to_string(), password.to_string()));
        self
    }

    pub fn token_auth(mut self, token: TokenAuth) -> Self {
        self.token_auth = Some(token);
        self
    }
}

/// A running registry; stopped and its storage removed on drop.
pub struct Registry {
    service: Service,
    port: u16,
    storage: PathBuf,
    ca: Option<TestCa>,
    // Dropped last: the server must be stopped before its directory goes.
    _dir: tempfile::TempDir,
}

impl Registry {
    pub fn start(options: RegistryOptions) -> Result<Registry> {
        let world = WorldEnv::load()?;
        let bin = world.require("PGRATOR_REGISTRY_BIN")?;
        let dir = tempfile::Builder::new()
            .prefix("pgrator-registry-")
            .tempdir()
            .map_err(|e| WorldError::io("creating the registry directory", e))?;
        let storage = dir.path().join("storage");
        std::fs::create_dir_all(&storage)
            .map_err(|e| WorldError::io(format!("creating {}", storage.display()), e))?;
        let port = free_port();

        let ca = if options.tls {
            Some(TestCa::new()?)
        } else {
            None
        };
        let tls = match &ca {
            Some(ca) => {
                let cert = ca.server_cert("registry", &[])?;
                format!(
                    "  tls:\n    certificate: {}\n    key: {}\n",
                    yaml_string(&cert.cert),
                    yaml_string(&cert.key)
                )
            }
            None => String::new(),
        };
        let auth = match (&options.basic_auth, &options.token_auth) {
            (Some(_), Some(_)) => {
                return Err(WorldError::Service {
                    service: "registry".into(),
                    message: "basic auth and token auth are exclusive".into(),
                });
            }
            (Some((user, password)), None) => {
                let htpasswd = dir.path().join("htpasswd");
                let hash = bcrypt::hash(password, 4).map_err(|e| WorldError::Service {
                    service: "registry".into(),
                    message: format!("hashing the test password: {e}"),
                })?;
                write(&htpasswd, &format!("{user}:{hash}\n"))?;
                format!(
                    "auth:\n  htpasswd:\n    realm: pgrator-test-registry\n    path: {}\n",
                    yaml_string(&htpasswd)
                )
            }
            (None, Some(token)) => format!(
                "auth:\n  token:\n    realm: {}\n    service: {}\n    issuer: {}\n    rootcertbundle: {}\n",
                yaml_quote(&token.realm),
                yaml_quote(&token.service),
                yaml_quote(&token.issuer),
                yaml_string(&token.root_cert_bundle)
            ),
            (None, None) => String::new(),
        };
        let config = format!(
            "version: 0.1\n\
             log:\n  level: info\n  formatter: text\n\
             storage:\n  filesystem:\n    rootdirectory: {storage}\n  delete:\n    enabled: true\n  \
             maintenance:\n    uploadpurging:\n      enabled: false\n\
             http:\n  addr: 127.0.0.1:{port}\n  secret: pgrator-test-world-only\n{tls}\
             {auth}",
            storage = yaml_string(&storage),
        );
        let config_path = dir.path().join("config.yml");
        write(&config_path, &config)?;

        let mut service = Service::start(
            ServiceSpec::new("registry", bin)
                .arg("serve")
                .arg(&config_path),
        )?;
        let tls_on = ca.is_some();
        service.wait_ready(Duration::from_secs(30), || probe(port, tls_on))?;
        Ok(Registry {
            service,
            port,
            storage,
            ca,
            _dir: dir,
        })
    }

    /// `127.0.0.1:<port>`, the registry part of an image reference.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether the registry speaks HTTPS.
    pub fn is_tls(&self) -> bool {
        self.ca.is_some()
    }

    /// The CA that signed the registry's certificate (TLS registries only).
    pub fn ca_path(&self) -> Option<PathBuf> {
        self.ca.as_ref().map(TestCa::ca_path)
    }

    /// The filesystem storage root.
    pub fn storage_dir(&self) -> &Path {
        &self.storage
    }

    /// Where the registry keeps the content of blob `sha256:<hex>` (to inspect or tamper with it in a test).
    pub fn blob_data_path(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
        let prefix = hex.get(..2).unwrap_or(hex);
        self.storage
            .join("docker/registry/v2/blobs/sha256")
            .join(prefix)
            .join(hex)
            .join("data")
    }

    pub fn service(&self) -> &Service {
        &self.service
    }

    pub fn logs(&self) -> String {
        self.service.logs()
    }
}

/// Ready when `GET /v2/` answers: 200 (open) or 401 (auth required). Over TLS a completed TCP connection plus the
/// log line are the signal (no TLS client here); the registry starts serving when it listens.
fn probe(port: u16, tls: bool) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(
        &(Ipv4Addr::LOCALHOST, port).into(),
        Duration::from_millis(500),
    ) else {
        return false;
    };
    if tls {
        return true;
    }
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if stream
        .write_all(b"GET /v2/ HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut head = [0u8; 12];
    if stream.read_exact(&mut head).is_err() {
        return false;
    }
    let status = String::from_utf8_lossy(&head[9..12]).into_owned();
    status == "200" || status == "401"
}

fn yaml_string(path: &Path) -> String {
    yaml_quote(&path.display().to_string())
}

fn yaml_quote(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(|e| WorldError::io(format!("writing {}", path.display()), e))
}
