//! Where backups go: a Barman Cloud plugin `ObjectStore` on the database's own GCS bucket, reached with Workload
//! Identity (no keys). WAL compressed with zstd, base backups with snappy, kept for the configured retention.

use serde_json::json;

use super::{Child, Context, kinds};

pub fn object_store(cx: &Context<'_>) -> Child {
    let bucket = cx.names.bucket(&cx.config.backup.bucket_prefix, cx.uid());
    cx.object(
        kinds::OBJECT_STORE,
        cx.names.object_store(),
        json!({"spec": {
            "configuration": {
                "destinationPath": format!("gs://{bucket}/"),
                "googleCredentials": {"gkeEnvironment": true},
                "wal": {"compression": "zstd", "maxParallel": 4},
                "data": {"compression": "snappy", "jobs": 2},
            },
            "retentionPolicy": format!("{}d", cx.config.backup.retention_days),
        }}),
    )
}
