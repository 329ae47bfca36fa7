//! A real Kubernetes control plane for tests: etcd, kube-apiserver and kube-controller-manager on loopback, with
//! the CRDs of CloudNativePG, the Barman Cloud plugin, prometheus-operator and Config Connector installed.
//!
//! The binaries come from the installer parts `kube` (one multi-call build of the `k8s.io/kubernetes` and
//! etcd Go modules) and `crds` (CRD YAMLs out of their Go modules). Start-up takes seconds, so a test binary
//! shares one control plane ([`ControlPlane::shared`]) and every test takes its own namespace
//! ([`ControlPlane::namespace`]).
//!
//! Teardown: dropping a [`ControlPlane`] stops the controller manager, the API server and etcd in that order and
//! removes their files. The shared one lives in a static, which Rust never drops; it is dropped by an `atexit`
//! hook when the test binary exits normally. If the binary is killed instead, every server still dies with it:
//! [`crate::process::Service`] starts them with `PR_SET_PDEATHSIG` from a thread that lives as long as the
//! process.

mod apiserver;
mod controller_manager;
mod crds;
mod etcd;
pub(crate) mod kubeconfig;
mod kubectl;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{ObjectMeta, PostParams};

pub use kubectl::Kubectl;

use crate::env::WorldEnv;
use crate::error::{Result, WorldError};
use crate::process::Service;
use crate::tls::{CertFiles, TestCa};

/// How long each start-up phase took, for the report and for tuning.
#[derive(Debug, Clone, Copy, Default)]
pub struct StartupTimings {
    pub etcd: Duration,
    pub apiserver: Duration,
    pub crds: Duration,
    pub controller_manager: Duration,
    pub total: Duration,
}

/// The files a control plane needs: certificates, keys, etcd data, kubeconfig.
struct Files {
    /// Certificates and keys; removed on drop.
    ca: TestCa,
    /// etcd data and the kubeconfig; a temporary directory, or one the caller owns.
    dir: StateDir,
    admin: CertFiles,
    serving: CertFiles,
    service_account: ServiceAccountKey,
}

/// The key pair that signs and verifies service-account tokens.
pub(crate) struct ServiceAccountKey {
    pub private: PathBuf,
    pub public: PathBuf,
}

enum StateDir {
    Temp(tempfile::TempDir),
    Kept(PathBuf),
}

impl StateDir {
    fn path(&self) -> &Path {
        match self {
            StateDir::Temp(dir) => dir.path(),
            StateDir::Kept(path) => path,
        }
    }
}

/// A running control plane. See the module documentation.
pub struct ControlPlane {
    // Stopped in reverse start order by Drop; Option so Drop can take them one by one.
    etcd: Option<Service>,
    apiserver: Option<Service>,
    controller_manager: Option<Service>,
    files: Files,
    server_url: String,
    kubeconfig: PathBuf,
    kubectl: Kubectl,
    version: String,
    timings: StartupTimings,
}

impl std::fmt::Debug for ControlPlane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlPlane")
            .field("server_url", &self.server_url)
            .field("kubeconfig", &self.kubeconfig)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

/// Budget for each start-up phase on a loaded two-core machine.
const PHASE_TIMEOUT: Duration = Duration::from_secs(90);

impl ControlPlane {
    /// Starts a control plane whose files live in a temporary directory.
    pub fn start() -> Result<ControlPlane> {
        Self::start_with(None)
    }

    /// Starts a control plane whose etcd data and kubeconfig live in `state_dir` (created if missing), for a
    /// control plane a person uses (`just kube-up`).
    pub fn start_in(state_dir: &Path) -> Result<ControlPlane> {
        Self::start_with(Some(state_dir))
    }

