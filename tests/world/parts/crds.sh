#!/usr/bin/env bash
# The CustomResourceDefinitions the operator writes to: CloudNativePG, the Barman Cloud plugin, prometheus-operator
# and Config Connector, copied out of their Go modules (never committed) into $CACHE/crds-<versions>/.
source "$(dirname "$0")/lib.sh"
PART=crds

CNPG=v1.30.0
BARMAN=v0.14.0
PROMETHEUS=v0.85.0
# Config Connector: the newest release whose module zip the Go module proxy serves. Newer tags (v1.110.0 and up,
# e.g. v1.157.0) have an .info and a .mod there but their .zip answers 403, so their CRDs cannot be had from it.
KCC=v1.100.0
VERSION="cnpg${CNPG#v}-barman${BARMAN#v}-prom${PROMETHEUS#v}-kcc${KCC#v}"

# take MODULE@VERSION SUBDIR FILE...: copy CRD files out of a module, checking each is a CRD.
take() {
    local module="$1" sub="$2" dir f
    shift 2
    dir="$(module_dir "$module")"
    for f in "$@"; do
        [ -f "$dir/$sub/$f" ] || die "$module has no $sub/$f"
        grep -q '^kind: CustomResourceDefinition' "$dir/$sub/$f" || die "$module $sub/$f is not a CRD"
        install -m 0644 "$dir/$sub/$f" "$STAGE/crds/"
        printf '%s %s/%s\n' "$module" "$sub" "$f" >> "$STAGE/SOURCES"
    done
}

build() {
    command -v go >/dev/null || die "go is not on PATH (the CRDs come from Go modules)"
    mkdir -p "$STAGE/crds"
    take "github.com/cloudnative-pg/cloudnative-pg@$CNPG" config/crd/bases \
        postgresql.cnpg.io_clusters.yaml postgresql.cnpg.io_poolers.yaml postgresql.cnpg.io_scheduledbackups.yaml \
        postgresql.cnpg.io_backups.yaml postgresql.cnpg.io_databases.yaml postgresql.cnpg.io_databaseroles.yaml
    take "github.com/cloudnative-pg/plugin-barman-cloud@$BARMAN" config/crd/bases barmancloud.cnpg.io_objectstores.yaml
    take "github.com/prometheus-operator/prometheus-operator@$PROMETHEUS" example/prometheus-operator-crd \
        monitoring.coreos.com_prometheusrules.yaml monitoring.coreos.com_podmonitors.yaml
    take "github.com/GoogleCloudPlatform/k8s-config-connector@$KCC" config/crds/resources \
        apiextensions.k8s.io_v1_customresourcedefinition_iamserviceaccounts.iam.cnrm.cloud.google.com.yaml \
        apiextensions.k8s.io_v1_customresourcedefinition_iampolicymembers.iam.cnrm.cloud.google.com.yaml \
        apiextensions.k8s.io_v1_customresourcedefinition_storagebuckets.storage.cnrm.cloud.google.com.yaml
}

part_install build
world_env PGRATOR_CRDS_DIR "$(part_dir)/crds"
