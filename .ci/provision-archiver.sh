#!/usr/bin/env bash
# Provision what the archiver's S3 tests need beyond Go modules: the versitygw S3-compatible
# server (github.com/versity/versitygw), built from the Go module proxy into a cache directory.
# Tests find it through LOGROUTER_VERSITYGW, PATH, or $LOGROUTER_CACHE/bin (default
# ~/.cache/logrouter/bin) and skip with a message when it is absent.
# Idempotent: does nothing when the binary is already in the cache. Safe as root under CI=true.
set -euo pipefail

VERSION=v1.8.0
CACHE=${LOGROUTER_CACHE:-${HOME:-/root}/.cache/logrouter}
BIN="$CACHE/bin/versitygw"

if [ -x "$BIN" ] && [ -f "$CACHE/bin/versitygw.version" ] && [ "$(cat "$CACHE/bin/versitygw.version")" = "$VERSION" ]; then
	echo "provision-archiver: versitygw $VERSION already in $BIN" >&2
	exit 0
fi
command -v go >/dev/null 2>&1 || { echo "provision-archiver: go is not on PATH" >&2; exit 1; }
mkdir -p "$CACHE/bin"
echo "provision-archiver: go install github.com/versity/versitygw/cmd/versitygw@$VERSION into $CACHE/bin (about a minute)" >&2
GOBIN="$CACHE/bin" GOFLAGS=-mod=mod go install "github.com/versity/versitygw/cmd/versitygw@$VERSION"
echo "$VERSION" >"$CACHE/bin/versitygw.version"
"$BIN" --version >&2 || true
