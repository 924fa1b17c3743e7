// The /proc service through the real kernel FUSE: a service on a temporary run dir with a fake
// VE "t1" (state.json naming a child of the test as its monitor and init, and a cgroup parent
// that has no cgroups, so the service shows host figures with the VE's own uptime). Needs root
// and /dev/fuse; skips with the reason otherwise. Everything it mounts is under its own
// temporary directory, and binds into a "VE" happen in a child's private mount namespace.
#include "procfs/procfs_service.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "common/fs.hpp"
#include "procfs/ve_files.hpp"
#include "store/store.hpp"

namespace kapsel::procfs {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr long kFuseSuperMagic = 0x65735546;

std::string read_text(const std::string& path, int* error = nullptr) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) {
    if (error) *error = errno;
    return {};
  }
  std::string out;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0) {
      if (error) *error = errno;
      return out;
    }
    if (n == 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  if (error) *error = 0;
  return out;
}

double first_number(const std::string& text) {
  return std::strtod(text.c_str(), nullptr);
}

bool mounted_in_mountinfo(const std::string& path) {
  std::ifstream in("/proc/self/mountinfo");
  for (std::string line; std::getline(in, line);) {
    if (line.find(" " + path + " ") != std::string::npos) return true;
  }
  return false;
}

// A child that does nothing until it is killed: the fake VE's monitor and init.
pid_t sleeper() {
  pid_t pid = ::fork();
  if (pid == 0) {
    for (;;) ::pause();
  }
  return pid;
}

void kill_and_reap(pid_t pid) {
  if (pid <= 0) return;
  ::kill(pid, SIGKILL);
  ::waitpid(pid, nullptr, 0);
}

class ProcfsService : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (mounts a FUSE file system)";
    if (::access("/dev/fuse", R_OK | W_OK) != 0) GTEST_SKIP() << "needs /dev/fuse";
    char tmpl[] = "/tmp/kapsel-procfs-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    paths_.root = dir_ + "/root";
    paths_.run_dir = dir_ + "/run";
    mnt_ = mountpoint(paths_);
    ve_ = sleeper();
    ASSERT_GT(ve_, 0);
    write_state("t1", ve_);
  }

  void TearDown() override {
    if (dir_.empty()) return;
    (void)stop_service(paths_);
    kill_and_reap(service_);
    kill_and_reap(ve_);
    EXPECT_FALSE(mounted_in_mountinfo(mnt_)) << mnt_ << " is still mounted";
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  void write_state(const std::string& name, pid_t pid) {
    store::Store store(paths_);
    store::RuntimeState state;
    state.phase = store::Phase::running;
    state.monitor = proc::ref(pid).value();
    state.init = state.monitor;
    state.started_at = ::time(nullptr);
    // No such cgroups: stats fail (or, while the backends are placeholders, are empty), and
    // the service must still answer, with the host's figures.
    state.cgroup_parent = "kapsel-procfs-test-none";
    ASSERT_TRUE(store.save_state(name, state));
  }

  // serve() in a child process, as `kapsel procfs-service` runs it; returns once it is mounted.
  void start_service() {
    service_ = ::fork();
    ASSERT_GE(service_, 0);
    if (service_ == 0) ::_exit(serve(paths_));
    wait_mounted();
  }

  void wait_mounted() {
    auto deadline = Clock::now() + 3s;
    struct statfs st {};
    while (::statfs(mnt_.c_str(), &st) != 0 || st.f_type != kFuseSuperMagic) {
      ASSERT_LT(Clock::now(), deadline) << "the service did not mount " << mnt_;
      std::this_thread::sleep_for(2ms);
    }
  }

  std::string dir_;
  store::Paths paths_;
  std::string mnt_;
  pid_t ve_ = -1;
  pid_t service_ = -1;
};

