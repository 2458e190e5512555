#!/usr/bin/env bash
# Debian packages the test suite drives for real: PostgreSQL's server binaries (the
# store contract and concurrency tests start a throwaway cluster) and Chromium (the
# JupyterLab browser test). Installs only what is missing; a no-op on a set-up machine.
# Without root or apt-get it says what is missing and leaves the tests to skip with that reason.
set -euo pipefail

missing=()
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "system_deps: missing Debian packages: ${missing[*]} (install them with apt-get as root);" \
       "the tests that need them will be skipped" >&2
  exit 0
fi

echo "system_deps: installing ${missing[*]} ..." >&2
export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y -q --no-install-recommends "${missing[@]}" >/tmp/alchemy-nb-apt.log 2>&1; then
  apt-get update -q >>/tmp/alchemy-nb-apt.log 2>&1
  apt-get install -y -q --no-install-recommends "${missing[@]}" >>/tmp/alchemy-nb-apt.log 2>&1 || {
    echo "system_deps: apt-get failed, see /tmp/alchemy-nb-apt.log" >&2
    tail -20 /tmp/alchemy-nb-apt.log >&2
    exit 1
  }
fi
