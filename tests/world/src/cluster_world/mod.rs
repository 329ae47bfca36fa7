//! A whole Kubernetes world with the real CloudNativePG: control plane, one node (containerd, runc, CNI bridge,
//! kubelet, kube-proxy, CoreDNS), a volume provisioner, and CNPG installed from its release manifest, its operator
//! and webhooks running in a pod. PostgreSQL clusters that CNPG makes run in real pods with CNPG's instance manager.
//!
//! Everything runs inside a network namespace the world makes (see [`network`]): pod, Service and node addresses
//! exist only there, with no route out. The tests reach the API server (and through it the kubelet's logs and
//! port-forwards) at the namespace's end of a veth pair. The binaries and images come from the installer parts
//! `kube`, `node`, `cnpg` and `pgroot`; the images are built here with pgrator's OCI builder and loaded into
//! containerd (see [`images`]).
//!
//! Needs root (network namespaces, cgroups, mounts), as the rest of the test world's CI does.
//!
//! Teardown: dropping the world stops every process, then kills whatever the node left (containerd shims and
//! containers live in the world's mount namespace and cgroup tree: both are swept), removes the cgroup tree, the
//! network namespace and the state directory.

pub mod barman;
pub mod cnpg;
mod control_plane;
pub mod images;
pub mod network;
mod node;
mod object_storage;
mod pki;
mod storage;
mod sweep;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::env::{WorldEnv, cache_dir};
use crate::error::{Result, WorldError};
use crate::kube::Kubectl;
use crate::process::Service;
use images::ImageRecipe;
use network::WorldNetwork;
use node::{NodeBinaries, NodeDirs, PAUSE_IMAGE};
use pki::Pki;

pub use storage::STORAGE_CLASS;

/// The node's name.
pub const NODE_NAME: &str = "world-node";
const PHASE_TIMEOUT: Duration = Duration::from_secs(120);

/// How long each phase of the start took.
#[derive(Debug, Clone, Default)]
pub struct WorldTimings {
    pub phases: Vec<(&'static str, Duration)>,
    pub total: Duration,
}

/// A running world. See the module documentation.
pub struct ClusterWorld {
    // Dropped in this order by Drop (reverse of the start).
    provisioner: Option<storage::Provisioner>,
    services: Vec<Service>,
    containerd: Option<Service>,
    cgroup_root: String,
    net: Option<WorldNetwork>,
    pki: Pki,
    state: Option<tempfile::TempDir>,
    kubeconfig: PathBuf,
    kubectl: Kubectl,
    server_url: String,
    postgres_image: String,
    /// The PostgreSQL image's one layer (images that add to it reuse it).
    pgroot_tar: PathBuf,
    cnpg_version: String,
    /// The object storage emulator's endpoint (`http://<host end of the link>:<port>`).
    object_storage: String,
    timings: WorldTimings,
}

impl std::fmt::Debug for ClusterWorld {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterWorld")
            .field("server_url", &self.server_url)
            .field("kubeconfig", &self.kubeconfig)
            .finish_non_exhaustive()
    }
}

