# pgrator: every routine task. `./just` (the wrapper that installs the pinned just) lists them.

set shell := ["bash", "-euo", "pipefail", "-c"]

cache := env("PGRATOR_CACHE", env("HOME") / ".cache/pgrator")
# Cargo builds live outside the clone, so a fresh clone (CI) reuses them.
export CARGO_TARGET_DIR := env("CARGO_TARGET_DIR", cache / "cargo-target")
# pgrx finds PostgreSQL 18 through PGRX_PG_CONFIG_PATH, which exists only once the `postgres` part is installed:
# recipes that build the module read it when they run (not when just starts, which may be before the install).
pg_config := "$(grep '^PGRX_PG_CONFIG_PATH=' \"" + cache + "/world.env\" | tail -n1 | cut -d= -f2-)"
# Where the validator module is put, named as PostgreSQL loads it (oauth_validator_libraries = 'pgrator_validator').
export PGRATOR_VALIDATOR_LIB := CARGO_TARGET_DIR / "pgrator/lib/pgrator_validator.so"
# The same module built with a fault trigger, for the panic test only (never shipped).
export PGRATOR_VALIDATOR_FAULTS_LIB := CARGO_TARGET_DIR / "pgrator/lib-faults/pgrator_validator.so"

# List the recipes.
default:
    @{{just_executable()}} --justfile {{justfile()}} --list --unsorted

# Install the test world's parts (pinned, cached under ~/.cache/pgrator); `just world psql` for one part.
world *parts:
    bash tests/world/install.sh {{parts}}

# Build the validator module (release) and place it as pgrator_validator.so.
build-validator: (world "tools" "postgres")
    #!/usr/bin/env bash
    set -euo pipefail
    export PGRX_PG_CONFIG_PATH="{{pg_config}}"
    cargo build --release -p pgrator-validator
    mkdir -p "$(dirname "$PGRATOR_VALIDATOR_LIB")"
    install -m 0644 "$CARGO_TARGET_DIR/release/libpgrator_validator.so" "$PGRATOR_VALIDATOR_LIB.tmp"
    mv "$PGRATOR_VALIDATOR_LIB.tmp" "$PGRATOR_VALIDATOR_LIB"
    echo "validator module: $PGRATOR_VALIDATOR_LIB"

# The validator with a fault trigger, for the test that proves a panic becomes a refusal (its own profile and output
# directory: never mistaken for the release module, never shipped).
build-validator-faults: (world "tools" "postgres")
    #!/usr/bin/env bash
    set -euo pipefail
    export PGRX_PG_CONFIG_PATH="{{pg_config}}"
    cargo build --profile faults -p pgrator-validator --features fault-injection
    mkdir -p "$(dirname "$PGRATOR_VALIDATOR_FAULTS_LIB")"
    install -m 0644 "$CARGO_TARGET_DIR/faults/libpgrator_validator.so" "$PGRATOR_VALIDATOR_FAULTS_LIB.tmp"
    mv "$PGRATOR_VALIDATOR_FAULTS_LIB.tmp" "$PGRATOR_VALIDATOR_FAULTS_LIB"

# The demo on the embedded default: a Postgres object to PostgreSQL 18 pods run by the real CNPG (the test world's
# node), personal access with the CLI, and a psql login as the personal role through the device flow over a kubelet
# port-forward (the whole product, printed step by step).
demo: world build-validator
    #!/usr/bin/env bash
    set -euo pipefail
    if [ ! -x "$CARGO_TARGET_DIR/release/pgrator-demo" ] || [ ! -x "$CARGO_TARGET_DIR/release/pgrator" ]; then
        echo "demo: first build of the operator, the CLI and the demo (release: about 15 minutes on 2 cores; cargo" \
             "counts the crates below as it goes; later runs start in seconds)" >&2
    fi
    cargo build --release -p pgrator-cli --bin pgrator
    cargo build --release -p pgrator-e2e --bin pgrator-demo
    "$CARGO_TARGET_DIR/release/pgrator-demo"

