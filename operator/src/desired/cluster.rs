//! The CNPG `Cluster`: where each field of a `Postgres` becomes a field of the database server.
//!
//! | Postgres                              | Cluster                                                        |
//! |---------------------------------------|----------------------------------------------------------------|
//! | spec.cluster.resources.cpu / memory   | spec.resources (memory limit 25 % above the request), shared_buffers, effective_cache_size |
//! | spec.cluster.resources.diskSize       | spec.storage.size (storage class from config)                  |
//! | spec.cluster.majorVersion             | spec.imageName (image for that version from config)            |
//! | spec.cluster.highAvailability         | spec.instances 3 + one synchronous replica (else 2), required anti-affinity |
//! | spec.cluster.audit                    | pgaudit.* parameters (CNPG preloads pgaudit when they are set)  |
//! | spec.database.collation               | spec.bootstrap.initdb.localeCollate / localeCType               |
//! | (always) the validator                | spec.postgresql.extensions, oauth_validator_libraries, pgrator_validator.* parameters, shared_preload_libraries, pg_hba, pg_ident |
//! | (always) backups                      | spec.plugins (Barman Cloud plugin as WAL archiver)             |
//! | (always) Workload Identity            | spec.serviceAccountTemplate annotation                        |

use serde_json::{Map, Value, json};

use super::access::{self, OpenGrant};
use super::{Child, Context, DesiredError, IdentLine, kinds};
use crate::api::postgres::StatementClass;
use crate::quantity;

/// The name of the validator's extension entry: it is mounted at `/extensions/pgrator-validator`.
pub const VALIDATOR_EXTENSION: &str = "pgrator-validator";
/// The validator's library name (`oauth_validator_libraries`, preload, and the prefix of its settings).
pub const VALIDATOR_LIBRARY: &str = "pgrator_validator";
/// The Barman Cloud plugin's name in CNPG.
pub const BARMAN_PLUGIN: &str = "barman-cloud.cloudnative-pg.io";

/// Group roles that personal access roles are made members of; created in every cluster, never able to log in.
pub const ACCESS_ROLES: [(&str, &[&str], &str); 3] = [
    (
        "pgrator_read",
        &["pg_read_all_data"],
        "personal access: read everything",
    ),
    (
        "pgrator_readwrite",
        &["pg_read_all_data", "pg_write_all_data"],
        "personal access: read and write all data",
    ),
    (
        "pgrator_admin",
        &["app"],
        "personal access: everything the application's owner role may do",
    ),
];

pub fn cluster(cx: &Context<'_>, grants: &[OpenGrant]) -> Result<Child, DesiredError> {
    let spec = &cx.postgres.spec;
    let c = &spec.cluster;
    let config = cx.config;
    let major = c.major_version.as_str();
    let image = config
        .image_for(major)
        .ok_or_else(|| DesiredError::UnsupportedMajorVersion {
            major: major.to_owned(),
            offered: config
                .postgres
                .images
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", "),
        })?;

    let ha = c.high_availability;
    let mut body = json!({
        "instances": if ha { 3 } else { 2 },
        "imageName": image,
        "enableSuperuserAccess": false,
        "primaryUpdateStrategy": "unsupervised",
        "primaryUpdateMethod": "switchover",
        "resources": resources(&c.resources.cpu, &c.resources.memory),
        "storage": storage(cx),
        "affinity": {
            "enablePodAntiAffinity": true,
            "podAntiAffinityType": if ha { "required" } else { "preferred" },
            "topologyKey": "kubernetes.io/hostname",
        },
        "bootstrap": { "initdb": initdb(cx) },
        "postgresql": postgresql(cx, grants),
        "managed": { "roles": access_roles() },
        "plugins": [{
            "name": BARMAN_PLUGIN,
            "enabled": true,
            "isWALArchiver": true,
            "parameters": {
                "barmanObjectName": cx.names.object_store(),
                "serverName": cx.names.cluster(),
            },
        }],
        "serviceAccountTemplate": {
            "metadata": {
                "annotations": {
                    "iam.gke.io/gcp-service-account": super::gcp::service_account_email(cx),
                },
            },
        },
        "inheritedMetadata": { "labels": cx.names.labels() },
    });
    if ha {
        body["postgresql"]["synchronous"] = json!({ "method": "any", "number": 1 });
    }
    Ok(cx.object(kinds::CLUSTER, cx.names.cluster(), json!({ "spec": body })))
}

/// Requests as written; the memory limit a quarter above the request so a burst is not an OOM kill at once.
fn resources(cpu: &str, memory: &str) -> Value {
    let limit = quantity::bytes(memory)
        .map(|b| quantity::mebibytes(b + b / 4))
        .unwrap_or_else(|| memory.to_owned());
    json!({
        "requests": { "cpu": cpu, "memory": memory },
        "limits": { "memory": limit },
    })
}

