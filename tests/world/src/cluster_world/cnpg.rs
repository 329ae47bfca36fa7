//! CloudNativePG installed as its release manifest installs it (CRDs, RBAC, the operator Deployment, its webhook
//! Service and webhook configurations), from the `cnpg` part, with only the operator image renamed to the one the
//! world built and loaded (pulled never). Ready when the API server answers a server-side dry run of a Cluster
//! through CNPG's webhooks.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::error::{Result, WorldError};
use crate::kube::Kubectl;

/// The name CNPG's release manifest gives its image, and the one the world loads instead.
const RELEASED_IMAGE_PREFIX: &str = "ghcr.io/cloudnative-pg/cloudnative-pg:";
pub const NAMESPACE: &str = "cnpg-system";

/// The operator image the world builds for `version`.
pub fn operator_image(version: &str) -> String {
    format!("pgrator.test/cloudnative-pg:{version}")
}

pub(super) fn install(
    kubectl: &Kubectl,
    cnpg_dir: &Path,
    version: &str,
    work: &Path,
    timeout: Duration,
) -> Result<()> {
    let manifest = cnpg_dir.join("cnpg.yaml");
    let text = std::fs::read_to_string(&manifest)
        .map_err(|e| WorldError::io(format!("reading {}", manifest.display()), e))?;
    let released = format!("{RELEASED_IMAGE_PREFIX}{version}");
    if !text.contains(&released) {
        return Err(WorldError::Service {
            service: "cnpg".into(),
            message: format!("{} does not name the image {released}", manifest.display()),
        });
    }
    let text = text
        .replace(&released, &operator_image(version))
        .replace("imagePullPolicy: Always", "imagePullPolicy: IfNotPresent");
    let local = work.join("cnpg.yaml");
    std::fs::write(&local, text).map_err(|e| WorldError::io("writing the CNPG manifest", e))?;
    // Server-side: the CRDs are too large for a client-side apply's annotation.
    kubectl.run([
        "apply".as_ref(),
        "--server-side".as_ref(),
        "--field-manager=pgrator-world".as_ref(),
        "--filename".as_ref(),
        local.as_os_str(),
    ])?;
    let started = Instant::now();
    let probe = work.join("cnpg-probe.yaml");
    std::fs::write(
        &probe,
        "apiVersion: postgresql.cnpg.io/v1\nkind: Cluster\nmetadata:\n  name: probe\n  namespace: default\n\
         spec:\n  instances: 1\n  storage:\n    size: 1Gi\n",
    )
    .map_err(|e| WorldError::io("writing the webhook probe", e))?;
    let mut last = String::new();
    while started.elapsed() < timeout {
        let out = kubectl.output([
            "create".as_ref(),
            "--dry-run=server".as_ref(),
            "--filename".as_ref(),
            probe.as_os_str(),
        ])?;
        if out.status.success() {
            return Ok(());
        }
        last = String::from_utf8_lossy(&out.stderr).trim().to_string();
        std::thread::sleep(Duration::from_millis(500));
    }
    let pods = kubectl
        .output(["-n", NAMESPACE, "get", "pods", "-o", "wide"])
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    Err(WorldError::Service {
        service: "cnpg".into(),
        message: format!(
            "CNPG's webhooks did not answer within {timeout:?}; last answer: {last}\n{pods}"
        ),
    })
}
