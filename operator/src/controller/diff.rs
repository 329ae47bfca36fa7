//! Whether a desired object must be applied: the decision that makes a no-op reconcile write nothing.
//!
//! Server-side apply would tell us too, but only by writing. Instead the live object (from the watch cache) is
//! compared with what we want: every field we set must be present with the same value (fields others or the
//! server added are not ours to judge), and the hash of our last applied intent must match, so that a field we
//! stopped setting is removed by a fresh apply.

use serde_json::Value;
use sha2::{Digest, Sha256};

/// Annotation holding the hash of the intent last applied.
pub const APPLIED_HASH: &str = "data.nais.io/applied-hash";

/// A stable hash of an object's intent (metadata labels, annotations, owner references and body), hex.
pub fn intent_hash(desired: &Value) -> String {
    // serde_json's Map is ordered by key, so the text is canonical for equal values.
    let digest = Sha256::digest(desired.to_string().as_bytes());
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// True when `live` holds every field of `desired` with the same value. Lists must have the same length and match
/// element by element (so an extra pg_hba line someone added counts as drift); objects may have more keys.
pub fn contains(live: &Value, desired: &Value) -> bool {
    match (live, desired) {
        (Value::Object(l), Value::Object(d)) => d
            .iter()
            .all(|(k, dv)| l.get(k).is_some_and(|lv| contains(lv, dv)) || dv.is_null()),
        (Value::Array(l), Value::Array(d)) => {
            l.len() == d.len() && l.iter().zip(d).all(|(lv, dv)| contains(lv, dv))
        }
        (Value::Number(l), Value::Number(d)) => l.as_f64() == d.as_f64(),
        (l, d) => l == d,
    }
}

/// What a live object says about the desired one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Absent,
    UpToDate,
    /// The intent changed since the last apply (a new spec, a new operator version or configuration).
    IntentChanged,
    /// Someone else changed a field we own.
    Drifted,
}

/// Compares a desired object (with the hash annotation already set) with its live version.
pub fn verdict(desired: &Value, live: Option<&Value>) -> Verdict {
    let Some(live) = live else {
        return Verdict::Absent;
    };
    let hash = |v: &Value| {
        v.pointer("/metadata/annotations")
            .and_then(|a| a.get(APPLIED_HASH))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    if hash(desired) != hash(live) {
        return Verdict::IntentChanged;
    }
    if contains(live, desired) {
        Verdict::UpToDate
    } else {
        Verdict::Drifted
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn server_added_fields_are_not_drift() {
        let desired = json!({"spec": {"instances": 2, "ports": [{"port": 5432}]}});
        let live = json!({"spec": {"instances": 2, "ports": [{"port": 5432, "protocol": "TCP"}], "logLevel": "info"}, "status": {}});
        assert!(contains(&live, &desired));
    }

    #[test]
    fn a_changed_or_extra_list_value_is_drift() {
        let desired = json!({"spec": {"instances": 2, "hba": ["a"]}});
        assert!(!contains(
            &json!({"spec": {"instances": 3, "hba": ["a"]}}),
            &desired
        ));
        assert!(!contains(
            &json!({"spec": {"instances": 2, "hba": ["a", "b"]}}),
            &desired
        ));
        assert!(!contains(&json!({"spec": {"hba": ["a"]}}), &desired));
    }

    #[test]
    fn numbers_compare_by_value() {
        assert!(contains(&json!({"n": 2.0}), &json!({"n": 2})));
    }

    #[test]
    fn verdicts() {
        let with_hash = |body: Value, h: &str| {
            let mut v = body;
            v["metadata"] = json!({"annotations": {APPLIED_HASH: h}});
            v
        };
        let desired = with_hash(json!({"spec": {"a": 1}}), "h1");
        assert_eq!(verdict(&desired, None), Verdict::Absent);
        assert_eq!(verdict(&desired, Some(&desired.clone())), Verdict::UpToDate);
        assert_eq!(
            verdict(&desired, Some(&with_hash(json!({"spec": {"a": 1}}), "h0"))),
            Verdict::IntentChanged
        );
        assert_eq!(
            verdict(&desired, Some(&with_hash(json!({"spec": {"a": 2}}), "h1"))),
            Verdict::Drifted
        );
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            any::<bool>().prop_map(Value::from),
            any::<i32>().prop_map(Value::from),
            "[a-z]{0,4}".prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                prop::collection::btree_map("[a-c]", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn a_value_contains_itself(v in json_value()) {
            prop_assert!(contains(&v, &v));
        }

        /// What the server adds is not drift; a field we set that is missing or different is.
        #[test]
        fn added_fields_are_contained_and_missing_or_changed_ones_are_not(
            base in prop::collection::btree_map("[a-c]", json_value(), 1..4),
            extra in json_value().prop_filter("a value", |v| !v.is_null()),
        ) {
            let desired = Value::Object(base.clone().into_iter().collect());
            let mut live = desired.clone();
            live["server-added"] = extra.clone();
            prop_assert!(contains(&live, &desired), "an added field is drift");
            let mut wanted = desired.clone();
            wanted["we-set"] = extra.clone();
            prop_assert!(!contains(&desired, &wanted), "a missing field is not drift");
            let (key, value) = base.iter().next().expect("a field");
            let mut changed = desired.clone();
            changed[key.as_str()] = json!([value, "changed"]);
            prop_assert!(!contains(&changed, &desired), "a changed field is not drift");
        }

        #[test]
        fn the_hash_is_stable_and_tells_values_apart(a in json_value(), b in json_value()) {
            prop_assert_eq!(intent_hash(&a), intent_hash(&a.clone()));
            if a != b {
                prop_assert_ne!(intent_hash(&a), intent_hash(&b));
            }
        }
    }
}
