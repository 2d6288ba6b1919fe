#!/usr/bin/env bash
# Builds the last release of the previous map layout (its sluiced and the
# conntrack and nat plugins) from this repository's history into
# ${SLUICE_BUILD:-build}/previous-release, for e2e.upgrade: a daemon of the
# new layout must take over a running dataplane of the old one without
# --cleanup. Prints why and exits 0 without building when the history is not
# there (a shallow clone); the test then says it cannot run.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${SLUICE_BUILD:-$repo/build}
# The last commit of map layout 1 (SL_LAYOUT_VERSION 1u).
release=bd135b729de6727a2b7d1e868753f0cbcfa0f04e
out=$build/previous-release
if [[ -x $out/build/bin/sluiced && -x $out/build/bin/sluicectl && -f $out/build/lib/sluice/plugins/nat.so &&
      $(cat "$out/revision" 2>/dev/null) == "$release" ]]; then
  echo "previous release: already built in $out"
  exit 0
fi
if ! git -C "$repo" cat-file -e "$release^{commit}" 2>/dev/null; then
  echo "previous release: commit $release is not in this clone's history; e2e.upgrade cannot run" >&2
  exit 0
fi
rm -rf "$out"
mkdir -p "$out/src"
git -C "$repo" archive "$release" | tar -x -C "$out/src"
cmake -S "$out/src" -B "$out/build" -G Ninja -DSLUICE_PLUGINS="conntrack;nat" \
      -DSLUICE_BUILD_TESTS=OFF -DSLUICE_BUILD_BENCH=OFF >/dev/null
ninja -C "$out/build" sluiced sluicectl sluice_plugin_conntrack sluice_plugin_nat
echo "$release" >"$out/revision"
echo "previous release: built in $out"
