#!/usr/bin/env bash
# CloudNativePG's Barman Cloud plugin, which every Cluster pgrator writes names as its WAL archiver (CNPG refuses
# to reconcile a Cluster whose plugin is not installed): the plugin's `manager` (the plugin's operator and, in the
# sidecar CNPG injects into database pods, its instance part) built from the github.com/cloudnative-pg/
# plugin-barman-cloud module, its release manifest, and the root filesystem of its sidecar image: Debian with
# Python and a virtualenv at /venv holding barman-cloud with the versions the plugin pins
# (containers/sidecar-requirements.txt), installed from PyPI. Into $CACHE/barman-<version>/.
#
# v0.14.0, not 0.15.0: 0.15.0 needs github.com/cloudnative-pg/machinery v0.6.0, which the module proxy here refuses.
source "$(dirname "$0")/lib.sh"
PART=barman
PLUGIN=v0.14.0
SUITE=unstable
VERSION="${PLUGIN#v}"
RUNTIME_PACKAGES=python3,python3-venv,libpq5,liblz4-1,libsnappy1v5,ca-certificates
BUILD_PACKAGES=python3,python3-venv,python3-dev,build-essential,libpq-dev,liblz4-dev,libsnappy-dev,ca-certificates

build() {
    command -v go >/dev/null || die "go is not on PATH (the plugin is built from its Go module)"
    apt_ensure debootstrap
    module_source "github.com/cloudnative-pg/plugin-barman-cloud@$PLUGIN" "$STAGE/src"
    [ -f "$STAGE/src/manifest.yaml" ] || die "the module has no manifest.yaml"
    mkdir -p "$STAGE/bin"
    go_build_static "$STAGE/src" ./cmd/manager "$STAGE/bin/manager"
    install -m 0644 "$STAGE/src/manifest.yaml" "$STAGE/manifest.yaml"

    # The virtualenv is built where compilers are (psycopg2 builds from source), then moved into a clean root.
    local builder="$STAGE/builder" root="$STAGE/rootfs" mirror
    mirror="$(debian_mirror)"
    run debootstrap --variant=minbase --include="$BUILD_PACKAGES" "$SUITE" "$builder" "$mirror" \
        >"$STAGE/debootstrap-builder.log" 2>&1 || die "debootstrap failed, see $STAGE/debootstrap-builder.log"
    install -m 0644 /etc/resolv.conf "$builder/etc/resolv.conf"
    # pip reaches PyPI as this machine does: with this machine's trust store too (it may hold a proxy's CA; pip
    # verifies with the system store, so the builder's own bundle gets it; the builder is thrown away).
    cat /etc/ssl/certs/ca-certificates.crt >> "$builder/etc/ssl/certs/ca-certificates.crt"
    install -m 0644 "$STAGE/src/containers/sidecar-requirements.txt" "$builder/requirements.txt"
    run chroot "$builder" python3 -m venv /venv
    run chroot "$builder" env -u PIP_FIND_LINKS -u PIP_CERT /venv/bin/pip install --quiet --no-cache-dir \
        --require-hashes -r /requirements.txt
    local got
    got="$(chroot "$builder" /venv/bin/barman-cloud-wal-archive --version 2>&1)"
    grep -q "3.19.1" <<<"$got" || die "barman-cloud-wal-archive --version says: $got"
    run debootstrap --variant=minbase --include="$RUNTIME_PACKAGES" "$SUITE" "$root" "$mirror" \
        >"$STAGE/debootstrap.log" 2>&1 || die "debootstrap failed, see $STAGE/debootstrap.log"
    cp -a "$builder/venv" "$root/venv"
    rm -rf "$builder" "$STAGE/src"
    chroot "$root" /venv/bin/python3 -c "import barman, psycopg2, google.cloud.storage" \
        || die "the sidecar's virtualenv does not import in the runtime root"
    rm -rf "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/usr/share/locale/* \
        "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/* "$root"/var/log/*.log "$root"/debootstrap
    cp "$STAGE/bin/manager" "$root/manager"
    run tar --create --file="$STAGE/sidecar.tar" --directory="$root" --sort=name --numeric-owner \
        --mtime=@0 --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
        --exclude=./dev/* --exclude=./proc/* --exclude=./sys/* --exclude=./run/* --exclude=./tmp/* .
    rm -rf "$root"
    say "barman: sidecar layer of $(( $(stat -c %s "$STAGE/sidecar.tar") / 1048576 )) MiB"
}

part_install build
world_env PGRATOR_BARMAN_DIR "$(part_dir)"
world_env PGRATOR_BARMAN_VERSION "$VERSION"
