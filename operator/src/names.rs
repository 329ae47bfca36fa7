//! Names and labels of the objects made for a `Postgres`. Every name is stable (a pure function of the Postgres's
//! namespace and name), DNS-safe and within the limit of its kind; a name that would be too long is shortened and
//! given a hash suffix so that two long names never collide.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

/// Labels every object we make carries, so `kubectl get -l data.nais.io/postgres=<name>` finds them all.
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub const MANAGER: &str = "pgrator";
pub const POSTGRES_LABEL: &str = "data.nais.io/postgres";

/// The field manager of every server-side apply we make.
pub const FIELD_MANAGER: &str = "pgrator";

/// The longest Postgres name the schema accepts: leaves room for CNPG's own suffixes (`-rw`, `-1`, `-pooler`...).
pub const MAX_POSTGRES_NAME: usize = 40;

/// True for an RFC 1123 label: lowercase letters, digits and '-', starting and ending alphanumeric, <= 63.
pub fn is_dns_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// `base` + `suffix` if it fits in `max`; otherwise `base` cut short, a '-', 8 hex digits of a hash of the whole
/// wanted name, then `suffix`. Stable across runs and versions (the hash is SHA-256).
pub fn bounded(base: &str, suffix: &str, max: usize) -> String {
    let wanted = format!("{base}{suffix}");
    if wanted.len() <= max {
        return wanted;
    }
    let digest = Sha256::digest(wanted.as_bytes());
    let hash: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
    let keep = max.saturating_sub(suffix.len() + hash.len() + 1);
    let cut = base[..keep.min(base.len())].trim_end_matches('-');
    format!("{cut}-{hash}{suffix}")
}

/// The names of everything made for one Postgres `name` in `namespace`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Names {
    pub namespace: String,
    pub postgres: String,
}

impl Names {
    pub fn new(namespace: &str, postgres: &str) -> Self {
        Names {
            namespace: namespace.to_owned(),
            postgres: postgres.to_owned(),
        }
    }

    /// The CNPG Cluster carries the Postgres's own name: its services are `<name>-rw`, `<name>-ro`, and its
    /// Kubernetes service account (made by CNPG) is `<name>` too.
    pub fn cluster(&self) -> String {
        self.postgres.clone()
    }
    pub fn pooler(&self) -> String {
        bounded(&self.postgres, "-pooler", 63)
    }
    pub fn object_store(&self) -> String {
        bounded(&self.postgres, "-backup", 63)
    }
    pub fn scheduled_backup(&self) -> String {
        bounded(&self.postgres, "-daily", 63)
    }
    pub fn database(&self) -> String {
        bounded(&self.postgres, "-app", 63)
    }
    pub fn network_policy(&self) -> String {
        bounded(&self.postgres, "-postgres", 63)
    }
    pub fn pooler_network_policy(&self) -> String {
        bounded(&self.postgres, "-pooler", 63)
    }
    pub fn prometheus_rule(&self) -> String {
        bounded(&self.postgres, "-alerts", 63)
    }
    pub fn pod_monitor(&self) -> String {
        bounded(&self.postgres, "-postgres", 63)
    }
    /// Google service account ids are 6-30 characters, unique in the project: namespace and name both count.
    pub fn gcp_service_account(&self) -> String {
        bounded(&format!("pg-{}-{}", self.namespace, self.postgres), "", 30)
    }
    pub fn workload_identity_binding(&self) -> String {
        bounded(&self.postgres, "-workload-identity", 63)
    }
    pub fn bucket_binding(&self) -> String {
        bounded(&self.postgres, "-backup-writer", 63)
    }
    /// Bucket names are global across GCS: prefix, namespace and name, at most 63.
    pub fn bucket(&self, prefix: &str) -> String {
        bounded(
            &format!("{prefix}-{}-{}", self.namespace, self.postgres),
            "",
            63,
        )
    }
    /// The pg_ident.conf map that personal access lines belong to (referenced by the oauth HBA line).
    pub fn ident_map(&self) -> &'static str {
        "pgrator"
    }

    /// The labels every object made for this Postgres carries.
    pub fn labels(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            (MANAGED_BY.to_owned(), MANAGER.to_owned()),
            (POSTGRES_LABEL.to_owned(), self.postgres.clone()),
        ])
    }

    /// `kubectl get -l` selector for everything made for this Postgres.
    pub fn selector(&self) -> String {
        format!("{MANAGED_BY}={MANAGER},{POSTGRES_LABEL}={}", self.postgres)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn short_names_are_kept_as_they_are() {
        let n = Names::new("team-a", "orders");
        assert_eq!(n.pooler(), "orders-pooler");
        assert_eq!(n.gcp_service_account(), "pg-team-a-orders");
        assert_eq!(n.bucket("pgrator-backup"), "pgrator-backup-team-a-orders");
    }

    #[test]
    fn long_names_are_cut_with_a_stable_hash() {
        let n = Names::new("a-rather-long-team-namespace", "orders-database-primary");
        let sa = n.gcp_service_account();
        assert_eq!(sa.len(), 30, "{sa}");
        assert_eq!(sa, n.gcp_service_account(), "stable");
        assert_ne!(
            sa,
            Names::new("a-rather-long-team-namespace", "orders-database-replica")
                .gcp_service_account()
        );
        assert!(is_dns_label(&sa), "{sa}");
    }

    proptest! {
        #[test]
        fn every_name_is_a_dns_label_within_its_limit(
            ns in "[a-z]([-a-z0-9]{0,61}[a-z0-9])?",
            name in "[a-z]([-a-z0-9]{0,38}[a-z0-9])?",
        ) {
            let n = Names::new(&ns, &name);
            for (made, max) in [
                (n.pooler(), 63), (n.object_store(), 63), (n.scheduled_backup(), 63), (n.database(), 63),
                (n.network_policy(), 63), (n.prometheus_rule(), 63), (n.pod_monitor(), 63),
                (n.gcp_service_account(), 30), (n.workload_identity_binding(), 63), (n.bucket_binding(), 63),
                (n.bucket("pgrator-backup"), 63),
            ] {
                prop_assert!(made.len() <= max, "{made} longer than {max}");
                prop_assert!(is_dns_label(&made), "{made} is not a DNS label");
            }
            prop_assert!(n.gcp_service_account().len() >= 6);
        }
    }
}
