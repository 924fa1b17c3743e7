#!/usr/bin/env bash
# Installs what kapsel needs from Debian 12's archive and builds it into ./build.
# Usage: scripts/setup.sh [--with-bench]   (as root on Debian 12)
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  # build
  g++ cmake make pkg-config clang-format
  libexpected-dev nlohmann-json3-dev libcli11-dev libfmt-dev libarchive-dev
  libfuse3-dev libseccomp-dev libcap-dev libmnl-dev libnftables-dev
  libgtest-dev libgmock-dev
  # runtime: the built-in busybox template is made from Debian's static busybox; newuidmap and
  # newgidmap map a user's /etc/subuid ranges for rootless VEs (root's --userns VEs need
  # neither: kapsel writes their maps itself)
  busybox-static uidmap
  # UML VEs (--kind uml): the guest kernel /usr/bin/linux.uml, and mke2fs (-d) to build a
  # template's shared ext4 disk image without root or a loop device
  user-mode-linux e2fsprogs
)
# Test-time only: the OCI surface's tests run containerd and Podman through kapsel-runc, and
# compare with runc (tests/integration/oci_engines_test.cpp, bench/oci.sh).
packages+=(containerd podman runc)
if [[ "${1:-}" == "--with-bench" ]]; then
  # the established tools the benchmarks compare kapsel with, and what they measure with
  packages+=(runc lxc bubblewrap iperf3 jq)
fi

if [[ $(id -u) -ne 0 ]]; then
  echo "setup: run as root (kapsel manages namespaces, mounts and cgroups)" >&2
  exit 1
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

jobs=$(nproc)
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$jobs"
echo "setup: built $(pwd)/build/kapsel"
