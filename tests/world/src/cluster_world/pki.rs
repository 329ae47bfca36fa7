//! Certificates of the world: the API server's (named by every address it is reached at), the admin's, the
//! kubelet's client certificate (user `system:node:<node>`, group `system:nodes`, as the Node authorizer wants),
//! the API server's client certificate towards the kubelet, and the service-account signing key.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use super::network::{API_SERVICE_IP, NODE_IP};
use crate::error::{Result, WorldError};
use crate::tls::{CertFiles, TestCa};

pub(super) struct Pki {
    ca: TestCa,
    pub apiserver: CertFiles,
    pub admin: CertFiles,
    pub kubelet: CertFiles,
    pub apiserver_kubelet_client: CertFiles,
    pub service_account_private: PathBuf,
    pub service_account_public: PathBuf,
}

impl Pki {
    pub fn create(node_name: &str, inner_ip: Ipv4Addr) -> Result<Pki> {
        let ca = TestCa::new()?;
        let inner = inner_ip.to_string();
        let node = NODE_IP.to_string();
        let service = API_SERVICE_IP.to_string();
        let apiserver = ca.server_cert(
            "kube-apiserver",
            &[
                &inner,
                &node,
                &service,
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
            ],
        )?;
        // Group system:masters is bound to cluster-admin by the bootstrap RBAC policy.
        let admin = ca.client_cert("admin", "pgrator-admin", &["system:masters"])?;
        let kubelet = ca.client_cert(
            "kubelet",
            &format!("system:node:{node_name}"),
            &["system:nodes"],
        )?;
        let apiserver_kubelet_client = ca.client_cert(
            "apiserver-kubelet-client",
            "kube-apiserver-kubelet-client",
            &["system:masters"],
        )?;
        let service_account_private = ca.dir().join("service-account-key.pem");
        let service_account_public = ca.dir().join("service-account.pub.pem");
        let key = rcgen::KeyPair::generate()?;
        for (path, pem) in [
            (&service_account_private, key.serialize_pem()),
            (&service_account_public, key.public_key_pem()),
        ] {
            std::fs::write(path, pem)
                .map_err(|e| WorldError::io(format!("writing {}", path.display()), e))?;
        }
        Ok(Pki {
            ca,
            apiserver,
            admin,
            kubelet,
            apiserver_kubelet_client,
            service_account_private,
            service_account_public,
        })
    }

    pub fn ca_path(&self) -> PathBuf {
        self.ca.ca_path()
    }

    pub fn ca_pem(&self) -> &str {
        self.ca.ca_pem()
    }
}
