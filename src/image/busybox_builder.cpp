#include "image/busybox_builder.hpp"

#include <elf.h>
#include <fcntl.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <string_view>
#include <vector>

#include "common/fs.hpp"
#include "common/process.hpp"
#include "common/unique_fd.hpp"
#include "image/progress_reporter.hpp"

namespace kapsel::image {

namespace {

struct DirSpec {
  const char* path;
  mode_t mode;
};

// The skeleton of the tree, parents first. /proc and /sys are 0555 as on Debian: mount points
// only. /var/tmp and /tmp are sticky and world-writable, /root private.
constexpr DirSpec kDirs[] = {
    {"bin", 0755},      {"sbin", 0755},       {"usr", 0755},  {"usr/bin", 0755}, {"usr/sbin", 0755},
    {"etc", 0755},      {"etc/init.d", 0755}, {"proc", 0555}, {"sys", 0555},     {"dev", 0755},
    {"tmp", 01777},     {"root", 0700},       {"home", 0755}, {"var", 0755},     {"var/log", 0755},
    {"var/tmp", 01777}, {"run", 0755},        {"mnt", 0755},
};

struct LinkSpec {
  const char* path;
  const char* target;
};

constexpr LinkSpec kLinks[] = {
    {"var/run", "/run"},
    {"etc/mtab", "/proc/self/mounts"},  // for mount and df, which read /etc/mtab
};

struct FileSpec {
  const char* path;
  mode_t mode;
  const char* contents;
};

constexpr const char* kInittab =
    R"sh(# /etc/inittab for busybox init in a kapsel VE. Format: <tty>::<action>:<command>;
# busybox init has no runlevels.
#
# kapsel stops the VE by sending init SIGUSR1 (halt); SIGUSR2 powers off and SIGTERM reboots.
# Each runs the shutdown actions first.

# One-time setup at boot.
::sysinit:/etc/init.d/rcS

# A root shell on the VE's console once Enter is pressed there; started again when it exits.
::askfirst:-/bin/sh

# Ctrl-Alt-Del (SIGINT to init) reboots.
::ctrlaltdel:/sbin/reboot

# Before halt, power-off or reboot.
::shutdown:/etc/init.d/rcK

# SIGQUIT makes init re-execute itself.
::restart:/sbin/init
)sh";

constexpr const char* kRcS = R"sh(#!/bin/sh
# Run once by busybox init at boot (inittab "sysinit").
#
# In a container VE kapsel has already set the hostname, mounted /proc, /sys and /dev and
# brought up the loopback interface; under User-mode Linux or in a VM nothing has. So each
# step runs only where its work is missing, a step that fails is skipped quietly (a container
# may lack the capability), and the script always succeeds.
PATH=/usr/sbin:/usr/bin:/sbin:/bin
export PATH

# kapsel's container driver has done all of this before init starts, and says so in the
# environment: skip it there, since every process started here delays the VE's first command.
if [ "$container" != kapsel ]; then
  # Shell builtins only (no grep): cheap wherever it runs.
  mounted() {
    while read -r _ point _; do [ "$point" = "$1" ] && return 0; done </proc/mounts
    return 1
  }
  [ -e /proc/mounts ] || mount -t proc -o nosuid,nodev,noexec proc /proc 2>/dev/null
  mounted /sys || mount -t sysfs -o nosuid,nodev,noexec sysfs /sys 2>/dev/null
  mounted /dev || mount -t devtmpfs -o nosuid,mode=0755 devtmpfs /dev 2>/dev/null
  if ! mounted /dev/pts; then
    mkdir -p /dev/pts 2>/dev/null
    mount -t devpts -o nosuid,noexec,gid=5,mode=620,ptmxmode=666 devpts /dev/pts 2>/dev/null
  fi
  case "$(hostname 2>/dev/null)" in
    "" | "(none)") [ -s /etc/hostname ] && hostname -F /etc/hostname 2>/dev/null ;;
  esac
  ip link set lo up 2>/dev/null
fi

# Local services: executable /etc/init.d/S??* scripts, in name order, started with "start".
for script in /etc/init.d/S??*; do
  [ -x "$script" ] && "$script" start
done

exit 0
)sh";

constexpr const char* kRcK = R"sh(#!/bin/sh
# Run by busybox init before it halts, powers off or reboots (inittab "shutdown"): stops the
# local services in reverse order and flushes data to disk. It always succeeds.
PATH=/usr/sbin:/usr/bin:/sbin:/bin
export PATH

scripts=
for script in /etc/init.d/S??*; do
  [ -x "$script" ] && scripts="$script $scripts"
done
for script in $scripts; do
  "$script" stop
done

# Only a sync, no "umount -a -r" or remount of /: in a container or chroot the root file
# system's superblock can be the host's, and a read-only remount would hit the host.
sync

exit 0
)sh";

constexpr const char* kPasswd =
    "root:x:0:0:root:/root:/bin/sh\n"
    "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";

// tty (5) owns the devpts ptys that rcS mounts with gid=5.
constexpr const char* kGroup =
    "root:x:0:\n"
    "tty:x:5:\n"
    "users:x:100:\n"
    "nogroup:x:65534:\n";

