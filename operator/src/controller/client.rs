//! The Kubernetes client of the operator: the usual one, with every request counted by verb (a metric, and how the
//! tests prove that a no-op reconcile writes nothing).

use http::Request;
use kube::client::{Body, ClientBuilder};

use super::metrics::SharedMetrics;

/// A client for `config` that counts its requests into `metrics`.
pub fn counted_client(
    config: kube::Config,
    metrics: SharedMetrics,
) -> Result<kube::Client, kube::Error> {
    let layer = tower::util::MapRequestLayer::new(move |request: Request<Body>| {
        metrics.count_request(request.method().as_str());
        request
    });
    Ok(ClientBuilder::try_from(config)?.with_layer(&layer).build())
}
