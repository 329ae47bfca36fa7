//! Metrics of the database pods for Prometheus (CNPG's exporter on the `metrics` port).

use serde_json::json;

use super::{Child, Context, kinds};

pub fn pod_monitor(cx: &Context<'_>) -> Child {
    cx.object(
        kinds::POD_MONITOR,
        cx.names.pod_monitor(),
        json!({"spec": {
            "selector": {"matchLabels": {"cnpg.io/cluster": cx.names.cluster(), "cnpg.io/podRole": "instance"}},
            "podMetricsEndpoints": [{"port": "metrics", "interval": "30s"}],
        }}),
    )
}