TEST_F(ProcfsService, ServesEachFileOfARunningVe) {
  start_service();
  const std::string ve = mnt_ + "/t1/";
  int error = -1;

  // Uptime: the VE's (it started a moment ago), not the host's.
  auto uptime = read_text(ve + "uptime", &error);
  ASSERT_EQ(error, 0) << std::strerror(error);
  double up = 0, idle = 0;
  ASSERT_EQ(std::sscanf(uptime.c_str(), "%lf %lf", &up, &idle), 2) << uptime;
  EXPECT_LT(up, 30);
  EXPECT_LT(up, first_number(read_text("/proc/uptime")));

  // No cgroup behind the VE: the host's memory and CPUs.
  auto meminfo = read_text(ve + "meminfo", &error);
  ASSERT_EQ(error, 0);
  EXPECT_EQ(meminfo_bytes(meminfo, "MemTotal"),
            meminfo_bytes(read_text("/proc/meminfo"), "MemTotal"));
  EXPECT_EQ(read_text(ve + "cpu_online"), read_text("/sys/devices/system/cpu/online"));
  auto cpuinfo = read_text(ve + "cpuinfo");
  EXPECT_EQ(cpuinfo.rfind("processor\t: 0\n", 0), 0u) << cpuinfo.substr(0, 200);
  auto stat = read_text(ve + "stat");
  EXPECT_EQ(stat.rfind("cpu  ", 0), 0u) << stat;
  EXPECT_NE(stat.find("\nbtime "), std::string::npos);
  float l1, l5, l15;
  unsigned running, total, last;
  EXPECT_EQ(std::sscanf(read_text(ve + "loadavg").c_str(), "%f %f %f %u/%u %u", &l1, &l5, &l15,
                        &running, &total, &last),
            6);
  EXPECT_EQ(read_text(ve + "swaps").rfind("Filename\t\t\t\tType", 0), 0u);
  EXPECT_EQ(read_text(ve + "diskstats", &error), "");
  EXPECT_EQ(error, 0);
}

TEST_F(ProcfsService, ListsRunningVesAndTheirFiles) {
  pid_t dead = sleeper();
  write_state("gone", dead);
  kill_and_reap(dead);  // a VE whose monitor died without cleaning up
  start_service();

  std::vector<std::string> ves, files;
  for (const auto& e : std::filesystem::directory_iterator(mnt_))
    ves.push_back(e.path().filename());
  EXPECT_EQ(ves, std::vector<std::string>{"t1"});
  for (const auto& e : std::filesystem::directory_iterator(mnt_ + "/t1"))
    files.push_back(e.path().filename());
  std::sort(files.begin(), files.end());
  EXPECT_EQ(files, (std::vector<std::string>{"cpu_online", "cpuinfo", "diskstats", "loadavg",
                                             "meminfo", "stat", "swaps", "uptime"}));

  struct stat st {};
  EXPECT_NE(::stat((mnt_ + "/gone").c_str(), &st), 0);
  EXPECT_EQ(errno, ENOENT);
  EXPECT_NE(::stat((mnt_ + "/t1/nonsense").c_str(), &st), 0);
  EXPECT_EQ(errno, ENOENT);
  ASSERT_EQ(::stat((mnt_ + "/t1/meminfo").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode, S_IFREG | 0444u);
  // Read-only, whoever asks.
  EXPECT_LT(::open((mnt_ + "/t1/meminfo").c_str(), O_WRONLY | O_CLOEXEC), 0);
  EXPECT_EQ(errno, EROFS);
}

TEST_F(ProcfsService, ReadsAtOffsetsAreConsistentAndRereadsFresh) {
  start_service();
  UniqueFd fd(::open((mnt_ + "/t1/uptime").c_str(), O_RDONLY | O_CLOEXEC));
  ASSERT_TRUE(fd);
  char a[64] = {}, b[64] = {};
  // Byte by byte: one text, as from the kernel's seq_file.
  std::string bytes;
  for (off_t off = 0;; ++off) {
    char c;
    ssize_t n = ::pread(fd.get(), &c, 1, off);
    ASSERT_GE(n, 0);
    if (n == 0) break;
    bytes.push_back(c);
    if (off == 2) std::this_thread::sleep_for(20ms);  // figures change meanwhile
  }
  ASSERT_EQ(bytes.back(), '\n');
  double up = 0, idle = 0;
  EXPECT_EQ(std::sscanf(bytes.c_str(), "%lf %lf", &up, &idle), 2) << bytes;
  ASSERT_GT(::pread(fd.get(), a, sizeof a - 1, 0), 0);
  std::this_thread::sleep_for(30ms);
  ASSERT_GT(::pread(fd.get(), b, sizeof b - 1, 0), 0);
  // Back at offset 0 on the same descriptor (what procps' top does): fresh figures.
  EXPECT_GT(first_number(b), first_number(a));
}

TEST_F(ProcfsService, SizesAreThoseOfTheTextsForSendfileAndSeek) {
  start_service();
  const std::string path = mnt_ + "/t1/meminfo";
  const auto length = static_cast<off_t>(read_text(path).size());
  ASSERT_GT(length, 0);
  // busybox cat copies with sendfile(2), which reads through the page cache up to the size
  // the kernel holds: a size of 0, as /proc has, would copy nothing.
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  UniqueFd null(::open("/dev/null", O_WRONLY | O_CLOEXEC));
  ASSERT_TRUE(fd && null);
  // Even after the attributes have expired and a stat asked the service again.
  std::this_thread::sleep_for(1100ms);
  struct stat st {};
  ASSERT_EQ(::fstat(fd.get(), &st), 0);
  EXPECT_NEAR(static_cast<double>(st.st_size), static_cast<double>(length), 64);
  off_t copied = 0;
  for (ssize_t n; (n = ::sendfile(null.get(), fd.get(), nullptr, 1 << 20)) > 0;) copied += n;
  EXPECT_EQ(copied, st.st_size);
  // GNU tail seeks to the end and reads backwards from there.
  UniqueFd again(::open((mnt_ + "/t1/uptime").c_str(), O_RDONLY | O_CLOEXEC));
  ASSERT_TRUE(again);
  off_t end = ::lseek(again.get(), 0, SEEK_END);
  char buf[128];
  EXPECT_EQ(::pread(again.get(), buf, sizeof buf, 0), end);
}

TEST_F(ProcfsService, StopLeavesNoMount) {
  start_service();
  ASSERT_TRUE(mounted_in_mountinfo(mnt_));
  auto st = stop_service(paths_);
  ASSERT_TRUE(st) << st.error().message;
  EXPECT_FALSE(mounted_in_mountinfo(mnt_));
  int status = 0;
  ASSERT_EQ(::waitpid(service_, &status, 0), service_);
  service_ = -1;
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  // Stopping what does not run is no error.
  EXPECT_TRUE(stop_service(paths_));
}

TEST_F(ProcfsService, ExitsOnceNoVeHasRunForItsIdleTime) {
  ::setenv("KAPSEL_PROCFS_IDLE_EXIT", "0.3", 1);  // read by serve() in the forked service
  start_service();
  ::unsetenv("KAPSEL_PROCFS_IDLE_EXIT");
  // A running VE keeps it, for many times its idle time.
  std::this_thread::sleep_for(1500ms);
  ASSERT_TRUE(mounted_in_mountinfo(mnt_));
  EXPECT_FALSE(read_text(mnt_ + "/t1/uptime").empty());

  // Without one it exits by itself, cleanly, and takes its mount and pid file with it.
  ASSERT_TRUE(store::Store(paths_).clear_runtime("t1"));
  int status = 0;
  pid_t reaped = 0;
  for (auto deadline = Clock::now() + 5s; reaped == 0 && Clock::now() < deadline;) {
    reaped = ::waitpid(service_, &status, WNOHANG);
    if (reaped == 0) std::this_thread::sleep_for(10ms);
  }
  ASSERT_EQ(reaped, service_) << "the service is still running without VEs";
  service_ = -1;
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  EXPECT_FALSE(mounted_in_mountinfo(mnt_));
  EXPECT_EQ(read_text(paths_.run_dir + "/procfs.pid"), "");
}

TEST_F(ProcfsService, ASecondServiceRefusesTheRunDir) {
  start_service();
  pid_t second = ::fork();
  if (second == 0) ::_exit(serve(paths_));
  int status = 0;
  ASSERT_EQ(::waitpid(second, &status, 0), second);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 1);
  // The first one still serves.
  EXPECT_FALSE(read_text(mnt_ + "/t1/uptime").empty());
}

