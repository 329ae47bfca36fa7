//! The status of a Postgres, computed (purely) from what a reconcile did and what CNPG reports.
//!
//! Conditions (plain names, each with a reason a program can match and a message a person can read):
//! - `Ready`: CNPG reports the cluster healthy with every instance ready.
//! - `Progressing`: we changed something this round, a change is staged, or the cluster is still coming up.
//! - `Degraded`: the last reconcile failed, the spec cannot be served, CNPG reports a failure, or the last backup
//!   is older than the configured limit.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use serde_json::Value;

use crate::api::{Postgres, PostgresStatus};
use crate::desired::rollout::Hold;

/// CNPG's phase for a cluster that is up and well.
pub const HEALTHY_PHASE: &str = "Cluster in healthy state";

/// What a reconcile found and did.
#[derive(Debug, Default)]
pub struct Observation {
    /// The live CNPG Cluster (with its status), if it exists.
    pub cluster: Option<Value>,
    /// The live barman ObjectStore, for backup freshness.
    pub object_store: Option<Value>,
    /// Objects created or updated this round: (kind, name).
    pub changed: Vec<(String, String)>,
    pub hold: Option<Hold>,
    /// Reason and message of a failure this round.
    pub error: Option<(&'static str, String)>,
}

/// The health CNPG reports for a Cluster.
pub fn cluster_healthy(cluster: &Value) -> bool {
    let wanted = cluster.pointer("/spec/instances").and_then(Value::as_i64);
    let ready = cluster
        .pointer("/status/readyInstances")
        .and_then(Value::as_i64);
    cluster.pointer("/status/phase").and_then(Value::as_str) == Some(HEALTHY_PHASE)
        && wanted.is_some()
        && ready >= wanted
}

pub fn compute(
    postgres: &Postgres,
    observed: &Observation,
    backup_max_age_hours: u32,
    now: Timestamp,
) -> PostgresStatus {
    let previous = postgres.status.clone().unwrap_or_default();
    let cluster = observed.cluster.as_ref();
    let str_at = |v: Option<&Value>, p: &str| {
        v.and_then(|v| v.pointer(p))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let phase = str_at(cluster, "/status/phase");
    let healthy = cluster.is_some_and(cluster_healthy);
    let last_backup = last_backup(cluster, observed.object_store.as_ref());
    let backup_stale = last_backup.as_deref().is_some_and(|t| {
        t.parse::<Timestamp>()
            .is_ok_and(|t| now.duration_since(t).as_secs() > i64::from(backup_max_age_hours) * 3600)
    });

    let ready = if healthy {
        (
            "True",
            "ClusterHealthy",
            "every instance is ready".to_owned(),
        )
    } else if cluster.is_none() {
        (
            "False",
            "ClusterMissing",
            "the CNPG Cluster has not been created yet".to_owned(),
        )
    } else {
        (
            "False",
            "ClusterNotReady",
            format!(
                "CNPG reports: {}",
                phase.clone().unwrap_or_else(|| "no status yet".into())
            ),
        )
    };

    // While CNPG works on the cluster the condition stays the same whether or not we applied something this
    // round (the events say what was applied), so a new database costs one status write, not two.
    let progressing = if let Some(hold) = &observed.hold {
        ("True", hold.reason, hold.message.clone())
    } else if !healthy && observed.error.is_none() {
        (
            "True",
            "WaitingForCluster",
            "waiting for CNPG to bring the cluster up".to_owned(),
        )
    } else if !observed.changed.is_empty() {
        let names: Vec<String> = observed
            .changed
            .iter()
            .map(|(kind, name)| format!("{kind}/{name}"))
            .collect();
        ("True", "Applied", format!("applied {}", names.join(", ")))
    } else {
        (
            "False",
            "Converged",
            "everything is as specified".to_owned(),
        )
    };

    let cnpg_failing = phase
        .as_deref()
        .is_some_and(|p| p.to_ascii_lowercase().contains("fail"));
    let degraded = if let Some((reason, message)) = &observed.error {
        ("True", *reason, message.clone())
    } else if cnpg_failing {
        (
            "True",
            "ClusterFailing",
            format!("CNPG reports: {}", phase.clone().unwrap_or_default()),
        )
    } else if backup_stale {
        (
            "True",
            "BackupStale",
            format!(
                "the last successful backup ({}) is older than {backup_max_age_hours} hours",
                last_backup.clone().unwrap_or_default()
            ),
        )
    } else {
        ("False", "AsExpected", "no problem found".to_owned())
    };

    let generation = postgres.metadata.generation;
    let conditions = [
        ("Ready", ready),
        ("Progressing", progressing),
        ("Degraded", degraded),
    ]
    .into_iter()
    .map(|(kind, (status, reason, message))| {
        condition(
            &previous.conditions,
            kind,
            status,
            reason,
            message,
            generation,
            now,
        )
    })
    .collect();

    let wanted = cluster
        .and_then(|c| c.pointer("/spec/instances"))
        .and_then(Value::as_i64);
    let ready_instances = cluster
        .and_then(|c| c.pointer("/status/readyInstances"))
        .and_then(Value::as_i64)
        .unwrap_or(0);
    PostgresStatus {
        observed_generation: generation,
        phase: Some(
            if observed.error.is_some() || cnpg_failing {
                "Degraded"
            } else if healthy && observed.hold.is_none() && observed.changed.is_empty() {
                "Ready"
            } else {
                "Progressing"
            }
            .to_owned(),
        ),
        conditions,
        instances: wanted.map(|w| format!("{ready_instances}/{w}")),
        primary: str_at(cluster, "/status/currentPrimary"),
        last_backup,
    }
}

/// The newest successful backup CNPG or the Barman Cloud plugin reports.
fn last_backup(cluster: Option<&Value>, object_store: Option<&Value>) -> Option<String> {
    let from_cluster = cluster
        .and_then(|c| c.pointer("/status/lastSuccessfulBackup"))
        .and_then(Value::as_str);
    let from_store = object_store
        .and_then(|s| s.pointer("/status/serverRecoveryWindow"))
        .and_then(Value::as_object)
        .and_then(|servers| {
            servers
                .values()
                .filter_map(|w| w.get("lastSuccessfulBackupTime").and_then(Value::as_str))
                .max()
        });
    [from_cluster, from_store]
        .into_iter()
        .flatten()
        .filter_map(|t| t.parse::<Timestamp>().ok())
        .max()
        .map(|t| t.to_string())
}

/// A condition that keeps its lastTransitionTime while its status does not change.
fn condition(
    previous: &[Condition],
    kind: &str,
    status: &str,
    reason: &str,
    message: String,
    generation: Option<i64>,
    now: Timestamp,
) -> Condition {
    let since = previous
        .iter()
        .find(|c| c.type_ == kind && c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or(Time(now));
    Condition {
        type_: kind.to_owned(),
        status: status.to_owned(),
        reason: reason.to_owned(),
        message,
        observed_generation: generation,
        last_transition_time: since,
    }
}

/// True when two statuses say the same (ignoring nothing: times are kept stable by `condition`).
pub fn unchanged(previous: Option<&PostgresStatus>, next: &PostgresStatus) -> bool {
    previous == Some(next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pg() -> Postgres {
        let mut pg = crate::desired::tests::postgres(crate::desired::tests::SMALL);
        pg.metadata.generation = Some(3);
        pg
    }

    fn now() -> Timestamp {
        "2026-11-24T12:00:00Z".parse().expect("time")
    }

    fn cluster(phase: &str, ready: i64) -> Value {
        json!({"spec": {"instances": 2}, "status": {"phase": phase, "readyInstances": ready, "currentPrimary": "orders-1"}})
    }

    fn cond<'a>(s: &'a PostgresStatus, kind: &str) -> &'a Condition {
        s.conditions
            .iter()
            .find(|c| c.type_ == kind)
            .expect("condition")
    }

    #[test]
    fn a_healthy_converged_cluster_is_ready() {
        let observed = Observation {
            cluster: Some(cluster(HEALTHY_PHASE, 2)),
            ..Default::default()
        };
        let s = compute(&pg(), &observed, 26, now());
        assert_eq!(s.phase.as_deref(), Some("Ready"));
        assert_eq!(cond(&s, "Ready").status, "True");
        assert_eq!(cond(&s, "Progressing").reason, "Converged");
        assert_eq!(cond(&s, "Degraded").status, "False");
        assert_eq!(s.instances.as_deref(), Some("2/2"));
        assert_eq!(s.primary.as_deref(), Some("orders-1"));
        assert_eq!(s.observed_generation, Some(3));
    }

    #[test]
    fn a_new_database_is_progressing_until_cnpg_is_done() {
        let observed = Observation {
            changed: vec![("Cluster".into(), "orders".into())],
            ..Default::default()
        };
        let s = compute(&pg(), &observed, 26, now());
        assert_eq!(s.phase.as_deref(), Some("Progressing"));
        assert_eq!(cond(&s, "Ready").reason, "ClusterMissing");
        assert_eq!(cond(&s, "Progressing").reason, "WaitingForCluster");
        let healthy_update = Observation {
            cluster: Some(cluster(HEALTHY_PHASE, 2)),
            changed: vec![("Cluster".into(), "orders".into())],
            ..Default::default()
        };
        let s = compute(&pg(), &healthy_update, 26, now());
        assert_eq!(cond(&s, "Progressing").message, "applied Cluster/orders");
    }

    #[test]
    fn failures_and_stale_backups_degrade() {
        let failed = Observation {
            error: Some(("ApplyFailed", "Cluster/orders: forbidden".into())),
            ..Default::default()
        };
        let s = compute(&pg(), &failed, 26, now());
        assert_eq!(s.phase.as_deref(), Some("Degraded"));
        assert_eq!(cond(&s, "Degraded").reason, "ApplyFailed");

        let mut old = cluster(HEALTHY_PHASE, 2);
        old["status"]["lastSuccessfulBackup"] = json!("2026-11-22T12:00:00Z");
        let s = compute(
            &pg(),
            &Observation {
                cluster: Some(old),
                ..Default::default()
            },
            26,
            now(),
        );
        assert_eq!(cond(&s, "Degraded").reason, "BackupStale");
        assert_eq!(s.last_backup.as_deref(), Some("2026-11-22T12:00:00Z"));
    }

    #[test]
    fn transition_times_hold_while_nothing_changes() {
        let mut pg = pg();
        let observed = Observation {
            cluster: Some(cluster(HEALTHY_PHASE, 2)),
            ..Default::default()
        };
        let first = compute(&pg, &observed, 26, now());
        pg.status = Some(first.clone());
        let later: Timestamp = "2026-11-24T13:00:00Z".parse().expect("time");
        let second = compute(&pg, &observed, 26, later);
        assert!(unchanged(Some(&first), &second));
    }
}
