#!/usr/bin/env bash
# The Kubernetes control plane and node: kube-apiserver, kube-controller-manager, kube-scheduler, kubelet,
# kube-proxy, kubectl and etcd, built from their Go
# modules (k8s.io/kubernetes used as a dependency, go.etcd.io/etcd/server/v3) as one multi-call binary
# tests/world/kube/main.go. The versions are the ones pinned in tests/world/kube/go.mod; the binaries and one
# symlink per command go into $CACHE/kube-<k8s version>-etcd<etcd version>/bin.
source "$(dirname "$0")/lib.sh"
PART=kube
SRC="$WORLD_DIR/kube"

# module_version MODULE: the version go.mod requires (the single source of truth for the pins).
module_version() {
    awk -v m="$1" '$1 == m && $2 ~ /^v[0-9]/ { print $2; exit }' "$SRC/go.mod"
}
K8S="$(module_version k8s.io/kubernetes)"
ETCD="$(module_version go.etcd.io/etcd/server/v3)"
[ -n "$K8S" ] && [ -n "$ETCD" ] || die "cannot read the k8s.io/kubernetes and etcd versions from $SRC/go.mod"
# The sources' digest is part of the key: adding a command to main.go must rebuild, not reuse an older binary.
SOURCES_DIGEST="$(cat "$SRC/main.go" "$SRC/go.mod" "$SRC/go.sum" | sha256sum | cut -c1-8)"
VERSION="${K8S#v}-etcd${ETCD#v}-$SOURCES_DIGEST"

build() {
    command -v go >/dev/null || die "go is not on PATH (the Go toolchain builds the control plane)"
    mkdir -p "$STAGE/bin"
    # The upstream release build stamps the version with -X (hack/lib/version.sh); without it the binaries say
    # v0.0.0-master and kubectl warns about version skew. The build date is the module's publication time.
    local minor="${K8S#v1.}" released ldflags=() kv key val
    minor="${minor%%.*}"
    released="$(cd "$SRC" && GOTOOLCHAIN=local go mod download -json "k8s.io/kubernetes@$K8S" \
        | sed -n 's/.*"Info": "\(.*\)",/\1/p' | xargs cat | sed -n 's/.*"Time":"\([^"]*\)".*/\1/p')"
    [ -n "$released" ] || die "cannot read the publication time of k8s.io/kubernetes@$K8S"
    for kv in "gitVersion=$K8S" gitMajor=1 "gitMinor=$minor" gitTreeState=clean "buildDate=$released"; do
        key="${kv%%=*}" val="${kv#*=}"
        ldflags+=("-X=k8s.io/component-base/version.$key=$val" "-X=k8s.io/client-go/pkg/version.$key=$val")
    done
    local started=$SECONDS
    # -trimpath and -s -w: smaller binaries, no local paths; GOTOOLCHAIN=local: never download a toolchain.
    (cd "$SRC" && run env GOTOOLCHAIN=local GOFLAGS=-buildvcs=false \
        go build -trimpath -ldflags="-s -w ${ldflags[*]}" -o "$STAGE/bin/pgrator-kube" .)
    say "kube: go build took $((SECONDS - started)) s"
    local cmd
    for cmd in kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl etcd; do
        ln -s pgrator-kube "$STAGE/bin/$cmd"
    done
    # Output captured first: `cmd | grep -q` fails under pipefail when grep exits before cmd has written all.
    local out
    out="$("$STAGE/bin/kube-apiserver" --version)"
    [ "$out" = "Kubernetes $K8S" ] || die "kube-apiserver --version says '$out', not Kubernetes $K8S"
    out="$("$STAGE/bin/kubelet" --version)"
    [ "$out" = "Kubernetes $K8S" ] || die "kubelet --version says '$out', not Kubernetes $K8S"
    out="$("$STAGE/bin/etcd" --version)"
    grep -q "^etcd Version: ${ETCD#v}\$" <<<"$out" || die "etcd --version does not say ${ETCD#v}: $out"
    out="$("$STAGE/bin/kubectl" version --client)"
    grep -q "^Client Version: $K8S\$" <<<"$out" || die "kubectl version --client does not say $K8S: $out"
}

part_install build
world_env PGRATOR_KUBE_BIN_DIR "$(part_dir)/bin"
world_env PGRATOR_KUBE_VERSION "${K8S#v}"
