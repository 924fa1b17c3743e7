#!/usr/bin/env bash
# OCI runtime benchmark (docs/benchmarks.md, "The OCI surface"): create + start + wait + delete
# of one /bin/true bundle, as an engine drives a runtime, through kapsel-runc and through runc,
# alternately in the same run on the same bundle (the busybox template's tree, runc's default
# config.json without a terminal). Prints the median and quartiles of each, and their ratio.
#
# Usage: sudo bench/oci.sh [--runs N] [--no-setup]
#   --runs N     create+start+delete cycles per runtime (default 50)
#   --no-setup   do not install packages or build; use ./build as is
#
# Everything goes to a temporary directory; the runtimes' state directories are private to the
# run and removed at the end.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
runs=50
setup=1
# shellcheck source=bench/lib.sh
source "$repo/bench/lib.sh"
while (($#)); do
  case "$1" in
    --runs) runs=${2:?--runs needs a number}; shift ;;
    --no-setup) setup=0 ;;
    -h | --help) show_help ;;
    *) bad_argument "$1" ;;
  esac
  shift
done
require_root "the benchmark makes containers, mounts and cgroups"
((setup)) && "$repo/scripts/setup.sh" >&2
kapsel_runc=$repo/build/kapsel-runc
[[ -x $kapsel_runc ]] || die "$kapsel_runc is missing: build first (scripts/setup.sh)"
command -v runc >/dev/null || die "runc is missing (apt-get install runc)"

work=$(mktemp -d /tmp/kapsel-bench-oci.XXXXXX)
trap 'rm -rf "$work"' EXIT
# The bundle: the busybox template (made in a private kapsel root) and a default spec.
KAPSEL_ROOT=$work/kroot KAPSEL_RUN_DIR=$work/krun "$repo/build/kapsel" create bench-template >/dev/null
mkdir -p "$work/bundle"
cp -a "$work/kroot/templates/busybox/rootfs" "$work/bundle/rootfs"
KAPSEL_ROOT=$work/kroot KAPSEL_RUN_DIR=$work/krun "$repo/build/kapsel" destroy bench-template >/dev/null
(cd "$work/bundle" && runc spec)
sed -i 's/"terminal": true/"terminal": false/; s/"sh"$/"\/bin\/true"/' "$work/bundle/config.json"
grep -q '"/bin/true"' "$work/bundle/config.json" || die "could not set the bundle's args"

# One cycle, in milliseconds: create, start, wait until stopped, delete.
cycle() {
  local runtime=$1 root=$2 id=$3 t0 t1
  t0=$(date +%s%N)
  "$runtime" --root "$root" create --bundle "$work/bundle" "$id" </dev/null >/dev/null 2>&1
  "$runtime" --root "$root" start "$id"
  while "$runtime" --root "$root" state "$id" 2>/dev/null | grep -q '"running"'; do :; done
  "$runtime" --root "$root" delete --force "$id"
  t1=$(date +%s%N)
  echo $(((t1 - t0) / 1000))
}

: >"$work/runc.us"
: >"$work/kapsel.us"
log "$runs cycles each, alternating"
for ((i = 0; i < runs; i++)); do
  cycle runc "$work/state-runc" "r$i" >>"$work/runc.us"
  cycle "$kapsel_runc" "$work/state-kapsel" "k$i" >>"$work/kapsel.us"
done

# Median and quartiles of a file of microseconds, in milliseconds.
stats() {
  sort -n "$1" | awk '{a[NR]=$1} END {printf "%.1f %.1f %.1f", a[int(NR/4)+1]/1000, a[int(NR/2)+1]/1000, a[int(3*NR/4)+1]/1000}'
}
read -r rq1 rmed rq3 <<<"$(stats "$work/runc.us")"
read -r kq1 kmed kq3 <<<"$(stats "$work/kapsel.us")"
printf '%-12s %8s %8s %8s\n' runtime q1_ms median_ms q3_ms
printf '%-12s %8s %8s %8s\n' runc "$rq1" "$rmed" "$rq3"
printf '%-12s %8s %8s %8s\n' kapsel-runc "$kq1" "$kmed" "$kq3"
awk -v k="$kmed" -v r="$rmed" 'BEGIN {printf "kapsel-runc / runc (median): %.2f\n", k / r}'
