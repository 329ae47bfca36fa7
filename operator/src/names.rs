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

/// Hex digits of the hash in a Google service account id (48 bits: a readable part still fits in 30 characters).
pub const GSA_HASH_HEX: usize = 12;
/// Hex digits of the hash in a bucket name (64 bits).
pub const BUCKET_HASH_HEX: usize = 16;

/// A name that must be unique beyond one namespace (a Google service account id, a bucket name):
/// `<prefix>-<namespace>-<name>` cut to fit, then always `-<hash>` of (namespace, name, uid).
///
/// Why the hash is always there: `<namespace>-<name>` alone is not injective (`team-a/orders` and
/// `team/a-orders` both read `team-a-orders`), and a cut long name is ambiguous by construction. The hash input
/// `namespace/name/uid` is injective ('/' occurs in neither a namespace nor a name, a uid has none either), so two
/// Postgres objects share a name only if SHA-256 collides on its first 48 or 64 bits. The uid (random, given by
/// the API server) makes the name unpredictable to anyone who cannot read the Postgres: nobody outside can create
/// the bucket first, nor aim a collision at it, and a Postgres deleted and made again gets a fresh bucket instead
/// of one holding the old database's WAL.
pub fn global_name(prefix: &str, names: &Names, uid: &str, max: usize, hash_hex: usize) -> String {
    let digest = Sha256::digest(format!("{}/{}/{uid}", names.namespace, names.postgres).as_bytes());
    let hash: String = digest
        .iter()
        .flat_map(|b| [b >> 4, b & 0xf])
        .take(hash_hex)
        .map(|n| char::from_digit(u32::from(n), 16).unwrap_or('0'))
        .collect();
    let readable = format!("{prefix}-{}-{}", names.namespace, names.postgres);
    let keep = max.saturating_sub(hash_hex + 1).min(readable.len());
    let cut = readable[..keep].trim_end_matches('-');
    format!("{cut}-{hash}")
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
    /// Google service account ids are 6-30 characters, unique in the whole project: see [`global_name`].
    pub fn gcp_service_account(&self, uid: &str) -> String {
        global_name("pg", self, uid, 30, GSA_HASH_HEX)
    }
    pub fn workload_identity_binding(&self) -> String {
        bounded(&self.postgres, "-workload-identity", 63)
    }
    pub fn bucket_binding(&self) -> String {
        bounded(&self.postgres, "-backup-writer", 63)
    }
    /// Bucket names are global across all of GCS: see [`global_name`].
    pub fn bucket(&self, prefix: &str, uid: &str) -> String {
        let name = global_name(prefix, self, uid, 63, BUCKET_HASH_HEX);
        // GCS refuses names that contain "google" (or look like it); the hash keeps the name unique anyway.
        name.replace("google", "ggl").replace("g00gle", "ggl")
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

    const UID: &str = "8a2f6c1e-0b4d-4e55-9d7e-3c1f2a9b7d01";

    #[test]
    fn short_names_are_kept_as_they_are() {
        let n = Names::new("team-a", "orders");
        assert_eq!(n.pooler(), "orders-pooler");
        let sa = n.gcp_service_account(UID);
        assert!(sa.starts_with("pg-team-a-orders-"), "{sa}");
        assert_eq!(sa.len(), "pg-team-a-orders-".len() + GSA_HASH_HEX, "{sa}");
        let bucket = n.bucket("pgrator-backup", UID);
        assert!(
            bucket.starts_with("pgrator-backup-team-a-orders-"),
            "{bucket}"
        );
        assert_eq!(
            bucket.len(),
            "pgrator-backup-team-a-orders-".len() + BUCKET_HASH_HEX
        );
    }

    #[test]
    fn hyphen_shifted_namespaces_and_names_get_different_global_names() {
        // The hole this closes: both used to be `pg-team-a-orders` and `pgrator-backup-team-a-orders`.
        let (a, b) = (
            Names::new("team-a", "orders"),
            Names::new("team", "a-orders"),
        );
        assert_ne!(a.gcp_service_account(UID), b.gcp_service_account(UID));
        assert_ne!(
            a.bucket("pgrator-backup", UID),
            b.bucket("pgrator-backup", UID)
        );
    }

    #[test]
    fn a_bucket_name_never_contains_google() {
        let bucket = Names::new("google-team", "google-ads").bucket("pgrator-backup", UID);
        assert!(!bucket.contains("google"), "{bucket}");
        assert!(is_dns_label(&bucket), "{bucket}");
    }

    #[test]
    fn a_new_incarnation_gets_new_global_names() {
        let n = Names::new("team-a", "orders");
        let other = "0c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f";
        assert_ne!(
            n.bucket("pgrator-backup", UID),
            n.bucket("pgrator-backup", other)
        );
        assert_eq!(
            n.bucket("pgrator-backup", UID),
            n.bucket("pgrator-backup", UID),
            "stable"
        );
    }

    #[test]
    fn long_names_are_cut_with_a_stable_hash() {
        let n = Names::new("a-rather-long-team-namespace", "orders-database-primary");
        let sa = n.gcp_service_account(UID);
        assert!(sa.len() <= 30 && sa.starts_with("pg-a-rather-long"), "{sa}");
        assert_eq!(sa, n.gcp_service_account(UID), "stable");
        assert_ne!(
            sa,
            Names::new("a-rather-long-team-namespace", "orders-database-replica")
                .gcp_service_account(UID)
        );
        assert!(is_dns_label(&sa), "{sa}");
    }

    proptest! {
        #[test]
        fn every_name_is_a_dns_label_within_its_limit(
            ns in "[a-z]([-a-z0-9]{0,61}[a-z0-9])?",
            name in "[a-z]([-a-z0-9]{0,38}[a-z0-9])?",
            uid in "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
        ) {
            let n = Names::new(&ns, &name);
            for (made, max) in [
                (n.pooler(), 63), (n.object_store(), 63), (n.scheduled_backup(), 63), (n.database(), 63),
                (n.network_policy(), 63), (n.prometheus_rule(), 63), (n.pod_monitor(), 63),
                (n.gcp_service_account(&uid), 30), (n.workload_identity_binding(), 63), (n.bucket_binding(), 63),
                (n.bucket("pgrator-backup", &uid), 63),
            ] {
                prop_assert!(made.len() <= max, "{made} longer than {max}");
                prop_assert!(is_dns_label(&made), "{made} is not a DNS label");
            }
            prop_assert!(n.gcp_service_account(&uid).len() >= 6);
            prop_assert!(n.gcp_service_account(&uid).starts_with("pg-"));
        }

        /// Global names are injective over (namespace, name): a hyphen moved from the end of the namespace to the
        /// start of the name (or back), and long pairs that share the cut readable part, never share a name.
        #[test]
        fn global_names_are_injective_over_namespace_and_name(
            head in "[a-z][a-z0-9]{0,20}",
            tail in "[a-z0-9]{1,20}(-[a-z0-9]{1,8}){0,3}",
            rest in "[a-z0-9]{1,10}",
            long_ns in "[a-z][-a-z0-9]{50,60}[a-z0-9]",
            name_a in "[a-z][a-z0-9]{0,38}",
            name_b in "[a-z][a-z0-9]{0,38}",
        ) {
            // `head-tail` / `rest` against `head` / `tail-rest`: the same `<namespace>-<name>` text.
            let shifted = [
                Names::new(&format!("{head}-{tail}"), &rest),
                Names::new(&head, &format!("{tail}-{rest}")),
            ];
            prop_assert_eq!(
                format!("{}-{}", shifted[0].namespace, shifted[0].postgres),
                format!("{}-{}", shifted[1].namespace, shifted[1].postgres)
            );
            prop_assert_ne!(shifted[0].gcp_service_account(UID), shifted[1].gcp_service_account(UID));
            prop_assert_ne!(shifted[0].bucket("pgrator-backup", UID), shifted[1].bucket("pgrator-backup", UID));
            // Long namespaces: the readable part is the same cut; only the hash tells them apart.
            if name_a != name_b {
                let (a, b) = (Names::new(&long_ns, &name_a), Names::new(&long_ns, &name_b));
                prop_assert_ne!(a.gcp_service_account(UID), b.gcp_service_account(UID));
                prop_assert_ne!(a.bucket("pgrator-backup", UID), b.bucket("pgrator-backup", UID));
            }
        }
    }
}
