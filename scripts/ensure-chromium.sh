#!/usr/bin/env bash
# Installs Debian's chromium when no Chromium/Chrome is found. The web
# console's browser tests (TestConsole*) drive it headless with chromedp.
set -euo pipefail
for b in chromium chromium-browser google-chrome google-chrome-stable headless-shell; do
  if command -v "$b" >/dev/null 2>&1; then
    exit 0
  fi
done
echo "chromium not found: installing chromium with apt" >&2
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium
