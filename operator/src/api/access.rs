//! `PostgresAccess` (data.nais.io/v1): one person's time-limited access to one database. Made by the access API
//! (or by hand by a platform admin), immutable once created, and ended by the clock, not by anyone remembering.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// A grant of personal access to a Postgres in the same namespace.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "data.nais.io",
    version = "v1",
    kind = "PostgresAccess",
    plural = "postgresaccesses",
    singular = "postgresaccess",
    shortname = "pga",
    namespaced,
    status = "PostgresAccessStatus",
    printcolumn = r#"{"name":"Postgres","type":"string","jsonPath":".spec.postgres"}"#,
    printcolumn = r#"{"name":"Who","type":"string","jsonPath":".spec.identity.email"}"#,
    printcolumn = r#"{"name":"Level","type":"string","jsonPath":".spec.level"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Role","type":"string","jsonPath":".status.roleName"}"#,
    printcolumn = r#"{"name":"Expires","type":"date","jsonPath":".spec.expiresAt"}"#
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self == oldSelf").message("a PostgresAccess cannot be changed once created; delete it and request a new one"))]
pub struct PostgresAccessSpec {
    /// The Postgres (in this namespace) the access is to.
    #[x_kube(validation = Rule::new("self.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')").message("postgres must be the name of a Postgres in this namespace"))]
    #[schemars(length(min = 1, max = 40))]
    pub postgres: String,
    pub identity: Identity,
    pub level: AccessLevel,
    /// Why the access is needed (kept in the audit trail).
    #[x_kube(validation = Rule::new("self.trim().size() >= 10").message("reason must say why, in at least 10 characters"))]
    #[x_kube(validation = Rule::new("!self.matches('\\\\p{Cc}')").message("reason must be plain text: no control characters such as newlines or tabs"))]
    #[schemars(length(max = 500))]
    pub reason: String,
    /// When the access ends (RFC 3339); at most the platform's maximum after creation.
    #[x_kube(validation = Rule::new("self.matches('^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\\\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})$')").message("expiresAt must be an RFC 3339 time such as 2026-11-24T16:00:00Z"))]
    #[schemars(length(max = 40))]
    pub expires_at: String,
}

/// The person, as the IdP knows them.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Identity {
    /// The IdP's subject (`sub`): what the validator returns as the login identity.
    #[x_kube(validation = Rule::new("self.matches('^[A-Za-z0-9._@:-]+$')").message("identity.subject must be the IdP subject (letters, digits and . _ @ : -)"))]
    #[schemars(length(min = 1, max = 255))]
    pub subject: String,
    /// The e-mail, for people to read (never used to decide anything).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.matches('^[A-Za-z0-9._%+-]+@[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?([.][A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?)+$')").message("identity.email must be an e-mail address such as alice@example.com (no spaces, quotes or control characters)"))]
    #[schemars(length(max = 254))]
    pub email: Option<String>,
}

/// The rule of `identity.email` (the schema's CEL rule says the same): `local@domain.tld`, with the local part of
/// letters, digits and `._%+-`, and a DNS name of at least two labels. Nothing that could break a log line, an
/// event or a comment.
pub fn is_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    let label = |l: &str| {
        !l.is_empty()
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    s.len() <= 254
        && !local.is_empty()
        && local
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._%+-".contains(&b))
        && domain.split('.').count() >= 2
        && domain.split('.').all(label)
}

/// What the person may do.
#[derive(
    schemars::JsonSchema,
    Serialize,
    Deserialize,
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
)]
#[serde(rename_all = "lowercase")]
pub enum AccessLevel {
    /// Read every table.
    Read,
    /// Read and write every table.
    Readwrite,
    /// What the application's owner role may do (DDL included).
    Admin,
}

impl AccessLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            AccessLevel::Read => "read",
            AccessLevel::Readwrite => "readwrite",
            AccessLevel::Admin => "admin",
        }
    }
}

/// Where the access stands.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct PostgresAccessStatus {
    /// Pending, Active, Expired, Revoked or Failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// The personal database role to log in as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// A revoked grant: when the operator first saw the database no longer carry it (the grace for CNPG and the
    /// validator's reaper counts from here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed_at: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

#[cfg(test)]
mod tests {
    use super::is_email;

    #[test]
    fn emails() {
        for good in ["alice@pgrator.test", "a.b+c@example.co.uk", "x_y%z-1@a-b.c"] {
            assert!(is_email(good), "{good}");
        }
        for bad in [
            "",
            "alice",
            "alice@",
            "@example.com",
            "alice@localhost",
            "alice@exa mple.com",
            "alice\n@example.com",
            "alice@example.com\n",
            "a\"b@example.com",
            "alice@-x.com",
            "alice@x..com",
            "alice@@example.com",
        ] {
            assert!(!is_email(bad), "{bad:?}");
        }
    }
}
