//! Prometheus metrics of the operator, served at `/metrics`.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ApplyLabels {
    pub kind: &'static str,
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabels {
    pub state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub verb: String,
}

/// Every metric, registered once.
pub struct Metrics {
    pub registry: Registry,
    pub reconcile_duration: Histogram,
    pub reconciles: Counter,
    pub reconcile_errors: Family<ErrorLabels, Counter>,
    pub applies: Family<ApplyLabels, Counter>,
    pub postgres_by_state: Family<StateLabels, Gauge>,
    pub api_requests: Family<RequestLabels, Counter>,
    pub cached_objects: Gauge,
    pub leader: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("pgrator");
        let reconcile_duration = Histogram::new(exponential_buckets(0.0005, 2.0, 16));
        let reconciles = Counter::default();
        let reconcile_errors = Family::<ErrorLabels, Counter>::default();
        let applies = Family::<ApplyLabels, Counter>::default();
        let postgres_by_state = Family::<StateLabels, Gauge>::default();
        let api_requests = Family::<RequestLabels, Counter>::default();
        let cached_objects = Gauge::default();
        let leader = Gauge::default();
        registry.register(
            "reconcile_duration_seconds",
            "Time a reconcile of one Postgres took",
            reconcile_duration.clone(),
        );
        registry.register("reconciles", "Reconciles run", reconciles.clone());
        registry.register(
            "reconcile_errors",
            "Reconciles that failed, by reason",
            reconcile_errors.clone(),
        );
        registry.register(
            "applies",
            "Objects applied (server-side apply), by kind and outcome",
            applies.clone(),
        );
        registry.register(
            "postgres",
            "Postgres objects by state (Ready, Progressing, Degraded)",
            postgres_by_state.clone(),
        );
        registry.register(
            "api_requests",
            "Requests made to the Kubernetes API server, by verb",
            api_requests.clone(),
        );
        registry.register(
            "cached_objects",
            "Objects in the watch cache of dependents",
            cached_objects.clone(),
        );
        registry.register(
            "leader",
            "1 while this replica holds the leader lease",
            leader.clone(),
        );
        Metrics {
            registry,
            reconcile_duration,
            reconciles,
            reconcile_errors,
            applies,
            postgres_by_state,
            api_requests,
            cached_objects,
            leader,
        }
    }
}

impl Metrics {
    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }

    pub fn count_request(&self, verb: &str) {
        self.api_requests
            .get_or_create(&RequestLabels {
                verb: verb.to_owned(),
            })
            .inc();
    }

    /// Requests that change something (creates, patches, deletes) so far.
    pub fn writes(&self) -> u64 {
        self.requests_of(&["POST", "PUT", "PATCH", "DELETE"])
    }

    /// Requests of every verb so far (watch requests count once, when they start).
    pub fn requests(&self) -> u64 {
        self.requests_of(&["GET", "POST", "PUT", "PATCH", "DELETE"])
    }

    fn requests_of(&self, verbs: &[&str]) -> u64 {
        verbs
            .iter()
            .map(|v| {
                self.api_requests
                    .get_or_create(&RequestLabels {
                        verb: (*v).to_owned(),
                    })
                    .get()
            })
            .sum()
    }
}

pub type SharedMetrics = Arc<Metrics>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_names_every_metric() {
        let m = Metrics::default();
        m.count_request("PATCH");
        m.count_request("GET");
        m.reconciles.inc();
        m.reconcile_duration.observe(0.002);
        m.applies
            .get_or_create(&ApplyLabels {
                kind: "Cluster",
                outcome: "Created",
            })
            .inc();
        let text = m.render();
        for name in [
            "pgrator_reconcile_duration_seconds_bucket",
            "pgrator_reconciles_total 1",
            "pgrator_applies_total{kind=\"Cluster\",outcome=\"Created\"} 1",
            "pgrator_api_requests_total{verb=\"PATCH\"} 1",
            "pgrator_leader 0",
        ] {
            assert!(text.contains(name), "{name} missing from:\n{text}");
        }
        assert_eq!((m.writes(), m.requests()), (1, 2));
    }
}
