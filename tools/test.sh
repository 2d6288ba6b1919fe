#!/usr/bin/env bash
# One command for every test: installs dependencies, builds the full tree and
# a core-only tree (-DSLUICE_PLUGINS=""), and runs unit, BPF and end-to-end
# tests on the real kernel with ctest; then installs the full tree's SDK to a
# prefix and builds and tests sdk/examples/ratelimit against it, out of tree,
# as a third party would. .ci/run calls exactly this.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
[[ $(id -u) == 0 ]] || { echo "test: run as root (BPF, netns, tc)" >&2; exit 1; }
"$repo/tools/install-deps.sh"

full=${SLUICE_BUILD:-$repo/build}
core_only=$repo/build-core-only
SLUICE_BUILD=$full "$repo/tools/build.sh"
SLUICE_BUILD=$core_only "$repo/tools/build.sh" -DSLUICE_PLUGINS= -DSLUICE_BUILD_BENCH=OFF
# The previous map layout's last release, for the upgrade test (e2e.upgrade).
SLUICE_BUILD=$full "$repo/tools/build-previous-release.sh"

status=0
echo "== core-only build (no plugins)"
ctest --test-dir "$core_only" --output-on-failure -L "unit|bpf|e2e-core" || status=1
echo "== full build"
ctest --test-dir "$full" --output-on-failure || status=1

echo "== SDK: install, then build and test the out-of-tree example (sdk/examples/ratelimit)"
prefix=$full/sdk-prefix
example=$full/example-ratelimit
rm -rf "$prefix"
if cmake --install "$full" --prefix "$prefix" >/dev/null &&
   cmake -S "$repo/sdk/examples/ratelimit" -B "$example" -G Ninja \
         -DCMAKE_PREFIX_PATH="$prefix" >/dev/null &&
   ninja -C "$example"; then
  ctest --test-dir "$example" --output-on-failure || status=1
else
  echo "test: the SDK example does not build against the installed SDK" >&2
  status=1
fi
exit $status
