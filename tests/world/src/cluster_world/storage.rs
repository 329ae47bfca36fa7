//! Volumes for the world's pods: a default StorageClass and a small provisioner that answers its claims with
//! host-path PersistentVolumes in the world's directory, and deletes a volume (and its data) once its claim is
//! gone. The test world's stand-in for a CSI driver: CNPG only needs claims that bind and keep their data across
//! pod restarts, which these do; the node is a single one, so a host path is where the data would be anyway.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use serde_json::json;

use crate::error::{Result, WorldError};

pub const STORAGE_CLASS: &str = "world-local";
const PROVISIONER: &str = "pgrator.test/host-path";

/// The running provisioner; stops on drop.
pub(super) struct Provisioner {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Provisioner {
    pub fn start(kubeconfig: PathBuf, volumes: PathBuf) -> Result<Provisioner> {
        std::fs::create_dir_all(&volumes)
            .map_err(|e| WorldError::io(format!("creating {}", volumes.display()), e))?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<std::result::Result<(), String>>();
        let thread = std::thread::Builder::new()
            .name("world-provisioner".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(r) => r,
                    Err(e) => {
                        let _ = ready_tx.send(Err(format!("no runtime: {e}")));
                        return;
                    }
                };
                runtime.block_on(async move {
                    let client = match client(&kubeconfig).await {
                        Ok(c) => c,
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                            return;
                        }
                    };
                    if let Err(e) = install_class(&client).await {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                    let _ = ready_tx.send(Ok(()));
                    while !stopping.load(Ordering::Relaxed) {
                        if let Err(e) = provision_round(&client, &volumes).await {
                            eprintln!("pgrator-world: provisioner: {e}");
                        }
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                });
            })
            .map_err(|e| WorldError::io("starting the provisioner thread", e))?;
        let ready = ready_rx
            .recv_timeout(Duration::from_secs(30))
            .map_err(|_| "the provisioner did not start within 30 s".to_string())
            .and_then(|r| r);
        let provisioner = Provisioner {
            stop,
            thread: Some(thread),
        };
        ready.map_err(|message| WorldError::Service {
            service: "world provisioner".into(),
            message,
        })?;
        Ok(provisioner)
    }
}

impl Drop for Provisioner {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn client(kubeconfig: &Path) -> std::result::Result<kube::Client, String> {
    let config = kube::config::Kubeconfig::read_from(kubeconfig).map_err(|e| e.to_string())?;
    let config =
        kube::Config::from_custom_kubeconfig(config, &kube::config::KubeConfigOptions::default())
            .await
            .map_err(|e| e.to_string())?;
    kube::Client::try_from(config).map_err(|e| e.to_string())
}

async fn install_class(client: &kube::Client) -> std::result::Result<(), String> {
    let class: StorageClass = serde_json::from_value(json!({
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {
            "name": STORAGE_CLASS,
            "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}
        },
        "provisioner": PROVISIONER,
        "reclaimPolicy": "Delete",
        "volumeBindingMode": "Immediate",
        "allowVolumeExpansion": true
    }))
    .map_err(|e| e.to_string())?;
    let api: Api<StorageClass> = Api::all(client.clone());
    match api.create(&PostParams::default(), &class).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
        Err(e) => Err(format!("creating the StorageClass: {e}")),
    }
}

/// One pass: a volume for every pending claim of our class, and away with every released volume of ours.
async fn provision_round(client: &kube::Client, volumes: &Path) -> std::result::Result<(), String> {
    let claims: Api<PersistentVolumeClaim> = Api::all(client.clone());
    let pvs: Api<PersistentVolume> = Api::all(client.clone());
    for claim in claims
        .list(&ListParams::default())
        .await
        .map_err(|e| e.to_string())?
    {
        let spec = claim.spec.clone().unwrap_or_default();
        let pending = claim.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Pending");
        if !pending
            || spec.storage_class_name.as_deref() != Some(STORAGE_CLASS)
            || spec.volume_name.is_some()
        {
            continue;
        }
        let (Some(ns), Some(name), Some(uid)) = (
            claim.metadata.namespace.clone(),
            claim.metadata.name.clone(),
            claim.metadata.uid.clone(),
        ) else {
            continue;
        };
        let pv_name = format!("pv-{uid}");
        if pvs
            .get_opt(&pv_name)
            .await
            .map_err(|e| e.to_string())?
            .is_some()
        {
            continue;
        }
        let dir = volumes.join(&pv_name);
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        // Any pod user may write (CNPG runs PostgreSQL as uid 26; a host path takes no fsGroup).
        std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o777))
            .map_err(|e| e.to_string())?;
        let size = spec
            .resources
            .and_then(|r| r.requests)
            .and_then(|r| r.get("storage").cloned())
            .map_or_else(|| "1Gi".to_string(), |q| q.0);
        let pv: PersistentVolume = serde_json::from_value(json!({
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {
                "name": pv_name,
                "annotations": {"pv.kubernetes.io/provisioned-by": PROVISIONER}
            },
            "spec": {
                "capacity": {"storage": size},
                "accessModes": spec.access_modes.unwrap_or_else(|| vec!["ReadWriteOnce".into()]),
                "persistentVolumeReclaimPolicy": "Delete",
                "storageClassName": STORAGE_CLASS,
                "hostPath": {"path": dir, "type": "Directory"},
                "claimRef": {"namespace": ns, "name": name, "uid": uid}
            }
        }))
        .map_err(|e| e.to_string())?;
        match pvs.create(&PostParams::default(), &pv).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => return Err(format!("creating {pv_name}: {e}")),
        }
    }
    for pv in pvs
        .list(&ListParams::default())
        .await
        .map_err(|e| e.to_string())?
    {
        let ours = pv
            .spec
            .as_ref()
            .and_then(|s| s.storage_class_name.as_deref())
            == Some(STORAGE_CLASS);
        let released = matches!(
            pv.status.as_ref().and_then(|s| s.phase.as_deref()),
            Some("Released" | "Failed")
        );
        if let (true, true, Some(name)) = (ours, released, pv.metadata.name.clone()) {
            let _ = pvs.delete(&name, &DeleteParams::default()).await;
            let _ = std::fs::remove_dir_all(volumes.join(&name));
        }
    }
    Ok(())
}