impl ClusterWorld {
    pub fn start() -> Result<ClusterWorld> {
        let started = Instant::now();
        let env = WorldEnv::load()?;
        let kube_bin = env.require("PGRATOR_KUBE_BIN_DIR")?;
        let node_bin = env.require("PGRATOR_NODE_BIN_DIR")?;
        let cni_bin = env.require("PGRATOR_CNI_BIN_DIR")?;
        let cnpg_dir = env.require("PGRATOR_CNPG_DIR")?;
        let pgroot_tar = env.require("PGRATOR_PGROOT_TAR")?;
        let barman_dir = env.require("PGRATOR_BARMAN_DIR")?;
        let barman_version = env
            .get("PGRATOR_BARMAN_VERSION")
            .unwrap_or("unknown")
            .to_string();
        let cnpg_version = env
            .get("PGRATOR_CNPG_VERSION")
            .unwrap_or("unknown")
            .to_string();
        let pg_version = env
            .get("PGRATOR_PGROOT_VERSION")
            .unwrap_or("unknown")
            .to_string();
        let mut timings = WorldTimings::default();
        let mut phase = Instant::now();
        let mut mark = |name: &'static str, phase: &mut Instant| {
            timings.phases.push((name, phase.elapsed()));
            *phase = Instant::now();
        };

        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let id = format!(
            "{}{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let state = tempfile::Builder::new()
            .prefix("pgrator-world-")
            .tempdir()
            .map_err(|e| WorldError::io("creating the world's directory", e))?;
        let root = state.path().to_path_buf();
        std::fs::set_permissions(&root, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .map_err(|e| WorldError::io("opening the world's directory", e))?;
        let cgroup_root = format!("/pgrator-{id}");
        sweep::create_cgroup_root(&cgroup_root)?;
        // From here on, a failure drops `world`, which tears down what was started.
        let net = WorldNetwork::create(&id, &root)?;
        let pki = Pki::create(NODE_NAME, net.inner_ip)?;
        let server_url = format!("https://{}:{}", net.inner_ip, control_plane::API_PORT);
        let kubeconfig = root.join("admin.kubeconfig");
        crate::kube::kubeconfig::write(&kubeconfig, &server_url, &pki.ca_path(), &pki.admin)?;
        let kubelet_kubeconfig = root.join("kubelet.kubeconfig");
        crate::kube::kubeconfig::write(
            &kubelet_kubeconfig,
            &server_url,
            &pki.ca_path(),
            &pki.kubelet,
        )?;
        let kubectl = Kubectl::new(kube_bin.join("kubectl"), kubeconfig.clone());
        let mut world = ClusterWorld {
            provisioner: None,
            services: Vec::new(),
            containerd: None,
            cgroup_root,
            net: Some(net),
            pki,
            state: Some(state),
            kubeconfig,
            kubectl,
            server_url,
            postgres_image: format!("pgrator.test/postgresql:{pg_version}"),
            pgroot_tar: pgroot_tar.clone(),
            cnpg_version,
            object_storage: String::new(),
            timings: WorldTimings::default(),
        };
        let (storage, endpoint) = object_storage::start(
            &env.require("PGRATOR_FAKE_GCS_BIN")?,
            world.host_ip()?,
            PHASE_TIMEOUT,
        )?;
        world.services.push(storage);
        world.object_storage = endpoint;
        mark("network", &mut phase);

        let entry = world.net.as_ref().ok_or_else(gone)?.entry();
        let net = &entry;
        // etcd's readiness shows in the API server's: /readyz checks its storage.
        world.services.push(control_plane::start_etcd(
            net,
            &kube_bin.join("etcd"),
            &root.join("etcd"),
        )?);
        let mut apiserver =
            control_plane::start_apiserver(net, &kube_bin.join("kube-apiserver"), &world.pki)?;
        let kubectl = world.kubectl.clone();
        apiserver.wait_ready(PHASE_TIMEOUT, || {
            kubectl
                .output(["get", "--raw=/readyz", "--request-timeout=5s"])
                .map(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).trim() == "ok")
                .unwrap_or(false)
        })?;
        world.services.push(apiserver);
        mark("kube-apiserver", &mut phase);
        world.services.push(control_plane::start_controller_manager(
            net,
            &kube_bin.join("kube-controller-manager"),
            &world.pki,
            &world.kubeconfig,
        )?);
        world.services.push(control_plane::start_scheduler(
            net,
            &kube_bin.join("kube-scheduler"),
            &world.kubeconfig,
        )?);

        let dirs = NodeDirs { root: root.clone() };
        let bins = NodeBinaries {
            node_bin: &node_bin,
            cni_bin: &cni_bin,
            kube_bin: &kube_bin,
        };
        world.containerd = Some(node::start_containerd(net, &dirs, &bins)?);
        mark("containerd", &mut phase);
        let operator_image = cnpg::operator_image(&world.cnpg_version);
        let postgres_image = world.postgres_image.clone();
        for archive in [
            pause_archive(&node_bin, &root)?,
            cnpg_archive(&cnpg_dir.join("bin/manager"), &operator_image, &root)?,
            program_archive(
                &barman_dir.join("bin/manager"),
                &barman::plugin_image(&barman_version),
                &root,
            )?,
            cached_archive(&ImageRecipe {
                name: &barman::sidecar_image(&barman_version),
                layer_tars: vec![&barman_dir.join("sidecar.tar")],
                entrypoint: vec!["/manager".into()],
                env: vec!["PATH=/venv/bin:/usr/local/bin:/usr/bin:/bin".to_string()],
                user: Some("26:26".to_string()),
            })?,
            cached_archive(&postgres_recipe(&postgres_image, vec![&pgroot_tar]))?,
        ] {
            world.import(&archive)?;
        }
        mark("images", &mut phase);

        let mut kubelet = node::start_kubelet(
            net,
            &dirs,
            &bins,
            NODE_NAME,
            &world.cgroup_root,
            &kubelet_kubeconfig,
            &world.pki.ca_path(),
        )?;
        let kubectl = world.kubectl.clone();
        kubelet.wait_ready(PHASE_TIMEOUT, || {
            kubectl
                .output([
                    "get",
                    "node",
                    NODE_NAME,
                    "-o",
                    "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
                ])
                .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "True")
                .unwrap_or(false)
        })?;
        world.services.push(kubelet);
        world.services.push(node::start_kube_proxy(
            net,
            &dirs,
            &bins,
            NODE_NAME,
            &world.kubeconfig,
        )?);
        world
            .services
            .push(node::start_coredns(net, &dirs, &bins, &world.kubeconfig)?);
        mark("node", &mut phase);