fn storage(cx: &Context<'_>) -> Value {
    let mut storage = json!({ "size": cx.postgres.spec.cluster.resources.disk_size });
    if let Some(class) = &cx.config.postgres.storage_class {
        storage["storageClass"] = json!(class);
    }
    storage
}

fn initdb(cx: &Context<'_>) -> Value {
    let mut initdb = json!({ "database": "app", "owner": "app", "encoding": "UTF8" });
    if let Some(collation) = cx
        .postgres
        .spec
        .database
        .as_ref()
        .and_then(|d| d.collation.as_ref())
    {
        initdb["localeCollate"] = json!(collation);
        initdb["localeCType"] = json!(collation);
    }
    initdb
}

fn postgresql(cx: &Context<'_>, grants: &[OpenGrant]) -> Value {
    let mut parameters = parameters(cx);
    // Always set (empty without grants), so the validator never falls back to an older list.
    parameters.insert(
        format!("{VALIDATOR_LIBRARY}.grants"),
        json!(access::grants_setting(grants)),
    );
    json!({
        "parameters": parameters,
        "shared_preload_libraries": [VALIDATOR_LIBRARY],
        "pg_hba": [oauth_hba_line(cx)],
        "pg_ident": ident_lines(cx, &access::ident_lines(grants)),
        "extensions": [{
            "name": VALIDATOR_EXTENSION,
            "image": { "reference": cx.config.validator.image },
            "ld_library_path": ["system"],
        }],
    })
}

/// PostgreSQL settings: memory sizing, the validator, and pgaudit when asked for.
fn parameters(cx: &Context<'_>) -> Map<String, Value> {
    let mut p = Map::new();
    if let Some(memory) = quantity::bytes(&cx.postgres.spec.cluster.resources.memory) {
        p.insert("shared_buffers".into(), json!(megabytes(memory / 4)));
        p.insert(
            "effective_cache_size".into(),
            json!(megabytes(memory / 4 * 3)),
        );
    }
    p.insert("oauth_validator_libraries".into(), json!(VALIDATOR_LIBRARY));
    for (key, value) in validator_settings(cx) {
        p.insert(key, json!(value));
    }
    if let Some(audit) = cx
        .postgres
        .spec
        .cluster
        .audit
        .as_ref()
        .filter(|a| a.enabled)
    {
        let classes = if audit.statement_classes.is_empty() {
            "ddl,role".to_owned()
        } else {
            audit
                .statement_classes
                .iter()
                .map(|c| statement_class(*c))
                .collect::<Vec<_>>()
                .join(",")
        };
        p.insert("pgaudit.log".into(), json!(classes));
        p.insert("pgaudit.log_catalog".into(), json!("off"));
        p.insert("pgaudit.log_parameter".into(), json!("on"));
        p.insert("pgaudit.log_relation".into(), json!("on"));
    }
    p
}

/// The validator's settings as `pgrator_validator.<key>` parameters (the audience from the IdP config).
pub fn validator_settings(cx: &Context<'_>) -> Vec<(String, String)> {
    let mut settings = vec![
        (
            format!("{VALIDATOR_LIBRARY}.audience"),
            cx.config.idp.audience.clone(),
        ),
        (
            format!("{VALIDATOR_LIBRARY}.allowed_clients"),
            cx.config.idp.allowed_clients().join(","),
        ),
    ];
    settings.extend(
        cx.config
            .validator
            .settings
            .iter()
            .map(|(k, v)| (format!("{VALIDATOR_LIBRARY}.{k}"), v.clone())),
    );
    settings
}

fn megabytes(bytes: u128) -> String {
    format!("{}MB", (bytes >> 20).max(1))
}

fn statement_class(class: StatementClass) -> &'static str {
    match class {
        StatementClass::Read => "read",
        StatementClass::Write => "write",
        StatementClass::Function => "function",
        StatementClass::Role => "role",
        StatementClass::Ddl => "ddl",
        StatementClass::Misc => "misc",
        StatementClass::MiscSet => "misc_set",
        StatementClass::All => "all",
    }
}

/// Only members of the access group roles log in with OAuth; everyone else (the application's `app` role with its
/// password) falls through to CNPG's own rules. The map turns the token's identity into the personal role.
pub fn oauth_hba_line(cx: &Context<'_>) -> String {
    let users = ACCESS_ROLES
        .iter()
        .map(|(role, _, _)| format!("+{role}"))
        .collect::<Vec<_>>()
        .join(",");
    format!(
        "hostssl all {users} all oauth issuer=\"{}\" scope=\"{}\" map={}",
        cx.config.idp.issuer,
        cx.config.idp.scopes.join(" "),
        cx.names.ident_map()
    )
}

