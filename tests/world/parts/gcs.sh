#!/usr/bin/env bash
# Object storage for backups: fake-gcs-server, a Google Cloud Storage emulator (its JSON and XML APIs), built from
# the github.com/fsouza/fake-gcs-server module. The test world runs it where database pods reach it and points the
# Barman Cloud sidecar at it with the client libraries' usual emulator setting (STORAGE_EMULATOR_HOST).
# Into $CACHE/gcs-<version>/.
source "$(dirname "$0")/lib.sh"
PART=gcs
FAKE_GCS=v1.56.1
VERSION="${FAKE_GCS#v}"

build() {
    command -v go >/dev/null || die "go is not on PATH (fake-gcs-server is built from its Go module)"
    module_source "github.com/fsouza/fake-gcs-server@$FAKE_GCS" "$STAGE/src"
    [ -f "$STAGE/src/main.go" ] || die "the module has no main.go"
    mkdir -p "$STAGE/bin"
    go_build_static "$STAGE/src" . "$STAGE/bin/fake-gcs-server"
    rm -rf "$STAGE/src"
    "$STAGE/bin/fake-gcs-server" -help 2>&1 | grep -q -- "-scheme" || die "fake-gcs-server has no -scheme flag"
}

part_install build
world_env PGRATOR_FAKE_GCS_BIN "$(part_dir)/bin/fake-gcs-server"
world_env PGRATOR_FAKE_GCS_VERSION "$VERSION"
