//! The operator's configuration: platform-level settings that are the same for every team (IdP, images, backup
//! bucket, GCP project, alert thresholds). Read from one YAML file at start and validated there, so a mistake stops
//! the operator with a message naming the field instead of producing broken databases later.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

/// Everything the desired-state builders need besides the `Postgres` spec.
#[derive(Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OperatorConfig {
    pub idp: IdpConfig,
    pub validator: ValidatorConfig,
    pub postgres: PostgresImages,
    pub backup: BackupConfig,
    pub gcp: GcpConfig,
    pub network: NetworkConfig,
    #[serde(default)]
    pub alerts: AlertThresholds,
    #[serde(default)]
    pub access: AccessConfig,
    #[serde(default)]
    pub extensions: ExtensionCatalog,
}

/// The extensions teams may ask for in `database.extensions`: the allowlist (and, as the catalog grows, where
/// each one comes from). Anything else is refused.
#[derive(Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ExtensionCatalog {
    /// Extension name -> where it comes from. An empty entry: in the PostgreSQL image itself (contrib).
    pub catalog: std::collections::BTreeMap<String, CatalogEntry>,
}

/// One extension of the catalog.
#[derive(Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CatalogEntry {}

impl Default for ExtensionCatalog {
    /// Contrib extensions of the standard images that reach no network and no file system (so not postgres_fdw,
    /// dblink, file_fdw or adminpack).
    fn default() -> Self {
        let contrib = [
            "btree_gin",
            "btree_gist",
            "citext",
            "cube",
            "earthdistance",
            "fuzzystrmatch",
            "hstore",
            "intarray",
            "ltree",
            "pg_stat_statements",
            "pg_trgm",
            "pgcrypto",
            "tablefunc",
            "unaccent",
        ];
        ExtensionCatalog {
            catalog: contrib
                .into_iter()
                .map(|n| (n.to_owned(), CatalogEntry::default()))
                .collect(),
        }
    }
}

impl ExtensionCatalog {
    /// The names teams may ask for, comma-separated (for messages).
    pub fn available(&self) -> String {
        self.catalog.keys().cloned().collect::<Vec<_>>().join(", ")
    }
}

/// The company IdP (Zitadel) that personal logins go through.
#[derive(Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IdpConfig {
    /// Issuer URL exactly as the IdP writes it into `iss` (https, no trailing slash needed or added).
    pub issuer: String,
    /// The public OAuth client psql uses for the device flow (printed in connection strings).
    pub client_id: String,
    /// Scopes every login must carry: the HBA line's `scope` option.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// The audience the validator requires in a token (Zitadel: the project id).
    pub audience: String,
    /// The clients whose tokens are accepted (`azp`, else `client_id`), by the databases and the access API
    /// alike; default: `clientId` alone. Every application of the project puts the project id into `aud`, so the
    /// audience alone would let any of their tokens in.
    #[serde(default)]
    pub allowed_clients: Vec<String>,
    /// The Zitadel organisation whose project role grants make team membership (the role's value names the
    /// organisation); without it a grant in any organisation counts.
    #[serde(default)]
    pub organization_id: Option<String>,
    /// PEM file of the CA that signed the IdP's TLS certificate (the access API's key fetches); default: the
    /// system's CAs.
    #[serde(default)]
    pub ca_file: Option<String>,
}

/// The validator module: where its image is and how it is set up in every cluster.
#[derive(Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ValidatorConfig {
    /// Image reference of the validator's extension image, pinned by digest (`registry/repo:tag@sha256:...`).
    pub image: String,
    /// Further validator settings, written as `pgrator_validator.<key>` parameters (for example
    /// `identity_claim: sub`, `scope_check: "off"`). `audience` comes from `idp.audience`.
    #[serde(default)]
    pub settings: BTreeMap<String, String>,
}

/// PostgreSQL images by major version (CNPG's `imageName`).
#[derive(Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PostgresImages {
    pub images: BTreeMap<String, String>,
    /// Storage class of the data volumes; the cluster's default when absent.
    #[serde(default)]
    pub storage_class: Option<String>,
}

