#include "procfs/procfs_service.hpp"

// The low-level API: inodes are ours (one number per VE and file, no path strings kept), and
// replies need no library-side node table, which keeps the idle service small.
#define FUSE_USE_VERSION 35
#include <fuse_lowlevel.h>

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>
#include <vector>

#include "common/fs.hpp"
#include "common/unique_fd.hpp"
#include "procfs/ve_files.hpp"

namespace kapsel::procfs {
namespace {

// How long the kernel may cache names and attributes. Short, because the set of VEs changes and
// a VE that has just started must be found by its own setup child at once; a name that is not
// found is never cached (no negative entries).
constexpr double kCacheTimeoutS = 1.0;

// The service stops after this when asked, before it is killed.
constexpr int kStopTimeoutMs = 2000;
// ensure_service() waits this long for a new service to mount.
constexpr auto kStartTimeout = std::chrono::seconds(2);

std::string pid_path(const store::Paths& paths) {
  return paths.run_dir + "/procfs.pid";
}
std::string lock_path(const store::Paths& paths) {
  return paths.run_dir + "/procfs.lock";
}

// ---------------------------------------------------------------------------------------------
// The file system. Inode numbers: 1 is the root; a VE gets a number k >= 1 the first time its
// name is looked up, its directory is k << 4 and its files (k << 4) | (1 + index in
// kVirtualFiles). Numbers are never reused while the service runs, so an inode the kernel keeps
// (a file bound into a VE) always means the same VE and file.

constexpr unsigned kFileBits = 4;
static_assert(kVirtualFiles.size() < (1u << kFileBits));

// The state of one open file or directory lives on the heap and its address is the handle the
// kernel keeps (fuse_file_info::fh): the kernel passes it back with every request on that open
// file and with its release, after which it never uses it again, so the casts back from fh
// always name a live object of the type made at open (files and directories have their own
// open and release callbacks).
struct OpenFile {
  std::mutex mutex;
  std::string ve;
  std::size_t index = 0;
  std::string text;
  bool served = false;
};

struct DirEntry {
  std::string name;
  fuse_ino_t ino;
  mode_t mode;
};

class FileSystem {
 public:
  explicit FileSystem(store::Paths paths) : files_(std::move(paths)), started_(::time(nullptr)) {}

  VeFiles& files() { return files_; }
  // The session that serves this file system, for notifications to the kernel.
  void set_session(fuse_session* session) { session_ = session; }

  static const fuse_lowlevel_ops& ops() {
    static const fuse_lowlevel_ops ops = [] {
      fuse_lowlevel_ops o{};
      o.lookup = [](fuse_req_t req, fuse_ino_t parent, const char* name) {
        self(req).lookup(req, parent, name);
      };
      o.getattr = [](fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
        auto st = self(req).attr(ino);
        if (!st) {
          fuse_reply_err(req, ENOENT);
          return;
        }
        // The size of the text an open descriptor reads, when the kernel says which one (it
        // does when it refreshes the size for lseek(SEEK_END), for regular files only), else
        // of the text made last for this file: see extend_size() for why it matters.
        if (S_ISREG(st->st_mode)) st->st_size = fi ? open_size(fi) : self(req).last_size(ino);
        fuse_reply_attr(req, &*st, kCacheTimeoutS);
      };
      o.opendir = [](fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
        self(req).opendir(req, ino, fi);
      };
      o.readdir = [](fuse_req_t req, fuse_ino_t, size_t size, off_t off, fuse_file_info* fi) {
        readdir(req, size, off, fi);
      };
      o.releasedir = [](fuse_req_t req, fuse_ino_t, fuse_file_info* fi) {
        delete reinterpret_cast<std::vector<DirEntry>*>(fi->fh);
        fuse_reply_err(req, 0);
      };
      o.open = [](fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
        self(req).open(req, ino, fi);
      };
      o.read = [](fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi) {
        self(req).read(req, ino, size, off, fi);
      };
      o.release = [](fuse_req_t req, fuse_ino_t, fuse_file_info* fi) {
        delete reinterpret_cast<OpenFile*>(fi->fh);
        fuse_reply_err(req, 0);
      };
      return o;
    }();
    return ops;
  }

