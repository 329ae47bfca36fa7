//! The control plane inside the world's network namespace: etcd, kube-apiserver (listening on every address of the
//! namespace, so the host reaches it through the veth pair and pods through the `kubernetes` Service), the
//! controller manager with every default controller (Deployments, ReplicaSets, endpoints, volumes, garbage
//! collection...) and the scheduler. The `ImageVolume` feature gate is on, as on the kubelet.

use std::path::Path;

use super::network::{NODE_IP, NsEntry, SERVICE_CIDR};
use super::pki::Pki;
use crate::error::Result;
use crate::process::{Service, ServiceSpec};

pub const API_PORT: u16 = 6443;
const ETCD_URL: &str = "http://127.0.0.1:2379";

pub(super) fn start_etcd(net: &NsEntry, program: &Path, data: &Path) -> Result<Service> {
    let spec = ServiceSpec::new("etcd", program).args([
        "--name=world".to_string(),
        format!("--data-dir={}", data.display()),
        format!("--listen-client-urls={ETCD_URL}"),
        format!("--advertise-client-urls={ETCD_URL}"),
        "--listen-peer-urls=http://127.0.0.1:2380".to_string(),
        "--initial-advertise-peer-urls=http://127.0.0.1:2380".to_string(),
        "--initial-cluster=world=http://127.0.0.1:2380".to_string(),
        // Test data is thrown away: durability costs fsyncs the shared disk does not need to pay.
        "--unsafe-no-fsync".to_string(),
        "--log-level=warn".to_string(),
    ]);
    Service::start(net.inside(spec))
}

pub(super) fn start_apiserver(net: &NsEntry, program: &Path, pki: &Pki) -> Result<Service> {
    let spec = ServiceSpec::new("kube-apiserver", program).args([
        format!("--etcd-servers={ETCD_URL}"),
        format!("--secure-port={API_PORT}"),
        "--bind-address=0.0.0.0".to_string(),
        format!("--advertise-address={NODE_IP}"),
        format!("--tls-cert-file={}", pki.apiserver.cert.display()),
        format!("--tls-private-key-file={}", pki.apiserver.key.display()),
        format!("--client-ca-file={}", pki.ca_path().display()),
        "--authorization-mode=Node,RBAC".to_string(),
        format!(
            "--service-account-key-file={}",
            pki.service_account_public.display()
        ),
        format!(
            "--service-account-signing-key-file={}",
            pki.service_account_private.display()
        ),
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local".to_string(),
        format!("--service-cluster-ip-range={SERVICE_CIDR}"),
        // Logs, exec and port-forward go to the kubelet by the node's address, never through a DNS lookup.
        format!(
            "--kubelet-client-certificate={}",
            pki.apiserver_kubelet_client.cert.display()
        ),
        format!(
            "--kubelet-client-key={}",
            pki.apiserver_kubelet_client.key.display()
        ),
        "--kubelet-preferred-address-types=InternalIP".to_string(),
        "--feature-gates=ImageVolume=true".to_string(),
        "--enable-priority-and-fairness=false".to_string(),
        "--profiling=false".to_string(),
        "--shutdown-delay-duration=0s".to_string(),
        "--shutdown-watch-termination-grace-period=0s".to_string(),
    ]);
    Service::start(net.inside(spec))
}

pub(super) fn start_controller_manager(
    net: &NsEntry,
    program: &Path,
    pki: &Pki,
    kubeconfig: &Path,
) -> Result<Service> {
    let spec = ServiceSpec::new("kube-controller-manager", program).args([
        format!("--kubeconfig={}", kubeconfig.display()),
        // Every default controller: a node world runs Deployments, ReplicaSets, Jobs, endpoints and volumes.
        "--controllers=*".to_string(),
        format!(
            "--service-account-private-key-file={}",
            pki.service_account_private.display()
        ),
        format!("--root-ca-file={}", pki.ca_path().display()),
        "--use-service-account-credentials=true".to_string(),
        "--leader-elect=false".to_string(),
        "--secure-port=0".to_string(),
        "--profiling=false".to_string(),
    ]);
    Service::start(net.inside(spec))
}

pub(super) fn start_scheduler(net: &NsEntry, program: &Path, kubeconfig: &Path) -> Result<Service> {
    let spec = ServiceSpec::new("kube-scheduler", program).args([
        format!("--kubeconfig={}", kubeconfig.display()),
        "--leader-elect=false".to_string(),
        "--secure-port=0".to_string(),
        "--profiling=false".to_string(),
    ]);
    Service::start(net.inside(spec))
}