/// Backups to object storage through the Barman Cloud plugin.
#[derive(Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BackupConfig {
    /// Buckets are named `<bucketPrefix>-<namespace>-<name>` (shortened with a hash when needed).
    pub bucket_prefix: String,
    /// GCS location of the buckets, e.g. `europe-north1`.
    pub location: String,
    /// How long backups are kept, in days (barman's retention policy and the bucket's lifecycle rule).
    #[serde(default = "default_retention_days")]
    pub retention_days: u32,
    /// Environment of the backup sidecar the Barman Cloud plugin runs beside PostgreSQL, the same for every
    /// database: a proxy (`HTTPS_PROXY`), or the client libraries' emulator setting (`STORAGE_EMULATOR_HOST`).
    #[serde(default)]
    pub sidecar_env: BTreeMap<String, String>,
}

fn default_retention_days() -> u32 {
    30
}

/// The GCP project that holds buckets and service accounts (Config Connector objects).
#[derive(Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GcpConfig {
    pub project: String,
}

/// Who may talk to a database's pods besides its own instances.
#[derive(Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NetworkConfig {
    /// Namespace of the CNPG operator (it reaches 5432 and the instance manager on 8000).
    pub cnpg_namespace: String,
    /// Namespace of Prometheus (it scrapes the metrics port).
    pub prometheus_namespace: String,
}

/// Alert thresholds of the PrometheusRule every database gets.
#[derive(Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct AlertThresholds {
    pub disk_warning_percent: u8,
    pub disk_critical_percent: u8,
    pub memory_percent: u8,
    pub cpu_percent: u8,
    pub replication_lag_seconds: u32,
    pub backup_max_age_hours: u32,
    pub connection_saturation_percent: u8,
}

impl Default for AlertThresholds {
    fn default() -> Self {
        AlertThresholds {
            disk_warning_percent: 90,
            disk_critical_percent: 99,
            memory_percent: 90,
            cpu_percent: 90,
            replication_lag_seconds: 300,
            backup_max_age_hours: 26,
            connection_saturation_percent: 90,
        }
    }
}

/// Personal access (PostgresAccess).
#[derive(Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct AccessConfig {
    /// The longest a grant may last, in seconds.
    pub max_ttl_seconds: u64,
    /// How long an ended grant is kept (as a record, and in the validator's list so its role stays refused and
    /// its sessions ended) before the operator deletes it, in seconds.
    pub retention_seconds: u64,
}

impl Default for AccessConfig {
    fn default() -> Self {
        AccessConfig {
            max_ttl_seconds: 8 * 3600,
            retention_seconds: 24 * 3600,
        }
    }
}

impl OperatorConfig {
    /// The validator's settings as every cluster will get them, checked with the validator's own parser (one
    /// definition of a valid setting): a bad value stops the operator here, naming it, instead of being refused at
    /// reload in every cluster.
    fn check_validator_settings(&self) -> Result<(), ConfigError> {
        let mut raw = pgrator_token::RawSettings::default();
        raw.set("audience", &self.idp.audience);
        raw.set("allowed_clients", &self.idp.allowed_clients().join(","));
        for (key, value) in &self.validator.settings {
            if key == "grants" {
                return Err(invalid(
                    "validator.settings",
                    "grants is written by the operator from the PostgresAccess objects; remove it here",
                ));
            }
            if key == "http_timeout_ms"
                && !value
                    .parse::<u32>()
                    .is_ok_and(|ms| (100..=60_000).contains(&ms))
            {
                return Err(invalid(
                    "validator.settings",
                    format!(
                        "http_timeout_ms: {value:?} is not a number of milliseconds from 100 to 60000"
                    ),
                ));
            }
            if !raw.set(key, value) && !pgrator_token::MODULE_SETTINGS.contains(&key.as_str()) {
                return Err(invalid(
                    "validator.settings",
                    format!(
                        "{key} is not a setting of the validator (see validator-ext/README.md)"
                    ),
                ));
            }
        }
        pgrator_token::ValidatorConfig::from_settings(&raw, "validator.settings")
            .map(|_| ())
            .map_err(|errors| invalid("validator.settings", errors.to_string()))
    }
}