 private:
  static off_t open_size(fuse_file_info* fi) {
    auto& file = *reinterpret_cast<OpenFile*>(fi->fh);
    std::lock_guard lock(file.mutex);
    return static_cast<off_t>(file.text.size());
  }

  static FileSystem& self(fuse_req_t req) {
    // The session was created with this object as its user data and outlives every request.
    return *static_cast<FileSystem*>(fuse_req_userdata(req));
  }

  fuse_ino_t intern(const std::string& ve) {
    std::lock_guard lock(names_mutex_);
    auto [it, added] = ids_.try_emplace(ve, names_.size() + 1);
    if (added) names_.push_back(ve);
    return static_cast<fuse_ino_t>(it->second << kFileBits);
  }

  std::optional<std::string> name_of(fuse_ino_t ino) const {
    std::uint64_t id = ino >> kFileBits;
    std::lock_guard lock(names_mutex_);
    if (id == 0 || id > names_.size()) return std::nullopt;
    return names_[id - 1];
  }

  std::optional<struct stat> attr(fuse_ino_t ino) const {
    struct stat st {};
    st.st_ino = ino;
    st.st_atime = st.st_mtime = st.st_ctime = started_;
    if (ino == FUSE_ROOT_ID || (ino >> kFileBits != 0 && (ino & ((1u << kFileBits) - 1)) == 0)) {
      if (ino != FUSE_ROOT_ID && !name_of(ino)) return std::nullopt;
      st.st_mode = S_IFDIR | 0555;
      st.st_nlink = 2;
      return st;
    }
    std::size_t index = (ino & ((1u << kFileBits) - 1)) - 1;
    if (index >= kVirtualFiles.size() || !name_of(ino)) return std::nullopt;
    // Size 0, as /proc reports: the text is made at open and read with direct I/O, so no
    // reader relies on the size.
    st.st_mode = S_IFREG | 0444;
    st.st_nlink = 1;
    return st;
  }

  void reply_entry(fuse_req_t req, fuse_ino_t ino) {
    fuse_entry_param e{};
    e.ino = ino;
    e.attr = *attr(ino);
    if (S_ISREG(e.attr.st_mode)) e.attr.st_size = last_size(ino);
    e.attr_timeout = kCacheTimeoutS;
    e.entry_timeout = kCacheTimeoutS;
    fuse_reply_entry(req, &e);
  }

  void lookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
    if (parent == FUSE_ROOT_ID) {
      if (!files_.state_of(name)) {
        fuse_reply_err(req, ENOENT);
        return;
      }
      reply_entry(req, intern(name));
      return;
    }
    if ((parent & ((1u << kFileBits) - 1)) != 0 || !name_of(parent)) {
      fuse_reply_err(req, ENOENT);
      return;
    }
    for (std::size_t i = 0; i < kVirtualFiles.size(); ++i) {
      if (kVirtualFiles[i].name == name) {
        reply_entry(req, parent | (i + 1));
        return;
      }
    }
    fuse_reply_err(req, ENOENT);
  }

  void opendir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
    // The listing is taken once per open directory, so that reads at successive offsets see
    // one consistent list.
    auto entries = std::make_unique<std::vector<DirEntry>>();
    entries->push_back({".", ino, S_IFDIR});
    entries->push_back({"..", FUSE_ROOT_ID, S_IFDIR});
    if (ino == FUSE_ROOT_ID) {
      for (const auto& ve : files_.running()) entries->push_back({ve, intern(ve), S_IFDIR});
    } else if ((ino & ((1u << kFileBits) - 1)) == 0 && name_of(ino)) {
      for (std::size_t i = 0; i < kVirtualFiles.size(); ++i)
        entries->push_back({std::string(kVirtualFiles[i].name), ino | (i + 1), S_IFREG});
    } else {
      fuse_reply_err(req, ENOTDIR);
      return;
    }
    fi->fh = reinterpret_cast<std::uint64_t>(entries.get());
    // A failed reply (the opener was interrupted) means no releasedir will come.
    if (fuse_reply_open(req, fi) == 0) (void)entries.release();
  }

