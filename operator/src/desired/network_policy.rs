//! Who may reach the database pods and the pooler: the cluster's own pods (replication), the CNPG operator
//! (5432 and its instance manager on 8000), Prometheus (metrics), and the team's workloads that carry the access
//! label (`access.postgres.data.nais.io/<name>: "true"`), to PostgreSQL and to the pooler.

use serde_json::{Value, json};

use super::{Child, Context, kinds};

/// CNPG's instance manager status port, its metrics port, and PgBouncer's metrics port.
const INSTANCE_MANAGER: u16 = 8000;
const METRICS: u16 = 9187;
const POOLER_METRICS: u16 = 9127;

/// The label a team puts on a workload that may connect to the Postgres `name`.
pub fn access_label(name: &str) -> String {
    format!("access.postgres.data.nais.io/{name}")
}

pub fn network_policies(cx: &Context<'_>) -> Vec<Child> {
    let name = cx.names.cluster();
    let team_workloads = json!({"podSelector": {"matchLabels": {access_label(&name): "true"}}});
    let namespace = |ns: &str| json!({"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns}}});
    let database = cx.object(
        kinds::NETWORK_POLICY,
        cx.names.network_policy(),
        json!({"spec": {
            "podSelector": {"matchLabels": {"cnpg.io/cluster": name}},
            "policyTypes": ["Ingress"],
            "ingress": [
                {"from": [{"podSelector": {"matchLabels": {"cnpg.io/cluster": name}}}]},
                {"from": [{"podSelector": {"matchLabels": {"cnpg.io/poolerName": cx.names.pooler()}}}, team_workloads], "ports": tcp(&[5432])},
                {"from": [namespace(&cx.config.network.cnpg_namespace)], "ports": tcp(&[5432, INSTANCE_MANAGER])},
                {"from": [namespace(&cx.config.network.prometheus_namespace)], "ports": tcp(&[METRICS])},
            ],
        }}),
    );
    let pooler = cx.object(
        kinds::NETWORK_POLICY,
        cx.names.pooler_network_policy(),
        json!({"spec": {
            "podSelector": {"matchLabels": {"cnpg.io/poolerName": cx.names.pooler()}},
            "policyTypes": ["Ingress"],
            "ingress": [
                {"from": [team_workloads], "ports": tcp(&[5432])},
                {"from": [namespace(&cx.config.network.cnpg_namespace)], "ports": tcp(&[5432])},
                {"from": [namespace(&cx.config.network.prometheus_namespace)], "ports": tcp(&[POOLER_METRICS])},
            ],
        }}),
    );
    vec![database, pooler]
}

fn tcp(ports: &[u16]) -> Vec<Value> {
    ports
        .iter()
        .map(|p| json!({"protocol": "TCP", "port": p}))
        .collect()
}
