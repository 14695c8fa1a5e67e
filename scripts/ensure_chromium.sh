#!/usr/bin/env bash
# The page tests (tests/browser) drive Debian's Chromium with Playwright (no browser download).
# Installs the package when it is missing; fails fast, naming what to do, when it cannot.
set -euo pipefail
if [ -n "${OFFLINE_EVAL_CHROMIUM:-}" ] || command -v chromium >/dev/null 2>&1; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "error: Chromium not found and no apt-get to install it: install chromium, or set OFFLINE_EVAL_CHROMIUM" >&2
  exit 1
fi
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
echo "installing Debian's chromium for the page tests (tests/browser)"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get install -y -q --no-install-recommends chromium >/dev/null 2>&1 \
  || { $SUDO apt-get update -q >/dev/null && $SUDO apt-get install -y -q --no-install-recommends chromium >/dev/null; } \
  || { echo "error: could not install chromium with apt-get: install it, or set OFFLINE_EVAL_CHROMIUM" >&2; exit 1; }
