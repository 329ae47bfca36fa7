//! `Postgres` (data.nais.io/v1): the one object a team writes. The schema carries every rule a user can break,
//! so the API server refuses a bad object with a message that says what to fix.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// A managed PostgreSQL database for a team.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "data.nais.io",
    version = "v1",
    kind = "Postgres",
    plural = "postgres",
    singular = "postgres",
    shortname = "pg",
    namespaced,
    status = "PostgresStatus",
    validation = Rule::new("self.metadata.name.size() <= 40 && self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')").message("the name of a Postgres must be at most 40 lowercase letters, digits and '-', starting with a letter (its database objects are named after it)"),
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Instances","type":"string","jsonPath":".status.instances"}"#,
    printcolumn = r#"{"name":"Version","type":"string","jsonPath":".spec.cluster.majorVersion"}"#,
    printcolumn = r#"{"name":"Disk","type":"string","jsonPath":".spec.cluster.resources.diskSize"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    printcolumn = r#"{"name":"Last Backup","type":"date","jsonPath":".status.lastBackup"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct PostgresSpec {
    pub cluster: ClusterSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<DatabaseSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maintenance_window: Option<MaintenanceWindow>,
}

/// The database server: size, version, availability, audit.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("int(self.majorVersion) >= int(oldSelf.majorVersion)").message("majorVersion may not go down (a PostgreSQL major upgrade cannot be undone)"))]
pub struct ClusterSpec {
    pub resources: Resources,
    /// PostgreSQL major version; the platform runs 18 (OAuth logins need it).
    #[x_kube(validation = Rule::new("self.matches('^(1[89]|[2-9][0-9])$')").message("majorVersion must be \"18\" or later, written as a string"))]
    #[schemars(length(max = 3))]
    pub major_version: String,
    /// Three instances with one synchronous replica instead of two.
    #[serde(default)]
    pub high_availability: bool,
    /// Delete the data (cluster, backups, bucket) together with this object.
    #[serde(default)]
    pub allow_deletion: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit: Option<Audit>,
}

/// CPU, memory and disk. Quantities as Kubernetes writes them (`500m`, `2Gi`).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("quantity(self.diskSize).compareTo(quantity(oldSelf.diskSize)) >= 0").message("diskSize may not shrink (volumes can only grow)"))]
pub struct Resources {
    #[x_kube(validation = Rule::new("isQuantity(self) && quantity(self).isGreaterThan(quantity('0'))").message("cpu must be a positive Kubernetes quantity such as 500m or 2"))]
    #[schemars(length(max = 32))]
    pub cpu: String,
    #[x_kube(validation = Rule::new("isQuantity(self) && quantity(self).compareTo(quantity('256Mi')) >= 0").message("memory must be a Kubernetes quantity of at least 256Mi, such as 2Gi"))]
    #[schemars(length(max = 32))]
    pub memory: String,
    #[x_kube(validation = Rule::new("isQuantity(self) && quantity(self).compareTo(quantity('1Gi')) >= 0").message("diskSize must be a Kubernetes quantity of at least 1Gi, such as 10Gi"))]
    #[schemars(length(max = 32))]
    pub disk_size: String,
}

/// pgaudit settings.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Audit {
    pub enabled: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(validation = Rule::new("self.all(c, self.filter(d, d == c).size() == 1)").message("audit.statementClasses lists a class twice; name each class once"))]
    #[x_kube(validation = Rule::new("!('all' in self) || self.size() == 1").message("audit.statementClasses: 'all' already includes every class; list it alone"))]
    #[schemars(length(max = 8))]
    pub statement_classes: Vec<StatementClass>,
}

/// The statement classes pgaudit can log.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum StatementClass {
    Read,
    Write,
    Function,
    Role,
    Ddl,
    Misc,
    MiscSet,
    All,
}

/// The application database.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseSpec {
    /// Collation of the database, e.g. `nb_NO` (fixed at creation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self == oldSelf").message("collation cannot be changed after creation"))]
    #[x_kube(validation = Rule::new("self.matches('^(C|POSIX|[a-z]{2,3}(_[A-Z]{2})?)([.](UTF-8|utf8))?(@[a-z]+)?$')").message("collation must be a locale name such as C, C.UTF-8, nb_NO or en_US.UTF-8 (the database is UTF-8)"))]
    #[schemars(length(max = 64))]
    pub collation: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub extensions: Vec<Extension>,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Extension {
    #[x_kube(validation = Rule::new("self.matches('^[a-z][a-z0-9_]{0,62}$')").message("extension name must be a PostgreSQL extension name such as pgvector or pg_trgm"))]
    #[schemars(length(max = 63))]
    pub name: String,
}

/// When the platform may restart or upgrade the database.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct MaintenanceWindow {
    /// 1 = Monday ... 7 = Sunday.
    #[x_kube(validation = Rule::new("self >= 1 && self <= 7").message("maintenanceWindow.day must be 1 (Monday) to 7 (Sunday)"))]
    pub day: u8,
    /// Hour of the day, 0-23 (UTC).
    #[x_kube(validation = Rule::new("self >= 0 && self <= 23").message("maintenanceWindow.hour must be 0 to 23"))]
    pub hour: u8,
}

/// What the operator observed.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct PostgresStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready, Progressing or Degraded: the conditions in one word.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Ready instances out of desired, e.g. `2/2`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instances: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary: Option<String>,
    /// Time of the last successful backup (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_backup: Option<String>,
}
