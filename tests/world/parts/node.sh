#!/usr/bin/env bash
# A Kubernetes node's runtime, from the Go module proxy: containerd (with ctr and the runc shim), runc built with
# seccomp, the CNI plugins the node's bridge network needs, and CoreDNS for cluster DNS. The kubelet, scheduler and
# kube-proxy come from the `kube` part's multi-call binary. Everything goes into $CACHE/node-<versions>/bin.
source "$(dirname "$0")/lib.sh"
PART=node

CONTAINERD=v2.4.2
RUNC=v1.5.3
CNI_PLUGINS=v1.10.0
COREDNS=v1.15.0
PAUSE_DIGEST="$(cat "$WORLD_DIR/pause/main.go" "$WORLD_DIR/pause/go.mod" | sha256sum | cut -c1-8)"
VERSION="containerd${CONTAINERD#v}-runc${RUNC#v}-cni${CNI_PLUGINS#v}-coredns${COREDNS#v}-pause$PAUSE_DIGEST"

# runc needs libseccomp (RuntimeDefault seccomp profiles, which CNPG's pods ask for); iptables for kube-proxy and
# the CNI bridge inside the world's network namespace; the rest is Go.
apt_ensure libseccomp-dev pkg-config iptables

# install_go DIR PKG@VERSION [go build flags...]: `go install` of a main package at a pinned module version into DIR.
install_go() {
    local dir="$1" pkg="$2"
    shift 2
    (cd "$STAGE" && run env GOTOOLCHAIN=local GOFLAGS=-buildvcs=false GOBIN="$dir" \
        go install -trimpath -ldflags="-s -w" "$@" "$pkg")
}

build() {
    command -v go >/dev/null || die "go is not on PATH (the node's runtime is built from Go modules)"
    mkdir -p "$STAGE/bin" "$STAGE/cni"
    local started=$SECONDS cmd
    for cmd in containerd ctr containerd-shim-runc-v2; do
        CGO_ENABLED=0 install_go "$STAGE/bin" "github.com/containerd/containerd/v2/cmd/$cmd@$CONTAINERD" \
            -tags "no_btrfs no_devmapper no_zfs"
    done
    # Debian's runc 1.1 cannot find this machine's cgroup v1 mounts; 1.5 can. Seccomp needs cgo.
    CGO_ENABLED=1 install_go "$STAGE/bin" "github.com/opencontainers/runc@$RUNC" -tags seccomp
    for cmd in main/bridge ipam/host-local main/loopback meta/portmap; do
        CGO_ENABLED=0 install_go "$STAGE/cni" "github.com/containernetworking/plugins/plugins/$cmd@$CNI_PLUGINS"
        [ -x "$STAGE/cni/${cmd#*/}" ] || die "CNI plugin ${cmd#*/} was not built"
    done
    CGO_ENABLED=0 install_go "$STAGE/bin" "github.com/coredns/coredns@$COREDNS"
    # The pod sandbox's pause program (tests/world/pause), static, for the pause image the world builds.
    (cd "$WORLD_DIR/pause" && run env GOTOOLCHAIN=local GOFLAGS=-buildvcs=false CGO_ENABLED=0 \
        go build -trimpath -ldflags="-s -w" -o "$STAGE/bin/pause" .)
    say "node: go builds took $((SECONDS - started)) s"

    local out
    out="$("$STAGE/bin/containerd" --version)"
    grep -q " ${CONTAINERD#v}" <<<"$out" || die "containerd --version does not say $CONTAINERD: $out"
    out="$("$STAGE/bin/runc" --version)"
    grep -q "^runc version ${RUNC#v}" <<<"$out" || die "runc --version does not say ${RUNC#v}: $out"
    grep -q "seccomp" <<<"$out" || die "runc was built without seccomp: $out"
    out="$("$STAGE/bin/coredns" -version)"
    grep -q "CoreDNS-${COREDNS#v}" <<<"$out" || die "coredns -version does not say ${COREDNS#v}: $out"
}

part_install build
world_env PGRATOR_NODE_BIN_DIR "$(part_dir)/bin"
world_env PGRATOR_CNI_BIN_DIR "$(part_dir)/cni"
