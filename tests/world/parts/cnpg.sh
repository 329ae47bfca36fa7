#!/usr/bin/env bash
# CloudNativePG itself: its `manager` binary (the operator, the instance manager it copies into every PostgreSQL
# pod, and the PgBouncer manager) built from the github.com/cloudnative-pg/cloudnative-pg module, and the release
# manifest of the same version out of that module (CRDs, RBAC, Deployment, webhook configurations), which the
# test world applies as CNPG is installed. Into $CACHE/cnpg-<version>/.
#
# v1.30.0, not the newer 1.30.1: 1.30.1 needs github.com/cloudnative-pg/machinery v0.6.0, which the module proxy
# here refuses ("not available"); 1.30.0 uses v0.5.0, which it serves.
source "$(dirname "$0")/lib.sh"
PART=cnpg
CNPG=v1.30.0
VERSION="${CNPG#v}"

build() {
    command -v go >/dev/null || die "go is not on PATH (CloudNativePG is built from its Go module)"
    module_source "github.com/cloudnative-pg/cloudnative-pg@$CNPG" "$STAGE/src"
    [ -d "$STAGE/src/cmd/manager" ] || die "the module has no cmd/manager"
    mkdir -p "$STAGE/bin"
    go_build_static "$STAGE/src" ./cmd/manager "$STAGE/bin/manager"
    install -m 0644 "$STAGE/src/releases/cnpg-${CNPG#v}.yaml" "$STAGE/cnpg.yaml"
    rm -rf "$STAGE/src"
    local out
    out="$("$STAGE/bin/manager" version 2>&1)"
    grep -q "${CNPG#v}" <<<"$out" || die "manager version does not say ${CNPG#v}: $out"
    grep -q '^kind: ValidatingWebhookConfiguration' "$STAGE/cnpg.yaml" || die "the release manifest has no webhooks"
}

part_install build
world_env PGRATOR_CNPG_DIR "$(part_dir)"
world_env PGRATOR_CNPG_VERSION "$VERSION"
