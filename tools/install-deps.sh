#!/usr/bin/env bash
# Installs everything Sluice needs to build, run and test (Debian packages).
set -euo pipefail
packages=(
  g++ cmake ninja-build pkg-config clang bpftool
  libbpf-dev libelf-dev zlib1g-dev
  libboost-dev libboost-program-options-dev libboost-filesystem-dev
  libtomlplusplus-dev libspdlog-dev libfmt-dev nlohmann-json3-dev libnl-3-dev libnl-route-3-dev
  libgtest-dev googletest
  iproute2 iputils-ping util-linux procps python3
  # kube-proxy's rulesets as the baseline of tools/bench/kubeproxy_bench.sh
  iptables nftables
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
echo "install-deps: all build, run and test dependencies are present"
