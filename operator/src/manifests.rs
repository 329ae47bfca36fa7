//! The install manifests, generated from code so they cannot drift from what the operator does: the CRDs, a
//! service account with least-privilege RBAC (exactly the kinds and verbs the reconciler uses), the leader lease
//! Role, and the Deployment. `pgrator-operator manifests` prints them; `operator/deploy/install.yaml` is committed
//! and a test fails when it is out of date.

use serde_json::{Value, json};

use crate::desired::kinds;

/// Where and what to install.
pub struct Install<'a> {
    pub namespace: &'a str,
    pub image: &'a str,
    pub config_yaml: &'a str,
}

const NAME: &str = "pgrator-operator";
const WRITE: [&str; 6] = ["get", "list", "watch", "create", "patch", "delete"];

/// Every object of the installation, in apply order.
pub fn install(i: &Install<'_>) -> Vec<Value> {
    let labels = json!({"app.kubernetes.io/name": NAME, "app.kubernetes.io/managed-by": "pgrator"});
    let mut objects: Vec<Value> = crate::api::crds()
        .into_iter()
        .map(|(_, crd)| serde_json::to_value(crd).unwrap_or_default())
        .collect();
    objects.push(json!({
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": i.namespace, "labels": labels},
    }));
    objects.push(json!({
        "apiVersion": "v1", "kind": "ServiceAccount",
        "metadata": {"name": NAME, "namespace": i.namespace, "labels": labels},
    }));
    objects.push(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": NAME, "labels": labels},
        "rules": cluster_rules(),
    }));
    objects.push(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": NAME, "labels": labels},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": NAME},
        "subjects": [{"kind": "ServiceAccount", "name": NAME, "namespace": i.namespace}],
    }));
    objects.push(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": format!("{NAME}-leader"), "namespace": i.namespace, "labels": labels},
        "rules": [{"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get", "create", "update"]}],
    }));
    objects.push(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": format!("{NAME}-leader"), "namespace": i.namespace, "labels": labels},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": format!("{NAME}-leader")},
        "subjects": [{"kind": "ServiceAccount", "name": NAME, "namespace": i.namespace}],
    }));
    objects.push(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": format!("{NAME}-config"), "namespace": i.namespace, "labels": labels},
        "data": {"config.yaml": i.config_yaml},
    }));
    objects.push(deployment(i, &labels));
    objects.extend(access_policy(i.namespace, &labels));
    objects
}

/// The name of the policy that lets only the operator (whose access API checks the person, the team, the reason
/// and records the audit event) create or change a PostgresAccess.
pub const ACCESS_POLICY: &str = "pgrator-postgresaccess-guard";

/// The Kubernetes user name of the operator's service account in `namespace`.
pub fn operator_user(namespace: &str) -> String {
    format!("system:serviceaccount:{namespace}:{NAME}")
}

/// A ValidatingAdmissionPolicy and its binding: a PostgresAccess is created, and its spec or finalizers changed,
/// by the operator's service account alone. Anyone with RBAC rights may still read one, or delete one (a
/// revocation, which the finalizer carries through); nobody else can grant access by writing the object, nor skip
/// the revocation by removing the finalizer. Enforced by the API server itself, for every client.
pub fn access_policy(namespace: &str, labels: &Value) -> Vec<Value> {
    let operator = operator_user(namespace);
    vec![
        json!({
            "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
            "metadata": {"name": ACCESS_POLICY, "labels": labels},
            "spec": {
                "failurePolicy": "Fail",
                "matchConstraints": {"resourceRules": [{
                    "apiGroups": ["data.nais.io"], "apiVersions": ["*"],
                    "operations": ["CREATE", "UPDATE"], "resources": ["postgresaccesses"],
                }]},
                "variables": [
                    {"name": "fromOperator", "expression": format!("request.userInfo.username == '{operator}'")},
                    {"name": "ownLabels", "expression": "['app.kubernetes.io/managed-by', 'data.nais.io/postgres', 'data.nais.io/subject']"},
                ],
                "validations": [
                    {
                        "expression": "variables.fromOperator || request.operation != 'CREATE'",
                        "message": "a PostgresAccess is made by the access API only: ask with `pgrator postgres access <postgres> --level <level> --reason <why>`",
                        "reason": "Forbidden",
                    },
                    {
                        "expression": "variables.fromOperator || request.operation != 'UPDATE' || (object.spec == oldObject.spec && object.metadata.?finalizers.orValue([]) == oldObject.metadata.?finalizers.orValue([]) && variables.ownLabels.all(k, object.metadata.?labels.orValue({})[?k] == oldObject.metadata.?labels.orValue({})[?k]))",
                        "message": "only the operator may change a PostgresAccess, its finalizers or its data.nais.io labels; delete it to revoke the access",
                        "reason": "Forbidden",
                    },
                ],
            },
        }),
        json!({
            "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": {"name": ACCESS_POLICY, "labels": labels},
            "spec": {"policyName": ACCESS_POLICY, "validationActions": ["Deny"]},
        }),
    ]
}

