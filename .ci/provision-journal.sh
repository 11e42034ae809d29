#!/usr/bin/env bash
# Provision what the journal source's tests need beyond Go modules: Debian's
# systemd-journal-remote, which turns the journal export format on stdin into a real journal
# file (/lib/systemd/systemd-journal-remote), and journalctl (systemd) that reads it back.
# Without them the journal tests in router/journal and integration/ skip with a message.
# Idempotent: does nothing when the tool is already installed.
set -euo pipefail

if [ -x /lib/systemd/systemd-journal-remote ] && command -v journalctl >/dev/null 2>&1; then
	echo "provision-journal: systemd-journal-remote already installed" >&2
	exit 0
fi
SUDO=
if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then SUDO=sudo; fi
echo "provision-journal: installing systemd-journal-remote" >&2
$SUDO apt-get update
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends systemd-journal-remote
/lib/systemd/systemd-journal-remote --version | head -1 >&2
