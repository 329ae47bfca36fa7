//! The way to the database's primary through the Kubernetes API (the `pods/portforward` subresource), so a
//! developer needs no network path to the cluster, only kubectl access. The primary is looked up for every
//! connection, so a failover is followed. `postgres port-forward` is this alone (for clients that log in with
//! OAuth themselves, libpq 18); the authenticating proxy opens its server connections the same way.

use kube::api::{Api, DynamicObject};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;

use crate::CliError;
use pgrator_operator::desired::kinds;

/// PostgreSQL's port in the instance pods.
const POSTGRES_PORT: u16 = 5432;

/// A byte stream to a server, whatever carries it.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// The CNPG Cluster `name`, or a clear error.
pub async fn cluster(
    client: &kube::Client,
    namespace: &str,
    name: &str,
) -> Result<DynamicObject, CliError> {
    let clusters: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), namespace, &kinds::CLUSTER.api_resource());
    clusters
        .get_opt(name)
        .await
        .map_err(|e| CliError::Kubernetes(format!("reading the Cluster {namespace}/{name}: {e}")))?
        .ok_or_else(|| CliError::Kubernetes(format!("there is no database {name} in {namespace}")))
}

/// The pod CNPG reports as the primary of the Cluster `name`.
pub async fn primary(
    client: &kube::Client,
    namespace: &str,
    name: &str,
) -> Result<String, CliError> {
    cluster(client, namespace, name)
        .await?
        .data
        .pointer("/status/currentPrimary")
        .and_then(Value::as_str)
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| {
            CliError::Kubernetes(format!(
                "the database {namespace}/{name} has no primary yet (CNPG is still creating it)"
            ))
        })
}

/// Listens on 127.0.0.1:`port` (0: any free port) and forwards each connection to the primary. Calls `ready`
/// with the bound port, then serves until the process ends.
pub async fn serve(
    client: kube::Client,
    namespace: &str,
    name: &str,
    port: u16,
    ready: impl FnOnce(u16),
) -> Result<(), CliError> {
    // Fail early, before anyone connects, when there is nothing to forward to.
    primary(&client, namespace, name).await?;
    let listener = TcpListener::bind(("127.0.0.1", port))
        .await
        .map_err(|e| CliError::Usage(format!("listening on 127.0.0.1:{port}: {e}")))?;
    let bound = listener
        .local_addr()
        .map_err(|e| CliError::Usage(e.to_string()))?
        .port();
    ready(bound);
    loop {
        let (mut local, _) = listener
            .accept()
            .await
            .map_err(|e| CliError::Usage(format!("accepting a connection: {e}")))?;
        let (client, namespace, name) = (client.clone(), namespace.to_owned(), name.to_owned());
        tokio::spawn(async move {
            if let Err(e) = forward(&client, &namespace, &name, &mut local).await {
                eprintln!("pgrator: {e}");
            }
        });
    }
}

/// An open forward to the primary's PostgreSQL port: the stream, and the forward itself to join at the end.
pub struct Forward {
    pub pod: String,
    pub stream: Box<dyn Stream>,
    forwarder: kube::api::Portforwarder,
}

impl Forward {
    /// Opens a forward to the pod that is the primary now.
    pub async fn open(
        client: &kube::Client,
        namespace: &str,
        name: &str,
    ) -> Result<Forward, CliError> {
        let pod = primary(client, namespace, name).await?;
        let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(client.clone(), namespace);
        let mut forwarder = pods
            .portforward(&pod, &[POSTGRES_PORT])
            .await
            .map_err(|e| CliError::Kubernetes(format!("port-forward to {namespace}/{pod}: {e}")))?;
        let stream = forwarder
            .take_stream(POSTGRES_PORT)
            .ok_or_else(|| CliError::Kubernetes(format!("no stream to {pod}:{POSTGRES_PORT}")))?;
        Ok(Forward {
            pod,
            stream: Box::new(stream),
            forwarder,
        })
    }

    /// Waits for the forward's own end, once its stream is dropped: an error there (the pod gone, the kubelet's
    /// stream broken) is reported even when the copy only saw a hang-up.
    pub async fn finish(
        pod: &str,
        forwarder: kube::api::Portforwarder,
        copied: std::io::Result<()>,
    ) -> Result<(), CliError> {
        match (copied, forwarder.join().await) {
            (_, Err(e)) => Err(CliError::Kubernetes(format!(
                "port-forward to {pod} ended: {e}"
            ))),
            (Ok(()), Ok(())) => Ok(()),
            // One side hung up without a goodbye (libpq drops its first OAuth connection that way) and the forward
            // ended cleanly: the session is over, nothing failed.
            (Err(e), Ok(())) if is_hang_up(&e) => Ok(()),
            (Err(e), Ok(())) => Err(CliError::Kubernetes(format!("forwarding to {pod}: {e}"))),
        }
    }

    /// The stream and the forwarder apart (the stream to wrap, the forwarder for [`Forward::finish`]).
    pub fn split(self) -> (String, Box<dyn Stream>, kube::api::Portforwarder) {
        (self.pod, self.stream, self.forwarder)
    }
}

async fn forward(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    local: &mut tokio::net::TcpStream,
) -> Result<(), CliError> {
    let (pod, mut upstream, forwarder) = Forward::open(client, namespace, name).await?.split();
    let copied = tokio::io::copy_bidirectional(local, &mut upstream)
        .await
        .map(drop);
    drop(upstream);
    Forward::finish(&pod, forwarder, copied).await
}

/// A peer that went away without a goodbye: a reset, a broken pipe, or (under TLS) a close without close_notify,
/// which is how a PostgreSQL backend ends after the client's Terminate.
pub(crate) fn is_hang_up(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::BrokenPipe
            | std::io::ErrorKind::UnexpectedEof
    )
}

#[cfg(test)]
mod tests {
    use super::is_hang_up;
    use std::io::{Error, ErrorKind};

    #[test]
    fn a_peer_hanging_up_ends_a_session_and_other_errors_are_reported() {
        assert!(is_hang_up(&Error::from(ErrorKind::ConnectionReset)));
        assert!(is_hang_up(&Error::from(ErrorKind::BrokenPipe)));
        assert!(is_hang_up(&Error::from(ErrorKind::UnexpectedEof)));
        assert!(!is_hang_up(&Error::from(ErrorKind::TimedOut)));
        assert!(!is_hang_up(&Error::from(ErrorKind::PermissionDenied)));
    }
}
