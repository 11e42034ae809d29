#!/usr/bin/env bash
# Provision DuckDB for the analyst-example tests (integration/archive_duckdb_test.go): the npm
# package @duckdb/node-api (which ships DuckDB's native library for this platform), installed
# into $LOGROUTER_CACHE/duckdb (default ~/.cache/logrouter/duckdb) so it is cached across runs.
# It reads Parquet and NDJSON offline. Tests find it through LOGROUTER_DUCKDB_DIR or that
# directory, and skip with a message when node or the package is absent.
# Idempotent: does nothing when the pinned version is already installed. Safe as root under CI=true.
set -euo pipefail

VERSION=1.5.6-r.1
CACHE=${LOGROUTER_CACHE:-${HOME:-/root}/.cache/logrouter}
DIR="$CACHE/duckdb"
STAMP="$DIR/.installed-version"

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$VERSION" ] && [ -d "$DIR/node_modules/@duckdb/node-api" ]; then
	echo "provision-duckdb: @duckdb/node-api $VERSION already in $DIR" >&2
	exit 0
fi
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
	SUDO=
	if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then SUDO=sudo; fi
	echo "provision-duckdb: installing Debian's nodejs and npm" >&2
	$SUDO apt-get update
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends nodejs npm
fi
mkdir -p "$DIR"
rm -f "$STAMP"
if [ ! -f "$DIR/package.json" ]; then
	printf '{"name":"logrouter-duckdb-ci","private":true}\n' >"$DIR/package.json"
fi
echo "provision-duckdb: npm install @duckdb/node-api@$VERSION into $DIR" >&2
npm install --prefix "$DIR" --no-audit --no-fund --save-exact "@duckdb/node-api@$VERSION" >&2
# Check that the native library loads and answers here before recording the install.
(cd "$DIR" && node -e '
const { DuckDBInstance } = require("@duckdb/node-api");
(async () => {
  const c = await (await DuckDBInstance.create(":memory:")).connect();
  const r = await c.runAndReadAll("SELECT version() AS v");
  console.error("provision-duckdb: DuckDB", r.getRowObjects()[0].v);
})().catch((e) => { console.error(e); process.exit(1); });
')
echo "$VERSION" >"$STAMP"
