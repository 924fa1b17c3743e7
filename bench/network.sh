#!/usr/bin/env bash
# Network benchmark (docs/benchmarks.md, "Networking"): in a network namespace of its own,
#   1. TCP throughput between the host side and a VE over its veth and kapsel's bridge, against
#      the same over the host's loopback (iperf3 from Debian; the server runs in the VE's network
#      namespace, entered with nsenter, since the busybox template has no iperf3);
#   2. the time a VE's network costs: `kapsel run --rm --network bridge -- /bin/true` against
#      `--network none`, interleaved (kapsel-bench), the difference being the veth, address,
#      route and nftables chains made at start and removed at the end.
#
# Usage: sudo bench/network.sh [--runs N] [--seconds S] [--no-setup]
#   --runs N     iperf3 runs per path and kapsel-bench runs per case (default 5 and 10x that)
#   --seconds S  length of one iperf3 run (default 5)
#   --no-setup   do not install packages or build; use ./build and the installed iperf3
#
# Nothing touches the machine's own network: the bridge, the VE and all traffic live in a
# namespace made here and deleted at the end, with the store in a temporary directory.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
runs=5
seconds=5
setup=1

# shellcheck source=bench/lib.sh
source "$repo/bench/lib.sh"

while (($#)); do
  case "$1" in
    --runs) runs=${2:?--runs needs a number}; shift ;;
    --seconds) seconds=${2:?--seconds needs a number}; shift ;;
    --no-setup) setup=0 ;;
    -h | --help) show_help ;;
    *) bad_argument "$1" ;;
  esac
  shift
done
require_root "the benchmark makes a network namespace and VEs"

if ((setup)); then
  log "installing what is missing and building kapsel"
  "$repo/scripts/setup.sh" --with-bench >&2
fi
find_build
for tool in iperf3 jq nsenter ip; do
  command -v "$tool" >/dev/null || die "$tool is not installed (scripts/setup.sh --with-bench)"
done

tag=kapsel-bench-net-$$
work=$(mktemp -d "/tmp/$tag.XXXXXX")
export KAPSEL_ROOT=$work/root KAPSEL_RUN_DIR=$work/run KAPSEL_CGROUP_PARENT=$tag
ip netns add "$tag"
cleanup() {
  in_ns "$kapsel" stop --kill iperf >/dev/null 2>&1 || true
  in_ns "$kapsel" destroy --force iperf >/dev/null 2>&1 || true
  "$kapsel" procfs-service --stop >/dev/null 2>&1 || true
  ip netns del "$tag" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
in_ns() { nsenter --net="/run/netns/$tag" "$@"; }
in_ns ip link set lo up

# One iperf3 run from the namespace's host side to SERVER_ADDR, the server started in the
# network namespace of PID (the VE's init) or of the host side; prints Gbit/s received.
iperf_once() {
  local server_ns=$1 addr=$2
  nsenter --net="$server_ns" iperf3 -s -1 -D -B "$addr" --logfile "$work/iperf3-server.log"
  sleep 0.3
  in_ns iperf3 -c "$addr" -t "$seconds" -J |
    jq '.end.sum_received.bits_per_second / 1e9 * 100 | round / 100'
}

median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

log "building the busybox template and starting a VE on kapsel's default bridge"
in_ns "$kapsel" create iperf --network bridge >/dev/null
in_ns "$kapsel" start iperf >/dev/null
status=$(in_ns "$kapsel" status iperf --json)
ve_ip=$(jq -r '.network.address | split("/")[0]' <<<"$status")
ve_ns=/proc/$(jq -r '.init_pid' <<<"$status")/ns/net

log "iperf3: $runs runs of ${seconds}s over the veth and over loopback, alternating"
veth=() loop=()
for ((i = 0; i < runs; i++)); do
  veth+=("$(iperf_once "$ve_ns" "$ve_ip")")
  loop+=("$(iperf_once "/run/netns/$tag" 127.0.0.1)")
done
in_ns "$kapsel" stop --kill iperf >/dev/null
in_ns "$kapsel" destroy iperf >/dev/null

veth_median=$(printf '%s\n' "${veth[@]}" | median)
loop_median=$(printf '%s\n' "${loop[@]}" | median)
echo "TCP throughput, host side to VE, ${seconds}s per run, $runs runs each (Gbit/s)"
echo "  veth + bridge: median $veth_median   runs: ${veth[*]}"
echo "  loopback:      median $loop_median   runs: ${loop[*]}"
echo "  veth / loopback: $(awk -v a="$veth_median" -v b="$loop_median" 'BEGIN { printf "%.2f", a / b }')"
echo

log "time of a VE's network: run --rm with and without a bridge, $((runs * 10)) runs each"
in_ns "$bench" -n $((runs * 10)) -w 5 --title "kapsel run --rm -- /bin/true, by network mode" \
  "bridge=$kapsel run --rm --network bridge -- /bin/true" \
  "none=$kapsel run --rm --network none -- /bin/true"