  static void readdir(fuse_req_t req, size_t size, off_t off, fuse_file_info* fi) {
    const auto& entries = *reinterpret_cast<std::vector<DirEntry>*>(fi->fh);
    std::string buf(size, '\0');
    std::size_t used = 0;
    for (auto i = static_cast<std::size_t>(off); i < entries.size(); ++i) {
      struct stat st {};
      st.st_ino = entries[i].ino;
      st.st_mode = entries[i].mode;
      std::size_t need = fuse_add_direntry(req, buf.data() + used, size - used,
                                           entries[i].name.c_str(), &st, static_cast<off_t>(i + 1));
      if (need > size - used) break;
      used += need;
    }
    fuse_reply_buf(req, buf.data(), used);
  }

  void open(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
    std::size_t low = ino & ((1u << kFileBits) - 1);
    auto ve = name_of(ino);
    if (!ve || ino == FUSE_ROOT_ID) {
      fuse_reply_err(req, ENOENT);
      return;
    }
    if (low == 0) {
      fuse_reply_err(req, EISDIR);
      return;
    }
    if ((fi->flags & O_ACCMODE) != O_RDONLY) {
      fuse_reply_err(req, EACCES);
      return;
    }
    auto file = std::make_unique<OpenFile>();
    file->ve = *ve;
    file->index = low - 1;
    auto text = files_.render(file->ve, file->index);
    if (!text) {
      fuse_reply_err(req, text.error().kind == ErrorKind::not_found ? ENOENT : EIO);
      return;
    }
    file->text = std::move(*text);
    fi->fh = reinterpret_cast<std::uint64_t>(file.get());
    extend_size(ino, file->text);
    // Reads go to the service (no page cache), so each open sees fresh figures and the size
    // reported by getattr does not matter.
    fi->direct_io = 1;
    fi->keep_cache = 0;
    if (fuse_reply_open(req, fi) == 0) (void)file.release();
  }

  // read(2) of a direct-I/O file goes to the service whatever the file's size. But splice(2)
  // and sendfile(2) read through the page cache, only up to the size the kernel holds for the
  // inode (busybox cat uses sendfile: with /proc's size 0 it would print nothing), and
  // lseek(SEEK_END) (GNU tail) uses that size too. So each file's size is the length of its
  // text, like a regular file's: at open the kernel's size is raised to at least the new
  // text's length (storing the text's last byte at its offset extends the size and never
  // shrinks it) and its attributes are invalidated, so the next stat, fstat or lseek asks
  // getattr, which answers with that length. (A sendfile reader that reaches the end makes
  // the kernel set the exact length itself.) Two readers of one VE's same file at the same
  // moment may still see each other's length; read(2) never depends on it.
  void extend_size(fuse_ino_t ino, const std::string& text) {
    {
      std::lock_guard lock(sizes_mutex_);
      sizes_[ino] = static_cast<off_t>(text.size());
    }
    if (text.empty() || !session_) return;
    fuse_bufvec last = FUSE_BUFVEC_INIT(1);
    last.buf[0].mem = const_cast<char*>(text.data() + text.size() - 1);
    last.buf[0].size = 1;
    (void)fuse_lowlevel_notify_store(session_, ino, static_cast<off_t>(text.size() - 1), &last,
                                     FUSE_BUF_NO_SPLICE);
    (void)fuse_lowlevel_notify_inval_inode(session_, ino, -1, 0);
  }

  off_t last_size(fuse_ino_t ino) {
    std::lock_guard lock(sizes_mutex_);
    auto it = sizes_.find(ino);
    return it == sizes_.end() ? 0 : it->second;
  }

