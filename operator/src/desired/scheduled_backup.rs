//! The daily base backup, through the Barman Cloud plugin, from a standby when there is one. The time of day is
//! spread by a stable hash of namespace and name so that the databases of a cluster do not all back up at once.

use serde_json::json;
use sha2::{Digest, Sha256};

use super::cluster::BARMAN_PLUGIN;
use super::{Child, Context, kinds};

pub fn scheduled_backup(cx: &Context<'_>) -> Child {
    let (hour, minute) = spread(&cx.names.namespace, &cx.names.postgres);
    cx.object(
        kinds::SCHEDULED_BACKUP,
        cx.names.scheduled_backup(),
        json!({"spec": {
            "cluster": {"name": cx.names.cluster()},
            // CNPG's six-field cron: seconds first.
            "schedule": format!("0 {minute} {hour} * * *"),
            "backupOwnerReference": "self",
            "method": "plugin",
            "pluginConfiguration": {"name": BARMAN_PLUGIN},
            "target": "prefer-standby",
            "immediate": true,
        }}),
    )
}

/// An hour (0-5, the quiet hours UTC) and a minute, stable for one database, spread across databases.
pub fn spread(namespace: &str, name: &str) -> (u8, u8) {
    let digest = Sha256::digest(format!("{namespace}/{name}").as_bytes());
    (digest[0] % 6, digest[1] % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_time_is_stable_in_range_and_spread() {
        assert_eq!(spread("team-a", "orders"), spread("team-a", "orders"));
        let times: std::collections::BTreeSet<_> = (0..50)
            .map(|i| spread("team-a", &format!("db{i}")))
            .collect();
        assert!(times.len() > 30, "{times:?}");
        assert!(times.iter().all(|(h, m)| *h < 6 && *m < 60));
    }
}