TEST_F(ProcfsService, AKilledServiceFailsReadersAtOnce) {
  start_service();
  UniqueFd open_before(::open((mnt_ + "/t1/meminfo").c_str(), O_RDONLY | O_CLOEXEC));
  ASSERT_TRUE(open_before);
  kill_and_reap(service_);
  service_ = -1;

  auto t0 = Clock::now();
  int error = 0;
  read_text(mnt_ + "/t1/meminfo", &error);
  EXPECT_EQ(error, ENOTCONN) << std::strerror(error);
  char c;
  EXPECT_LT(::read(open_before.get(), &c, 1), 0);
  EXPECT_EQ(errno, ENOTCONN);
  EXPECT_LT(Clock::now() - t0, 500ms);

  // The next service replaces the dead mount.
  start_service();
  EXPECT_FALSE(read_text(mnt_ + "/t1/meminfo").empty());
}

// Not a test: the service process of the EnsureService tests, which run this binary through a
// script standing in for `kapsel procfs-service --run-dir R --root X`.
TEST(ProcfsServiceHelper, Serve) {
  const char* run_dir = std::getenv("KAPSEL_PROCFS_TEST_SERVE");
  if (!run_dir) GTEST_SKIP() << "the service process of ProcfsService.EnsureService*";
  store::Paths paths;
  paths.run_dir = run_dir;
  ::_exit(serve(paths));
}

