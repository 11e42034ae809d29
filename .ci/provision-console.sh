#!/usr/bin/env bash
# Provision the web console's browser test (integration/console_browser_test.go): Debian's
# chromium (apt-get, when /usr/bin/chromium is missing) and npm's playwright-core at the
# version pinned in integration/testdata/console/package-lock.json, installed with `npm ci`
# into $LOGROUTER_CACHE/console (default ~/.cache/logrouter/console). playwright-core drives the
# system chromium; it never downloads a browser. The test finds the packages through
# LOGROUTER_CONSOLE_DIR or that directory and skips with a message when they are absent.
# Idempotent: does nothing when the lock file is unchanged and chromium is installed.
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE=${LOGROUTER_CACHE:-${HOME:-/root}/.cache/logrouter}
DIR="$CACHE/console"
SRC=integration/testdata/console
STAMP="$DIR/.installed-lock"
SUDO=
if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then SUDO=sudo; fi

need=()
[ -x /usr/bin/chromium ] || need+=(chromium)
command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || need+=(nodejs npm)
if [ ${#need[@]} -gt 0 ]; then
	echo "provision-console: apt-get install ${need[*]}" >&2
	$SUDO apt-get update
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends "${need[@]}"
fi

sum=$(cat "$SRC/package.json" "$SRC/package-lock.json" | sha256sum | cut -d' ' -f1)
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$sum" ] && [ -d "$DIR/node_modules/playwright-core" ]; then
	echo "provision-console: playwright-core already in $DIR; $(/usr/bin/chromium --version 2>/dev/null)" >&2
	exit 0
fi
mkdir -p "$DIR"
rm -f "$STAMP"
cp "$SRC/package.json" "$SRC/package-lock.json" "$DIR/"
echo "provision-console: npm ci in $DIR" >&2
# PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD: the test uses Debian's chromium, never a downloaded one.
(cd "$DIR" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund >&2)
# Check that playwright-core drives this chromium before recording the install.
(cd "$DIR" && node -e '
const { chromium } = require("playwright-core");
(async () => {
  const b = await chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--headless", "--no-sandbox", "--disable-gpu",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"] });
  console.error("provision-console: chromium", b.version(), "via playwright-core", require("playwright-core/package.json").version);
  await b.close();
})().catch((e) => { console.error(e); process.exit(1); });
')
echo "$sum" >"$STAMP"
