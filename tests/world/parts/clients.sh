#!/usr/bin/env bash
# PostgreSQL clients that cannot log in with OAuth, for the authenticating proxy's tests: Debian bookworm's psql 15
# (postgresql-client-15), psycopg 3 with its bundled libpq (PyPI), node-postgres (npm) and pgjdbc (Maven Central),
# each pinned in tests/world/clients/. The version is a hash of the pins and the scripts.
source "$(dirname "$0")/lib.sh"
PART=clients
SRC="$WORLD_DIR/clients"
PGJDBC=42.7.14
VERSION="$(cd "$SRC" && { echo "$PGJDBC"; python3 --version; node --version; sha256sum requirements.txt package.json package-lock.json; } | sha256sum | cut -c1-16)"

apt_ensure postgresql-client-15
for tool in python3 node npm java mvn; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool is not installed (needed for the client tests)"
done

build() {
    run python3 -m venv "$STAGE/venv"
    run "$STAGE/venv/bin/pip" install --quiet --no-cache-dir -r "$SRC/requirements.txt"
    cp "$SRC/package.json" "$SRC/package-lock.json" "$STAGE/"
    (cd "$STAGE" && run npm ci --no-audit --no-fund --silent --ignore-scripts)
    [ -d "$STAGE/node_modules/pg" ] || die "node-postgres did not install"
    run mvn -q -B dependency:copy -Dartifact="org.postgresql:postgresql:$PGJDBC" -DoutputDirectory="$STAGE/jdbc" \
        -Dmdep.stripVersion=true
    [ -f "$STAGE/jdbc/postgresql.jar" ] || die "pgjdbc did not download"
}

part_install build
# The scripts may change without a version change: always refresh them.
cp "$SRC/query.py" "$SRC/query.mjs" "$SRC/Query.java" "$(part_dir)/"
world_env PGRATOR_CLIENTS_DIR "$(part_dir)"
world_env PGRATOR_PSQL15 /usr/lib/postgresql/15/bin/psql