std::string fake_kapsel(const std::string& dir) {
  char self[4096] = {};
  if (::readlink("/proc/self/exe", self, sizeof self - 1) <= 0) return {};
  std::string script = dir + "/kapsel";
  std::ofstream(script) << "#!/bin/sh\n"
                        << "[ \"$1\" = procfs-service ] && [ \"$2\" = --run-dir ] && "
                           "[ \"$4\" = --root ] || exit 2\n"
                        << "KAPSEL_PROCFS_TEST_SERVE=\"$3\" exec " << self
                        << " --gtest_filter=ProcfsServiceHelper.Serve\n";
  ::chmod(script.c_str(), 0755);
  return script;
}

TEST_F(ProcfsService, EnsureServiceStartsOneServiceForRacingCallers) {
  const std::string exe = fake_kapsel(dir_);
  std::vector<Result<proc::ProcessRef>> results(4, fail(ErrorKind::failure, "not run"));
  std::vector<std::thread> callers;
  for (auto& r : results) callers.emplace_back([&] { r = ensure_service(paths_, exe); });
  for (auto& t : callers) t.join();
  for (const auto& r : results) {
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->pid, results[0]->pid);
  }
  EXPECT_TRUE(results[0]->alive());
  EXPECT_LT(first_number(read_text(mnt_ + "/t1/uptime")), 30);

  // Every `kapsel start` calls it: when the service runs, it must cost next to nothing.
  constexpr int kCalls = 1000;
  auto t0 = Clock::now();
  for (int i = 0; i < kCalls; ++i) ASSERT_TRUE(ensure_service(paths_, exe));
  auto per_call = std::chrono::duration<double, std::micro>(Clock::now() - t0).count() / kCalls;
  std::printf("ensure_service with the service running: %.1f us per call\n", per_call);
  EXPECT_LT(per_call, 1000);

  ASSERT_TRUE(stop_service(paths_));
  EXPECT_FALSE(results[0]->alive());
  EXPECT_FALSE(mounted_in_mountinfo(mnt_));
}

TEST_F(ProcfsService, EnsureServiceRestartsADeadService) {
  const std::string exe = fake_kapsel(dir_);
  auto first = ensure_service(paths_, exe);
  ASSERT_TRUE(first) << first.error().message;
  ASSERT_EQ(::kill(first->pid, SIGKILL), 0);
  while (first->alive()) std::this_thread::sleep_for(1ms);
  // Its mount is left behind, dead: the next one replaces it.
  auto second = ensure_service(paths_, exe);
  ASSERT_TRUE(second) << second.error().message;
  EXPECT_NE(second->pid, first->pid);
  EXPECT_LT(first_number(read_text(mnt_ + "/t1/uptime")), 30);
}

TEST_F(ProcfsService, EnsureServiceReportsAServiceThatCannotStart) {
  auto t0 = Clock::now();
  auto r = ensure_service(paths_, "/bin/false");
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("exited at once"), std::string::npos) << r.error().message;
  EXPECT_LT(Clock::now() - t0, 1s);
}

