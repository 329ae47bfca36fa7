//! `postgres proxy`: a local port forwarded to the database's primary through the Kubernetes API (the
//! `pods/portforward` subresource), so a developer needs no network path to the cluster, only kubectl access. The
//! primary is looked up for every connection, so a failover is followed.

use kube::api::{Api, DynamicObject};
use serde_json::Value;
use tokio::net::TcpListener;

use crate::CliError;
use pgrator_operator::desired::kinds;

/// PostgreSQL's port in the instance pods.
const POSTGRES_PORT: u16 = 5432;

/// The pod CNPG reports as the primary of the Cluster `name`.
pub async fn primary(
    client: &kube::Client,
    namespace: &str,
    name: &str,
) -> Result<String, CliError> {
    let clusters: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), namespace, &kinds::CLUSTER.api_resource());
    let cluster = clusters
        .get_opt(name)
        .await
        .map_err(|e| CliError::Kubernetes(format!("reading the Cluster {namespace}/{name}: {e}")))?
        .ok_or_else(|| {
            CliError::Kubernetes(format!("there is no database {name} in {namespace}"))
        })?;
    cluster
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

async fn forward(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    local: &mut tokio::net::TcpStream,
) -> Result<(), CliError> {
    let pod = primary(client, namespace, name).await?;
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(client.clone(), namespace);
    let mut forwarder = pods
        .portforward(&pod, &[POSTGRES_PORT])
        .await
        .map_err(|e| CliError::Kubernetes(format!("port-forward to {namespace}/{pod}: {e}")))?;
    let mut upstream = forwarder
        .take_stream(POSTGRES_PORT)
        .ok_or_else(|| CliError::Kubernetes(format!("no stream to {pod}:{POSTGRES_PORT}")))?;
    let copied = tokio::io::copy_bidirectional(local, &mut upstream).await;
    drop(upstream);
    // The forward's own end: an error here (the pod gone, the kubelet's stream broken) is reported even when the
    // copy above only saw a hang-up.
    let joined = forwarder.join().await;
    match (copied, joined) {
        (_, Err(e)) => Err(CliError::Kubernetes(format!(
            "port-forward to {pod} ended: {e}"
        ))),
        (Ok(_), Ok(())) => Ok(()),
        // One side hung up without a goodbye (libpq drops its first OAuth connection that way) and the forward
        // ended cleanly: the session is over, nothing failed.
        (Err(e), Ok(())) if is_hang_up(&e) => Ok(()),
        (Err(e), Ok(())) => Err(CliError::Kubernetes(format!("forwarding to {pod}: {e}"))),
    }
}

fn is_hang_up(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
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
        assert!(!is_hang_up(&Error::from(ErrorKind::TimedOut)));
        assert!(!is_hang_up(&Error::from(ErrorKind::PermissionDenied)));
    }
}