  void read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi) {
    auto& file = *reinterpret_cast<OpenFile*>(fi->fh);
    std::string slice;
    {
      std::lock_guard lock(file.mutex);
      // The text is made at open, so successive reads at growing offsets see one consistent
      // text. A reader that goes back to offset 0 on the same descriptor (procps' top and free
      // keep /proc files open and re-read them, as the kernel's seq_file files allow) gets
      // fresh figures, as it would from the kernel.
      if (off == 0 && file.served) {
        if (auto text = files_.render(file.ve, file.index)) {
          file.text = std::move(*text);
          std::lock_guard sizes_lock(sizes_mutex_);
          sizes_[ino] = static_cast<off_t>(file.text.size());
        }
      }
      file.served = true;
      auto offset = static_cast<std::size_t>(off);
      if (off >= 0 && offset < file.text.size())
        slice = file.text.substr(offset, std::min(size, file.text.size() - offset));
    }
    // Replied after the lock is released and without touching `file` again: once the reader
    // has its data it may close the file, and the release (on another thread) deletes it.
    fuse_reply_buf(req, slice.data(), slice.size());
  }

  VeFiles files_;
  fuse_session* session_ = nullptr;
  std::mutex sizes_mutex_;
  std::unordered_map<fuse_ino_t, off_t> sizes_;  // length of the text made last, per file
  std::time_t started_;
  mutable std::mutex names_mutex_;
  std::vector<std::string> names_;  // VE k is names_[k - 1]
  std::unordered_map<std::string, std::uint64_t> ids_;
};

// ---------------------------------------------------------------------------------------------
// Lifecycle.

// Detaches whatever is mounted on the mount point (a dead service's mount answers ENOTCONN to
// everything). Stacked mounts are removed one by one; EINVAL means nothing (more) is mounted.
void detach_mounts(const std::string& mnt) {
  for (int i = 0; i < 16; ++i) {
    if (::umount2(mnt.c_str(), MNT_DETACH) != 0) break;
  }
}

// True if something is mounted on `mnt`. statx with AT_STATX_DONT_SYNC answers from the
// kernel's cache and never sends a request to the FUSE server, so this cannot hang on a stuck
// service and works on a dead one's mount.
bool is_mounted(const std::string& mnt, const std::string& parent) {
  struct statx a {
  }, b{};
  const int flags = AT_STATX_DONT_SYNC | AT_NO_AUTOMOUNT | AT_SYMLINK_NOFOLLOW;
  if (::statx(AT_FDCWD, mnt.c_str(), flags, STATX_INO | STATX_MNT_ID, &a) != 0)
    return errno == ENOTCONN;
  if (::statx(AT_FDCWD, parent.c_str(), flags, STATX_INO | STATX_MNT_ID, &b) != 0) return false;
  if ((a.stx_mask & STATX_MNT_ID) && (b.stx_mask & STATX_MNT_ID))
    return a.stx_mnt_id != b.stx_mnt_id;
  return a.stx_dev_major != b.stx_dev_major || a.stx_dev_minor != b.stx_dev_minor;
}

// Whether any VE of the run dir is up: each running VE has its runtime directory.
bool any_ve_runs(const store::Paths& paths) {
  DIR* dir = ::opendir((paths.run_dir + "/ves").c_str());
  if (!dir) return false;
  bool found = false;
  while (struct dirent* ent = ::readdir(dir)) {
    if (ent->d_name[0] != '.') {
      found = true;
      break;
    }
  }
  ::closedir(dir);
  return found;
}

// How long the service stays without VEs before it exits: a minute, or KAPSEL_PROCFS_IDLE_EXIT
// seconds (for tests).
std::chrono::milliseconds idle_exit_after() {
  if (const char* v = std::getenv("KAPSEL_PROCFS_IDLE_EXIT")) {
    double seconds = std::strtod(v, nullptr);
    if (seconds > 0) return std::chrono::milliseconds(static_cast<long long>(seconds * 1000));
  }
  return std::chrono::minutes(1);
}

std::optional<proc::ProcessRef> read_pid_file(const store::Paths& paths) {
  auto text = fs::read_file(pid_path(paths));
  if (!text) return std::nullopt;
  proc::ProcessRef ref;
  std::string_view t = *text;
  const char* end = t.data() + t.size();
  auto r = std::from_chars(t.data(), end, ref.pid);
  if (r.ec != std::errc() || r.ptr == end || *r.ptr != ' ') return std::nullopt;
  if (std::from_chars(r.ptr + 1, end, ref.start_time).ec != std::errc()) return std::nullopt;
  return ref;
}

