//! Changes to an existing Cluster that restart its pods are staged, not applied at once:
//!
//! - A new validator image together with a change of the preload list or of the validator's settings goes in two
//!   steps: the image first (CNPG rolls the pods for it), the settings once the cluster is healthy again. CNPG
//!   warns against combining an extension image change with a change of what is loaded from it.
//! - With a maintenance window, changes that roll the pods (PostgreSQL image, extension image, preload list) wait
//!   for the window; everything else is applied at once.
//!
//! Pure: the live Cluster, its health and the time are inputs.

use jiff::Timestamp;
use jiff::civil::Weekday;
use serde_json::{Map, Value};

use super::cluster::VALIDATOR_LIBRARY;
use crate::api::postgres::MaintenanceWindow;

const IMAGE: &str = "/spec/imageName";
const EXTENSIONS: &str = "/spec/postgresql/extensions";
const PRELOAD: &str = "/spec/postgresql/shared_preload_libraries";

/// Why part of the desired Cluster is held back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hold {
    pub reason: &'static str,
    pub message: String,
}

/// What the live Cluster says about itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LiveHealth {
    /// CNPG reports the cluster healthy with every instance ready.
    pub healthy: bool,
}

/// The Cluster to apply now, and what is held back if anything.
pub fn stage(
    desired: &Value,
    live: Option<&Value>,
    health: LiveHealth,
    window: Option<&MaintenanceWindow>,
    now: Timestamp,
) -> (Value, Option<Hold>) {
    let Some(live) = live else {
        return (desired.clone(), None);
    };
    let mut staged = desired.clone();
    let mut hold = None;

    let image_changes = differs(desired, live, EXTENSIONS);
    let settings_change =
        differs(desired, live, PRELOAD) || validator_settings(desired) != validator_settings(live);
    if settings_change && (image_changes || !health.healthy) {
        keep_live(&mut staged, live, PRELOAD);
        set_validator_settings(&mut staged, validator_settings(live));
        hold = Some(Hold {
            reason: if image_changes {
                "ValidatorImageFirst"
            } else {
                "WaitingForRollout"
            },
            message: if image_changes {
                "the new validator image is rolled out first; its settings follow once the cluster is healthy".into()
            } else {
                "validator settings wait until the cluster is healthy again".into()
            },
        });
    }

    if let Some(window) = window
        && !in_window(window, now)
    {
        let rolling = [IMAGE, EXTENSIONS, PRELOAD];
        if rolling.iter().any(|p| differs(&staged, live, p)) {
            for p in rolling {
                keep_live(&mut staged, live, p);
            }
            // Settings held for the image must stay held while the image waits.
            set_validator_settings(&mut staged, validator_settings(live));
            hold = Some(Hold {
                reason: "WaitingForMaintenanceWindow",
                message: format!(
                    "changes that restart the database wait for the maintenance window (day {} at {:02}:00 UTC)",
                    window.day, window.hour
                ),
            });
        }
    }
    (staged, hold)
}

/// True within the hour the window starts at, on its day (1 = Monday, UTC).
pub fn in_window(window: &MaintenanceWindow, now: Timestamp) -> bool {
    let t = now.to_zoned(jiff::tz::TimeZone::UTC);
    let day = match t.weekday() {
        Weekday::Monday => 1,
        Weekday::Tuesday => 2,
        Weekday::Wednesday => 3,
        Weekday::Thursday => 4,
        Weekday::Friday => 5,
        Weekday::Saturday => 6,
        Weekday::Sunday => 7,
    };
    day == window.day && i64::from(t.hour()) == i64::from(window.hour)
}

fn differs(a: &Value, b: &Value, pointer: &str) -> bool {
    a.pointer(pointer) != b.pointer(pointer)
}

/// Sets `pointer` in `staged` to the live value (or removes it when the live Cluster has none).
fn keep_live(staged: &mut Value, live: &Value, pointer: &str) {
    let Some((parent, key)) = pointer.rsplit_once('/') else {
        return;
    };
    let Some(Value::Object(map)) = staged.pointer_mut(parent) else {
        return;
    };
    match live.pointer(pointer) {
        Some(v) => {
            map.insert(key.to_owned(), v.clone());
        }
        None => {
            map.remove(key);
        }
    }
}

/// The validator's configuration (staged with its image); the list of grants is data and always goes at once.
fn is_validator_setting(key: &str) -> bool {
    key == "oauth_validator_libraries"
        || key
            .strip_prefix(VALIDATOR_LIBRARY)
            .is_some_and(|rest| rest.starts_with('.') && rest != ".grants")
}