    fn start_with(state_dir: Option<&Path>) -> Result<ControlPlane> {
        let started = Instant::now();
        let env = WorldEnv::load()?;
        let bin_dir = env.require("PGRATOR_KUBE_BIN_DIR")?;
        let crds_dir = env.require("PGRATOR_CRDS_DIR")?;
        let version = env
            .get("PGRATOR_KUBE_VERSION")
            .unwrap_or("unknown")
            .to_string();
        let files = Files::create(state_dir)?;
        let mut timings = StartupTimings::default();

        let phase = Instant::now();
        let etcd = etcd::start(
            &bin_dir.join("etcd"),
            &files.dir.path().join("etcd"),
            PHASE_TIMEOUT,
        )?;
        timings.etcd = phase.elapsed();

        let phase = Instant::now();
        let port = crate::ports::free_port();
        let server_url = format!("https://127.0.0.1:{port}");
        let kubeconfig = files.dir.path().join("kubeconfig");
        kubeconfig::write(&kubeconfig, &server_url, &files.ca.ca_path(), &files.admin)?;
        let kubectl = Kubectl::new(bin_dir.join("kubectl"), kubeconfig.clone());
        let mut apiserver = apiserver::start(
            &bin_dir.join("kube-apiserver"),
            &apiserver::Settings {
                port,
                etcd_url: &etcd.url,
                ca: &files.ca.ca_path(),
                serving: &files.serving,
                service_account: &files.service_account,
            },
        )?;
        apiserver::wait_ready(&mut apiserver, &kubectl, PHASE_TIMEOUT)?;
        timings.apiserver = phase.elapsed();

        // The CRDs go in before the controller manager starts, so its garbage collector watches them from the
        // beginning instead of after its next discovery resync.
        let phase = Instant::now();
        crds::install(&kubectl, &crds_dir, PHASE_TIMEOUT)?;
        timings.crds = phase.elapsed();

        let phase = Instant::now();
        let mut controller_manager = controller_manager::start(
            &bin_dir.join("kube-controller-manager"),
            &kubeconfig,
            &files.ca.ca_path(),
            &files.service_account.private,
        )?;
        controller_manager::wait_ready(&mut controller_manager, &kubectl, PHASE_TIMEOUT)?;
        timings.controller_manager = phase.elapsed();
        timings.total = started.elapsed();

        Ok(ControlPlane {
            etcd: Some(etcd.service),
            apiserver: Some(apiserver),
            controller_manager: Some(controller_manager),
            files,
            server_url,
            kubeconfig,
            kubectl,
            version,
            timings,
        })
    }

    /// The control plane of this test binary, started on first use. A start-up failure is returned to every
    /// caller (each test then fails with the same message) rather than retried.
    pub fn shared() -> Result<&'static ControlPlane> {
        static SHARED: OnceLock<std::result::Result<&'static ControlPlane, String>> =
            OnceLock::new();
        let shared = SHARED.get_or_init(|| {
            let plane = ControlPlane::start().map_err(|e| e.to_string())?;
            let t = plane.timings;
            eprintln!(
                "pgrator-world: Kubernetes {} control plane at {} ready in {:.1} s (etcd {:.1} s, kube-apiserver \
                 {:.1} s, CRDs {:.1} s, kube-controller-manager {:.1} s)",
                plane.version,
                plane.server_url,
                t.total.as_secs_f64(),
                t.etcd.as_secs_f64(),
                t.apiserver.as_secs_f64(),
                t.crds.as_secs_f64(),
                t.controller_manager.as_secs_f64()
            );
            Ok(crate::at_exit::leak_until_exit(plane))
        });
        shared
            .as_ref()
            .map(|p| *p)
            .map_err(|message| WorldError::Service {
                service: "kubernetes control plane".to_string(),
                message: message.clone(),
            })
    }

    /// Creates a fresh namespace named `<prefix>-<suffix>` and returns its name.
    pub async fn namespace(&self, prefix: &str) -> Result<String> {
        create_namespace(self.client().await?, prefix).await
    }

    /// A kube-rs client authenticated as the cluster admin. Call it inside a tokio runtime (the client spawns
    /// its connection worker there).
    pub async fn client(&self) -> Result<kube::Client> {
        let config = self.config().await?;
        kube::Client::try_from(config).map_err(|e| kube_error("building the client".to_string(), e))
    }

    /// The cluster admin's client configuration (to build a client of one's own, e.g. with a counting layer).
    pub async fn config(&self) -> Result<kube::Config> {
        let kubeconfig = kube::config::Kubeconfig::read_from(&self.kubeconfig)
            .map_err(|e| kube_config_error(format!("reading {}", self.kubeconfig.display()), e))?;
        let config = kube::Config::from_custom_kubeconfig(
            kubeconfig,
            &kube::config::KubeConfigOptions::default(),
        )
        .await
        .map_err(|e| kube_config_error("loading the kubeconfig".to_string(), e))?;
        Ok(config)
    }

    /// `https://127.0.0.1:<port>` of the API server.
    pub fn server_url(&self) -> &str {
        &self.server_url
    }

    /// A kubeconfig for the cluster admin (client certificate in group `system:masters`).
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// The CA that signed the serving and client certificates.
    pub fn ca_path(&self) -> PathBuf {
        self.files.ca.ca_path()
    }

    /// A kubectl of the server's version, pointed at this control plane.
    pub fn kubectl(&self) -> &Kubectl {
        &self.kubectl
    }

    /// The Kubernetes version of the binaries (`1.35.8`).
    pub fn version(&self) -> &str {
        &self.version
    }

    pub fn timings(&self) -> StartupTimings {
        self.timings
    }

    /// Resident memory of each server process in KiB (etcd, kube-apiserver, kube-controller-manager).
    pub fn rss_kib(&self) -> Vec<(String, u64)> {
        [&self.etcd, &self.apiserver, &self.controller_manager]
            .into_iter()
            .flatten()
            .filter_map(|s| Some((s.name().to_string(), process_rss_kib(s.pid()?)?)))
            .collect()
    }

    /// Stops the servers (controller manager, API server, etcd) now.
    pub fn stop(&mut self) {
        for service in [
            &mut self.controller_manager,
            &mut self.apiserver,
            &mut self.etcd,
        ] {
            if let Some(mut s) = service.take() {
                s.stop();
            }
        }
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        // Each Service prints its log tail when the thread is panicking; stop in dependency order first.
        for service in [
            &mut self.controller_manager,
            &mut self.apiserver,
            &mut self.etcd,
        ] {
            drop(service.take());
        }
    }
}