// The service of this run dir if it runs and its mount is in place.
std::optional<proc::ProcessRef> running_service(const store::Paths& paths) {
  auto ref = read_pid_file(paths);
  if (!ref || !ref->alive()) return std::nullopt;
  if (!is_mounted(mountpoint(paths), paths.run_dir)) return std::nullopt;
  return ref;
}

Result<UniqueFd> take_lock(const store::Paths& paths) {
  UniqueFd fd(::open(lock_path(paths).c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (!fd) return errno_fail("opening " + lock_path(paths));
  while (::flock(fd.get(), LOCK_EX) != 0) {
    if (errno != EINTR) return errno_fail("locking " + lock_path(paths));
  }
  return fd;
}

// Starts `argv` as a daemon: in a session of its own (no terminal can reach it, and it
// outlives the caller's session), reparented at once (a double fork, so the caller has no
// child to reap), with stdio on /dev/null, no descriptor of the caller (a VE's lock inherited
// would keep the VE locked for as long as the service runs), an empty signal mask and default
// signal handling (a caller that blocks or ignores SIGTERM must not make the service deaf to
// it). Returns the daemon's pid.
Result<pid_t> spawn_daemon(const std::vector<std::string>& args) {
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  int report[2];
  if (::pipe2(report, O_CLOEXEC) != 0) return errno_fail("creating a pipe");
  UniqueFd report_read(report[0]), report_write(report[1]);

  // Only async-signal-safe calls between fork and exec: the caller may have threads.
  pid_t first = ::fork();
  if (first < 0) return errno_fail("forking");
  if (first == 0) {
    ::setsid();
    pid_t daemon = ::fork();
    if (daemon == 0) {
      sigset_t none;
      sigemptyset(&none);
      ::sigprocmask(SIG_SETMASK, &none, nullptr);
      struct sigaction dfl {};
      dfl.sa_handler = SIG_DFL;
      for (int sig : {SIGTERM, SIGINT, SIGHUP, SIGPIPE, SIGCHLD}) ::sigaction(sig, &dfl, nullptr);
      int null = ::open("/dev/null", O_RDWR);
      if (null >= 0) {
        ::dup2(null, 0);
        ::dup2(null, 1);
        ::dup2(null, 2);
      }
      ::syscall(SYS_close_range, 3, ~0U, 0);
      if (::chdir("/") != 0) ::_exit(126);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    ssize_t n = ::write(report_write.get(), &daemon, sizeof daemon);
    ::_exit(daemon > 0 && n == sizeof daemon ? 0 : 1);
  }
  report_write.reset();
  while (::waitpid(first, nullptr, 0) < 0 && errno == EINTR) {
  }
  pid_t daemon = -1;
  if (::read(report_read.get(), &daemon, sizeof daemon) != sizeof daemon || daemon <= 0)
    return fail(ErrorKind::failure, "forking the service failed");
  return daemon;
}

}  // namespace

std::string mountpoint(const store::Paths& paths) {
  return paths.run_dir + "/procfs";
}

Result<proc::ProcessRef> ensure_service(const store::Paths& paths, const std::string& self_exe) {
  if (auto running = running_service(paths)) return *running;
  const std::string what = "starting the /proc service for " + paths.run_dir;
  KAPSEL_TRY(fs::make_dirs(paths.run_dir, 0700), what);
  auto lock = take_lock(paths);
  if (!lock) return tl::unexpected(lock.error().context(what));
  // Another caller may have started it while this one waited for the lock.
  if (auto running = running_service(paths)) return *running;

  auto pid =
      spawn_daemon({self_exe, "procfs-service", "--run-dir", paths.run_dir, "--root", paths.root});
  if (!pid) return tl::unexpected(pid.error().context(what));
  UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, *pid, 0)));
  const std::string hint =
      "; run `" + self_exe + " procfs-service --run-dir " + paths.run_dir + "` to see why";
  auto deadline = std::chrono::steady_clock::now() + kStartTimeout;
  for (;;) {
    if (auto running = running_service(paths)) return *running;
    // The service is not our child; its pidfd becomes readable when it exits.
    if (!pidfd || proc::wait_pidfd(pidfd.get(), 2))
      return fail(ErrorKind::failure, what + ": the service exited at once" + hint);
    if (std::chrono::steady_clock::now() > deadline) {
      (void)proc::signal_pidfd(pidfd.get(), SIGKILL);
      return fail(ErrorKind::failure, what + ": the service did not mount its file system within " +
                                          std::to_string(kStartTimeout.count()) + " s" + hint);
    }
  }
}

