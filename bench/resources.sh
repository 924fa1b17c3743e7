#!/usr/bin/env bash
# Resource-management benchmark (docs/benchmarks.md, "Density and the virtual /proc"):
#  1. host memory per idle VE: N busybox VEs are started and left idle; the proportional set size
#     (PSS, /proc/PID/smaps_rollup) of each VE's monitor and of the one /proc service shared by all
#     of them is measured, so the service's share per VE is its PSS / N;
#  2. the cost of reading /proc/meminfo: the host's own file, the file kapsel's FUSE service
#     serves to a VE (what a VE's bind-mounted /proc/meminfo reads), and the same file from
#     lxcfs (the established tool, Debian's lxcfs, mounted for the run) side by side.
#
# Usage: sudo bench/resources.sh [--ves N] [--reads N] [--no-setup]
#   --ves N      idle VEs to start (default 20)
#   --reads N    reads of each file (default 2000)
#   --no-setup   do not install packages or build; use ./build as is
#
# Everything goes to a temporary directory and cgroup parent; nothing of real VEs is touched, and
# everything started here is stopped and removed at the end.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
ves=20
reads=2000
setup=1
# shellcheck source=bench/lib.sh
source "$repo/bench/lib.sh"
while (($#)); do
  case "$1" in
    --ves) ves=${2:?--ves needs a number}; shift ;;
    --reads) reads=${2:?--reads needs a number}; shift ;;
    --no-setup) setup=0 ;;
    -h | --help) show_help ;;
    *) bad_argument "$1" ;;
  esac
  shift
done
require_root "the benchmark makes VEs, mounts and cgroups"
if ((setup)); then
  "$repo/scripts/setup.sh" >&2
  command -v lxcfs >/dev/null ||
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends lxcfs >/dev/null
fi
kapsel=$repo/build/kapsel
bench=$repo/build/kapsel-bench
[[ -x $kapsel && -x $bench ]] || die "build kapsel first (scripts/setup.sh)"

work=$(mktemp -d /tmp/kapsel-resbench.XXXXXX)
export KAPSEL_ROOT=$work/root KAPSEL_RUN_DIR=$work/run KAPSEL_CGROUP_PARENT=kapsel-resbench-$$
lxcfs_pid=""
cleanup() {
  for ((i = 0; i < ves; i++)); do "$kapsel" -q destroy --force "idle$i" 2>/dev/null || true; done
  "$kapsel" procfs-service --stop 2>/dev/null || true
  [[ -n $lxcfs_pid ]] && kill "$lxcfs_pid" 2>/dev/null || true
  sleep 0.5
  umount -l "$work/lxcfs" 2>/dev/null || true
  for d in /sys/fs/cgroup/*/"$KAPSEL_CGROUP_PARENT"; do rmdir "$d" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

pss_kib() { awk '/^Pss:/ {print $2}' "/proc/$1/smaps_rollup"; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

log "starting $ves idle VEs"
for ((i = 0; i < ves; i++)); do
  "$kapsel" -q create "idle$i" --memory 256M --cpus 1
  "$kapsel" -q start "idle$i"
done
sleep 2 # let every init settle
monitors=$("$kapsel" list --json | jq -r '.[] | .monitor_pid')
inits=$("$kapsel" list --json | jq -r '.[] | .init_pid')
service=$(cut -d' ' -f1 "$KAPSEL_RUN_DIR/procfs.pid")
# Every VE reads its meminfo once, so the service has state for each.
for ((i = 0; i < ves; i++)); do "$kapsel" exec "idle$i" -- cat /proc/meminfo >/dev/null; done
monitor_med=$(for p in $monitors; do pss_kib "$p"; done | median)
init_med=$(for p in $inits; do pss_kib "$p"; done | median)
service_pss=$(pss_kib "$service")
per_ve=$(awk -v m="$monitor_med" -v s="$service_pss" -v n="$ves" 'BEGIN {printf "%.0f", m + s / n}')

echo "## Host memory per idle VE ($ves busybox VEs, PSS in KiB, $(nproc) CPUs, load $(cut -d' ' -f1 /proc/loadavg))"
echo
echo "| process | PSS (KiB) |"
echo "|---|---|"
echo "| monitor, median of $ves | $monitor_med |"
echo "| /proc service, one for all $ves VEs | $service_pss |"
echo "| **kapsel per VE: monitor + service / $ves** | **$per_ve** |"
echo "| (the VE's own init, busybox, median) | $init_med |"

log "mounting lxcfs for comparison"
mkdir -p "$work/lxcfs"
lxcfs --pidfile="$work/lxcfs.pid" "$work/lxcfs" >/dev/null 2>&1 &
lxcfs_pid=$!
for _ in $(seq 50); do [[ -e $work/lxcfs/proc/meminfo ]] && break; sleep 0.1; done
files=(/proc/meminfo "$KAPSEL_RUN_DIR/procfs/idle0/meminfo")
if [[ -e $work/lxcfs/proc/meminfo ]]; then
  files+=("$work/lxcfs/proc/meminfo")
  echo "| lxcfs (one daemon for all containers, for comparison) | $(pss_kib "$lxcfs_pid") |"
else
  log "lxcfs did not mount; comparing kapsel with the host only"
fi
echo
echo "## Reading /proc/meminfo ($reads reads each, open + read + close)"
echo
"$bench" read-files -n "$reads" "${files[@]}"