fn validator_settings(cluster: &Value) -> Map<String, Value> {
    cluster
        .pointer("/spec/postgresql/parameters")
        .and_then(Value::as_object)
        .map(|p| {
            p.iter()
                .filter(|(k, _)| is_validator_setting(k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default()
}

fn set_validator_settings(cluster: &mut Value, settings: Map<String, Value>) {
    if let Some(Value::Object(params)) = cluster.pointer_mut("/spec/postgresql/parameters") {
        params.retain(|k, _| !is_validator_setting(k));
        params.extend(settings);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cluster(image: &str, ext: &str, preload: &[&str], audience: &str) -> Value {
        json!({"spec": {"imageName": image, "instances": 2, "postgresql": {
            "extensions": [{"name": "pgrator-validator", "image": {"reference": ext}}],
            "shared_preload_libraries": preload,
            "parameters": {"oauth_validator_libraries": "pgrator_validator", "pgrator_validator.audience": audience, "work_mem": "4MB"},
        }}})
    }

    const HEALTHY: LiveHealth = LiveHealth { healthy: true };
    const ROLLING: LiveHealth = LiveHealth { healthy: false };

    fn monday_3am() -> Timestamp {
        "2026-11-23T03:30:00Z".parse().expect("time")
    }

    #[test]
    fn a_new_cluster_gets_everything() {
        let d = cluster("pg:18", "v2", &["pgrator_validator"], "b");
        assert_eq!(
            stage(&d, None, ROLLING, None, monday_3am()),
            (d.clone(), None)
        );
    }

    #[test]
    fn image_and_settings_go_in_two_steps() {
        let live = cluster("pg:18", "v1", &[], "a");
        let desired = cluster("pg:18", "v2", &["pgrator_validator"], "b");
        // Step 1: the image only.
        let (step1, hold) = stage(&desired, Some(&live), HEALTHY, None, monday_3am());
        assert_eq!(hold.expect("held").reason, "ValidatorImageFirst");
        assert_eq!(step1, cluster("pg:18", "v2", &[], "a"));
        // While CNPG rolls the pods, the settings still wait.
        let (waiting, hold) = stage(&desired, Some(&step1), ROLLING, None, monday_3am());
        assert_eq!(hold.expect("held").reason, "WaitingForRollout");
        assert_eq!(waiting, step1);
        // Step 2: healthy again, the settings follow.
        let (step2, hold) = stage(&desired, Some(&step1), HEALTHY, None, monday_3am());
        assert_eq!((step2, hold), (desired, None));
    }

    #[test]
    fn an_image_alone_or_settings_alone_go_at_once() {
        let live = cluster("pg:18", "v1", &["pgrator_validator"], "a");
        let image_only = cluster("pg:18", "v2", &["pgrator_validator"], "a");
        assert_eq!(
            stage(&image_only, Some(&live), HEALTHY, None, monday_3am()).1,
            None
        );
        let settings_only = cluster("pg:18", "v1", &["pgrator_validator"], "b");
        assert_eq!(
            stage(&settings_only, Some(&live), HEALTHY, None, monday_3am()).1,
            None
        );
    }

    #[test]
    fn rolling_changes_wait_for_the_window_and_others_do_not() {
        let live = cluster("pg:18.0", "v1", &["pgrator_validator"], "a");
        let mut desired = cluster("pg:18.1", "v1", &["pgrator_validator"], "a");
        desired["spec"]["instances"] = json!(3);
        let sunday = MaintenanceWindow { day: 7, hour: 3 };
        let (staged, hold) = stage(&desired, Some(&live), HEALTHY, Some(&sunday), monday_3am());
        assert_eq!(hold.expect("held").reason, "WaitingForMaintenanceWindow");
        assert_eq!(staged["spec"]["imageName"], "pg:18.0");
        assert_eq!(staged["spec"]["instances"], 3, "not a rolling change");
        let monday = MaintenanceWindow { day: 1, hour: 3 };
        assert_eq!(
            stage(&desired, Some(&live), HEALTHY, Some(&monday), monday_3am()),
            (desired, None)
        );
    }

    #[test]
    fn the_window_is_one_hour_on_its_day() {
        let w = MaintenanceWindow { day: 1, hour: 3 };
        assert!(in_window(&w, monday_3am()));
        assert!(!in_window(
            &w,
            "2026-11-23T04:00:00Z".parse().expect("time")
        ));
        assert!(!in_window(
            &w,
            "2026-11-24T03:30:00Z".parse().expect("time")
        ));
    }
}
