//! The node: containerd with the runc shim and CNI bridge networking, the kubelet (ImageVolume on, cgroup v1 with
//! the cgroupfs driver under a cgroup root of the world's own), kube-proxy (iptables, masquerading all Service
//! traffic because pods and the node share one bridge), and CoreDNS serving `cluster.local` on the node's address.
//! Settings that this machine needs are explained where they are set.

use std::path::{Path, PathBuf};

use super::network::{NODE_IP, NsEntry, POD_CIDR};
use crate::error::{Result, WorldError};
use crate::process::{Service, ServiceSpec};

/// Where the node keeps its state, under the world's directory.
pub(super) struct NodeDirs {
    pub root: PathBuf,
}

impl NodeDirs {
    pub fn containerd_socket(&self) -> PathBuf {
        self.root.join("containerd.sock")
    }
    fn path(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }
}

pub(super) struct NodeBinaries<'a> {
    pub node_bin: &'a Path,
    pub cni_bin: &'a Path,
    pub kube_bin: &'a Path,
}

/// The sandbox (pause) image every pod starts with; loaded before the kubelet starts.
pub const PAUSE_IMAGE: &str = "pgrator.test/pause:1";

pub(super) fn start_containerd(
    net: &NsEntry,
    dirs: &NodeDirs,
    bins: &NodeBinaries<'_>,
) -> Result<Service> {
    let cni_conf = dirs.path("cni/conf");
    let cni_data = dirs.path("cni/data");
    for d in [&cni_conf, &cni_data] {
        std::fs::create_dir_all(d)
            .map_err(|e| WorldError::io(format!("creating {}", d.display()), e))?;
    }
    let config = format!(
        r#"version = 3
root = "{root}"
state = "{state}"
[grpc]
  address = "{socket}"
[plugins.'io.containerd.cri.v1.images']
  snapshotter = "overlayfs"
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = "{PAUSE_IMAGE}"
[plugins.'io.containerd.cri.v1.runtime']
  # No CAP_SYS_RESOURCE in this VM: containerd may not raise its children's oom_score_adj.
  restrict_oom_score_adj = true
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = ["{cni_bin}"]
    conf_dir = "{cni_conf}"
  [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
      BinaryName = "{runc}"
      SystemdCgroup = false
"#,
        root = dirs.path("containerd/root").display(),
        state = dirs.path("containerd/state").display(),
        socket = dirs.containerd_socket().display(),
        cni_bin = bins.cni_bin.display(),
        cni_conf = cni_conf.display(),
        runc = bins.node_bin.join("runc").display(),
    );
    write(&dirs.path("containerd.toml"), &config)?;
    // Pods on one bridge in the node's namespace; host-local keeps its leases under the world's directory.
    let conflist = serde_json::json!({
        "cniVersion": "1.0.0",
        "name": "world",
        "plugins": [
            {"type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": false, "hairpinMode": true,
             "ipam": {"type": "host-local", "dataDir": cni_data, "ranges": [[{"subnet": POD_CIDR}]],
                      "routes": [{"dst": "0.0.0.0/0"}]}},
            {"type": "portmap", "capabilities": {"portMappings": true}},
            {"type": "loopback"}
        ]
    });
    write(&cni_conf.join("10-world.conflist"), &conflist.to_string())?;
    let mut service = Service::start(
        net.inside(
            ServiceSpec::new("containerd", bins.node_bin.join("containerd"))
                .arg("--config")
                .arg(dirs.path("containerd.toml"))
                // The shim is found on PATH.
                .env(
                    "PATH",
                    format!("{}:/usr/sbin:/usr/bin:/sbin:/bin", bins.node_bin.display()),
                ),
        ),
    )?;
    let socket = dirs.containerd_socket();
    service.wait_ready(std::time::Duration::from_secs(30), || socket.exists())?;
    Ok(service)
}

/// Settings for the kubelet that this machine needs (cgroup v1, no swap accounting, no CAP_SYS_RESOURCE).
pub(super) fn start_kubelet(
    net: &NsEntry,
    dirs: &NodeDirs,
    bins: &NodeBinaries<'_>,
    node_name: &str,
    cgroup_root: &str,
    kubeconfig: &Path,
    ca: &Path,
) -> Result<Service> {
    let config = format!(
        r#"apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# This machine has cgroup v1 only.
failCgroupV1: false
cgroupDriver: cgroupfs
# A cgroup tree of this world's own, so worlds never share one and it can be removed as a whole.
cgroupRoot: {cgroup_root}
containerRuntimeEndpoint: unix://{socket}
failSwapOn: false
featureGates:
  ImageVolume: true
localStorageCapacityIsolation: false
evictionHard: {{}}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
address: {NODE_IP}
port: 10250
readOnlyPort: 0
healthzPort: 0
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: true
  x509:
    clientCAFile: {ca}
authorization:
  mode: Webhook
clusterDNS: [{NODE_IP}]
clusterDomain: cluster.local
resolvConf: {resolv}
serializeImagePulls: false
"#,
        socket = dirs.containerd_socket().display(),
        ca = ca.display(),
        resolv = dirs.path("resolv.conf").display(),
    );
    write(&dirs.path("kubelet.yaml"), &config)?;
    Service::start(net.inside(
        ServiceSpec::new("kubelet", bins.kube_bin.join("kubelet")).args([
            format!("--config={}", dirs.path("kubelet.yaml").display()),
            format!("--kubeconfig={}", kubeconfig.display()),
            format!("--root-dir={}", dirs.path("kubelet").display()),
            format!("--cert-dir={}", dirs.path("kubelet-pki").display()),
            format!("--hostname-override={node_name}"),
            format!("--node-ip={NODE_IP}"),
        ]),
    ))
}

pub(super) fn start_kube_proxy(
    net: &NsEntry,
    dirs: &NodeDirs,
    bins: &NodeBinaries<'_>,
    node_name: &str,
    kubeconfig: &Path,
) -> Result<Service> {
    let config = format!(
        r#"apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection:
  kubeconfig: {kubeconfig}
hostnameOverride: {node_name}
mode: iptables
clusterCIDR: {POD_CIDR}
# Pods and the node share one bridge: without masquerading, a reply from a Service's pod to a pod on the same
# bridge would bypass the translation back.
iptables:
  masqueradeAll: true
# The conntrack table size is the host's to set, not a network namespace's.
conntrack:
  maxPerCore: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
healthzBindAddress: ""
metricsBindAddress: ""
nodePortAddresses: [primary]
"#,
        kubeconfig = kubeconfig.display(),
    );
    write(&dirs.path("kube-proxy.yaml"), &config)?;
    Service::start(net.inside(
        ServiceSpec::new("kube-proxy", bins.kube_bin.join("kube-proxy")).arg(format!(
            "--config={}",
            dirs.path("kube-proxy.yaml").display()
        )),
    ))
}

pub(super) fn start_coredns(
    net: &NsEntry,
    dirs: &NodeDirs,
    bins: &NodeBinaries<'_>,
    kubeconfig: &Path,
) -> Result<Service> {
    // Only the cluster's names: anything else gets NXDOMAIN instead of a query to a resolver outside. Two server
    // blocks, since CoreDNS runs its plugins in its own fixed order (template before kubernetes), not the file's:
    // a catch-all template in the cluster's block would answer for the cluster's names too.
    let corefile = format!(
        r#"cluster.local:53 in-addr.arpa:53 ip6.arpa:53 {{
    bind {NODE_IP}
    errors
    kubernetes cluster.local in-addr.arpa ip6.arpa {{
        kubeconfig {kubeconfig} pgrator-test
        pods insecure
    }}
    cache 5
}}
.:53 {{
    bind {NODE_IP}
    template ANY ANY {{
        rcode NXDOMAIN
    }}
}}
"#,
        kubeconfig = kubeconfig.display(),
    );
    write(&dirs.path("Corefile"), &corefile)?;
    Service::start(
        net.inside(
            ServiceSpec::new("coredns", bins.node_bin.join("coredns"))
                .arg("-conf")
                .arg(dirs.path("Corefile")),
        ),
    )
}

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(|e| WorldError::io(format!("writing {}", path.display()), e))
}
