//! kube-apiserver on loopback: client-certificate authentication, RBAC, service-account tokens signed by a
//! test key, storage in the given etcd.

use std::path::Path;
use std::time::Duration;

use super::ServiceAccountKey;
use super::kubectl::Kubectl;
use crate::error::Result;
use crate::process::{Service, ServiceSpec};
use crate::tls::CertFiles;

pub(super) struct Settings<'a> {
    pub port: u16,
    pub etcd_url: &'a str,
    pub ca: &'a Path,
    pub serving: &'a CertFiles,
    pub service_account: &'a ServiceAccountKey,
}

pub(super) fn start(program: &Path, s: &Settings<'_>) -> Result<Service> {
    let spec = ServiceSpec::new("kube-apiserver", program).args([
        format!("--etcd-servers={}", s.etcd_url),
        format!("--secure-port={}", s.port),
        "--bind-address=127.0.0.1".to_string(),
        "--advertise-address=127.0.0.1".to_string(),
        format!("--tls-cert-file={}", s.serving.cert.display()),
        format!("--tls-private-key-file={}", s.serving.key.display()),
        format!("--client-ca-file={}", s.ca.display()),
        "--authorization-mode=Node,RBAC".to_string(),
        format!(
            "--service-account-key-file={}",
            s.service_account.public.display()
        ),
        format!(
            "--service-account-signing-key-file={}",
            s.service_account.private.display()
        ),
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local".to_string(),
        "--service-cluster-ip-range=10.96.0.0/24".to_string(),
        // API priority and fairness only shapes load from many clients; off, start-up and memory are lighter.
        "--enable-priority-and-fairness=false".to_string(),
        "--profiling=false".to_string(),
        // No cloud, no nodes: nothing to wait for before answering the last requests at shutdown.
        "--shutdown-delay-duration=0s".to_string(),
        "--shutdown-watch-termination-grace-period=0s".to_string(),
    ]);
    Service::start(spec)
}

/// Waits until `/readyz` answers `ok` to the admin (every post-start hook done, etcd reachable).
pub(super) fn wait_ready(
    service: &mut Service,
    kubectl: &Kubectl,
    timeout: Duration,
) -> Result<()> {
    service.wait_ready(timeout, || {
        kubectl
            .output(["get", "--raw=/readyz", "--request-timeout=5s"])
            .map(|out| out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "ok")
            .unwrap_or(false)
    })
}
