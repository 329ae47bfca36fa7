#!/usr/bin/env bash
# The test world's OpenID Provider: tests/world/idp, a Go program on Zitadel's library zitadel/oidc v3, built with
# this machine's Go. Modules come from the Go module proxy, pinned by go.mod and go.sum. The version is a hash of
# the sources and the Go version, so any change to the program rebuilds it.
source "$(dirname "$0")/lib.sh"
PART=idp
SRC="$WORLD_DIR/idp"

command -v go >/dev/null 2>&1 || die "go is not installed (needed to build $SRC)"
VERSION="$(
    cd "$SRC" && { go version; sha256sum go.mod go.sum $(ls *.go | LC_ALL=C sort); } | sha256sum | cut -c1-16
)"

build() {
    mkdir -p "$STAGE/bin"
    (cd "$SRC" && run env CGO_ENABLED=0 GOFLAGS=-mod=readonly go build -trimpath -buildvcs=false \
        -o "$STAGE/bin/pgrator-test-idp" .)
    local usage
    usage="$("$STAGE/bin/pgrator-test-idp" -h 2>&1 || true)"
    [[ "$usage" == *-issuer* ]] || die "the built IdP does not run: $usage"
}

part_install build
world_env PGRATOR_IDP_BIN "$(part_dir)/bin/pgrator-test-idp"
