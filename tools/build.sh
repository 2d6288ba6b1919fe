#!/usr/bin/env bash
# Configures and builds Sluice into ${SLUICE_BUILD:-build} (extra args go to cmake).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${SLUICE_BUILD:-$repo/build}
cmake -S "$repo" -B "$build" -G Ninja "$@" >/dev/null
ninja -C "$build"