        world.provisioner = Some(storage::Provisioner::start(
            world.kubeconfig.clone(),
            root.join("volumes"),
        )?);
        cnpg::install(
            &world.kubectl,
            &cnpg_dir,
            &world.cnpg_version,
            &world.postgres_image,
            &root,
            PHASE_TIMEOUT,
        )?;
        // The other kinds pgrator writes (Barman Cloud's ObjectStore, prometheus-operator's rules and monitors,
        // Config Connector's IAM and buckets): their CRDs only, from the `crds` part; CNPG's came with CNPG.
        cnpg::install_other_crds(&world.kubectl, &env.require("PGRATOR_CRDS_DIR")?)?;
        mark("cnpg", &mut phase);
        barman::install(
            &world.kubectl,
            &barman_dir,
            &barman_version,
            &root,
            PHASE_TIMEOUT,
        )?;
        mark("barman-cloud", &mut phase);
        timings.total = started.elapsed();
        world.timings = timings;
        Ok(world)
    }

    /// The world of this test binary, started on first use; a start failure is returned to every caller.
    pub fn shared() -> Result<&'static ClusterWorld> {
        static SHARED: OnceLock<std::result::Result<&'static ClusterWorld, String>> =
            OnceLock::new();
        let shared = SHARED.get_or_init(|| {
            let world = ClusterWorld::start().map_err(|e| e.to_string())?;
            eprintln!("pgrator-world: {}", world.describe());
            Ok(crate::at_exit::leak_until_exit(world))
        });
        shared
            .as_ref()
            .map(|w| *w)
            .map_err(|message| WorldError::Service {
                service: "cluster world".to_string(),
                message: message.clone(),
            })
    }

    /// One line: where the API server is, how long each phase took.
    pub fn describe(&self) -> String {
        let phases: Vec<String> = self
            .timings
            .phases
            .iter()
            .map(|(n, d)| format!("{n} {:.1} s", d.as_secs_f64()))
            .collect();
        format!(
            "Kubernetes with a node and CloudNativePG {} at {} ready in {:.1} s ({})",
            self.cnpg_version,
            self.server_url,
            self.timings.total.as_secs_f64(),
            phases.join(", ")
        )
    }

    /// Loads an image archive into the node's containerd.
    pub fn import(&self, archive: &Path) -> Result<()> {
        self.ctr(&["images", "import", &archive.display().to_string()])
    }

    /// Gives the loaded image `source` the further name `name` (e.g. `repo@sha256:...`, the name under which the
    /// kubelet looks up an image pinned by digest).
    pub fn tag_image(&self, source: &str, name: &str) -> Result<()> {
        self.ctr(&["images", "tag", "--force", source, name])
    }

    /// Runs containerd's `ctr` on the node's images (the namespace the kubelet uses).
    fn ctr(&self, args: &[&str]) -> Result<()> {
        let node_bin = WorldEnv::load()?.require("PGRATOR_NODE_BIN_DIR")?;
        let net = self.net.as_ref().ok_or_else(gone)?;
        let socket = self
            .state_dir()?
            .join("containerd.sock")
            .display()
            .to_string();
        let program = node_bin.join("ctr").display().to_string();
        let mut all = vec!["--address", socket.as_str(), "--namespace", "k8s.io"];
        all.extend_from_slice(args);
        net.run_inside(&program, &all).map(|_| ())
    }

    fn state_dir(&self) -> Result<&Path> {
        self.state.as_ref().map(|s| s.path()).ok_or_else(gone)
    }

    /// Creates a fresh namespace named `<prefix>-<suffix>` and returns its name.
    pub async fn namespace(&self, prefix: &str) -> Result<String> {
        crate::kube::create_namespace(self.client().await?, prefix).await
    }

    /// A client authenticated as the cluster admin (call inside a tokio runtime).
    pub async fn client(&self) -> Result<kube::Client> {
        kube::Client::try_from(self.config().await?).map_err(|e| WorldError::Service {
            service: "kube-apiserver".into(),
            message: e.to_string(),
        })
    }

    /// The cluster admin's client configuration (to build a client of one's own).
    pub async fn config(&self) -> Result<kube::Config> {
        let kubeconfig = kube::config::Kubeconfig::read_from(&self.kubeconfig).map_err(|e| {
            WorldError::Service {
                service: "kubeconfig".into(),
                message: e.to_string(),
            }
        })?;
        kube::Config::from_custom_kubeconfig(
            kubeconfig,
            &kube::config::KubeConfigOptions::default(),
        )
        .await
        .map_err(|e| WorldError::Service {
            service: "kubeconfig".into(),
            message: e.to_string(),
        })
    }

    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    pub fn kubectl(&self) -> &Kubectl {
        &self.kubectl
    }

    pub fn server_url(&self) -> &str {
        &self.server_url
    }

    pub fn ca_pem(&self) -> &str {
        self.pki.ca_pem()
    }

    /// The host's end of the world's link: pods reach it (and nothing else outside), so a test service that stands
    /// for something outside the cluster (the IdP) listens there.
    pub fn host_ip(&self) -> Result<std::net::Ipv4Addr> {
        Ok(self.net.as_ref().ok_or_else(gone)?.host_ip)
    }

    /// The world's PostgreSQL image with `ca_pem` added to its system trust bundle (one small layer on top),
    /// loaded into the node; returns its name. This is what a platform whose IdP has a private CA runs: the
    /// validator trusts the system bundle unless told otherwise.
    pub fn postgres_image_trusting(&self, ca_pem: &str) -> Result<String> {
        const BUNDLE: &str = "etc/ssl/certs/ca-certificates.crt";
        let tag = format!("{:016x}", fnv1a(ca_pem.as_bytes()));
        let name = format!("{}-ca-{tag}", self.postgres_image);
        let work = tempfile::Builder::new()
            .prefix("ca-image-")
            .tempdir_in(self.state_dir()?)
            .map_err(|e| WorldError::io("creating an image work directory", e))?;
        let out = Command::new("tar")
            .arg("--extract")
            .arg("--to-stdout")
            .arg(format!("--file={}", self.pgroot_tar.display()))
            .arg(format!("./{BUNDLE}"))
            .output()
            .map_err(|e| WorldError::io("running tar", e))?;
        if !out.status.success() || out.stdout.is_empty() {
            return Err(WorldError::Service {
                service: "world images".into(),
                message: format!(
                    "the PostgreSQL image has no {BUNDLE}: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
            });
        }
        let mut bundle = out.stdout;
        if !bundle.ends_with(b"\n") {
            bundle.push(b'\n');
        }
        bundle.extend_from_slice(ca_pem.as_bytes());
        let root = work.path().join("layer");
        let file = root.join(BUNDLE);
        if let Some(dir) = file.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| WorldError::io("making the layer's directories", e))?;
        }
        std::fs::write(&file, bundle).map_err(|e| WorldError::io("writing the trust bundle", e))?;
        let layer = work.path().join("ca-layer.tar");
        images::tar_dir(&root, &layer)?;
        let archive = images::build_archive(
            &postgres_recipe(&name, vec![&self.pgroot_tar, &layer]),
            work.path(),
        )?;
        self.import(&archive)?;
        Ok(name)
    }

    /// Where backups go: the GCS emulator's endpoint, for `STORAGE_EMULATOR_HOST`.
    pub fn object_storage_endpoint(&self) -> &str {
        &self.object_storage
    }

    /// The PostgreSQL 18 image loaded into the node (for a Cluster's `imageName`).
    pub fn postgres_image(&self) -> &str {
        &self.postgres_image
    }

    pub fn cnpg_version(&self) -> &str {
        &self.cnpg_version
    }

    pub fn timings(&self) -> &WorldTimings {
        &self.timings
    }

    /// What a failed test should show about `namespace`: its pods, CNPG's Clusters and their status, the recent
    /// events, and the end of CNPG's operator log.
    pub fn diagnose(&self, namespace: &str) -> String {
        let run = |args: &[&str]| match self.kubectl.output(args) {
            Ok(o) => format!(
                "$ kubectl {}\n{}{}",
                args.join(" "),
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            ),
            Err(e) => format!("$ kubectl {}: {e}", args.join(" ")),
        };
        [
            run(&[
                "-n",
                namespace,
                "get",
                "pods,pvc,clusters.postgresql.cnpg.io,poolers.postgresql.cnpg.io",
                "-o",
                "wide",
            ]),
            run(&[
                "-n",
                namespace,
                "get",
                "clusters.postgresql.cnpg.io",
                "-o",
                "jsonpath={range .items[*]}{.metadata.name}: {.status}{\"\\n\"}{end}",
            ]),
            run(&["-n", namespace, "get", "events", "--sort-by=.lastTimestamp"]),
            run(&[
                "-n",
                namespace,
                "logs",
                "--selector=cnpg.io/poolerName",
                "--all-containers",
                "--prefix",
                "--tail=15",
            ]),
            run(&[
                "-n",
                namespace,
                "logs",
                "--selector=cnpg.io/podRole=instance",
                "--all-containers",
                "--prefix",
                "--tail=15",
            ]),
            run(&[
                "-n",
                cnpg::NAMESPACE,
                "logs",
                "deploy/cnpg-controller-manager",
                "--tail=40",
            ]),
        ]
        .join("\n")
    }

    /// Runs a command inside the world's network namespace (e.g. psql against a pod address).
    pub fn run_inside(&self, program: &str, args: &[&str]) -> Result<String> {
        self.net
            .as_ref()
            .ok_or_else(gone)?
            .run_inside(program, args)
    }

    /// Resident memory of the world's own processes and of everything in its cgroup tree (pods), in KiB.
    pub fn rss_kib(&self) -> u64 {
        let mut pids: Vec<u32> = self.services.iter().filter_map(Service::pid).collect();
        pids.extend(self.containerd.as_ref().and_then(Service::pid));
        pids.extend(sweep::cgroup_pids(&self.cgroup_root));
        if let Some(ns) = self.net.as_ref().and_then(WorldNetwork::mount_ns) {
            pids.extend(sweep::mount_ns_pids(&ns));
        }
        pids.sort_unstable();
        pids.dedup();
        pids.iter().filter_map(|p| sweep::rss_kib(*p)).sum()
    }
}