impl Files {
    fn create(state_dir: Option<&Path>) -> Result<Files> {
        let dir = match state_dir {
            Some(path) => {
                std::fs::create_dir_all(path)
                    .map_err(|e| WorldError::io(format!("creating {}", path.display()), e))?;
                StateDir::Kept(path.to_path_buf())
            }
            None => StateDir::Temp(
                tempfile::Builder::new()
                    .prefix("pgrator-kube-")
                    .tempdir()
                    .map_err(|e| WorldError::io("creating the control plane directory", e))?,
            ),
        };
        let ca = TestCa::new()?;
        // The API server's serving certificate also names the in-cluster service, as a real one does.
        let serving = ca.server_cert(
            "kube-apiserver",
            &["kubernetes", "kubernetes.default", "kubernetes.default.svc"],
        )?;
        // Group system:masters is bound to cluster-admin by the bootstrap RBAC policy.
        let admin = ca.client_cert("admin", "pgrator-admin", &["system:masters"])?;
        // Service-account tokens: the API server signs with the private key and verifies with the public one
        // (it reads PKCS#8 private keys but no public key out of them).
        let service_account = ServiceAccountKey {
            private: ca.dir().join("service-account-key.pem"),
            public: ca.dir().join("service-account.pub.pem"),
        };
        let key = rcgen::KeyPair::generate()?;
        for (path, pem) in [
            (&service_account.private, key.serialize_pem()),
            (&service_account.public, key.public_key_pem()),
        ] {
            std::fs::write(path, pem)
                .map_err(|e| WorldError::io(format!("writing {}", path.display()), e))?;
        }
        Ok(Files {
            ca,
            dir,
            admin,
            serving,
            service_account,
        })
    }
}

fn process_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn kube_error(what: String, e: kube::Error) -> WorldError {
    WorldError::Service {
        service: "kube-apiserver".to_string(),
        message: format!("{what}: {e}"),
    }
}

fn kube_config_error(what: String, e: kube::config::KubeconfigError) -> WorldError {
    WorldError::Service {
        service: "kubeconfig".to_string(),
        message: format!("{what}: {e}"),
    }
}

/// Creates a fresh namespace `<prefix>-<pid>-<n>` (unique among this machine's test processes) with `client`.
pub(crate) async fn create_namespace(client: kube::Client, prefix: &str) -> Result<String> {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let name = format!(
        "{prefix}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    };
    kube::Api::<Namespace>::all(client)
        .create(&PostParams::default(), &ns)
        .await
        .map_err(|e| kube_error(format!("creating namespace {name}"), e))?;
    Ok(name)
}
