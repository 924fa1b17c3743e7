// A static program the escape tests copy into a VE and run there: each action makes one system
// call that a container breakout needs and prints "ACTION: ok" if the kernel let it through, or
// "ACTION: ENAME" with the error it gave. The test decides what is expected; the probe only
// reports, so that it cannot pass anything by itself.
//
// Usage: escape-probe ACTION [ARG]...
#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/perf_event.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/swap.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace {

const char* errno_name(int e) {
  switch (e) {
    case EPERM:
      return "EPERM";
    case ENOENT:
      return "ENOENT";
    case ESRCH:
      return "ESRCH";
    case EACCES:
      return "EACCES";
    case EROFS:
      return "EROFS";
    case EINVAL:
      return "EINVAL";
    case ENOSYS:
      return "ENOSYS";
    case EBADF:
      return "EBADF";
    case ENODEV:
      return "ENODEV";
    case ENXIO:
      return "ENXIO";
    case EEXIST:
      return "EEXIST";
    case EFAULT:
      return "EFAULT";
    case ENOTDIR:
      return "ENOTDIR";
    case EOPNOTSUPP:
      return "EOPNOTSUPP";
    default:
      return "OTHER";
  }
}

int report(const char* action, long rc) {
  if (rc < 0) {
    std::printf("%s: %s (%s)\n", action, errno_name(errno), std::strerror(errno));
  } else {
    std::printf("%s: ok\n", action);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: escape-probe ACTION [ARG]...\n");
    return 2;
  }
  std::string a = argv[1];
  const char* arg = argc > 2 ? argv[2] : "";
  if (a == "kexec_load") return report("kexec_load", syscall(SYS_kexec_load, 0, 0, nullptr, 0));
  if (a == "init_module") {
    static char image[64] = {};
    return report("init_module", syscall(SYS_init_module, image, sizeof image, ""));
  }
  if (a == "finit_module") {
    int fd = open("/bin/busybox", O_RDONLY);
    return report("finit_module", syscall(SYS_finit_module, fd, "", 0));
  }
  if (a == "bpf") {
    union bpf_attr attr {};
    attr.map_type = BPF_MAP_TYPE_ARRAY;
    attr.key_size = 4;
    attr.value_size = 4;
    attr.max_entries = 1;
    return report("bpf", syscall(SYS_bpf, BPF_MAP_CREATE, &attr, sizeof attr));
  }
  if (a == "perf_event_open") {
    struct perf_event_attr attr {};
    attr.size = sizeof attr;
    attr.type = PERF_TYPE_SOFTWARE;
    attr.config = PERF_COUNT_SW_CPU_CLOCK;
    return report("perf_event_open", syscall(SYS_perf_event_open, &attr, 0, -1, -1, 0));
  }
  if (a == "keyctl") return report("keyctl", syscall(SYS_keyctl, 0 /* GET_KEYRING_ID */, -3, 0));
  if (a == "add_key")
    return report("add_key", syscall(SYS_add_key, "user", "probe", "x", 1, -3 /* session */));
  if (a == "open_by_handle_at") {
    // A handle of the root directory's inode on the host's file system: what "shocker" forges.
    struct {
      unsigned int handle_bytes;
      int handle_type;
      unsigned char f_handle[8];
    } h{8, 1, {2, 0, 0, 0, 0, 0, 0, 0}};
    return report("open_by_handle_at", syscall(SYS_open_by_handle_at, AT_FDCWD, &h, O_RDONLY));
  }
  if (a == "ptrace")
    return report("ptrace", ptrace(PTRACE_ATTACH, std::atoi(arg), nullptr, nullptr));
  if (a == "mount_proc") {
    mkdir("/mnt/probe-proc", 0755);
    return report("mount_proc", mount("proc", "/mnt/probe-proc", "proc", 0, nullptr));
  }
  if (a == "mount_dev") {
    mkdir("/mnt/probe-dev", 0755);
    return report("mount_dev", mount(arg, "/mnt/probe-dev", "ext4", MS_RDONLY, nullptr));
  }
  if (a == "mount_cgroup") {
    mkdir("/mnt/probe-cg", 0755);
    return report("mount_cgroup", mount("cgroup", "/mnt/probe-cg", "cgroup", 0, "memory"));
  }
  if (a == "mknod_read") {
    // A block device node of the host's disk (major:minor given), then a read of it.
    unsigned major = 0, minor = 0;
    std::sscanf(arg, "%u:%u", &major, &minor);
    unlink("/tmp/probe-disk");
    if (mknod("/tmp/probe-disk", S_IFBLK | 0600, makedev(major, minor)) != 0)
      return report("mknod", -1);
    report("mknod", 0);
    int fd = open("/tmp/probe-disk", O_RDONLY);
    return report("open_disk", fd);
  }
  if (a == "setns") {
    // Only the VE's own namespaces are reachable by path; even those must not be joinable.
    int fd = open(arg, O_RDONLY);
    if (fd < 0) return report("setns_open", -1);
    return report("setns", setns(fd, 0));
  }
  if (a == "clock_settime") {
    struct timespec ts {};
    clock_gettime(CLOCK_REALTIME, &ts);
    return report("clock_settime", clock_settime(CLOCK_REALTIME, &ts));
  }
  if (a == "settimeofday") {
    struct timeval tv {};
    gettimeofday(&tv, nullptr);
    return report("settimeofday", settimeofday(&tv, nullptr));
  }
  if (a == "swapon") return report("swapon", swapon("/tmp/none", 0));
  if (a == "userfaultfd") return report("userfaultfd", syscall(SYS_userfaultfd, 0));
  if (a == "unshare_user") return report("unshare_user", unshare(CLONE_NEWUSER));
  if (a == "unshare_mount") return report("unshare_mount", unshare(CLONE_NEWNS));
  if (a == "write") {
    int fd = open(arg, O_WRONLY);
    if (fd < 0) return report("write_open", -1);
    return report("write", write(fd, "1\n", 2));
  }
  if (a == "read") {
    int fd = open(arg, O_RDONLY);
    if (fd < 0) return report("read_open", -1);
    char buf[16];
    long n = read(fd, buf, sizeof buf);
    if (n == 0) {
      std::printf("read: empty\n");
      return 0;
    }
    return report("read", n);
  }
  if (a == "fds") {
    // Every descriptor this process has, with what it refers to.
    for (int fd = 0; fd < 1024; ++fd) {
      char path[64], target[512];
      std::snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
      ssize_t n = readlink(path, target, sizeof target - 1);
      if (n < 0) continue;
      target[n] = 0;
      std::printf("fd %d: %s\n", fd, target);
    }
    char cwd[512];
    std::printf("cwd: %s\n", getcwd(cwd, sizeof cwd) ? cwd : "?");
    return 0;
  }
  std::fprintf(stderr, "escape-probe: unknown action %s\n", a.c_str());
  return 2;
}
