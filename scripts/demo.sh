#!/usr/bin/env bash
# The main job, on the built-in busybox template. Honours KAPSEL_ROOT and KAPSEL_RUN_DIR, so the
# test suite runs it in temporary directories.
# Usage: scripts/demo.sh [path/to/kapsel]
set -euo pipefail
kapsel=${1:-kapsel}
name=${KAPSEL_DEMO_NAME:-demo}

step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }

# A demo left over from an earlier run is replaced.
"$kapsel" destroy --force "$name" >/dev/null 2>&1 || true

step "$kapsel" create "$name"
step "$kapsel" start "$name"
step "$kapsel" exec "$name" -- sh -c 'echo "hello from $(hostname)"; ps'
step "$kapsel" list
step "$kapsel" stop "$name"
step "$kapsel" status "$name"
step "$kapsel" destroy "$name"
