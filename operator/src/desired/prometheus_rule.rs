//! Alerts for one database (thresholds from the operator's configuration). Each names the database, says how bad
//! it is, and tells the reader what to look at. Metrics: CNPG's exporter (`cnpg_*`), kubelet volume statistics,
//! cAdvisor and kube-state-metrics.

use serde_json::{Value, json};

use super::{Child, Context, kinds};

pub fn prometheus_rule(cx: &Context<'_>) -> Child {
    let ns = &cx.names.namespace;
    let name = cx.names.cluster();
    let a = &cx.config.alerts;
    let instances = if cx.postgres.spec.cluster.high_availability {
        3
    } else {
        2
    };
    // The instance pods and their volumes are `<name>-<n>`.
    let pods = format!(r#"namespace="{ns}", pod=~"{name}-[0-9]+""#);
    let pvcs = format!(r#"namespace="{ns}", persistentvolumeclaim=~"{name}-[0-9]+""#);
    let who = format!("{ns}/{name}");
    let rules = vec![
        alert(
            "PostgresDown",
            format!(r#"count(cnpg_collector_up{{{pods}}} == 1) == 0 or absent(cnpg_collector_up{{{pods}}})"#),
            "5m",
            "critical",
            format!("Postgres {who} is down"),
            "No instance reports itself up. Check `kubectl get cluster` and the instance pods' logs.".into(),
        ),
        alert(
            "PostgresInstanceMissing",
            format!(r#"count(cnpg_collector_up{{{pods}}} == 1) < {instances}"#),
            "10m",
            "warning",
            format!("Postgres {who} runs fewer than {instances} instances"),
            "An instance is not up: the database has less redundancy than it should. Check the pods and their nodes.".into(),
        ),
        alert(
            "PostgresMemoryHigh",
            format!(
                r#"max(container_memory_working_set_bytes{{{pods}, container="postgres"}} / on(namespace, pod) group_left kube_pod_container_resource_limits{{{pods}, container="postgres", resource="memory"}}) * 100 > {}"#,
                a.memory_percent
            ),
            "15m",
            "warning",
            format!("Postgres {who} uses over {} % of its memory limit", a.memory_percent),
            "The instance may be killed for memory. Look for heavy queries or raise spec.cluster.resources.memory.".into(),
        ),
        alert(
            "PostgresCpuHigh",
            format!(
                r#"max(rate(container_cpu_usage_seconds_total{{{pods}, container="postgres"}}[5m]) / on(namespace, pod) group_left kube_pod_container_resource_requests{{{pods}, container="postgres", resource="cpu"}}) * 100 > {}"#,
                a.cpu_percent
            ),
            "30m",
            "warning",
            format!("Postgres {who} uses over {} % of its CPU request", a.cpu_percent),
            "Queries are waiting for CPU. Look at pg_stat_statements or raise spec.cluster.resources.cpu.".into(),
        ),
        disk_alert("PostgresDiskFilling", &pvcs, a.disk_warning_percent, "warning", &who),
        disk_alert("PostgresDiskFull", &pvcs, a.disk_critical_percent, "critical", &who),
        alert(
            "PostgresReplicationLag",
            format!(r#"max(cnpg_pg_replication_lag{{{pods}}}) > {}"#, a.replication_lag_seconds),
            "10m",
            "warning",
            format!("A replica of Postgres {who} lags over {} s", a.replication_lag_seconds),
            "A failover now would lose or wait for data. Check the replica's load and network.".into(),
        ),
        alert(
            "PostgresWalArchivingFailing",
            format!(r#"max(cnpg_pg_stat_archiver_last_failed_time{{{pods}}} - cnpg_pg_stat_archiver_last_archived_time{{{pods}}}) > 0"#),
            "15m",
            "critical",
            format!("Postgres {who} cannot archive WAL"),
            "Point-in-time recovery is at risk and the disk fills with WAL. Check the Barman Cloud plugin's logs and the bucket's permissions.".into(),
        ),
        alert(
            "PostgresBackupStale",
            format!(
                r#"time() - max(cnpg_collector_last_available_backup_timestamp{{{pods}}}) > {}"#,
                u64::from(a.backup_max_age_hours) * 3600
            ),
            "30m",
            "warning",
            format!("Postgres {who} has no backup from the last {} hours", a.backup_max_age_hours),
            "The daily ScheduledBackup did not succeed. Check `kubectl get backups` in the namespace.".into(),
        ),
        alert(
            "PostgresConnectionsSaturated",
            format!(
                r#"max(sum by (pod) (cnpg_backends_total{{{pods}}}) / on(pod) max by (pod) (cnpg_pg_settings_setting{{{pods}, name="max_connections"}})) * 100 > {}"#,
                a.connection_saturation_percent
            ),
            "10m",
            "warning",
            format!("Postgres {who} uses over {} % of its connections", a.connection_saturation_percent),
            "New connections will soon be refused. Connect through the pooler or find the leaking client.".into(),
        ),
    ];
    cx.object(
        kinds::PROMETHEUS_RULE,
        cx.names.prometheus_rule(),
        json!({"spec": {"groups": [{"name": format!("postgres-{name}"), "rules": rules}]}}),
    )
}

fn disk_alert(alert_name: &str, pvcs: &str, percent: u8, severity: &str, who: &str) -> Value {
    alert(
        alert_name,
        format!(
            r#"max(kubelet_volume_stats_used_bytes{{{pvcs}}} / kubelet_volume_stats_capacity_bytes{{{pvcs}}}) * 100 > {percent}"#
        ),
        "5m",
        severity,
        format!("The disk of Postgres {who} is over {percent} % full"),
        "Raise spec.cluster.resources.diskSize (volumes grow online) or remove data.".into(),
    )
}

fn alert(
    name: &str,
    expr: String,
    for_: &str,
    severity: &str,
    summary: String,
    description: String,
) -> Value {
    json!({
        "alert": name,
        "expr": expr,
        "for": for_,
        "labels": {"severity": severity},
        "annotations": {"summary": summary, "description": description},
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::tests::{SMALL, postgres};

    #[test]
    fn every_alert_the_platform_promises_uses_the_configured_thresholds() {
        let mut config = crate::config::tests::example();
        config.alerts.disk_warning_percent = 85;
        let pg = postgres(SMALL);
        let cx = Context::new(&pg, &config).expect("context");
        let rule = prometheus_rule(&cx);
        let rules = rule.object.data["spec"]["groups"][0]["rules"]
            .as_array()
            .expect("rules")
            .clone();
        let names: Vec<&str> = rules.iter().filter_map(|r| r["alert"].as_str()).collect();
        for wanted in [
            "PostgresDown",
            "PostgresInstanceMissing",
            "PostgresMemoryHigh",
            "PostgresCpuHigh",
            "PostgresDiskFilling",
            "PostgresDiskFull",
            "PostgresReplicationLag",
            "PostgresWalArchivingFailing",
            "PostgresBackupStale",
            "PostgresConnectionsSaturated",
        ] {
            assert!(names.contains(&wanted), "{wanted} missing from {names:?}");
        }
        let filling = rules
            .iter()
            .find(|r| r["alert"] == "PostgresDiskFilling")
            .expect("disk alert");
        assert!(
            filling["expr"]
                .as_str()
                .unwrap_or_default()
                .ends_with("> 85")
        );
        assert!(
            filling["expr"]
                .as_str()
                .unwrap_or_default()
                .contains(r#"persistentvolumeclaim=~"orders-[0-9]+""#)
        );
    }
}
