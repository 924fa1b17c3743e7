#!/usr/bin/env bash
# UML benchmark (docs/benchmarks.md, "UML VEs"):
#  1. start to first exec: `kapsel start` of a stopped UML VE until `kapsel exec -- true` has
#     succeeded (start returns once the guest agent answers), median of --runs;
#  2. host memory per idle UML VE: --ves guests are started and left idle for 5 s; the
#     proportional set size (PSS) of every host process in each VE's cgroup (linux.uml and its
#     helpers) plus its monitor's, and the memory cgroup's usage, per VE;
#  3. a CPU-bound (shell arithmetic loop), a syscall-bound (dd with 1-byte blocks: two system
#     calls a byte) and a fork/exec-bound (/bin/true in a loop) workload, natively (the host's
#     busybox), in a container VE and in a UML VE, median of --runs each, with ratios to native.
#     The time is the wall time of the whole command, `kapsel exec` included (a few ms).
#
# Usage: sudo bench/uml.sh [--runs N] [--ves N] [--no-setup]
#   --runs N     repetitions of each measurement (default 5)
#   --ves N      idle UML VEs for the memory figure (default 3)
#   --no-setup   do not install packages or build; use ./build as is
#
# Everything goes to a temporary directory and cgroup parent, and is removed at the end.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
runs=5
ves=3
setup=1
# shellcheck source=bench/lib.sh
source "$repo/bench/lib.sh"
while (($#)); do
  case "$1" in
    --runs) runs=${2:?--runs needs a number}; shift ;;
    --ves) ves=${2:?--ves needs a number}; shift ;;
    --no-setup) setup=0 ;;
    -h | --help) show_help ;;
    *) bad_argument "$1" ;;
  esac
  shift
done
require_root "the benchmark makes VEs and cgroups"
((setup)) && "$repo/scripts/setup.sh" >&2
kapsel=${KAPSEL_BIN:-$repo/build/kapsel}  # KAPSEL_BIN: another build of kapsel
[[ -x $kapsel ]] || die "build kapsel first (scripts/setup.sh)"
[[ -x /usr/bin/linux.uml ]] || die "/usr/bin/linux.uml is missing: apt-get install user-mode-linux"

work=$(mktemp -d /tmp/kapsel-umlbench.XXXXXX)
export KAPSEL_ROOT=$work/root KAPSEL_RUN_DIR=$work/run KAPSEL_CGROUP_PARENT=kapsel-umlbench-$$
cleanup() {
  for ve in $("$kapsel" list --json 2>/dev/null | grep -o '"name": *"[^"]*"' | cut -d'"' -f4); do
    "$kapsel" -q destroy --force "$ve" 2>/dev/null || true
  done
  "$kapsel" procfs-service --stop 2>/dev/null || true
  for d in /sys/fs/cgroup/*/"$KAPSEL_CGROUP_PARENT"; do rmdir "$d" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }
pss_kib() { awk '/^Pss:/ {s+=$2} END {print s+0}' "/proc/$1/smaps_rollup" 2>/dev/null || echo 0; }

log "creating the VEs (the first UML create builds the template's disk image)"
"$kapsel" -q create ub --kind uml --memory 256M
"$kapsel" -q create cb

# 1. start -> first exec
times=()
for ((i = 0; i < runs; i++)); do
  t0=$(now_ms)
  "$kapsel" -q start ub
  "$kapsel" exec ub -- true
  times+=($(($(now_ms) - t0)))
  "$kapsel" -q stop ub
done
start_ms=$(printf '%s\n' "${times[@]}" | median)
echo "uml start to first exec: median ${start_ms} ms of ${runs} (${times[*]})"

# 2. host memory per idle UML VE
for ((i = 0; i < ves; i++)); do "$kapsel" -q create "idle$i" --kind uml --memory 256M; done
for ((i = 0; i < ves; i++)); do "$kapsel" -q start "idle$i"; done
sleep 5
total_pss=0
total_usage=0
for ((i = 0; i < ves; i++)); do
  cg=/sys/fs/cgroup/memory/$KAPSEL_CGROUP_PARENT/idle$i
  [[ -d $cg ]] || cg=/sys/fs/cgroup/unified/$KAPSEL_CGROUP_PARENT/idle$i
  pss=0
  for pid in $(cat "$cg/cgroup.procs"); do pss=$((pss + $(pss_kib "$pid"))); done
  mon=$("$kapsel" status "idle$i" --json | grep -o '"monitor_pid": *[0-9]*' | grep -o '[0-9]*$')
  pss=$((pss + $(pss_kib "$mon")))
  usage=$(cat "$cg/memory.usage_in_bytes" 2>/dev/null || cat "$cg/memory.current" 2>/dev/null || echo 0)
  total_pss=$((total_pss + pss))
  total_usage=$((total_usage + usage / 1024))
done
echo "idle uml VE (mem=256M): PSS $((total_pss / ves)) KiB, memory cgroup usage $((total_usage / ves)) KiB per VE (mean of $ves)"
for ((i = 0; i < ves; i++)); do "$kapsel" -q destroy --force "idle$i"; done

# 3. workloads
"$kapsel" -q start ub
"$kapsel" -q start cb
declare -A work_sh=(
  [cpu]='i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done'
  [syscall]='dd if=/dev/zero of=/dev/null bs=1 count=200000 2>/dev/null'
  [forkexec]='i=0; while [ $i -lt 500 ]; do /bin/true; i=$((i+1)); done'
)
one() { # where workload -> ms
  local t0
  t0=$(now_ms)
  case $1 in
    native) busybox sh -c "${work_sh[$2]}" ;;
    container) "$kapsel" exec cb -- sh -c "${work_sh[$2]}" ;;
    uml) "$kapsel" exec ub -- sh -c "${work_sh[$2]}" ;;
  esac
  echo $(($(now_ms) - t0))
}
printf '%-10s %10s %10s %10s %10s %10s\n' workload native_ms container_ms uml_ms ct/native uml/native
for w in cpu syscall forkexec; do
  # Interleaved, so that a change in the host's load (it is shared) hits all three alike.
  tn=() tc=() tu=()
  for ((i = 0; i < runs; i++)); do
    tn+=("$(one native "$w")")
    tc+=("$(one container "$w")")
    tu+=("$(one uml "$w")")
  done
  n=$(printf '%s\n' "${tn[@]}" | median)
  c=$(printf '%s\n' "${tc[@]}" | median)
  u=$(printf '%s\n' "${tu[@]}" | median)
  awk -v w="$w" -v n="$n" -v c="$c" -v u="$u" \
    'BEGIN {printf "%-10s %10s %10s %10s %10.2f %10.2f\n", w, n, c, u, c / n, u / n}'
done
