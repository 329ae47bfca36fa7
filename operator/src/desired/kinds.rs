//! The kinds of object the operator makes, with what deletion does to each.

use kube::core::{ApiResource, GroupVersionKind};

/// One kind of dependent object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Kind {
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    pub plural: &'static str,
    /// Holds data or protects it (the database, its backups and their bucket, and what backups need to keep
    /// running): made without an owner reference, deleted only when the Postgres has `allowDeletion: true`, and
    /// otherwise left in place when the Postgres goes. The rest are owned by the Postgres and go with it.
    pub keeps_data: bool,
}

impl Kind {
    pub fn api_resource(&self) -> ApiResource {
        ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk(self.group, self.version, self.kind),
            self.plural,
        )
    }

    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_owned()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
}

const fn kind(
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    plural: &'static str,
    keeps_data: bool,
) -> Kind {
    Kind {
        group,
        version,
        kind,
        plural,
        keeps_data,
    }
}

pub const CLUSTER: Kind = kind("postgresql.cnpg.io", "v1", "Cluster", "clusters", true);
pub const DATABASE: Kind = kind("postgresql.cnpg.io", "v1", "Database", "databases", true);
pub const POOLER: Kind = kind("postgresql.cnpg.io", "v1", "Pooler", "poolers", false);
pub const SCHEDULED_BACKUP: Kind = kind(
    "postgresql.cnpg.io",
    "v1",
    "ScheduledBackup",
    "scheduledbackups",
    true,
);
pub const OBJECT_STORE: Kind = kind(
    "barmancloud.cnpg.io",
    "v1",
    "ObjectStore",
    "objectstores",
    true,
);
pub const NETWORK_POLICY: Kind = kind(
    "networking.k8s.io",
    "v1",
    "NetworkPolicy",
    "networkpolicies",
    false,
);
pub const PROMETHEUS_RULE: Kind = kind(
    "monitoring.coreos.com",
    "v1",
    "PrometheusRule",
    "prometheusrules",
    false,
);
pub const POD_MONITOR: Kind = kind(
    "monitoring.coreos.com",
    "v1",
    "PodMonitor",
    "podmonitors",
    false,
);
pub const IAM_SERVICE_ACCOUNT: Kind = kind(
    "iam.cnrm.cloud.google.com",
    "v1beta1",
    "IAMServiceAccount",
    "iamserviceaccounts",
    true,
);
pub const IAM_POLICY_MEMBER: Kind = kind(
    "iam.cnrm.cloud.google.com",
    "v1beta1",
    "IAMPolicyMember",
    "iampolicymembers",
    true,
);
pub const STORAGE_BUCKET: Kind = kind(
    "storage.cnrm.cloud.google.com",
    "v1beta1",
    "StorageBucket",
    "storagebuckets",
    true,
);

/// Every kind, in the order they are applied (what others refer to first).
pub const ALL: [Kind; 11] = [
    IAM_SERVICE_ACCOUNT,
    STORAGE_BUCKET,
    IAM_POLICY_MEMBER,
    OBJECT_STORE,
    CLUSTER,
    DATABASE,
    POOLER,
    SCHEDULED_BACKUP,
    NETWORK_POLICY,
    POD_MONITOR,
    PROMETHEUS_RULE,
];
