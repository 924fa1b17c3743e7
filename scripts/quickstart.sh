#!/usr/bin/env bash
# The README's first command: set up, build, and run the main job on the built-in busybox
# template (create and start a VE, run a command in it, list, stop).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec scripts/demo.sh build/kapsel
