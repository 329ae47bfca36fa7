//! kube-controller-manager with the controllers the operator's objects rely on: the garbage collector (owner
//! references), namespace deletion and service accounts.

use std::path::Path;
use std::time::Duration;

use super::kubectl::Kubectl;
use crate::error::Result;
use crate::process::{Service, ServiceSpec};

const CONTROLLERS: &str = "garbagecollector,namespace,serviceaccount,serviceaccount-token";

pub(super) fn start(
    program: &Path,
    kubeconfig: &Path,
    ca: &Path,
    service_account_key: &Path,
) -> Result<Service> {
    let spec = ServiceSpec::new("kube-controller-manager", program).args([
        format!("--kubeconfig={}", kubeconfig.display()),
        format!("--controllers={CONTROLLERS}"),
        format!(
            "--service-account-private-key-file={}",
            service_account_key.display()
        ),
        format!("--root-ca-file={}", ca.display()),
        "--use-service-account-credentials=false".to_string(),
        "--leader-elect=false".to_string(),
        // No HTTPS endpoint: several control planes (one per test binary) may run at once, and a fixed default
        // port would collide. Readiness is judged by the controllers' work instead.
        "--secure-port=0".to_string(),
        "--profiling=false".to_string(),
    ]);
    Service::start(spec)
}

/// Ready once the serviceaccount controller has created the `default` ServiceAccount of namespace `default`:
/// proof that the controller manager runs, reached the API server and its controllers work.
pub(super) fn wait_ready(
    service: &mut Service,
    kubectl: &Kubectl,
    timeout: Duration,
) -> Result<()> {
    service.wait_ready(timeout, || {
        kubectl
            .output([
                "get",
                "serviceaccount",
                "default",
                "--namespace=default",
                "--output=name",
            ])
            .map(|out| out.status.success())
            .unwrap_or(false)
    })
}
