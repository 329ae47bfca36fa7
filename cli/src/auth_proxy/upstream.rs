//! The proxy's server side: a connection to the primary (a port-forward through the Kubernetes API, or a plain
//! address for a database outside Kubernetes) with TLS verified against the cluster's own CA and its read-write
//! service's name, as libpq's `sslmode=verify-full` would.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::CliError;
use crate::forward::{Forward, Stream, cluster};
use crate::pgwire::SSL_REQUEST;

/// How server connections are reached.
pub enum Route {
    /// Through the Kubernetes API to the pod CNPG names as the primary of `namespace/name`.
    PortForward {
        client: kube::Client,
        namespace: String,
        name: String,
    },
    /// A TCP address (a database reached directly; the proxy's benchmark).
    Direct(String),
}

/// A server connection: TLS over the route, and the forward to join when it ends.
pub struct ServerConn {
    pub tls: TlsStream<Box<dyn Stream>>,
    pub forward: Option<(String, kube::api::Portforwarder)>,
}

pub struct Upstream {
    route: Route,
    connector: TlsConnector,
    server_name: ServerName<'static>,
}

impl Upstream {
    /// For a CNPG Cluster: its server CA (the `ca.crt` of the Secret its status names, `<name>-ca` by default) and
    /// the read-write service's name, which CNPG puts in every server certificate it makes.
    pub async fn for_cluster(
        client: kube::Client,
        namespace: &str,
        name: &str,
    ) -> Result<Upstream, CliError> {
        let cluster = cluster(&client, namespace, name).await?;
        let secret_name = cluster
            .data
            .pointer("/status/certificates/serverCASecret")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map_or_else(|| format!("{name}-ca"), str::to_owned);
        let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
        let secret = secrets.get(&secret_name).await.map_err(|e| {
            CliError::Kubernetes(format!(
                "reading the database's CA ({namespace}/{secret_name}): {e}"
            ))
        })?;
        let pem = secret
            .data
            .as_ref()
            .and_then(|d| d.get("ca.crt"))
            .map(|b| b.0.clone())
            .ok_or_else(|| {
                CliError::Kubernetes(format!("{namespace}/{secret_name} has no ca.crt"))
            })?;
        Upstream::new(
            Route::PortForward {
                client,
                namespace: namespace.to_owned(),
                name: name.to_owned(),
            },
            &pem,
            &format!("{name}-rw.{namespace}.svc"),
        )
    }

    /// A route, the CA certificates (PEM) that sign the server's certificate, and the name it must carry.
    pub fn new(route: Route, ca_pem: &[u8], server_name: &str) -> Result<Upstream, CliError> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(ca_pem) {
            let cert =
                cert.map_err(|e| CliError::Usage(format!("reading the database's CA: {e}")))?;
            roots
                .add(cert)
                .map_err(|e| CliError::Usage(format!("the database's CA is not usable: {e}")))?;
        }
        if roots.is_empty() {
            return Err(CliError::Usage(
                "the database's CA holds no certificate".into(),
            ));
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| CliError::Usage(format!("TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let server_name = ServerName::try_from(server_name.to_owned())
            .map_err(|e| CliError::Usage(format!("{server_name}: {e}")))?;
        Ok(Upstream {
            route,
            connector: TlsConnector::from(Arc::new(config)),
            server_name,
        })
    }

    /// Where connections go, for messages.
    pub fn describe(&self) -> String {
        match &self.route {
            Route::PortForward {
                namespace, name, ..
            } => format!("the primary of {namespace}/{name}"),
            Route::Direct(addr) => addr.clone(),
        }
    }

    /// A new TLS connection to the server (PostgreSQL's SSLRequest, then the handshake).
    pub async fn connect(&self) -> Result<ServerConn, CliError> {
        let (mut stream, forward): (Box<dyn Stream>, _) = match &self.route {
            Route::PortForward {
                client,
                namespace,
                name,
            } => {
                let (pod, stream, forwarder) =
                    Forward::open(client, namespace, name).await?.split();
                (stream, Some((pod, forwarder)))
            }
            Route::Direct(addr) => {
                let tcp = tokio::net::TcpStream::connect(addr)
                    .await
                    .map_err(|e| CliError::Unavailable(format!("connecting to {addr}: {e}")))?;
                let _ = tcp.set_nodelay(true);
                (Box::new(tcp), None)
            }
        };
        let mut request = 8u32.to_be_bytes().to_vec();
        request.extend_from_slice(&SSL_REQUEST.to_be_bytes());
        let io =
            |e: std::io::Error| CliError::Unavailable(format!("asking the server for TLS: {e}"));
        stream.write_all(&request).await.map_err(io)?;
        let mut answer = [0u8; 1];
        stream.read_exact(&mut answer).await.map_err(io)?;
        if answer[0] != b'S' {
            return Err(CliError::Unavailable(
                "the server does not offer TLS; the proxy never sends a token in clear".into(),
            ));
        }
        let tls = self
            .connector
            .connect(self.server_name.clone(), stream)
            .await
            .map_err(|e| {
                CliError::Unavailable(format!(
                    "TLS with {} ({}): {e}",
                    self.describe(),
                    server_name_text(&self.server_name)
                ))
            })?;
        Ok(ServerConn { tls, forward })
    }
}

fn server_name_text(name: &ServerName<'_>) -> String {
    match name {
        ServerName::DnsName(d) => d.as_ref().to_owned(),
        other => format!("{other:?}"),
    }
}
