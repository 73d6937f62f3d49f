#!/usr/bin/env bash
# Installs kcat (Kafka's command-line consumer and producer) when it is
# missing. The Kafka sink's tests read topics with it as an outside
# consumer would, and the README shows it for checking a topic by hand.
set -euo pipefail
if command -v kcat >/dev/null 2>&1; then
  exit 0
fi
echo "kcat not found: installing kcat with apt" >&2
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends kcat