impl IdpConfig {
    /// The clients whose tokens are accepted: `allowedClients`, or `clientId` alone.
    pub fn allowed_clients(&self) -> Vec<String> {
        if self.allowed_clients.is_empty() {
            vec![self.client_id.clone()]
        } else {
            self.allowed_clients.clone()
        }
    }
}

impl AccessConfig {
    pub fn max_ttl(&self) -> Duration {
        Duration::from_secs(self.max_ttl_seconds)
    }
}

/// Why a configuration was refused; each names the field to fix.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConfigError {
    #[error("configuration is not valid YAML for the operator: {0}")]
    Syntax(String),
    #[error("{field}: {problem}")]
    Invalid {
        field: &'static str,
        problem: String,
    },
}

/// Names the Barman Cloud plugin sets in its sidecar itself (its own win, so ours would be ignored), and names that
/// would change the programs or libraries the sidecar runs or the credentials it uses.
fn is_reserved_sidecar_env(name: &str) -> bool {
    matches!(
        name,
        "NAMESPACE"
            | "CLUSTER_NAME"
            | "SPOOL_DIRECTORY"
            | "PATH"
            | "GOOGLE_APPLICATION_CREDENTIALS"
    ) || ["CUSTOM_CNPG_", "LD_", "PYTHON"]
        .iter()
        .any(|prefix| name.starts_with(prefix))
}

fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn invalid(field: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field,
        problem: problem.into(),
    }
}

