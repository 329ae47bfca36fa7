#!/usr/bin/env bash
# psql and libpq 18 built with OpenSSL and libcurl, so psql runs the real OAuth Device Authorization flow.
# Source: Debian's postgresql-18 source package from the unstable suite, fetched with a private apt configuration
# (the archive is the one this machine's apt already uses; nothing else is touched).
source "$(dirname "$0")/lib.sh"
PART=psql
VERSION=18.6-3

build() {
    apt_ensure build-essential bison flex libssl-dev libcurl4-openssl-dev zlib1g-dev pkg-config dpkg-dev \
        libicu-dev libreadline-dev
    local apt="$STAGE/apt" src="$STAGE/src"
    mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial" "$src"
    printf 'deb-src [trusted=yes] %s unstable main\n' "$(debian_mirror)" > "$apt/sources.list"
    local opts=(-o "Dir::Etc::sourcelist=$apt/sources.list" -o Dir::Etc::sourceparts=/nonexistent
        -o "Dir::State::Lists=$apt/lists" -o "Dir::Cache=$apt/cache" -o APT::Sandbox::User=root)
    run apt-get "${opts[@]}" update -qq
    (cd "$src" && run apt-get "${opts[@]}" source --download-only -qq "postgresql-18=$VERSION")
    local orig
    orig="$(ls "$src"/postgresql-18_*.orig.tar.* 2>/dev/null | head -n1)"
    [ -n "$orig" ] || die "apt-get source fetched no upstream tarball"
    run tar -xf "$orig" -C "$src"
    local tree
    tree="$(find "$src" -maxdepth 1 -type d -name 'postgresql-18*' | head -n1)"
    [ -n "$tree" ] || die "no source tree in $orig"
    # Configure for the final location (rpath), install through DESTDIR into the stage, then lift it out.
    local prefix final
    final="$(part_dir)/install"
    prefix="$STAGE/install"
    (cd "$tree" && run ./configure --quiet --prefix="$final" --with-openssl --with-libcurl --without-icu \
        --with-readline >"$STAGE/configure.log" 2>&1) || die "configure failed, see $STAGE/configure.log"
    local jobs
    jobs="$(nproc)"
    (cd "$tree" && run make -s -j"$jobs" -C src/backend generated-headers >/dev/null)
    for d in src/common src/port src/fe_utils src/interfaces/libpq src/interfaces/libpq-oauth src/bin/psql src/bin/pg_config; do
        (cd "$tree" && run make -s -j"$jobs" -C "$d" >/dev/null)
    done
    for d in src/interfaces/libpq src/interfaces/libpq-oauth src/bin/psql src/bin/pg_config src/include; do
        (cd "$tree" && run make -s -C "$d" install DESTDIR="$STAGE/destdir" >/dev/null)
    done
    mv "$STAGE/destdir$final" "$prefix"
    rm -rf "$STAGE/destdir"
    rm -rf "$src" "$apt"
    LD_LIBRARY_PATH="$prefix/lib" "$prefix/bin/psql" --version | grep -q ' 18\.' || die "built psql is not 18.x"
    ls "$prefix/lib"/libpq-oauth-18*.so >/dev/null 2>&1 || die "libpq-oauth was not built (libcurl missing?)"
}

part_install build
dir="$(part_dir)/install"
world_env PGRATOR_PSQL_HOME "$dir"