/// The cluster-wide rules: our own resources, and exactly the verbs the reconciler uses on each dependent kind.
pub fn cluster_rules() -> Vec<Value> {
    let mut rules = vec![
        json!({"apiGroups": ["data.nais.io"], "resources": ["postgres"], "verbs": ["get", "list", "watch", "patch", "update"]}),
        json!({"apiGroups": ["data.nais.io"], "resources": ["postgres/status"], "verbs": ["get", "patch", "update"]}),
        json!({"apiGroups": ["data.nais.io"], "resources": ["postgres/finalizers"], "verbs": ["update"]}),
        // Personal access: the access API creates them (only it may: see `access_policy`), the operator reports
        // their status, holds and releases their revocation finalizer, and deletes them after the retention.
        json!({"apiGroups": ["data.nais.io"], "resources": ["postgresaccesses"], "verbs": ["get", "list", "watch", "create", "patch", "delete"]}),
        json!({"apiGroups": ["data.nais.io"], "resources": ["postgresaccesses/finalizers"], "verbs": ["update"]}),
        json!({"apiGroups": ["data.nais.io"], "resources": ["postgresaccesses/status"], "verbs": ["get", "patch", "update"]}),
        json!({"apiGroups": ["postgresql.cnpg.io"], "resources": ["databaseroles"], "verbs": WRITE}),
        json!({"apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch"]}),
    ];
    let mut seen = Vec::new();
    for group in kinds::ALL.iter().map(|k| k.group) {
        if seen.contains(&group) {
            continue;
        }
        seen.push(group);
        let resources: Vec<&str> = kinds::ALL
            .iter()
            .filter(|k| k.group == group)
            .map(|k| k.plural)
            .collect();
        rules.push(json!({"apiGroups": [group], "resources": resources, "verbs": WRITE}));
    }
    rules
}

fn deployment(i: &Install<'_>, labels: &Value) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": NAME, "namespace": i.namespace, "labels": labels},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app.kubernetes.io/name": NAME}},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "serviceAccountName": NAME,
                    "securityContext": {"runAsNonRoot": true, "runAsUser": 65532, "seccompProfile": {"type": "RuntimeDefault"}},
                    "terminationGracePeriodSeconds": 30,
                    "containers": [{
                        "name": "operator",
                        "image": i.image,
                        "args": ["run", "--config", "/etc/pgrator/config.yaml", "--lease-namespace", i.namespace, "--log-json"],
                        "env": [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
                        "ports": [{"name": "metrics", "containerPort": 8080}],
                        "livenessProbe": {"httpGet": {"path": "/healthz", "port": "metrics"}, "periodSeconds": 10},
                        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}},
                        "securityContext": {"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true, "capabilities": {"drop": ["ALL"]}},
                        "volumeMounts": [{"name": "config", "mountPath": "/etc/pgrator", "readOnly": true}],
                    }],
                    "volumes": [{"name": "config", "configMap": {"name": format!("{NAME}-config")}}],
                },
            },
        },
    })
}

/// The manifests as one multi-document YAML text.
pub fn to_yaml(objects: &[Value]) -> Result<String, serde_yaml::Error> {
    let mut out = String::from(
        "# Generated by `pgrator-operator manifests` (just generate): do not edit by hand.\n",
    );
    for o in objects {
        out.push_str("---\n");
        out.push_str(&serde_yaml::to_string(o)?);
    }
    Ok(out)
}