impl Drop for ClusterWorld {
    fn drop(&mut self) {
        drop(self.provisioner.take());
        // The kubelet first (it would restart containers), the control plane last.
        while let Some(service) = self.services.pop() {
            drop(service);
        }
        let mount_ns = self.net.as_ref().and_then(WorldNetwork::mount_ns);
        drop(self.containerd.take());
        sweep::kill_all(&self.cgroup_root, mount_ns.as_deref());
        sweep::remove_cgroup_root(&self.cgroup_root);
        drop(self.net.take());
        // The state directory goes with the world, unless a test failed: then its files are kept for a look.
        if let Some(state) = self.state.take()
            && std::thread::panicking()
        {
            eprintln!(
                "pgrator-world: the world's files are kept at {}",
                state.path().display()
            );
            let _ = state.keep();
        }
    }
}

fn gone() -> WorldError {
    WorldError::Service {
        service: "cluster world".into(),
        message: "already torn down".into(),
    }
}

/// The pause image: the static program as `/pause`, run as nobody.
fn pause_archive(node_bin: &Path, work: &Path) -> Result<PathBuf> {
    let dir = work.join("image-pause");
    copy_into(&node_bin.join("pause"), &dir.join("pause"))?;
    dir_archive(&dir, PAUSE_IMAGE, "/pause", "65535:65535", work)
}

