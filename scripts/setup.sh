#!/usr/bin/env bash
# Sets up a fresh checkout: a Python virtual environment with agent-drills and its test extras,
# the pinned Node tools (anvil, cast, solc, allure) and, where this runs as root on Debian, the
# Chromium the report tests drive. Safe to run again; it only adds what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)'; then
  echo "agent-drills needs Python 3.11 or newer; set PYTHON=/path/to/python3.11" >&2
  exit 1
fi
if ! command -v npm >/dev/null; then
  echo "agent-drills needs Node.js 18+ with npm (for anvil, cast, solc and allure)" >&2
  exit 1
fi

[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[test]"

if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi

# Chromium for the test that opens the Allure report; optional for running drills.
if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
    || echo "note: could not install chromium; the Allure report browser test will fail" >&2
fi
echo "agent-drills is set up (.venv, node_modules)."
