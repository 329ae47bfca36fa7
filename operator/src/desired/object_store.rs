//! Where backups go: a Barman Cloud plugin `ObjectStore` on the database's own GCS bucket, reached with Workload
//! Identity (no keys). WAL compressed with zstd, base backups with snappy, kept for the configured retention.

use serde_json::json;

use super::{Child, Context, kinds};

pub fn object_store(cx: &Context<'_>) -> Child {
    let bucket = cx.names.bucket(&cx.config.backup.bucket_prefix, cx.uid());
    let mut spec = json!({
        "configuration": {
            "destinationPath": format!("gs://{bucket}/"),
            "googleCredentials": {"gkeEnvironment": true},
            "wal": {"compression": "zstd", "maxParallel": 4},
            "data": {"compression": "snappy", "jobs": 2},
        },
        "retentionPolicy": format!("{}d", cx.config.backup.retention_days),
    });
    // The platform's sidecar environment (configuration `backup.sidecarEnv`), only when there is one.
    let env: Vec<_> = cx
        .config
        .backup
        .sidecar_env
        .iter()
        .map(|(name, value)| json!({"name": name, "value": value}))
        .collect();
    if !env.is_empty() {
        spec["instanceSidecarConfiguration"] = json!({"env": env});
    }
    cx.object(
        kinds::OBJECT_STORE,
        cx.names.object_store(),
        json!({ "spec": spec }),
    )
}

#[cfg(test)]
mod tests {
    use crate::desired::tests::{SMALL, postgres};
    use crate::desired::{desired, kinds};

    fn sidecar(config: &crate::config::OperatorConfig) -> serde_json::Value {
        let children = desired(&postgres(SMALL), config, &[]).expect("desired");
        let store = children
            .iter()
            .find(|c| c.kind == kinds::OBJECT_STORE)
            .expect("an ObjectStore");
        serde_json::to_value(&store.object).expect("JSON")["spec"]["instanceSidecarConfiguration"]
            .clone()
    }

    #[test]
    fn the_platforms_sidecar_environment_reaches_the_object_store_and_nothing_else_is_added() {
        let mut config = crate::config::tests::example();
        assert!(
            sidecar(&config).is_null(),
            "no sidecar settings without an environment"
        );
        config
            .backup
            .sidecar_env
            .insert("HTTPS_PROXY".into(), "http://proxy.internal:3128".into());
        assert_eq!(
            sidecar(&config),
            serde_json::json!({"env": [{"name": "HTTPS_PROXY", "value": "http://proxy.internal:3128"}]})
        );
    }
}