/// CNPG's image as CNPG lays it out: `/operator/manager_<arch>` and `/manager` pointing at it.
fn cnpg_archive(manager: &Path, name: &str, work: &Path) -> Result<PathBuf> {
    let dir = work.join("image-cnpg");
    let arch = std::env::consts::ARCH
        .replace("x86_64", "amd64")
        .replace("aarch64", "arm64");
    copy_into(manager, &dir.join(format!("operator/manager_{arch}")))?;
    std::os::unix::fs::symlink(format!("operator/manager_{arch}"), dir.join("manager"))
        .map_err(|e| WorldError::io("linking /manager", e))?;
    dir_archive(&dir, name, "/manager", "10001:10001", work)
}

/// An image of one static program at `/manager` (the Barman Cloud plugin's operator), run as a non-root user.
fn program_archive(program: &Path, name: &str, work: &Path) -> Result<PathBuf> {
    let dir = work.join(format!("image-{}", name.replace(['/', ':'], "_")));
    copy_into(program, &dir.join("manager"))?;
    dir_archive(&dir, name, "/manager", "65532:65532", work)
}

/// The archive of an image whose one layer is `dir`, running `entrypoint` as `user`.
fn dir_archive(
    dir: &Path,
    name: &str,
    entrypoint: &str,
    user: &str,
    work: &Path,
) -> Result<PathBuf> {
    let layer = dir.with_extension("tar");
    images::tar_dir(dir, &layer)?;
    images::build_archive(
        &ImageRecipe {
            name,
            layer_tars: vec![&layer],
            entrypoint: vec![entrypoint.into()],
            env: Vec::new(),
            user: Some(user.into()),
        },
        work,
    )
}

