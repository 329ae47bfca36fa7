#!/usr/bin/env bash
# OCI registry: Debian bookworm's `docker-registry` (the CNCF distribution registry, v2 API). Tests start it with
# their own config file (loopback port, filesystem storage in a temp dir, optional TLS and htpasswd basic auth);
# the package's own service is not used. The htpasswd file is written by the Rust harness (bcrypt), so no
# apache2-utils is needed.
source "$(dirname "$0")/lib.sh"
PART=registry
VERSION=2.8.2

apt_ensure docker-registry

bin=/usr/bin/docker-registry
[ -x "$bin" ] || die "$bin is missing after installing the docker-registry package"
# Pinned by version check: a different distribution release would change the API behaviour the tests rely on.
installed="$("$bin" --version 2>&1)" || die "$bin --version failed: $installed"
case "$installed" in
    *" v$VERSION"*|*" $VERSION"*) ;;
    *) die "expected docker-registry $VERSION, found: $installed" ;;
esac
say "registry: $installed"
world_env PGRATOR_REGISTRY_BIN "$bin"
