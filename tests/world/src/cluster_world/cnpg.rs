//! CloudNativePG installed as its release manifest installs it (CRDs, RBAC, the operator Deployment, its webhook
//! Service and webhook configurations), from the `cnpg` part, with only the operator image renamed to the one the
//! world built and loaded (pulled never), and the operator's configuration (its ConfigMap, as a platform sets it)
//! naming the world's PostgreSQL image as the default for PostgreSQL and PgBouncer (the image holds both, as CNPG's
//! own images would each hold one). Ready when the API server answers a server-side dry run of a Cluster
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
    postgres_image: &str,
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
    let mut text = text
        .replace(&released, &operator_image(version))
        .replace("imagePullPolicy: Always", "imagePullPolicy: IfNotPresent");
    // The operator reads this ConfigMap (`--config-map-name`) at start: a Pooler gets PgBouncer from this image.
    text.push_str(&format!(
        "\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cnpg-controller-manager-config\n  \
         namespace: {NAMESPACE}\ndata:\n  POSTGRES_IMAGE_NAME: {postgres_image}\n  PGBOUNCER_IMAGE_NAME: {postgres_image}\n"
    ));
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

/// Creates every CRD of `dir` that neither CNPG's manifest nor the Barman Cloud plugin's brings (theirs come with
/// them, in their versions).
pub(super) fn install_other_crds(kubectl: &Kubectl, dir: &Path) -> Result<()> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| WorldError::io(format!("reading {}", dir.display()), e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                n.ends_with(".yaml")
                    && !n.starts_with("postgresql.cnpg.io_")
                    && !n.starts_with("barmancloud.cnpg.io_")
            })
        })
        .collect();
    files.sort();
    for file in files {
        kubectl.run([
            "create".as_ref(),
            "--field-manager=pgrator-world".as_ref(),
            "--filename".as_ref(),
            file.as_os_str(),
        ])?;
    }
    Ok(())
}
