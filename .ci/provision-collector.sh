#!/usr/bin/env bash
# Provision what the collector's integration tests need beyond Go modules:
#   kcat (Debian's package, librdkafka) for TestCollectorCompatKcat and the kcat part of
#   TestCollectorRealKafka in integration/. Without it those tests skip.
# Idempotent: does nothing when kcat is already on PATH.
# TestCollectorRealKafka also needs a Docker engine (testcontainers-go); it skips without one.
set -euo pipefail

if command -v kcat >/dev/null 2>&1; then
	echo "provision-collector: kcat already installed: $(command -v kcat)" >&2
	exit 0
fi
SUDO=
if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then SUDO=sudo; fi
echo "provision-collector: installing kcat" >&2
$SUDO apt-get update
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends kcat
kcat -V >&2
