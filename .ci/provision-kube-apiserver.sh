#!/usr/bin/env bash
# Provision a real kube-apiserver and etcd for the tests in integration/kubeapiserver and the
# enricher's integration tests. Idempotent: the binary is built once per machine into the cache
# dir and reused; a second run takes seconds.
#
# kube-apiserver: `go install` refuses k8s.io/kubernetes because its go.mod replaces each
# k8s.io/<staging> module with ./staging/...; a throwaway module outside the repo requires
# k8s.io/kubernetes and replaces each staging module with its published v0.Y version instead.
# The build takes about 7 minutes and 2.3 GB on 2 cores.
# etcd: Debian's etcd-server (3.4) serves it.
#
# Environment:
#   LOGROUTER_CACHE            cache root (default $HOME/.cache/logrouter)
#   LOGROUTER_KUBE_VERSION     k8s.io/kubernetes version to build (default v1.34.4)
# Output (what the test fixture looks for):
#   $LOGROUTER_CACHE/kube-apiserver/bin/kube-apiserver
#   $LOGROUTER_CACHE/kube-apiserver/bin/etcd   (symlink to the installed etcd)
set -euo pipefail

KUBE_VERSION="${LOGROUTER_KUBE_VERSION:-v1.34.4}"
CACHE="${LOGROUTER_CACHE:-$HOME/.cache/logrouter}/kube-apiserver"
BIN="$CACHE/bin"
STAMP="$BIN/kube-apiserver.version"
mkdir -p "$BIN"

log() { echo "provision-kube-apiserver: $*" >&2; }

# --- etcd ----------------------------------------------------------------------------------
find_etcd() {
	if [ -n "${LOGROUTER_ETCD:-}" ] && [ -x "${LOGROUTER_ETCD}" ]; then echo "$LOGROUTER_ETCD"; return; fi
	if command -v etcd >/dev/null 2>&1; then command -v etcd; return; fi
	for p in /usr/bin/etcd /usr/sbin/etcd /usr/local/bin/etcd; do
		if [ -x "$p" ]; then echo "$p"; return; fi
	done
}

ETCD="$(find_etcd || true)"
if [ -z "$ETCD" ]; then
	log "installing Debian etcd-server"
	SUDO=""
	if [ "$(id -u)" != 0 ]; then
		if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
			log "not root and no sudo: cannot install etcd-server; tests that need it will skip"
			exit 0
		fi
	fi
	# The package's maintainer script may try to start a service; there is no init here.
	export DEBIAN_FRONTEND=noninteractive
	$SUDO apt-get update -qq || log "apt-get update failed; trying install anyway"
	$SUDO apt-get install -y -qq --no-install-recommends etcd-server >/dev/null
	ETCD="$(find_etcd || true)"
	if [ -z "$ETCD" ]; then
		log "etcd-server installed but no etcd binary found"
		exit 1
	fi
fi
ln -sf "$ETCD" "$BIN/etcd"
log "etcd: $ETCD ($("$ETCD" --version 2>/dev/null | head -1 || true))"

# --- kube-apiserver --------------------------------------------------------------------------
if [ -x "$BIN/kube-apiserver" ] && [ "$(cat "$STAMP" 2>/dev/null || true)" = "$KUBE_VERSION" ]; then
	log "kube-apiserver $KUBE_VERSION already built: $BIN/kube-apiserver"
	exit 0
fi

if ! command -v go >/dev/null 2>&1; then
	if [ -x /usr/local/go/bin/go ]; then export PATH="/usr/local/go/bin:$PATH"; else
		log "no go toolchain: cannot build kube-apiserver"
		exit 1
	fi
fi

# Staging modules are published as v0.<minor>.<patch> for kubernetes v1.<minor>.<patch>.
STAGING_VERSION="v0.${KUBE_VERSION#v1.}"
MOD="$CACHE/build-$KUBE_VERSION"
mkdir -p "$MOD"
cd "$MOD"
# The throwaway module must not pick up the repo's settings or workspace.
export GOWORK=off GOFLAGS=-mod=mod GO111MODULE=on
rm -f go.mod go.sum
go mod init logrouter.local/kube-apiserver-build >/dev/null 2>&1

log "reading k8s.io/kubernetes@$KUBE_VERSION go.mod"
KGOMOD="$(go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')"
if [ ! -f "$KGOMOD" ]; then
	log "could not download k8s.io/kubernetes@$KUBE_VERSION go.mod"
	exit 1
fi
# Lines like: k8s.io/api => ./staging/src/k8s.io/api
STAGING="$(sed -n 's#^[[:space:]]*\(k8s\.io/[^[:space:]]*\)[[:space:]]*=>[[:space:]]*\./staging/.*#\1#p' "$KGOMOD" | sort -u)"
if [ -z "$STAGING" ]; then
	log "no staging replace directives found in $KGOMOD"
	exit 1
fi
args=()
for m in $STAGING; do
	args+=("-replace=$m=$m@$STAGING_VERSION")
done
go mod edit "${args[@]}"
go mod edit -require="k8s.io/kubernetes@$KUBE_VERSION"
# Keep the toolchain we have; the kubernetes module's go line is older than ours.
GOTOOLCHAIN=local go get "k8s.io/kubernetes/cmd/kube-apiserver@$KUBE_VERSION"

log "building kube-apiserver $KUBE_VERSION (about 7 minutes on 2 cores)"
start=$(date +%s)
GOTOOLCHAIN=local nice -n 10 go build -trimpath \
	-ldflags "-s -w -X k8s.io/component-base/version.gitVersion=$KUBE_VERSION -X k8s.io/client-go/pkg/version.gitVersion=$KUBE_VERSION" \
	-o "$BIN/kube-apiserver.tmp" k8s.io/kubernetes/cmd/kube-apiserver
mv "$BIN/kube-apiserver.tmp" "$BIN/kube-apiserver"
echo "$KUBE_VERSION" >"$STAMP"
log "built $BIN/kube-apiserver in $(( $(date +%s) - start ))s"