// Passwords locked: the console shell needs none (init starts it directly) and neither does
// "kapsel enter"; a user who wants logins sets one with passwd.
constexpr const char* kShadow =
    "root:*::0:99999:7:::\n"
    "nobody:*::0:99999:7:::\n";

constexpr const char* kHosts =
    "127.0.0.1\tlocalhost\n"
    "::1\tlocalhost ip6-localhost ip6-loopback\n";

constexpr const char* kProfile =
    R"sh(# /etc/profile: read by login shells (the console shell, "kapsel enter").
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PS1='\u@\h:\w\$ '
umask 022
)sh";

constexpr const char* kOsRelease =
    "NAME=\"kapsel busybox\"\n"
    "PRETTY_NAME=\"kapsel busybox " KAPSEL_VERSION
    "\"\n"
    "ID=kapsel-busybox\n"
    "VERSION_ID=" KAPSEL_VERSION "\n";

constexpr FileSpec kFiles[] = {
    {"etc/inittab", 0644, kInittab},
    {"etc/init.d/rcS", 0755, kRcS},
    {"etc/init.d/rcK", 0755, kRcK},
    {"etc/passwd", 0644, kPasswd},
    {"etc/group", 0644, kGroup},
    {"etc/shadow", 0600, kShadow},
    {"etc/hostname", 0644, "localhost\n"},  // kapsel writes each VE's own name over it
    {"etc/hosts", 0644, kHosts},
    {"etc/profile", 0644, kProfile},
    {"etc/shells", 0644, "/bin/sh\n/bin/ash\n"},
    {"etc/os-release", 0644, kOsRelease},
};

// Applets that the tree must have, or it cannot boot.
constexpr const char* kRequiredApplets[] = {"sbin/init", "bin/sh"};