/// The PostgreSQL image laid out as CNPG's system images: PostgreSQL's binaries on PATH, user 26 (postgres).
fn postgres_recipe<'a>(name: &'a str, layer_tars: Vec<&'a Path>) -> ImageRecipe<'a> {
    ImageRecipe {
        name,
        layer_tars,
        entrypoint: Vec::new(),
        env: vec![
            "PATH=/usr/lib/postgresql/18/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string(),
            "LANG=C.UTF-8".to_string(),
        ],
        user: Some("26".to_string()),
    }
}

/// A stable short digest for image tags (not for security).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The archive of a large image, built once per input and kept in the cache.
fn cached_archive(recipe: &ImageRecipe<'_>) -> Result<PathBuf> {
    let mut key = recipe.name.replace(['/', ':'], "_");
    for path in &recipe.layer_tars {
        let meta = std::fs::metadata(path)
            .map_err(|e| WorldError::io(format!("reading {}", path.display()), e))?;
        let mtime = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok());
        key.push_str(&format!(
            "-{}-{}",
            meta.len(),
            mtime.map_or(0, |d| d.as_secs())
        ));
    }
    let dir = cache_dir().join("world-images");
    let archive = dir.join(format!("{key}.tar"));
    if archive.exists() {
        return Ok(archive);
    }
    std::fs::create_dir_all(&dir).map_err(|e| WorldError::io("creating the image cache", e))?;
    let work = tempfile::Builder::new()
        .prefix("build-")
        .tempdir_in(&dir)
        .map_err(|e| WorldError::io("creating an image work directory", e))?;
    let built = images::build_archive(recipe, work.path())?;
    std::fs::rename(&built, &archive).map_err(|e| WorldError::io("caching an image archive", e))?;
    Ok(archive)
}

fn copy_into(from: &Path, to: &Path) -> Result<()> {
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| WorldError::io(format!("creating {}", parent.display()), e))?;
    }
    std::fs::copy(from, to)
        .map(|_| ())
        .map_err(|e| WorldError::io(format!("copying {}", from.display()), e))
}