# The validator alone: PostgreSQL 18 with the validator, and a psql login through the device flow.
demo-validator: world build-validator
    cargo run --release -q -p pgrator-e2e --bin pgrator-demo-validator

# Benchmark: OAuth login through the validator vs trust vs SCRAM (one run, interleaved), time inside the validator,
# IdP requests per 1000 logins. PGRATOR_BENCH_LOGINS=N sets the logins per kind.
bench-validator: (world "tools" "postgres" "psql" "idp") build-validator
    cargo run --release -q -p pgrator-e2e --bin bench-validator

# The operator at scale: 1000 Postgres objects (PGRATOR_BENCH_POSTGRES) to converged, time, peak memory and API
# requests per no-op reconcile; the release binary as its own process against the real kube-apiserver.
bench-operator: (world "tools" "kube" "crds")
    cargo build --release -q -p pgrator-operator --bin pgrator-operator
    cargo run --release -q -p pgrator-e2e --bin bench-operator -- "$CARGO_TARGET_DIR/release/pgrator-operator"

# Benchmark of the pure token library (criterion): validation of warm RS256, ES256 and EdDSA tokens, JWKS parsing.
# Logins through the authenticating proxy beside trust and libpq's OAuth (one run, interleaved), and 100 clients at
# once through one proxy.
bench-proxy: (world "tools" "postgres" "psql" "idp" "pgroot" "clients") build-validator
    cargo build --release -q -p pgrator-cli --bin pgrator
    cargo run --release -q -p pgrator-e2e --bin bench-proxy -- "$CARGO_TARGET_DIR/release/pgrator"

bench-token:
    cargo bench -p pgrator-token --bench validate

# Every benchmark.
bench: bench-token bench-validator bench-operator bench-proxy

# Formatting and lints (warnings are errors).
lint: (world "tools" "postgres")
    cargo fmt --all --check
    PGRX_PG_CONFIG_PATH="{{pg_config}}" cargo clippy --workspace --all-targets -- -D warnings

# Every test: lints, unit and property tests, and the end-to-end tests against the real parts.
# (The validator module is a PostgreSQL plugin: it is tested loaded into PostgreSQL, by the e2e tests.)
test: world build-validator build-validator-faults lint
    #!/usr/bin/env bash
    set -euo pipefail
    log="$(mktemp)"
    trap 'rm -f "$log"' EXIT
    rc=0
    # The CLI runs as its own process in the personal-access test; the operator program goes into its image test.
    cargo build -q -p pgrator-cli --bin pgrator
    cargo build -q -p pgrator-operator --bin pgrator-operator
    cargo test --workspace --exclude pgrator-validator --no-fail-fast 2>&1 | tee "$log" || rc=$?
    # One closing line for every test binary together.
    echo "test run took ${SECONDS} s"
    grep -E '^test result:' "$log" | awk '{p += $4; f += $6} END {printf "tests: %d passed, %d failed\n", p, f}'
    exit "$rc"

# Start a Kubernetes 1.35 control plane with the CNPG, Barman, Prometheus and Config Connector CRDs, for kubectl.
kube-up: (world "kube" "crds")
    cargo run -q -p pgrator-world --bin pgrator-kube-up -- up "{{cache}}/kube-up"

# Stop the control plane of `just kube-up` and delete its data.
kube-down:
    cargo run -q -p pgrator-world --bin pgrator-kube-up -- down "{{cache}}/kube-up"

# kubectl of the server's version against the control plane of `just kube-up`: `just kubectl get crds`.
kubectl *args:
    @"$(grep '^PGRATOR_KUBE_BIN_DIR=' "{{cache}}/world.env" | tail -n1 | cut -d= -f2-)/kubectl" --kubeconfig "{{cache}}/kube-up/data/kubeconfig" {{args}}

# Regenerate the committed generated files (the Postgres CRD, the install manifests); CI fails when they drift.
generate:
    cargo run -q -p pgrator-operator --bin pgrator-crdgen operator/deploy/crds
    cargo run -q -p pgrator-operator --bin pgrator-operator -- manifests > operator/deploy/install.yaml

