//! CloudNativePG's Barman Cloud plugin, installed as its release manifest installs it (its CRD, RBAC, the plugin's
//! Deployment and the Service CNPG finds it by), with three changes a world without cert-manager and without
//! registries needs: the plugin's and its sidecar's images are the world's own (built from the `barman` part and
//! loaded into the node), and the two TLS secrets cert-manager would issue (self-signed, as the manifest's
//! Issuer would make them) are made here.

use std::path::Path;
use std::time::Duration;

use base64::Engine;
use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, KeyPair};
use serde_json::{Value, json};

use super::cnpg::NAMESPACE;
use crate::error::{Result, WorldError};
use crate::kube::Kubectl;

/// The released manifest's image names, and the Secret that carries the sidecar's.
const RELEASED_PLUGIN_IMAGE: &str = "ghcr.io/cloudnative-pg/plugin-barman-cloud-testing:main";
const SERVER_SECRET: &str = "barman-cloud-server-tls";
const CLIENT_SECRET: &str = "barman-cloud-client-tls";

pub fn plugin_image(version: &str) -> String {
    format!("pgrator.test/plugin-barman-cloud:{version}")
}

pub fn sidecar_image(version: &str) -> String {
    format!("pgrator.test/plugin-barman-cloud-sidecar:{version}")
}

pub(super) fn install(
    kubectl: &Kubectl,
    barman_dir: &Path,
    version: &str,
    work: &Path,
    timeout: Duration,
) -> Result<()> {
    let manifest = barman_dir.join("manifest.yaml");
    let text = std::fs::read_to_string(&manifest)
        .map_err(|e| WorldError::io(format!("reading {}", manifest.display()), e))?;
    let mut items = Vec::new();
    let mut saw_sidecar_secret = false;
    for doc in serde_yaml::Deserializer::from_str(&text) {
        let mut value: Value =
            serde::Deserialize::deserialize(doc).map_err(|e| bad(&manifest, &e.to_string()))?;
        if value.is_null() {
            continue;
        }
        match value["kind"].as_str() {
            // cert-manager's objects: the world makes their secrets itself.
            Some("Certificate" | "Issuer") => continue,
            Some("Deployment") => {
                for container in value["spec"]["template"]["spec"]["containers"]
                    .as_array_mut()
                    .into_iter()
                    .flatten()
                {
                    if container["image"] == RELEASED_PLUGIN_IMAGE {
                        container["image"] = json!(plugin_image(version));
                        container["imagePullPolicy"] = json!("IfNotPresent");
                    }
                }
            }
            Some("Secret") if value["data"].get("SIDECAR_IMAGE").is_some() => {
                value["data"]["SIDECAR_IMAGE"] =
                    json!(base64::engine::general_purpose::STANDARD.encode(sidecar_image(version)));
                saw_sidecar_secret = true;
            }
            _ => {}
        }
        items.push(value);
    }
    if !saw_sidecar_secret {
        return Err(bad(&manifest, "no Secret carries SIDECAR_IMAGE"));
    }
    for (name, common_name, server) in [
        (SERVER_SECRET, "barman-cloud", true),
        (CLIENT_SECRET, "barman-cloud-client", false),
    ] {
        items.push(self_signed_secret(name, common_name, server)?);
    }
    let list = work.join("barman-cloud.json");
    std::fs::write(
        &list,
        json!({"apiVersion": "v1", "kind": "List", "items": items}).to_string(),
    )
    .map_err(|e| WorldError::io("writing the plugin's manifest", e))?;
    kubectl.run([
        "apply".as_ref(),
        "--server-side".as_ref(),
        "--field-manager=pgrator-world".as_ref(),
        "--filename".as_ref(),
        list.as_os_str(),
    ])?;
    kubectl.run([
        "-n",
        NAMESPACE,
        "rollout",
        "status",
        "deployment/barman-cloud",
        &format!("--timeout={}s", timeout.as_secs()),
    ])?;
    Ok(())
}

/// A TLS Secret as cert-manager's self-signed Issuer would make it: the certificate is its own CA.
fn self_signed_secret(name: &str, common_name: &str, server: bool) -> Result<Value> {
    let names = if server {
        vec![common_name.to_string()]
    } else {
        Vec::new()
    };
    let mut params = CertificateParams::new(names)?;
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.extended_key_usages = vec![if server {
        ExtendedKeyUsagePurpose::ServerAuth
    } else {
        ExtendedKeyUsagePurpose::ClientAuth
    }];
    let key = KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    Ok(json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/tls",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "data": {"tls.crt": b64(&cert.pem()), "tls.key": b64(&key.serialize_pem()), "ca.crt": b64(&cert.pem())}
    }))
}

fn bad(manifest: &Path, why: &str) -> WorldError {
    WorldError::Service {
        service: "barman-cloud plugin".into(),
        message: format!("{}: {why}", manifest.display()),
    }
}