// A "VE": a child in a private mount namespace of its own, with the service's files bound over
// its /proc and /sys files by bind_into(), as a VE's setup child does before pivot_root (here
// the root stays "/", so the targets are the child's copies of /proc/uptime etc.).
class FakeVe {
 public:
  explicit FakeVe(const std::string& mnt) {
    int ready[2];
    if (::pipe2(ready, O_CLOEXEC) != 0) return;
    pid_ = ::fork();
    if (pid_ == 0) {
      ::close(ready[0]);
      if (::unshare(CLONE_NEWNS) != 0 ||
          ::mount("none", "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0)
        ::_exit(1);
      auto st = bind_into(mnt, "t1", "");
      char result = st ? 'y' : 'n';
      if (!st) std::fprintf(stderr, "bind_into: %s\n", st.error().message.c_str());
      (void)::write(ready[1], &result, 1);
      for (;;) ::pause();
    }
    ::close(ready[1]);
    char result = 0;
    bound_ = ::read(ready[0], &result, 1) == 1 && result == 'y';
    ::close(ready[0]);
    pidfd_ = UniqueFd(static_cast<int>(::syscall(SYS_pidfd_open, pid_, 0)));
  }
  ~FakeVe() { kill_and_reap(pid_); }

  [[nodiscard]] bool bound() const { return bound_; }
  [[nodiscard]] int pidfd() const { return pidfd_.get(); }
  // A file as the VE sees it.
  [[nodiscard]] std::string path(const std::string& file) const {
    return "/proc/" + std::to_string(pid_) + "/root" + file;
  }
  [[nodiscard]] std::string mountinfo() const {
    return read_text("/proc/" + std::to_string(pid_) + "/mountinfo");
  }
  // Runs `argv` in the VE's mount namespace and returns what it printed.
  [[nodiscard]] std::string run(std::vector<const char*> argv) const {
    int out[2];
    if (::pipe2(out, O_CLOEXEC) != 0) return {};
    argv.push_back(nullptr);
    pid_t child = ::fork();
    if (child == 0) {
      ::dup2(out[1], 1);
      if (::setns(pidfd_.get(), CLONE_NEWNS) != 0) ::_exit(126);
      ::execv(argv[0], const_cast<char**>(argv.data()));
      ::_exit(127);
    }
    ::close(out[1]);
    auto text = proc::read_to_eof(out[0]);
    ::close(out[0]);
    ::waitpid(child, nullptr, 0);
    return text;
  }

 private:
  pid_t pid_ = -1;
  bool bound_ = false;
  UniqueFd pidfd_;
};

TEST_F(ProcfsService, BindIntoFailsCleanlyWithoutTheService) {
  ASSERT_TRUE(fs::make_dirs(mnt_));
  FakeVe ve(mnt_);
  EXPECT_FALSE(ve.bound());
  EXPECT_EQ(ve.mountinfo().find(" /proc/uptime "), std::string::npos);
  EXPECT_NE(first_number(read_text(ve.path("/proc/uptime"))), 0);
}

TEST_F(ProcfsService, VeFallsBackWhenTheServiceDiesAndRebinds) {
  start_service();
  FakeVe ve(mnt_);
  ASSERT_TRUE(ve.bound());
  auto mountinfo = ve.mountinfo();
  EXPECT_NE(mountinfo.find(" /proc/uptime ro,nosuid,nodev,noexec"), std::string::npos) << mountinfo;
  EXPECT_NE(mountinfo.find(" /sys/devices/system/cpu/online "), std::string::npos);
  // The VE sees its own uptime; the host (this process) its own.
  EXPECT_LT(first_number(read_text(ve.path("/proc/uptime"))), 30);
  EXPECT_GT(first_number(read_text("/proc/uptime")),
            first_number(read_text(ve.path("/proc/uptime"))));

  // The tools of a busybox VE read the bound files whole (cat copies with sendfile).
  if (::access("/bin/busybox", X_OK) == 0) {
    // The host's figures change from one read to the next; the lines do not.
    auto lines = [](const std::string& text) { return std::count(text.begin(), text.end(), '\n'); };
    auto meminfo = ve.run({"/bin/busybox", "cat", "/proc/meminfo"});
    EXPECT_EQ(lines(meminfo), lines(read_text(mnt_ + "/t1/meminfo"))) << meminfo;
    EXPECT_EQ(meminfo.rfind("MemTotal:", 0), 0u);
    EXPECT_LT(first_number(ve.run({"/bin/busybox", "cat", "/proc/uptime"})), 30);
    EXPECT_EQ(ve.run({"/bin/busybox", "cat", "/sys/devices/system/cpu/online"}),
              read_text(mnt_ + "/t1/cpu_online"));
    auto free = ve.run({"/bin/busybox", "free"});
    EXPECT_NE(free.find("Mem:"), std::string::npos) << free;
  }

  // The service dies: readers in the VE fail at once instead of hanging.
  kill_and_reap(service_);
  service_ = -1;
  auto t0 = Clock::now();
  int error = 0;
  read_text(ve.path("/proc/uptime"), &error);
  EXPECT_EQ(error, ENOTCONN);
  EXPECT_LT(Clock::now() - t0, 500ms);

  // What the monitor does: unbind (the kernel's files show again) ...
  auto st = unbind_in(ve.pidfd());
  ASSERT_TRUE(st) << st.error().message;
  EXPECT_EQ(ve.mountinfo().find(" /proc/uptime "), std::string::npos) << ve.mountinfo();
  EXPECT_GT(first_number(read_text(ve.path("/proc/uptime"))), 30);
  EXPECT_TRUE(unbind_in(ve.pidfd()));  // nothing bound: nothing to do

  // ... restart the service and bind its files again.
  start_service();
  st = rebind_in(ve.pidfd(), mnt_, "t1");
  ASSERT_TRUE(st) << st.error().message;
  EXPECT_LT(first_number(read_text(ve.path("/proc/uptime"))), 30);
  EXPECT_NE(ve.mountinfo().find(" /proc/meminfo ro,nosuid,nodev,noexec"), std::string::npos);
}

}  // namespace
}  // namespace kapsel::procfs