// Creates `path` below `root_fd` with exactly `mode`. No fsync per file: the store syncs the
// whole tree once before publishing it.
Status create_file(int root_fd, const std::string& path, mode_t mode, std::string_view data) {
  UniqueFd fd(
      ::openat(root_fd, path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!fd) return errno_fail("creating " + path);
  KAPSEL_TRY(fs::write_all(fd.get(), data, path), "creating " + path);
  // Set after creation, because the mode given to open(2) is reduced by the umask.
  if (::fchmod(fd.get(), mode) != 0) return errno_fail("setting the mode of " + path);
  return {};
}

Status create_dir(int root_fd, const char* path, mode_t mode) {
  if (::mkdirat(root_fd, path, 0700) != 0 && errno != EEXIST)
    return errno_fail(std::string("creating ") + path);
  if (::fchmodat(root_fd, path, mode, 0) != 0)
    return errno_fail(std::string("setting the mode of ") + path);
  return {};
}

// Checks that `fd` is a 64-bit ELF file without a program interpreter (PT_INTERP), i.e. one
// that needs no dynamic loader or libc from the tree it is copied into. The headers are read
// with pread into local structs, which any byte pattern fills validly.
Status check_static_elf(int fd, const std::string& path) {
  Elf64_Ehdr eh{};
  if (::pread(fd, &eh, sizeof eh, 0) != static_cast<ssize_t>(sizeof eh) ||
      std::memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 || eh.e_ident[EI_CLASS] != ELFCLASS64 ||
      eh.e_phentsize != sizeof(Elf64_Phdr))
    return fail(ErrorKind::failure, path + " is not a 64-bit ELF executable");
  for (unsigned i = 0; i < eh.e_phnum; ++i) {
    Elf64_Phdr ph{};
    auto off = static_cast<off_t>(eh.e_phoff + i * sizeof ph);
    if (::pread(fd, &ph, sizeof ph, off) != static_cast<ssize_t>(sizeof ph))
      return fail(ErrorKind::failure, path + ": truncated ELF program headers");
    if (ph.p_type == PT_INTERP)
      return fail(ErrorKind::failure, "busybox template needs a statically linked busybox, but " +
                                          path +
                                          " is dynamically linked: apt-get install busybox-static");
  }
  return {};
}

Status copy_file(int src_fd, const std::string& src, int root_fd, const std::string& dest,
                 mode_t mode) {
  UniqueFd out(
      ::openat(root_fd, dest.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!out) return errno_fail("creating " + dest);
  char buf[64 * 1024];
  off_t offset = 0;
  for (;;) {
    ssize_t n = ::pread(src_fd, buf, sizeof buf, offset);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno_fail("reading " + src);
    }
    if (n == 0) break;
    KAPSEL_TRY(fs::write_all(out.get(), std::string_view(buf, static_cast<size_t>(n)), dest),
               "copying " + src);
    offset += n;
  }
  if (::fchmod(out.get(), mode) != 0) return errno_fail("setting the mode of " + dest);
  return {};
}

class SpawnActions {
 public:
  SpawnActions() { ::posix_spawn_file_actions_init(&actions_); }
  SpawnActions(const SpawnActions&) = delete;
  SpawnActions& operator=(const SpawnActions&) = delete;
  ~SpawnActions() { ::posix_spawn_file_actions_destroy(&actions_); }
  posix_spawn_file_actions_t* get() { return &actions_; }

 private:
  posix_spawn_file_actions_t actions_{};
};

// Runs `argv` (argv[0] a path) with stdin from /dev/null and returns what it wrote to stdout.
// posix_spawn rather than fork, because the caller may be multi-threaded.
Result<std::string> run_capture(const std::vector<std::string>& argv) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return errno_fail("creating a pipe");
  UniqueFd read_end(fds[0]);
  UniqueFd write_end(fds[1]);
  SpawnActions actions;
  // dup2 clears O_CLOEXEC on the child's stdout; both pipe ends themselves close on exec.
  if (int rc = ::posix_spawn_file_actions_adddup2(actions.get(), write_end.get(), STDOUT_FILENO))
    return sys_fail(rc, "preparing to run " + argv[0]);
  if (int rc =
          ::posix_spawn_file_actions_addopen(actions.get(), STDIN_FILENO, "/dev/null", O_RDONLY, 0))
    return sys_fail(rc, "preparing to run " + argv[0]);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = 0;
  if (int rc = ::posix_spawn(&pid, argv[0].c_str(), actions.get(), nullptr, args.data(), environ))
    return sys_fail(rc, "running " + argv[0]);
  proc::Child child(pid);
  write_end.reset();  // so that read() sees EOF when the child exits

  std::string out;
  char buf[8192];
  for (;;) {
    ssize_t n = ::read(read_end.get(), buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno_fail("reading the output of " + argv[0]);
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  auto status = child.wait();
  if (!status) return tl::unexpected<Error>(status.error());
  if (!WIFEXITED(*status) || WEXITSTATUS(*status) != 0)
    return fail(ErrorKind::failure,
                argv[0] + " failed (wait status " + std::to_string(*status) + ")");
  return out;
}

// The applet paths of `busybox --list-full` ("bin/ash", "usr/sbin/chroot") that belong in the
// tree: relative, without "..", and not the binary itself. "linuxrc" (no directory) is the
// entry point of an initrd and has no place in a VE.
std::vector<std::string> applet_paths(std::string_view listing) {
  std::vector<std::string> out;
  while (!listing.empty()) {
    auto nl = listing.find('\n');
    std::string_view line = listing.substr(0, nl);
    listing.remove_prefix(nl == std::string_view::npos ? listing.size() : nl + 1);
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.remove_suffix(1);
    if (line.empty() || line.front() == '/' || line.find('/') == std::string_view::npos ||
        line.find("..") != std::string_view::npos || line == "bin/busybox")
      continue;
    out.emplace_back(line);
  }
  return out;
}

}  // namespace

Status build_busybox_rootfs(const std::string& rootfs, const ProgressFn& progress,
                            const std::string& busybox) {
  UniqueFd src(::open(busybox.c_str(), O_RDONLY | O_CLOEXEC));
  if (!src) {
    if (errno == ENOENT)
      return fail(ErrorKind::not_found,
                  "busybox template needs " + busybox + ": apt-get install busybox-static");
    return errno_fail("opening " + busybox);
  }
  KAPSEL_TRY(check_static_elf(src.get(), busybox), "checking " + busybox);

  UniqueFd root(::open(rootfs.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!root) return errno_fail("opening " + rootfs);
  if (::fchmod(root.get(), 0755) != 0) return errno_fail("setting the mode of " + rootfs);
  for (const auto& d : kDirs) KAPSEL_TRY(create_dir(root.get(), d.path, d.mode), rootfs);
  for (const auto& l : kLinks) {
    if (::symlinkat(l.target, root.get(), l.path) != 0)
      return errno_fail(rootfs + ": creating symlink " + l.path);
  }
  KAPSEL_TRY(copy_file(src.get(), busybox, root.get(), "bin/busybox", 0755), rootfs);

  // Ask the copy, not the host binary, so the links match the binary in the tree.
  auto listing = run_capture({rootfs + "/bin/busybox", "--list-full"});
  if (!listing) return tl::unexpected<Error>(listing.error().context("listing busybox applets"));
  auto applets = applet_paths(*listing);
  ProgressReporter report(progress, "building busybox", applets.size());
  std::uint64_t done = 0;
  for (const auto& path : applets) {
    auto slash = path.rfind('/');
    KAPSEL_TRY(fs::make_dirs(rootfs + "/" + path.substr(0, slash)), rootfs);
    // Absolute, as the VE sees its tree; an applet listed twice is linked once.
    if (::symlinkat("/bin/busybox", root.get(), path.c_str()) != 0 && errno != EEXIST)
      return errno_fail(rootfs + ": linking applet " + path);
    report.update(++done);
  }
  for (const char* required : kRequiredApplets) {
    struct stat st {};
    if (::fstatat(root.get(), required, &st, AT_SYMLINK_NOFOLLOW) != 0)
      return fail(ErrorKind::failure,
                  busybox + " has no /" + std::string(required) + " applet; a VE cannot boot");
  }

  for (const auto& f : kFiles)
    KAPSEL_TRY(create_file(root.get(), f.path, f.mode, f.contents), rootfs);
  report.finish(done);
  return {};
}

}  // namespace kapsel::image
