#!/usr/bin/env bash
# The root filesystem of the test world's PostgreSQL 18 and PgBouncer images, laid out as CloudNativePG's "system"
# images are: Debian with the postgresql-18 packages (server binaries under /usr/lib/postgresql/18/bin, which the
# image puts on PATH), pgaudit and pgvector, pgbouncer, and the postgres user as uid/gid 26 (CNPG's default
# postgresUID/postgresGID). Made with debootstrap from this machine's Debian archive, then packed as one layer
# (rootfs.tar, deterministic) that the test world wraps into OCI images. Into $CACHE/pgroot-<version>/.
source "$(dirname "$0")/lib.sh"
PART=pgroot
# The postgresql-18 version the image must carry (the same Debian build as the psql part); debootstrap takes the
# suite's current packages, so the build checks it got exactly this one.
PG_DEBIAN=18.6-3
SUITE=unstable
VERSION="$PG_DEBIAN-r2"  # r2: /usr/bin/pgbouncer
PACKAGES=postgresql-18,postgresql-18-pgaudit,postgresql-18-pgvector,pgbouncer,ca-certificates

build() {
    apt_ensure debootstrap
    local root="$STAGE/rootfs" started=$SECONDS
    run debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$root" "$(debian_mirror)" \
        >"$STAGE/debootstrap.log" 2>&1 || die "debootstrap failed, see $STAGE/debootstrap.log"
    say "pgroot: debootstrap took $((SECONDS - started)) s"
    local got
    got="$(chroot "$root" dpkg-query -W -f='${Version}' postgresql-18)"
    [ "$got" = "$PG_DEBIAN" ] || die "the $SUITE suite now has postgresql-18 $got, not $PG_DEBIAN: update PG_DEBIAN (and the psql part) together"
    [ -x "$root/usr/lib/postgresql/18/bin/postgres" ] || die "no postgres binary in the root filesystem"
    [ -x "$root/usr/sbin/pgbouncer" ] || die "no pgbouncer in the root filesystem"
    # CNPG's PgBouncer manager runs /usr/bin/pgbouncer (where CNPG's own PgBouncer image has it); Debian puts it in
    # /usr/sbin.
    ln -sf ../sbin/pgbouncer "$root/usr/bin/pgbouncer"

    # postgres as uid/gid 26, as in CNPG's images (Debian made it 101 or so): renumber it and its files.
    local old_uid old_gid
    old_uid="$(chroot "$root" id -u postgres)"
    old_gid="$(chroot "$root" id -g postgres)"
    # Debian's own gid 26 (the tape group) and any uid 26 move out of the way first.
    local other
    other="$(chroot "$root" getent group 26 | cut -d: -f1 || true)"
    if [ -n "$other" ] && [ "$other" != postgres ]; then
        run chroot "$root" groupmod -g 2026 "$other"
        find "$root" -xdev -gid 26 -exec chgrp -h 2026 {} +
    fi
    other="$(chroot "$root" getent passwd 26 | cut -d: -f1 || true)"
    if [ -n "$other" ] && [ "$other" != postgres ]; then
        run chroot "$root" usermod -u 2026 "$other"
        find "$root" -xdev -uid 26 -exec chown -h 2026 {} +
    fi
    run chroot "$root" groupmod -g 26 postgres
    run chroot "$root" usermod -u 26 -g 26 postgres
    find "$root" -xdev \( -uid "$old_uid" -o -gid "$old_gid" \) -exec chown -h 26:26 {} +
    # What a server image does not need: documentation, translations, apt's lists and caches, the PostgreSQL
    # cluster Debian's package made at install (CNPG runs initdb itself in its own volume).
    rm -rf "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/usr/share/locale/* \
        "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/* "$root"/var/cache/debconf/*-old \
        "$root"/var/lib/postgresql/18 "$root"/etc/postgresql/18 "$root"/var/log/*.log "$root"/debootstrap
    # One deterministic layer: sorted, fixed times and owners by number, no device nodes or kernel mounts.
    run tar --create --file="$STAGE/rootfs.tar" --directory="$root" --sort=name --numeric-owner \
        --mtime=@0 --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
        --exclude=./dev/* --exclude=./proc/* --exclude=./sys/* --exclude=./run/* --exclude=./tmp/* .
    rm -rf "$root"
    printf '%s\n' "$got" > "$STAGE/postgresql-version"
    say "pgroot: layer of $(( $(stat -c %s "$STAGE/rootfs.tar") / 1048576 )) MiB"
}

part_install build
world_env PGRATOR_PGROOT_TAR "$(part_dir)/rootfs.tar"
world_env PGRATOR_PGROOT_VERSION "$VERSION"
