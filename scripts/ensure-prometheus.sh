#!/usr/bin/env bash
# Installs Prometheus (the server and promtool) from Debian's packages when
# either is missing. `make e2e` runs the alert rules in deploy/prometheus
# against a real Prometheus scraping a running Sluice.
set -euo pipefail
if command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; then
  exit 0
fi
echo "prometheus or promtool not found: installing prometheus with apt" >&2
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q
# --no-install-recommends: the node exporter and the service's defaults are
# not needed; tests start their own prometheus process.
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends prometheus
