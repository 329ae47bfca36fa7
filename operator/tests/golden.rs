//! Golden files: what the operator makes for a few Postgres objects, one readable YAML file per object under
//! `tests/golden/<case>/`. A change to any builder shows up here as a diff to review.
//! Rewrite them with `UPDATE_GOLDEN=1 cargo test -p pgrator-operator --test golden`.

use std::collections::BTreeSet;
use std::path::Path;

use pgrator_operator::api::Postgres;
use pgrator_operator::config::OperatorConfig;
use pgrator_operator::desired::{OpenGrant, desired};
use serde_json::Value;

const CASES: [&str; 3] = ["small", "ha-audit", "long-name"];

fn render(case: &str) -> Vec<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(case);
    let text = std::fs::read_to_string(dir.join("postgres.yaml")).expect("read the fixture");
    let postgres: Postgres = serde_yaml::from_str(&text).expect("the fixture is a Postgres");
    let config = OperatorConfig::from_yaml(include_str!("../deploy/config.example.yaml"))
        .expect("the example configuration");
    // One case with a personal access line, to show where it lands.
    let grants = if case == "small" {
        vec![OpenGrant {
            role: "p_alice_read_1a2b3c4d5e6f".into(),
            subject: "310000000000000001".into(),
            level: pgrator_operator::api::AccessLevel::Read,
            until: 1_795_000_000,
            open: true,
            who: "alice@example.com".into(),
        }]
    } else {
        Vec::new()
    };
    desired(&postgres, &config, &grants)
        .expect("desired objects")
        .into_iter()
        .map(|child| {
            let object = serde_json::to_value(&child.object).expect("serialize");
            // apiVersion, kind, metadata, then the rest, as people write them.
            let mut ordered = serde_yaml::Mapping::new();
            for key in ["apiVersion", "kind", "metadata"] {
                if let Some(v) = object.get(key) {
                    ordered.insert(key.into(), serde_yaml::to_value(v).expect("yaml"));
                }
            }
            if let Value::Object(map) = &object {
                for (k, v) in map {
                    if !["apiVersion", "kind", "metadata"].contains(&k.as_str()) {
                        ordered.insert(k.as_str().into(), serde_yaml::to_value(v).expect("yaml"));
                    }
                }
            }
            let file = format!("{}-{}.yaml", child.kind.kind.to_lowercase(), child.name());
            (file, serde_yaml::to_string(&ordered).expect("yaml text"))
        })
        .collect()
}

#[test]
fn desired_objects_match_the_golden_files() {
    // Only UPDATE_GOLDEN=1 rewrites (UPDATE_GOLDEN=0 used to rewrite too).
    let update = std::env::var("UPDATE_GOLDEN").is_ok_and(|v| v == "1");
    let mut stale = Vec::new();
    for case in CASES {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/golden")
            .join(case);
        let rendered = render(case);
        let wanted: BTreeSet<String> = rendered.iter().map(|(f, _)| f.clone()).collect();
        for (file, text) in &rendered {
            let path = dir.join(file);
            if update {
                std::fs::write(&path, text).expect("write a golden file");
            } else if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
                stale.push(format!("{} differs or is missing", path.display()));
            }
        }
        for entry in std::fs::read_dir(&dir).expect("list the case") {
            let name = entry
                .expect("entry")
                .file_name()
                .to_string_lossy()
                .into_owned();
            if name != "postgres.yaml" && !wanted.contains(&name) {
                if update {
                    std::fs::remove_file(dir.join(&name)).expect("remove a stale golden file");
                } else {
                    stale.push(format!("{case}/{name} is no longer produced"));
                }
            }
        }
    }
    assert!(
        stale.is_empty(),
        "golden files out of date (review, then UPDATE_GOLDEN=1 cargo test -p pgrator-operator --test golden):\n{}",
        stale.join("\n")
    );
}

#[test]
fn the_listing_order_of_grants_changes_nothing() {
    // The access store lists grants in any order: the Cluster and the personal roles must not change with it.
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/small/postgres.yaml"),
    )
    .expect("read the fixture");
    let postgres: Postgres = serde_yaml::from_str(&text).expect("the fixture is a Postgres");
    let config = OperatorConfig::from_yaml(include_str!("../deploy/config.example.yaml"))
        .expect("the example configuration");
    let grant = |role: &str, subject: &str, until: i64, open: bool| OpenGrant {
        role: role.into(),
        subject: subject.into(),
        level: pgrator_operator::api::AccessLevel::Read,
        until,
        open,
        who: format!("{subject}@example.com"),
    };
    let grants = [
        grant(
            "p_alice_read_1a2b3c4d5e6f",
            "310000000000000001",
            1_795_000_000,
            true,
        ),
        grant(
            "p_bob_read_6f5e4d3c2b1a",
            "310000000000000002",
            1_794_000_000,
            false,
        ),
        grant(
            "p_carol_read_0a0b0c0d0e0f",
            "310000000000000003",
            1_796_000_000,
            true,
        ),
    ];
    let mut reversed = grants.clone();
    reversed.reverse();
    let forward = desired(&postgres, &config, &grants).expect("desired");
    let backward = desired(&postgres, &config, &reversed).expect("desired");
    assert_eq!(forward.len(), 16, "13 objects and three personal roles");
    assert_eq!(forward, backward);
}
