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
    local json dir
    json="$(cd "$STAGE" && GOTOOLCHAIN=local GOFLAGS=-mod=mod go mod download -json \
        "github.com/cloudnative-pg/cloudnative-pg@$CNPG")" || die "go mod download failed: $json"
    dir="$(printf '%s\n' "$json" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')"
    [ -d "$dir/cmd/manager" ] || die "the module has no cmd/manager: $json"
    # `go install pkg@version` asks the proxy for the module's version list (refused here); building inside a
    # writable copy of the module uses only its own go.mod and go.sum.
    cp -r "$dir" "$STAGE/src"
    chmod -R u+w "$STAGE/src"
    mkdir -p "$STAGE/bin"
    local started=$SECONDS
    (cd "$STAGE/src" && run env GOTOOLCHAIN=local GOFLAGS=-buildvcs=false CGO_ENABLED=0 \
        go build -trimpath -ldflags="-s -w" -o "$STAGE/bin/manager" ./cmd/manager)
    say "cnpg: go build took $((SECONDS - started)) s"
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
