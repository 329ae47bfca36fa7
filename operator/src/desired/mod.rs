//! The desired state: pure functions from a `Postgres` (and the operator's configuration) to every object it needs.
//! No client, no clock, no I/O: what the reconciler applies is exactly what these functions return, and the golden
//! files under `operator/tests/golden/` show it.
//!
//! One file per kind. Where a field of the `Postgres` becomes a field of the CNPG Cluster: `cluster.rs`.

pub mod access;
pub mod cluster;
pub mod database;
pub mod gcp;
pub mod kinds;
pub mod network_policy;
pub mod object_store;
pub mod pod_monitor;
pub mod pooler;
pub mod prometheus_rule;
pub mod rollout;
pub mod scheduled_backup;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::core::{DynamicObject, ObjectMeta};
use kube::{Resource, ResourceExt};
use serde_json::Value;

use crate::api::Postgres;
use crate::config::OperatorConfig;
use crate::names::Names;
pub use access::OpenGrant;
pub use kinds::Kind;

/// One object to apply, with its kind.
#[derive(Clone, Debug, PartialEq)]
pub struct Child {
    pub kind: Kind,
    pub object: DynamicObject,
}

impl Child {
    pub fn name(&self) -> &str {
        self.object.metadata.name.as_deref().unwrap_or_default()
    }
}

/// A line of the pg_ident map: an IdP identity allowed to log in as a database role (from personal access).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct IdentLine {
    pub identity: String,
    pub role: String,
}

/// Why no desired state can be computed for a Postgres; the message goes to its status.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DesiredError {
    #[error("the Postgres has no {0} (it was not read from the API server)")]
    MissingMetadata(&'static str),
    #[error(
        "PostgreSQL {major} is not offered by this platform (offered: {offered}); set spec.cluster.majorVersion to one of them"
    )]
    UnsupportedMajorVersion { major: String, offered: String },
    #[error(
        "extension {name} is not offered by this platform (available: {available}); remove it from spec.database.extensions or ask the platform team to add it"
    )]
    ExtensionNotOffered { name: String, available: String },
}

/// What the builders read besides the spec.
pub struct Context<'a> {
    pub postgres: &'a Postgres,
    pub config: &'a OperatorConfig,
    pub names: Names,
    owner: OwnerReference,
}

impl<'a> Context<'a> {
    pub fn new(postgres: &'a Postgres, config: &'a OperatorConfig) -> Result<Self, DesiredError> {
        let namespace = postgres
            .metadata
            .namespace
            .as_deref()
            .ok_or(DesiredError::MissingMetadata("namespace"))?;
        let owner = postgres
            .controller_owner_ref(&())
            .ok_or(DesiredError::MissingMetadata("name or uid"))?;
        Ok(Context {
            postgres,
            config,
            names: Names::new(namespace, &postgres.name_any()),
            owner,
        })
    }

    /// The Postgres's uid (given by the API server): part of the names that are unique beyond the namespace.
    pub fn uid(&self) -> &str {
        &self.owner.uid
    }

    /// An object of `kind` named `name` in the Postgres's namespace, labelled, owned by the Postgres unless its
    /// kind keeps data, with `body` (everything but apiVersion, kind and metadata).
    pub fn object(&self, kind: Kind, name: String, body: Value) -> Child {
        self.object_with_annotations(kind, name, body, Default::default())
    }

    pub fn object_with_annotations(
        &self,
        kind: Kind,
        name: String,
        body: Value,
        annotations: std::collections::BTreeMap<String, String>,
    ) -> Child {
        let metadata = ObjectMeta {
            name: Some(name),
            namespace: Some(self.names.namespace.clone()),
            labels: Some(self.names.labels()),
            annotations: (!annotations.is_empty()).then_some(annotations),
            owner_references: (!kind.keeps_data).then(|| vec![self.owner.clone()]),
            ..ObjectMeta::default()
        };
        Child {
            kind,
            object: DynamicObject {
                types: Some(kube::core::TypeMeta {
                    api_version: kind.api_version(),
                    kind: kind.kind.to_owned(),
                }),
                metadata,
                data: body,
            },
        }
    }
}

/// Every object the Postgres needs, in apply order. `grants` are its personal access grants (pg_ident lines, the
/// validator's list of grants, and one DatabaseRole per personal role).
pub fn desired(
    postgres: &Postgres,
    config: &OperatorConfig,
    grants: &[access::OpenGrant],
) -> Result<Vec<Child>, DesiredError> {
    let cx = Context::new(postgres, config)?;
    let mut children = gcp::objects(&cx);
    children.push(object_store::object_store(&cx));
    children.push(cluster::cluster(&cx, grants)?);
    children.push(database::database(&cx)?);
    children.push(pooler::pooler(&cx));
    children.push(scheduled_backup::scheduled_backup(&cx));
    children.extend(network_policy::network_policies(&cx));
    children.push(pod_monitor::pod_monitor(&cx));
    children.push(prometheus_rule::prometheus_rule(&cx));
    children.extend(access::database_roles(&cx, grants));
    Ok(children)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A Postgres as the API server returns it (namespace and uid set), for builder tests.
    pub(crate) fn postgres(yaml: &str) -> Postgres {
        let mut pg: Postgres = serde_yaml::from_str(yaml).expect("test Postgres parses");
        pg.metadata.namespace.get_or_insert_with(|| "team-a".into());
        pg.metadata.uid = Some("6f1c1f0e-0000-4000-8000-000000000001".into());
        pg
    }

    pub(crate) const SMALL: &str = r#"
apiVersion: data.nais.io/v1
kind: Postgres
metadata: {name: orders}
spec:
  cluster:
    resources: {cpu: 500m, memory: 2Gi, diskSize: 10Gi}
    majorVersion: "18"
"#;

    #[test]
    fn every_child_is_labelled_and_data_is_never_owned() {
        let config = crate::config::tests::example();
        let children = desired(&postgres(SMALL), &config, &[]).expect("desired");
        assert_eq!(
            children.len(),
            13,
            "{:#?}",
            children.iter().map(Child::name).collect::<Vec<_>>()
        );
        for child in &children {
            let labels = child.object.metadata.labels.as_ref().expect("labels");
            assert_eq!(labels[crate::names::POSTGRES_LABEL], "orders");
            assert_eq!(
                child.object.metadata.owner_references.is_some(),
                !child.kind.keeps_data,
                "{}",
                child.kind.kind
            );
        }
    }

    #[test]
    fn an_unknown_major_version_is_a_clear_error() {
        let config = crate::config::tests::example();
        let pg = postgres(&SMALL.replace("\"18\"", "\"19\""));
        let err = desired(&pg, &config, &[]).expect_err("19 is not offered");
        assert!(
            err.to_string().contains("PostgreSQL 19 is not offered"),
            "{err}"
        );
    }
}
