# Shared helpers for the test-world installer. Sourced by install.sh and by every parts/<part>.sh.
#
# Contract of a part script: it defines `PART` and `VERSION`, then calls `part_install <build-function>`.
# The build function fills "$STAGE" (a fresh directory); only when it returns successfully is the stage
# renamed to "$CACHE/<part>-<version>" and marked complete, so an interrupted build never looks finished.
# The part then records where it lives with `world_env KEY VALUE` (collected into "$CACHE/world.env",
# which the Rust support crate `pgrator-world` reads).

set -euo pipefail

CACHE="${PGRATOR_CACHE:-$HOME/.cache/pgrator}"
WORLD_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
mkdir -p "$CACHE"

say() { printf '[world] %s\n' "$*" >&2; }

# die: fail fast, naming the part, its version and what failed.
die() {
    printf '[world] FAILED part=%s version=%s: %s\n' "${PART:-?}" "${VERSION:-?}" "$*" >&2
    exit 1
}

# run: run a command; on failure name the part, the version and the exact command line.
run() {
    local rc=0
    "$@" || rc=$?
    if [ "$rc" -ne 0 ]; then
        die "command exited with $rc: $*"
    fi
}

# part_dir: where the current part's finished tree lives.
part_dir() { printf '%s/%s-%s' "$CACHE" "$PART" "$VERSION"; }

part_is_complete() { [ -f "$(part_dir)/.complete" ]; }

# part_install BUILD_FN: run BUILD_FN in a fresh stage directory unless the part is already complete.
part_install() {
    local build_fn="$1" dir stage
    dir="$(part_dir)"
    if part_is_complete; then
        say "$PART $VERSION: cached at $dir"
        return 0
    fi
    stage="$dir.tmp.$$"
    rm -rf "$stage" "$dir"
    mkdir -p "$stage"
    # Remove the stage if anything below fails: a partial build never stays behind.
    trap 'rm -rf "'"$stage"'"' EXIT
    say "$PART $VERSION: building into $dir"
    local started=$SECONDS
    STAGE="$stage" "$build_fn"
    date -u +%Y-%m-%dT%H:%M:%SZ > "$stage/.complete"
    mv "$stage" "$dir"
    trap - EXIT
    say "$PART $VERSION: done in $((SECONDS - started)) s"
}

# world_env KEY VALUE: record a location for the support crate (replaces an older value of KEY).
world_env() {
    local key="$1" value="$2" file="$CACHE/world.env"
    touch "$file"
    local tmp="$file.tmp.$$"
    grep -v "^$key=" "$file" > "$tmp" || true
    printf '%s=%s\n' "$key" "$value" >> "$tmp"
    mv "$tmp" "$file"
}

# apt_ensure PKG...: install Debian packages that are missing (apt-get update only when needed).
apt_ensure() {
    local missing=() p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    [ "${#missing[@]}" -eq 0 ] && return 0
    say "apt: installing ${missing[*]}"
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    if [ ! -f "$CACHE/.apt-updated" ] || [ -n "$(find "$CACHE/.apt-updated" -mmin +720 2>/dev/null)" ]; then
        run $sudo apt-get update -qq
        touch "$CACHE/.apt-updated"
    fi
    run env DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# debian_mirror: the Debian archive this machine is configured for (never hard-coded in the repo).
debian_mirror() {
    local uri
    uri="$({ grep -rshoE '^(URIs:|deb) +[a-z]+://[^ ]+/debian/?( |$)' /etc/apt/sources.list /etc/apt/sources.list.d || true; } \
        | grep -oE '[a-z]+://[^ ]+' | head -n1)"
    [ -n "$uri" ] || die "no Debian archive found in /etc/apt sources"
    printf '%s' "${uri%/}"
}

# The test servers run as an unprivileged user (PostgreSQL refuses root): let it traverse down to the cache.
# Only the search bit (o+x) is added to each parent directory, never read access to their listings.
ensure_cache_reachable() {
    local d="$CACHE"
    while [ "$d" != "/" ] && [ -n "$d" ]; do
        if [ -O "$d" ] && [ "$(stat -c %A "$d" | cut -c10)" != "x" ] && [ "$(stat -c %A "$d" | cut -c10)" != "t" ]; then
            chmod o+x "$d"
        fi
        d="$(dirname "$d")"
    done
}
ensure_cache_reachable

# module_dir MODULE@VERSION: download a Go module into the module cache and print its directory.
module_dir() {
    local json dir
    json="$(cd "$STAGE" && GOTOOLCHAIN=local GOFLAGS=-mod=mod go mod download -json "$1")" \
        || die "go mod download $1 failed: $json"
    dir="$(printf '%s\n' "$json" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')"
    [ -d "$dir" ] || die "go mod download $1 gave no directory: $json"
    printf '%s' "$dir"
}

# module_source MODULE@VERSION DEST: a writable copy of a Go module's source. Building inside it uses only the
# module's own go.mod and go.sum (`go install pkg@version` asks the proxy for the version list, refused here).
module_source() {
    local dir
    dir="$(module_dir "$1")"
    cp -r "$dir" "$2"
    chmod -R u+w "$2"
}

# go_build_static SRC PACKAGE OUT: a static, stripped build of PACKAGE inside SRC with the machine's own Go.
go_build_static() {
    local started=$SECONDS
    (cd "$1" && run env GOTOOLCHAIN=local GOFLAGS=-buildvcs=false CGO_ENABLED=0 \
        go build -trimpath -ldflags="-s -w" -o "$3" "$2")
    say "$PART: go build of $2 took $((SECONDS - started)) s"
}
