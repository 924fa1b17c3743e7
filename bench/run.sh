#!/usr/bin/env bash
# Start-up benchmark: `kapsel run --rm -- /bin/true` (create a VE, start it, exec the command in
# it, destroy it) against `runc run`, `lxc-execute` and `bwrap` running /bin/true from the same
# busybox root filesystem, plus /bin/true run directly on the host as the floor. Prints a table of
# medians, p10/p90, min/max and the ratio of kapsel's median to each tool's (docs/benchmarks.md).
#
# Usage: sudo bench/run.sh [--json] [--runs N] [--warmup N] [--save FILE] [--no-setup]
#   --json       print the report as JSON (samples included) instead of the table
#   --runs N     measured runs of each case (default 50)
#   --warmup N   warm-up runs of each case, discarded (default 5)
#   --save FILE  also write the JSON report to FILE
#   --no-setup   do not install packages or build; use the tools installed and ./build as is
#
# Everything kapsel stores goes to a temporary directory (KAPSEL_ROOT, KAPSEL_RUN_DIR) and its
# cgroups to a parent of their own (KAPSEL_CGROUP_PARENT), so the benchmark never touches real VEs.
# Afterwards it checks that no tool left cgroups, processes or mounts behind; it exits 1 if one did.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
runs=50
warmup=5
json=0
save=""
setup=1
# shellcheck source=bench/lib.sh
source "$repo/bench/lib.sh"

while (($#)); do
  case "$1" in
    --json) json=1 ;;
    --runs) runs=${2:?--runs needs a number}; shift ;;
    --warmup) warmup=${2:?--warmup needs a number}; shift ;;
    --save) save=${2:?--save needs a file}; shift ;;
    --no-setup) setup=0 ;;
    -h | --help) show_help ;;
    *) bad_argument "$1" ;;
  esac
  shift
done

require_root "every tool here creates namespaces, mounts and cgroups"

# Progress goes to stderr throughout, so that stdout carries only the report (--json pipes).
if ((setup)); then
  log "installing what is missing (runc, lxc, bubblewrap) and building kapsel"
  "$repo/scripts/setup.sh" --with-bench >&2
  # jq writes the OCI config and the list of cases; scripts/setup.sh does not need it.
  if ! command -v jq >/dev/null; then
    log "installing jq"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends jq >/dev/null
  fi
fi
find_build
for tool in runc lxc-execute bwrap jq; do
  command -v "$tool" >/dev/null || die "$tool is not installed (apt-get install runc lxc bubblewrap jq)"
done
runc=$(command -v runc)
lxc_execute=$(command -v lxc-execute)
bwrap=$(command -v bwrap)

# One tag names everything this run creates (kapsel's cgroup parent, runc and LXC container
# names), so that leftovers can be found afterwards and told apart from other runs'.
tag=kapsel-bench-$$
work=$(mktemp -d "${TMPDIR:-/tmp}/kapsel-bench.XXXXXX")
export KAPSEL_ROOT=$work/kapsel/root KAPSEL_RUN_DIR=$work/kapsel/run KAPSEL_CGROUP_PARENT=$tag

# Every cgroup directory of this run, deepest first: those whose names carry the tag and all
# below them (kapsel's VE cgroups are named after the VE, under the tagged parent).
tagged_cgroups() {
  local top
  find /sys/fs/cgroup -mindepth 2 -type d -name "*$tag*" -prune -print 2>/dev/null |
    while read -r top; do find "$top" -depth -type d 2>/dev/null; done
}

cleanup() {
  set +e
  # A VE, container or mount left by an aborted run is removed before its files are.
  for ve in $("$kapsel" list --json 2>/dev/null | jq -r '.[].name' 2>/dev/null); do
    "$kapsel" -q destroy --force "$ve" >/dev/null 2>&1
  done
  for c in $("$runc" --root "$work/runc" list -q 2>/dev/null); do
    "$runc" --root "$work/runc" delete -f "$c" >/dev/null 2>&1
  done
  "$kapsel" procfs-service --stop >/dev/null 2>&1
  findmnt -rn -o TARGET | grep -F "$work/" | sort -r | xargs -r -n1 umount -l 2>/dev/null
  tagged_cgroups | xargs -r rmdir 2>/dev/null
  # --one-file-system: never follow a mount that is still there into the host's files.
  rm -rf --one-file-system "$work"
}
trap cleanup EXIT

log "building the busybox template in $work"
"$kapsel" -q run --rm -- /bin/true
rootfs=$("$kapsel" template list --json | jq -r '.[] | select(.id == "busybox") | .rootfs')
[[ -n $rootfs && -x $rootfs/bin/true ]] || die "no busybox template rootfs with /bin/true ($rootfs)"

# runc: the default config of `runc spec` (namespaces pid, net, ipc, uts, mount; masked and
# read-only /proc paths; the default capability set; a devices cgroup), pointed at the rootfs.
mkdir -p "$work/oci" "$work/runc"
(cd "$work/oci" && "$runc" spec)
jq --arg root "$rootfs" \
  '.root = {path: $root, readonly: true} | .process.args = ["/bin/true"] | .process.terminal = false' \
  "$work/oci/config.json" >"$work/oci/config.json.new"
mv "$work/oci/config.json.new" "$work/oci/config.json"

