//! The kubeconfig file for one client certificate (the cluster admin's, a kubelet's).

use std::path::Path;

use crate::error::{Result, WorldError};
use crate::tls::CertFiles;

pub(super) const CONTEXT: &str = "pgrator-test";

/// Writes a kubeconfig with one cluster, one user (client certificate) and one current context.
pub(crate) fn write(path: &Path, server_url: &str, ca: &Path, admin: &CertFiles) -> Result<()> {
    // Paths are quoted as YAML strings; temp paths contain no quotes or backslashes.
    let text = format!(
        r#"apiVersion: v1
kind: Config
clusters:
- name: {CONTEXT}
  cluster:
    server: "{server_url}"
    certificate-authority: "{ca}"
users:
- name: admin
  user:
    client-certificate: "{cert}"
    client-key: "{key}"
contexts:
- name: {CONTEXT}
  context:
    cluster: {CONTEXT}
    user: admin
    namespace: default
current-context: {CONTEXT}
"#,
        ca = ca.display(),
        cert = admin.cert.display(),
        key = admin.key.display(),
    );
    std::fs::write(path, text).map_err(|e| WorldError::io(format!("writing {}", path.display()), e))
}