impl OperatorConfig {
    /// Parses and validates a configuration file's text.
    pub fn from_yaml(text: &str) -> Result<Self, ConfigError> {
        let config: OperatorConfig =
            serde_yaml::from_str(text).map_err(|e| ConfigError::Syntax(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    /// Checks what serde cannot: URLs, references, names, ranges.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let issuer = &self.idp.issuer;
        if !(issuer.starts_with("https://") || issuer.starts_with("http://127.0.0.1:"))
            || issuer.contains(char::is_whitespace)
            || issuer.contains('"')
        {
            return Err(invalid(
                "idp.issuer",
                format!("must be an https URL without spaces or quotes, got {issuer:?}"),
            ));
        }
        hba_token("idp.clientId", &self.idp.client_id)?;
        hba_token("idp.audience", &self.idp.audience)?;
        for scope in &self.idp.scopes {
            hba_token("idp.scopes", scope)?;
        }
        if !self.validator.image.contains("@sha256:") {
            return Err(invalid(
                "validator.image",
                format!(
                    "must be pinned by digest (registry/repo:tag@sha256:...), got {:?}",
                    self.validator.image
                ),
            ));
        }
        for (key, value) in &self.validator.settings {
            if key == "audience" || key == "allowed_clients" {
                return Err(invalid(
                    "validator.settings",
                    format!("{key} is set from the idp section; remove it here"),
                ));
            }
            if key.is_empty() || !key.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
                return Err(invalid(
                    "validator.settings",
                    format!("{key:?} is not a validator setting name (lowercase letters and _)"),
                ));
            }
            if value.contains(['\n', '\r', '\0']) {
                return Err(invalid(
                    "validator.settings",
                    format!("the value of {key} may not contain line breaks"),
                ));
            }
        }
        self.check_validator_settings()?;
        if self.postgres.images.is_empty() {
            return Err(invalid(
                "postgres.images",
                "needs at least one image, e.g. \"18\": <image>",
            ));
        }
        for (major, image) in &self.postgres.images {
            if major.parse::<u32>().is_err() || image.trim().is_empty() {
                return Err(invalid(
                    "postgres.images",
                    format!("{major:?}: {image:?} is not a major version and an image"),
                ));
            }
        }
        // GCS bucket names may not start with "goog" nor contain "google" (or look like it).
        let prefix = &self.backup.bucket_prefix;
        if !crate::names::is_dns_label(prefix)
            || prefix.len() > 20
            || prefix.starts_with("goog")
            || prefix.contains("google")
            || prefix.contains("g00gle")
        {
            return Err(invalid(
                "backup.bucketPrefix",
                "must be lowercase letters, digits and '-', at most 20 characters, and neither start with \"goog\" nor contain \"google\"",
            ));
        }
        if self.backup.retention_days == 0 || self.backup.retention_days > 3650 {
            return Err(invalid("backup.retentionDays", "must be 1 to 3650"));
        }
        if let Some(name) = self.backup.sidecar_env.keys().find(|k| !is_env_name(k)) {
            return Err(invalid(
                "backup.sidecarEnv",
                format!(
                    "{name:?} is not an environment variable name (letters, digits, '_', not starting with a digit)"
                ),
            ));
        }
        if let Some(name) = self
            .backup
            .sidecar_env
            .keys()
            .find(|k| is_reserved_sidecar_env(k))
        {
            return Err(invalid(
                "backup.sidecarEnv",
                format!(
                    "{name:?} may not be set: the plugin sets it itself, or it would change what the sidecar runs or \
                     which credentials it uses (reserved: NAMESPACE, CLUSTER_NAME, SPOOL_DIRECTORY, CUSTOM_CNPG_*, \
                     PATH, LD_*, PYTHON*, GOOGLE_APPLICATION_CREDENTIALS)"
                ),
            ));
        }
        if self.gcp.project.is_empty() || !crate::names::is_dns_label(&self.gcp.project) {
            return Err(invalid(
                "gcp.project",
                "must be a GCP project id (lowercase letters, digits, '-')",
            ));
        }
        for (field, ns) in [
            ("network.cnpgNamespace", &self.network.cnpg_namespace),
            (
                "network.prometheusNamespace",
                &self.network.prometheus_namespace,
            ),
        ] {
            if !crate::names::is_dns_label(ns) {
                return Err(invalid(field, format!("{ns:?} is not a namespace name")));
            }
        }
        let a = &self.alerts;
        for (field, pct) in [
            ("alerts.diskWarningPercent", a.disk_warning_percent),
            ("alerts.diskCriticalPercent", a.disk_critical_percent),
            ("alerts.memoryPercent", a.memory_percent),
            ("alerts.cpuPercent", a.cpu_percent),
            (
                "alerts.connectionSaturationPercent",
                a.connection_saturation_percent,
            ),
        ] {
            if pct == 0 || pct > 100 {
                return Err(invalid(field, "must be a percentage from 1 to 100"));
            }
        }
        if a.disk_warning_percent >= a.disk_critical_percent {
            return Err(invalid(
                "alerts.diskWarningPercent",
                "must be below alerts.diskCriticalPercent",
            ));
        }
        if self.access.max_ttl_seconds < 60 || self.access.max_ttl_seconds > 7 * 24 * 3600 {
            return Err(invalid(
                "access.maxTtlSeconds",
                "must be between 60 seconds and 7 days",
            ));
        }
        if self.access.retention_seconds < 600 || self.access.retention_seconds > 90 * 24 * 3600 {
            return Err(invalid(
                "access.retentionSeconds",
                "must be between 600 seconds and 90 days",
            ));
        }
        Ok(())
    }

    /// The PostgreSQL image for a major version, if the platform offers it.
    pub fn image_for(&self, major: &str) -> Option<&str> {
        self.postgres.images.get(major).map(String::as_str)
    }
}

/// Values that end up inside a double-quoted pg_hba.conf option must not break out of it.
fn hba_token(field: &'static str, value: &str) -> Result<(), ConfigError> {
    if value.is_empty() || value.contains(['"', ' ', '\t', '\n', '\r', '\0', '#']) {
        return Err(invalid(
            field,
            format!("{value:?} must be non-empty without spaces, quotes or '#'"),
        ));
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A complete configuration, the base of the unit and golden tests.
    pub(crate) const EXAMPLE: &str = include_str!("../deploy/config.example.yaml");

    pub(crate) fn example() -> OperatorConfig {
        OperatorConfig::from_yaml(EXAMPLE).expect("the example configuration is valid")
    }

    fn with(edit: impl FnOnce(&mut OperatorConfig)) -> Result<(), ConfigError> {
        let mut c = example();
        edit(&mut c);
        c.validate()
    }

    fn field_of(result: Result<(), ConfigError>) -> &'static str {
        match result {
            Err(ConfigError::Invalid { field, .. }) => field,
            other => panic!("expected an invalid field, got {other:?}"),
        }
    }

    #[test]
    fn the_example_is_valid() {
        let c = example();
        assert_eq!(c.backup.retention_days, 30);
        assert!(c.image_for("18").is_some());
        assert!(c.image_for("17").is_none());
    }

    #[test]
    fn unknown_fields_are_refused_with_their_name() {
        let text = EXAMPLE.replace("gcp:", "gcp:\n  projet: typo");
        let err = OperatorConfig::from_yaml(&text).expect_err("typo refused");
        assert!(err.to_string().contains("projet"), "{err}");
    }

    #[test]
    fn each_bad_value_names_its_field() {
        assert_eq!(
            field_of(with(|c| c.idp.issuer = "http://idp.example".into())),
            "idp.issuer"
        );
        assert_eq!(
            field_of(with(|c| c.idp.scopes.push("two words".into()))),
            "idp.scopes"
        );
        assert_eq!(
            field_of(with(|c| c.validator.image = "registry/v:1".into())),
            "validator.image"
        );
        assert_eq!(
            field_of(with(|c| {
                c.validator.settings.insert("audience".into(), "x".into());
            })),
            "validator.settings"
        );
        for (key, value) in [
            ("algorithms", "HS256"),
            ("clock_skew", "forever"),
            ("max_token_bytes", "tiny"),
            ("no_such_setting", "1"),
            ("grants", "p_a 1 2"),
            ("http_timeout_ms", "5 minutes"),
        ] {
            let refused = OperatorConfig::from_yaml(
                &EXAMPLE.replace("identity_claim: sub", &format!("{key}: {value:?}")),
            );
            assert!(
                matches!(
                    &refused,
                    Err(ConfigError::Invalid {
                        field: "validator.settings",
                        ..
                    })
                ),
                "{key}: {value}: {refused:?}"
            );
        }
        assert_eq!(
            field_of(with(|c| c.postgres.images.clear())),
            "postgres.images"
        );
        assert_eq!(
            field_of(with(|c| c.backup.bucket_prefix = "Bad_Prefix".into())),
            "backup.bucketPrefix"
        );
        assert_eq!(
            field_of(with(|c| c.backup.bucket_prefix = "google-backups".into())),
            "backup.bucketPrefix"
        );
        assert_eq!(
            field_of(with(|c| c.backup.retention_days = 0)),
            "backup.retentionDays"
        );
        for bad in [
            "",
            "1PROXY",
            "HTTPS-PROXY",
            "A B",
            "NAMESPACE",
            "CUSTOM_CNPG_GROUP",
            "LD_PRELOAD",
            "PYTHONPATH",
            "PATH",
            "GOOGLE_APPLICATION_CREDENTIALS",
        ] {
            assert_eq!(
                field_of(with(|c| {
                    c.backup.sidecar_env.insert(bad.into(), "x".into());
                })),
                "backup.sidecarEnv",
                "{bad:?}"
            );
        }
        assert_eq!(
            field_of(with(|c| c.network.cnpg_namespace = "a b".into())),
            "network.cnpgNamespace"
        );
        assert_eq!(
            field_of(with(|c| c.alerts.disk_warning_percent = 99)),
            "alerts.diskWarningPercent"
        );
        assert_eq!(
            field_of(with(|c| c.access.max_ttl_seconds = 1)),
            "access.maxTtlSeconds"
        );
    }
}
