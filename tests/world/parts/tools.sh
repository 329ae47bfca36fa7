#!/usr/bin/env bash
# Build tools: `just` (PyPI wheel rust-just, which ships the binary) and the Debian packages the builds need
# (libclang for pgrx's bindgen, a C toolchain).
source "$(dirname "$0")/lib.sh"
PART=tools
VERSION=just-1.59.0

apt_ensure build-essential libclang-dev clang pkg-config libssl-dev

build() {
    local dl="$STAGE/download"
    mkdir -p "$dl" "$STAGE/bin"
    run python3 -m pip download --quiet --no-deps --only-binary=:all: --dest "$dl" "rust-just==${VERSION#just-}"
    local wheel
    wheel="$(ls "$dl"/rust_just-*.whl 2>/dev/null | head -n1)"
    [ -n "$wheel" ] || die "no rust-just wheel downloaded"
    run python3 -m zipfile -e "$wheel" "$dl/unpacked"
    local bin
    bin="$(find "$dl/unpacked" -type f -name just | head -n1)"
    [ -n "$bin" ] || die "the rust-just wheel has no just binary"
    install -m 0755 "$bin" "$STAGE/bin/just"
    rm -rf "$dl"
    "$STAGE/bin/just" --version | grep -q "${VERSION#just-}" || die "just --version does not say ${VERSION#just-}"
}

part_install build
world_env PGRATOR_JUST "$(part_dir)/bin/just"