# Keep the shared cargo target bounded: a fresh clone (CI) builds the workspace's own crates at a new path, so their
# artefacts pile up; remove those whose sources no longer exist (old clones), and all but the newest build of each
# test or program executable. Registry crates stay (every build reuses them).
prune-target:
    #!/usr/bin/env bash
    set -euo pipefail
    t="$CARGO_TARGET_DIR"
    [ -d "$t" ] || exit 0
    before="$(du -sm "$t" | cut -f1)"
    removed=0
    while IFS= read -r -d '' dep; do
        # The first source a .d file names: gone with its clone, or still there.
        src="$(head -n1 "$dep" | cut -d: -f2- | tr ' ' '\n' | grep -m1 '^/' || true)"
        if [ -z "$src" ] || [ -e "$src" ]; then continue; fi
        stem="$(basename "$dep" .d)"; hash="${stem##*-}"; dir="$(dirname "$dep")"; profile="$(dirname "$dir")"
        rm -rf "$dir/$stem" "$dir/$stem".* "$dir/lib$stem".* "$profile/.fingerprint/"*-"$hash" "$profile/build/"*-"$hash"
        removed=$((removed + 1))
    done < <(find "$t" -mindepth 3 -maxdepth 3 -path '*/deps/*.d' -print0)
    # Test and program executables are leaves (nothing links against them): of each, only the newest build stays.
    while IFS= read -r stale; do
        rm -f "$stale" "$stale.d"
        removed=$((removed + 1))
    done < <(find "$t" -mindepth 3 -maxdepth 3 -path '*/deps/*' -type f -perm -u+x ! -name '*.so' -printf '%T@ %p\n' \
        | sort -rn | awk '{ path = $2; name = path; sub(/-[0-9a-f]+$/, "", name); if (seen[name]++) print path }')
    echo "prune-target: removed $removed artefacts of old clones and builds; ${before} MB before, $(du -sm "$t" | cut -f1) MB after"

# Format the code.
fmt:
    cargo fmt --all

# The validator's CloudNativePG extension image as an OCI layout (reproducible: SOURCE_DATE_EPOCH = last commit).
image-validator distro="bookworm": build-validator
    #!/usr/bin/env bash
    set -euo pipefail
    export SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}"
    version="$(cargo pkgid -p pgrator-validator | sed 's/.*[#@]//')"
    cargo run --release -q -p pgrator-extension-oci -- build --library "$PGRATOR_VALIDATOR_LIB" \
        --name pgrator-validator --version "$version" --distro {{distro}} --spdx MIT \
        --share validator-ext/module/pgrator_validator.control $(printf -- '--share %s ' validator-ext/module/sql/*.sql) \
        $([ -f LICENSE ] && echo --license LICENSE) --out "$CARGO_TARGET_DIR/pgrator/oci/pgrator-validator-{{distro}}"
    echo "layout: $CARGO_TARGET_DIR/pgrator/oci/pgrator-validator-{{distro}}"

# The operator's image as an OCI layout, from a built program.
image-operator binary:
    #!/usr/bin/env bash
    set -euo pipefail
    export SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}"
    version="$(cargo pkgid -p pgrator-image | sed 's/.*[#@]//')"
    cargo run --release -q -p pgrator-image -- --binary {{binary}} --name pgrator --version "$version" \
        --spdx MIT $([ -f LICENSE ] && echo --license LICENSE) --out "$CARGO_TARGET_DIR/pgrator/oci/pgrator"
    echo "layout: $CARGO_TARGET_DIR/pgrator/oci/pgrator"

# Push an OCI layout; prints registry/repo:tag@sha256:… (login and TLS flags: extension-oci/README.md).
push-image layout reference *flags:
    cargo run --release -q -p pgrator-extension-oci -- push --layout {{layout}} --reference {{reference}} {{flags}}
