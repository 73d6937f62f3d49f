#!/usr/bin/env bash
# Installs the MariaDB server when mariadbd is missing. The Doris emulator
# (internal/testenv/dorisemu) keeps its data in a private MariaDB it starts.
set -euo pipefail
if command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ]; then
  exit 0
fi
echo "mariadbd not found: installing mariadb-server with apt" >&2
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends mariadb-server