/// pg_ident.conf lines, sorted so the Cluster does not change when grants are listed in another order.
fn ident_lines(cx: &Context<'_>, ident: &[IdentLine]) -> Vec<String> {
    let mut lines: Vec<&IdentLine> = ident.iter().collect();
    lines.sort();
    lines.dedup();
    lines
        .into_iter()
        .map(|l| format!("{} \"{}\" {}", cx.names.ident_map(), l.identity, l.role))
        .collect()
}

fn access_roles() -> Vec<Value> {
    ACCESS_ROLES
        .iter()
        .map(|(name, in_roles, comment)| {
            json!({
                "name": name,
                "ensure": "present",
                "login": false,
                "inherit": true,
                "inRoles": in_roles,
                "comment": comment,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::tests::{SMALL, postgres};

    fn spec_of(yaml: &str, grants: &[OpenGrant]) -> Value {
        let config = crate::config::tests::example();
        let pg = postgres(yaml);
        let cx = Context::new(&pg, &config).expect("context");
        cluster(&cx, grants).expect("cluster").object.data["spec"].clone()
    }

    #[test]
    fn two_instances_by_default_three_with_one_synchronous_replica_for_ha() {
        let small = spec_of(SMALL, &[]);
        assert_eq!(small["instances"], 2);
        assert!(small["postgresql"].get("synchronous").is_none());
        let ha = spec_of(
            &SMALL.replace("majorVersion", "highAvailability: true\n    majorVersion"),
            &[],
        );
        assert_eq!(ha["instances"], 3);
        assert_eq!(ha["postgresql"]["synchronous"]["number"], 1);
        assert_eq!(ha["affinity"]["podAntiAffinityType"], "required");
    }

    #[test]
    fn memory_sets_the_limit_and_postgres_memory() {
        let spec = spec_of(SMALL, &[]);
        assert_eq!(spec["resources"]["requests"]["memory"], "2Gi");
        assert_eq!(spec["resources"]["limits"]["memory"], "2560Mi");
        assert_eq!(spec["postgresql"]["parameters"]["shared_buffers"], "512MB");
        assert_eq!(
            spec["postgresql"]["parameters"]["effective_cache_size"],
            "1536MB"
        );
    }

    #[test]
    fn the_validator_is_always_there() {
        let spec = spec_of(SMALL, &[]);
        let pg = &spec["postgresql"];
        assert_eq!(
            pg["parameters"]["oauth_validator_libraries"],
            "pgrator_validator"
        );
        assert_eq!(
            pg["parameters"]["pgrator_validator.audience"],
            "300000000000000010"
        );
        assert_eq!(pg["parameters"]["pgrator_validator.identity_claim"], "sub");
        assert_eq!(pg["shared_preload_libraries"], json!(["pgrator_validator"]));
        assert_eq!(pg["extensions"][0]["name"], "pgrator-validator");
        assert_eq!(
            pg["pg_hba"][0],
            "hostssl all +pgrator_read,+pgrator_readwrite,+pgrator_admin all oauth \
             issuer=\"https://auth.example.com\" scope=\"openid\" map=pgrator"
        );
        assert_eq!(pg["pg_ident"], json!([]));
    }

    #[test]
    fn open_grants_become_ident_lines_and_the_validators_list() {
        let grant = |s: &str, r: &str| OpenGrant {
            role: r.into(),
            subject: s.into(),
            level: crate::api::AccessLevel::Read,
            until: 1_800_000_000,
            open: true,
            who: format!("{r}@example.com"),
        };
        let spec = spec_of(SMALL, &[grant("1", "p_alice"), grant("2", "p_bob")]);
        assert_eq!(
            spec["postgresql"]["pg_ident"],
            json!(["pgrator \"1\" p_alice", "pgrator \"2\" p_bob"])
        );
        assert_eq!(
            spec["postgresql"]["parameters"]["pgrator_validator.grants"],
            "p_alice 1 1800000000,p_bob 2 1800000000"
        );
        assert_eq!(
            spec_of(SMALL, &[])["postgresql"]["parameters"]["pgrator_validator.grants"],
            ""
        );
    }

    #[test]
    fn audit_classes_become_pgaudit_log() {
        let yaml = SMALL.replace(
            "majorVersion: \"18\"",
            "majorVersion: \"18\"\n    audit: {enabled: true, statementClasses: [write, misc_set]}",
        );
        let spec = spec_of(&yaml, &[]);
        assert_eq!(
            spec["postgresql"]["parameters"]["pgaudit.log"],
            "write,misc_set"
        );
        let off = spec_of(SMALL, &[]);
        assert!(off["postgresql"]["parameters"].get("pgaudit.log").is_none());
    }
}