# LXC: the common.conf that every LXC template includes (capability drops, seccomp, a devices
# cgroup, ttys, /dev/lxc/console) with an empty network namespace. The lxcfs package, which
# Debian's lxc recommends, adds a mount hook and a post-stop hook that sleeps 0.5 s
# (/usr/share/lxc/config/common.conf.d/00-lxcfs.conf); they serve lxcfs, not the container, so
# they are cleared here, or every run would measure a shell script and a sleep.
# lxc-execute starts the command under LXC's own small init as the container's PID 1 (in LXC 5
# its own binary re-executed as "init"), so the rootfs needs no init.lxc and no lxc.init.* key.
mkdir -p "$work/lxc"
cat >"$work/lxc.conf" <<EOF
lxc.include = /usr/share/lxc/config/common.conf
lxc.hook.mount =
lxc.hook.post-stop =
lxc.uts.name = bench
lxc.rootfs.path = dir:$rootfs
lxc.rootfs.options = ro
lxc.net.0.type = empty
lxc.autodev = 1
lxc.apparmor.profile = unconfined
EOF

# The cases; "{n}" is replaced by kapsel-bench with a number unique to each run, because runc
# and LXC want a new container name every time (a fixed name would work too, but a leftover
# from one run would then fail the next instead of showing up in the leak check below).
jq -n \
  --arg kapsel "$kapsel" --arg runc "$runc" --arg lxc "$lxc_execute" --arg bwrap "$bwrap" \
  --arg work "$work" --arg rootfs "$rootfs" --arg tag "$tag" '
{
  title: "Start-up: run /bin/true in a fresh container from the busybox rootfs, and remove it",
  reference: "kapsel",
  cases: [
    {name: "kapsel",
     description: "create a VE (config, overlay, cgroups), start its monitor and busybox init, exec /bin/true, destroy it",
     argv: [$kapsel, "run", "--rm", "--", "/bin/true"]},
    {name: "lxc-execute",
     description: "LXC application container with common.conf: LXC'"'"'s init runs /bin/true",
     argv: [$lxc, "-n", ($tag + "-lxc-{n}"), "-P", ($work + "/lxc"), "-f", ($work + "/lxc.conf"), "--", "/bin/true"]},
    {name: "runc",
     description: "OCI bundle from `runc spec`, /bin/true as the container process",
     argv: [$runc, "--root", ($work + "/runc"), "run", "--bundle", ($work + "/oci"), ($tag + "-runc-{n}")]},
    {name: "bwrap",
     description: "bubblewrap sandbox: new namespaces, /proc and /dev, no cgroups, no state",
     argv: [$bwrap, "--ro-bind", $rootfs, "/", "--proc", "/proc", "--dev", "/dev", "--unshare-all", "/bin/true"]},
    {name: "host",
     description: "the host'"'"'s /bin/true with no isolation: process creation alone",
     argv: ["/bin/true"]}
  ]
}' >"$work/cases.json"

log "running each case $warmup + $runs times"
# KAPSEL_BENCH_TAG is inherited by every process the tools start (unless they clear the
# environment), so that a straggler can be found by it; this script itself does not carry it.
bench_args=(--cases "$work/cases.json" --runs "$runs" --warmup "$warmup" --save "$work/result.json")
((json)) && bench_args+=(--json)
KAPSEL_BENCH_TAG=$tag "$bench" "${bench_args[@]}"
[[ -z $save ]] || cp "$work/result.json" "$save"

# kapsel's /proc service, shared by the VEs of a run dir like lxcfs, stays for a minute after
# the last VE has stopped; it is stopped here, and whatever it fails to remove shows below.
"$kapsel" procfs-service --stop

# Leak check: the tools must have removed what they made. kapsel's own cgroup parent directories
# (/sys/fs/cgroup/*/$tag) are expected to stay, empty, until the cleanup removes them.
leaks=()
while read -r d; do
  [[ -n $d && $(basename "$d") != "$tag" ]] && leaks+=("cgroup $d")
done < <(tagged_cgroups)
for p in /proc/[0-9]*; do
  pid=${p#/proc/}
  if grep -qszxF "KAPSEL_BENCH_TAG=$tag" "$p/environ" ||
    grep -qsF "$tag" "$p/cgroup"; then
    leaks+=("process $pid: $(tr '\0' ' ' <"$p/cmdline" 2>/dev/null)")
  fi
done
while read -r m; do
  [[ -n $m ]] && leaks+=("mount $m")
done < <(findmnt -rn -o TARGET | grep -F "$work/" || true)
ves=$("$kapsel" list --json | jq -r '.[].name')
[[ -z $ves ]] || leaks+=("kapsel VEs: $ves")
containers=$("$runc" --root "$work/runc" list -q)
[[ -z $containers ]] || leaks+=("runc containers: $containers")

if ((${#leaks[@]})); then
  log "left behind after the benchmark:"
  printf '  %s\n' "${leaks[@]}" >&2
fi

if ((!json)); then
  # The issue's targets: faster than lxc-execute, and within 2x of bwrap.
  jq -r '
    def median(n): (.cases[] | select(.name == n) | .median_ms);
    median("kapsel") as $k | median("lxc-execute") as $l | median("bwrap") as $b |
    "",
    "target: faster than lxc-execute: \($k * 10 | round / 10) ms vs \($l * 10 | round / 10) ms: " +
      (if $k < $l then "met" else "NOT met" end),
    "target: within 2x of bwrap: \($k / $b * 100 | round / 100)x: " +
      (if $k <= 2 * $b then "met" else "NOT met" end)' "$work/result.json"
fi
((${#leaks[@]} == 0)) || exit 1
