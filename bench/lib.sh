# Shared by the benchmark scripts (sourced): messages, --help from the script's header comment,
# and the checks every one of them makes before it starts.

die() {
  echo "bench: $*" >&2
  exit 1
}
log() { echo "bench: $*" >&2; }

# Prints the calling script's header comment (from line 2 to `set -euo pipefail`) as its help.
show_help() {
  sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
  exit 0
}

bad_argument() { die "unknown argument '$1' (see --help)"; }

require_root() { [[ $(id -u) -eq 0 ]] || die "run as root: $*"; }

# The built kapsel and kapsel-bench of the repository, or a clear error.
find_build() {
  kapsel=$repo/build/kapsel
  bench=$repo/build/kapsel-bench
  [[ -x $kapsel && -x $bench ]] ||
    die "$kapsel or $bench is missing: build with scripts/setup.sh (or drop --no-setup)"
}