int serve(const store::Paths& paths) {
  auto complain = [](const std::string& message) {
    (void)std::fprintf(stderr, "kapsel procfs-service: %s\n", message.c_str());
    return 1;
  };
  const std::string mnt = mountpoint(paths);
  if (auto st = fs::make_dirs(paths.run_dir, 0700); !st) return complain(st.error().message);
  // Held for as long as this process runs: one service per run dir, and a crashed one's lock
  // goes with it.
  UniqueFd pid_file(::open(pid_path(paths).c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
  if (!pid_file) return complain(errno_fail("opening " + pid_path(paths)).value().message);
  if (::flock(pid_file.get(), LOCK_EX | LOCK_NB) != 0) {
    auto other = read_pid_file(paths);
    return complain("another service runs for " + paths.run_dir +
                    (other ? " (pid " + std::to_string(other->pid) + ")" : ""));
  }
  // No live service holds the run dir, so anything on the mount point is a dead one's (and
  // answers ENOTCONN even to the stat of making sure the directory is there).
  detach_mounts(mnt);
  if (auto st = fs::make_dirs(mnt, 0755); !st) return complain(st.error().message);

  FileSystem file_system(paths);
  // Read-only, nosuid, nodev (libfuse's default) and noexec: the per-mount flags every bind of
  // a file into a VE copies, so that binding needs no remount.
  const char* argv[] = {
      "kapsel-procfs", "-o",
      "allow_other,default_permissions,ro,noexec,fsname=kapsel-procfs,subtype=kapsel"};
  fuse_args args = FUSE_ARGS_INIT(3, const_cast<char**>(argv));
  std::unique_ptr<fuse_session, void (*)(fuse_session*)> session(
      fuse_session_new(&args, &FileSystem::ops(), sizeof(fuse_lowlevel_ops), &file_system),
      fuse_session_destroy);
  fuse_opt_free_args(&args);
  if (!session) return complain("creating the FUSE session failed");
  file_system.set_session(session.get());
  if (fuse_session_mount(session.get(), mnt.c_str()) != 0)
    return complain("mounting the FUSE file system on " + mnt + " failed");

  // libfuse installs its handlers (which end the loop) only where the disposition is the
  // default, so that is made sure of first; SIGPIPE is ignored by it.
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  for (int sig : {SIGTERM, SIGINT, SIGHUP}) {
    ::sigaction(sig, &dfl, nullptr);
    sigaddset(&stop_signals, sig);
  }
  if (fuse_set_signal_handlers(session.get()) != 0) {
    fuse_session_unmount(session.get());
    return complain("installing signal handlers failed");
  }

  // Written once the mount is there: ensure_service() waits for both.
  std::string pid_text;
  if (auto self = proc::ref(::getpid()))
    pid_text = std::to_string(self->pid) + " " + std::to_string(self->start_time) + "\n";
  auto write_pid_file = [&] {
    if (::ftruncate(pid_file.get(), 0) != 0 ||
        ::pwrite(pid_file.get(), pid_text.data(), pid_text.size(), 0) !=
            static_cast<ssize_t>(pid_text.size()))
      complain(errno_fail("writing " + pid_path(paths)).value().message);
  };

  // The housekeeper samples the load averages and ends the service once no VE has run for
  // kIdleExit: nothing of kapsel's stays on a host that has stopped using it. The decision is
  // taken under procfs.lock, which it then keeps until the process exits, with procfs.pid
  // emptied before the last look for VEs: a `kapsel start` makes its VE's runtime directory
  // before it looks for the service, so either this look sees the VE, or the start sees no
  // service and, once the lock is free, starts a new one.
  const auto idle_exit = idle_exit_after();
  UniqueFd exit_lock;
  std::mutex sampler_mutex;
  std::condition_variable sampler_wake;
  bool sampler_stop = false;
  sigset_t old_mask;
  // It blocks the stop signals, so they reach the thread that runs the loop.
  ::pthread_sigmask(SIG_BLOCK, &stop_signals, &old_mask);
  std::thread sampler([&] {
    using Clock = std::chrono::steady_clock;
    const auto interval = std::chrono::duration_cast<Clock::duration>(
        std::chrono::duration<double>(LoadAverage::kSampleIntervalS));
    const auto tick = std::min<Clock::duration>(interval, idle_exit);
    auto next_sample = Clock::now() + interval;
    bool idle = false;  // no VE since idle_since
    Clock::time_point idle_since;
    std::unique_lock lock(sampler_mutex);
    while (!sampler_wake.wait_for(lock, tick, [&] { return sampler_stop; })) {
      lock.unlock();
      auto now = Clock::now();
      if (now >= next_sample) {
        file_system.files().sample_loads();
        next_sample += interval;
      }
      if (any_ve_runs(paths)) {
        idle = false;
      } else if (!idle) {
        idle = true;
        idle_since = now;
      } else if (now - idle_since >= idle_exit) {
        idle = false;
        if (auto held = take_lock(paths)) {
          (void)::ftruncate(pid_file.get(), 0);
          if (!any_ve_runs(paths)) {
            exit_lock = std::move(*held);
            ::kill(::getpid(), SIGTERM);  // ends the loop, like `kapsel procfs-service --stop`
            lock.lock();
            break;
          }
          write_pid_file();
        }
      }
      lock.lock();
    }
  });
  ::pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
  ::pthread_sigmask(SIG_UNBLOCK, &stop_signals, nullptr);
  write_pid_file();

  // libfuse's defaults: a worker thread is started only when all are busy, up to its limit of
  // 10 at this API version, and none is stopped. (A max_idle_threads limit would make libfuse
  // start and stop threads around bursts of requests, which its authors advise against; an
  // idle worker costs little: a mostly untouched stack and request buffer.)
  int loop_result = fuse_session_loop_mt(session.get(), nullptr);

  {
    std::lock_guard lock(sampler_mutex);
    sampler_stop = true;
  }
  sampler_wake.notify_all();
  sampler.join();
  fuse_remove_signal_handlers(session.get());
  fuse_session_unmount(session.get());
  (void)::ftruncate(pid_file.get(), 0);
  // The loop returns the signal that ended it, or an error; ending by signal or unmount is the
  // normal way to stop.
  return loop_result < 0 ? complain("serving failed: error " + std::to_string(-loop_result)) : 0;
}

Status stop_service(const store::Paths& paths) {
  if (!fs::is_dir(paths.run_dir)) return {};
  const std::string what = "stopping the /proc service of " + paths.run_dir;
  auto lock = take_lock(paths);
  if (!lock) return tl::unexpected(lock.error().context(what));
  if (auto ref = read_pid_file(paths)) {
    if (auto pidfd = proc::open_pidfd(*ref)) {
      KAPSEL_TRY(proc::signal_pidfd(pidfd->get(), SIGTERM), what);
      if (!proc::wait_pidfd(pidfd->get(), kStopTimeoutMs)) {
        KAPSEL_TRY(proc::signal_pidfd(pidfd->get(), SIGKILL), what);
        if (!proc::wait_pidfd(pidfd->get(), kStopTimeoutMs)) {
          return fail(ErrorKind::failure,
                      what + ": pid " + std::to_string(ref->pid) + " did not die of SIGKILL");
        }
      }
    }
  }
  // A service that was killed (or died) left its mount behind.
  const std::string mnt = mountpoint(paths);
  detach_mounts(mnt);
  if (is_mounted(mnt, paths.run_dir))
    return fail(ErrorKind::failure, what + ": " + mnt + " is still mounted");
  ::unlink(pid_path(paths).c_str());
  ::rmdir(mnt.c_str());
  return {};
}

}  // namespace kapsel::procfs
