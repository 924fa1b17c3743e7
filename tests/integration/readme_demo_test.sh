#!/usr/bin/env bash
# The README's main job (scripts/demo.sh, which scripts/quickstart.sh runs after setting up and
# building) end to end with the real binary, in a private root so that no real VE is touched.
set -euo pipefail
kapsel=$1
demo=$2
if [[ $(id -u) -ne 0 ]]; then
  echo "SKIP: needs root (creates namespaces, mounts and cgroups)"
  exit 77
fi
tmp=$(mktemp -d /tmp/kapsel-demo.XXXXXX)
export KAPSEL_ROOT=$tmp/root KAPSEL_RUN_DIR=$tmp/run KAPSEL_CGROUP_PARENT=kapsel-demo-$$
cleanup() {
  "$kapsel" destroy --force demo >/dev/null 2>&1 || true
  # The run dir's /proc service (shared by all VEs of a run dir, like lxcfs) outlives the VE
  # by a minute.
  "$kapsel" procfs-service --stop >/dev/null 2>&1 || true
  rm -rf "$tmp"
  for d in /sys/fs/cgroup/*/"$KAPSEL_CGROUP_PARENT"; do rmdir "$d" 2>/dev/null || true; done
}
trap cleanup EXIT

out=$("$demo" "$kapsel" 2>&1)
echo "$out"
expect() {
  grep -qE "$1" <<<"$out" || { echo "FAIL: the demo's output lacks: $1"; exit 1; }
}
expect '^created VE demo from template busybox'
expect '^started VE demo'
expect '^hello from demo'
expect '^ +1 root +init'
expect '^demo +container +running +[0-9]+ '
expect '^stopped VE demo'
expect '^state: +stopped'
expect '^last exit: +halted'
expect '^destroyed VE demo'
# Nothing is left: no VE, no cgroup, no mount.
[[ -z $("$kapsel" list --json | tr -d '[] \n') ]] || { echo "FAIL: VEs remain"; exit 1; }
if ls -d /sys/fs/cgroup/*/"$KAPSEL_CGROUP_PARENT"/demo 2>/dev/null; then
  echo "FAIL: cgroups remain"
  exit 1
fi
# (The shared /proc service's own mount is no VE's: it stays, like lxcfs, for the next VE.)
if grep -h "$tmp" /proc/*/mountinfo 2>/dev/null | grep -qv " $tmp/run/procfs "; then
  echo "FAIL: mounts remain"
  exit 1
fi
echo "PASS"
