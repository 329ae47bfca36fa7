//! The Google Cloud side of backups, as Config Connector objects in the team namespace: a bucket of the database's
//! own (uniform access, no public access, old objects deleted after the retention plus a week), a Google service
//! account, Workload Identity letting the cluster's Kubernetes service account act as it, and write access to the
//! bucket. Without allowDeletion the bucket is abandoned (kept in GCP) when its object is deleted.

use std::collections::BTreeMap;

use serde_json::json;

use super::{Child, Context, kinds};

const PROJECT_ANNOTATION: &str = "cnrm.cloud.google.com/project-id";
const DELETION_POLICY: &str = "cnrm.cloud.google.com/deletion-policy";

/// The Google service account backups run as (Workload Identity).
pub fn service_account_email(cx: &Context<'_>) -> String {
    format!(
        "{}@{}.iam.gserviceaccount.com",
        cx.names.gcp_service_account(cx.uid()),
        cx.config.gcp.project
    )
}

pub fn objects(cx: &Context<'_>) -> Vec<Child> {
    let project = &cx.config.gcp.project;
    let annotations = |abandon: bool| {
        let mut a = BTreeMap::from([(PROJECT_ANNOTATION.to_owned(), project.clone())]);
        if abandon {
            a.insert(DELETION_POLICY.to_owned(), "abandon".to_owned());
        }
        a
    };
    let keep = !cx.postgres.spec.cluster.allow_deletion;
    let gsa = cx.names.gcp_service_account(cx.uid());
    let bucket = cx.names.bucket(&cx.config.backup.bucket_prefix, cx.uid());
    let service_account = cx.object_with_annotations(
        kinds::IAM_SERVICE_ACCOUNT,
        gsa.clone(),
        json!({"spec": {
            "resourceID": gsa,
            "displayName": format!("Backups of {}/{}", cx.names.namespace, cx.names.postgres),
        }}),
        annotations(false),
    );
    let storage = cx.object_with_annotations(
        kinds::STORAGE_BUCKET,
        bucket.clone(),
        json!({"spec": {
            "resourceID": bucket,
            "location": cx.config.backup.location,
            "uniformBucketLevelAccess": true,
            "publicAccessPrevention": "enforced",
            "versioning": {"enabled": false},
            "lifecycleRule": [{
                "action": {"type": "Delete"},
                "condition": {"age": cx.config.backup.retention_days + 7},
            }],
        }}),
        annotations(keep),
    );
    let workload_identity = cx.object_with_annotations(
        kinds::IAM_POLICY_MEMBER,
        cx.names.workload_identity_binding(),
        json!({"spec": {
            "member": format!("serviceAccount:{project}.svc.id.goog[{}/{}]", cx.names.namespace, cx.names.cluster()),
            "role": "roles/iam.workloadIdentityUser",
            "resourceRef": {"apiVersion": kinds::IAM_SERVICE_ACCOUNT.api_version(), "kind": kinds::IAM_SERVICE_ACCOUNT.kind, "name": cx.names.gcp_service_account(cx.uid())},
        }}),
        annotations(false),
    );
    let bucket_writer = cx.object_with_annotations(
        kinds::IAM_POLICY_MEMBER,
        cx.names.bucket_binding(),
        json!({"spec": {
            "member": format!("serviceAccount:{}", service_account_email(cx)),
            "role": "roles/storage.objectAdmin",
            "resourceRef": {"apiVersion": kinds::STORAGE_BUCKET.api_version(), "kind": kinds::STORAGE_BUCKET.kind, "name": cx.names.bucket(&cx.config.backup.bucket_prefix, cx.uid())},
        }}),
        annotations(false),
    );
    vec![service_account, storage, workload_identity, bucket_writer]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::tests::{SMALL, postgres};

    fn bucket_annotations(yaml: &str) -> BTreeMap<String, String> {
        let config = crate::config::tests::example();
        let pg = postgres(yaml);
        let cx = Context::new(&pg, &config).expect("context");
        objects(&cx)
            .into_iter()
            .find(|c| c.kind == kinds::STORAGE_BUCKET)
            .and_then(|c| c.object.metadata.annotations)
            .expect("bucket annotations")
    }

    #[test]
    fn the_bucket_is_abandoned_unless_deletion_is_allowed() {
        assert_eq!(bucket_annotations(SMALL)[DELETION_POLICY], "abandon");
        let allowed = SMALL.replace("majorVersion", "allowDeletion: true\n    majorVersion");
        assert!(!bucket_annotations(&allowed).contains_key(DELETION_POLICY));
    }

    #[test]
    fn workload_identity_names_the_clusters_service_account() {
        let config = crate::config::tests::example();
        let pg = postgres(SMALL);
        let cx = Context::new(&pg, &config).expect("context");
        let binding = &objects(&cx)[2];
        assert_eq!(
            binding.object.data["spec"]["member"],
            "serviceAccount:platform-prod.svc.id.goog[team-a/orders]"
        );
    }
}
