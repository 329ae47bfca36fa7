//! Installs the CRDs of the `crds` part and waits until every one is Established (served by the API server).

use std::path::Path;
use std::time::{Duration, Instant};

use super::kubectl::Kubectl;
use crate::error::{Result, WorldError};

pub(super) fn install(kubectl: &Kubectl, dir: &Path, timeout: Duration) -> Result<()> {
    // A plain create: the cluster is new, and it takes half the time of a server-side apply of these large CRDs
    // (a client-side apply cannot store them: its last-applied annotation would be over the size limit).
    let applied = kubectl.run([
        "create".as_ref(),
        "--field-manager=pgrator-world".as_ref(),
        "--output=name".as_ref(),
        "--filename".as_ref(),
        dir.as_os_str(),
    ])?;
    // `-o name` prints `customresourcedefinition.apiextensions.k8s.io/<name>`.
    let names: Vec<&str> = applied
        .lines()
        .filter_map(|l| l.trim().rsplit_once('/').map(|(_, name)| name))
        .collect();
    if names.is_empty() {
        return Err(WorldError::Service {
            service: "kubectl".to_string(),
            message: format!("no CRD was applied from {}", dir.display()),
        });
    }
    // One `get` of all CRDs per round: `kubectl wait` watches each CRD in turn, about 0.2 s apiece.
    let args = [
        "get",
        "customresourcedefinitions",
        // A go-template, not jsonpath: a jsonpath filter fails on a CRD that has no status.conditions yet.
        r#"--output=go-template={{range .items}}{{.metadata.name}}={{range .status.conditions}}{{if eq .type "Established"}}{{.status}}{{end}}{{end}}{{"\n"}}{{end}}"#,
    ];
    let started = Instant::now();
    loop {
        let listed = kubectl.run(args)?;
        let established: Vec<&str> = listed
            .lines()
            .filter_map(|l| l.strip_suffix("=True"))
            .collect();
        let pending: Vec<&str> = names
            .iter()
            .copied()
            .filter(|n| !established.contains(n))
            .collect();
        if pending.is_empty() {
            return Ok(());
        }
        if started.elapsed() > timeout {
            return Err(WorldError::Service {
                service: "kube-apiserver".to_string(),
                message: format!(
                    "CRDs not Established within {} s: {}",
                    timeout.as_secs(),
                    pending.join(", ")
                ),
            });
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
