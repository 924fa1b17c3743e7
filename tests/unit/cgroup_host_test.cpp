// The cgroup backend this host really has, on real cgroups: limits read back from the kernel's
// files, the kernel refusing a memory limit below what the VE uses, and an OOM kill seen through
// watch_oom(). Needs root and v1 controllers (the hybrid layout of the machines kapsel is built
// on, or a legacy one); skips with the reason elsewhere. Uses its own parent,
// kapsel-unit-<pid>, and removes it afterwards.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "cgroup/manager.hpp"
#include "cgroup/resources.hpp"
#include "common/fs.hpp"

namespace kapsel::cgroup {
namespace {

constexpr std::uint64_t kMiB = 1024 * 1024;
constexpr const char* kVe = "ve";

// A child that, once told to, allocates and touches `bytes` of anonymous memory, reports that it
// did, and waits to be killed. It lives in the VE's cgroup before it allocates, so the memory is
// charged there (v1 leaves charges behind when a task moves).
class Hog {
 public:
  explicit Hog(std::size_t bytes) {
    int go[2], ready[2];
    if (::pipe2(go, O_CLOEXEC) != 0 || ::pipe2(ready, O_CLOEXEC) != 0) return;
    pid_ = ::fork();
    if (pid_ == 0) {
      ::close(go[1]);
      ::close(ready[0]);
      char c;
      if (::read(go[0], &c, 1) != 1) ::_exit(1);
      void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (p == MAP_FAILED) ::_exit(2);
      std::memset(p, 0x5a, bytes);  // every page, so every page is charged
      if (::write(ready[1], "r", 1) != 1) ::_exit(3);
      for (;;) ::pause();
    }
    ::close(go[0]);
    ::close(ready[1]);
    go_ = go[1];
    ready_ = ready[0];
  }
  ~Hog() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      (void)wait();
    }
    if (go_ >= 0) ::close(go_);
    if (ready_ >= 0) ::close(ready_);
  }
  Hog(const Hog&) = delete;
  Hog& operator=(const Hog&) = delete;

  pid_t pid() const { return pid_; }

  // Lets the child allocate; true once it reports that every page is touched, false if it
  // died first (an OOM kill) or took longer than `timeout_ms`.
  bool allocate(int timeout_ms) {
    if (::write(go_, "g", 1) != 1) return false;
    pollfd p{ready_, POLLIN, 0};
    if (::poll(&p, 1, timeout_ms) != 1) return false;
    char c;
    return ::read(ready_, &c, 1) == 1;
  }

  // Reaps the child; its wait status, or -1 if it was reaped already.
  int wait() {
    if (pid_ <= 0) return -1;
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    pid_ = -1;
    return status;
  }

 private:
  pid_t pid_ = -1;
  int go_ = -1;
  int ready_ = -1;
};

class CgroupHostTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to make cgroups";
    Options o;
    o.parent = "kapsel-unit-" + std::to_string(::getpid());
    auto m = probe(o);
    if (!m) GTEST_SKIP() << "no cgroups here: " << m.error().message;
    if ((*m)->layout() == Layout::unified)
      GTEST_SKIP() << "this host has unified cgroups; the v2 backend is tested on fake trees";
    m_ = std::move(*m);
    if (m_->memory_cgroup_path(kVe).empty()) GTEST_SKIP() << "no v1 memory hierarchy";
    auto st = m_->create(kVe);
    ASSERT_TRUE(st) << st.error().message;
    created_ = true;
    memory_ = "/sys/fs/cgroup/memory" + m_->memory_cgroup_path(kVe);
    ASSERT_TRUE(fs::is_dir(memory_)) << memory_;
  }

  void TearDown() override {
    if (!created_) return;
    auto paths = m_->paths(kVe);
    EXPECT_TRUE(m_->destroy(kVe));
    for (const auto& p : paths) {
      std::string parent = p.substr(0, p.rfind('/'));
      EXPECT_EQ(::rmdir(parent.c_str()), 0) << parent << ": " << std::strerror(errno);
    }
  }

  std::string file(const std::string& controller, const std::string& name) {
    auto text =
        fs::read_file("/sys/fs/cgroup/" + controller + m_->memory_cgroup_path(kVe) + "/" + name);
    EXPECT_TRUE(text) << text.error().message;
    return text ? *text : std::string();
  }

  std::unique_ptr<Manager> m_;
  bool created_ = false;
  std::string memory_;
};

TEST_F(CgroupHostTest, AppliedLimitsAreWhatTheKernelShows) {
  Limits l;
  l.memory = 64 * kMiB;
  l.pids = 50;
  l.cpus = 0.5;
  l.cpuset = "0";
  l.cpu_weight = 100;
  auto st = m_->apply(kVe, l);
  ASSERT_TRUE(st) << st.error().message;
  EXPECT_EQ(file("memory", "memory.limit_in_bytes"), "67108864\n");
  EXPECT_EQ(file("pids", "pids.max"), "50\n");
  EXPECT_EQ(file("cpu", "cpu.cfs_quota_us"), "50000\n");
  EXPECT_EQ(file("cpu", "cpu.cfs_period_us"), "100000\n");
  EXPECT_EQ(file("cpu", "cpu.shares"), "2597\n");
  EXPECT_EQ(file("cpuset", "cpuset.cpus"), "0\n");

  auto s = m_->stats(kVe);
  ASSERT_TRUE(s) << s.error().message;
  EXPECT_EQ(s->memory_limit, 64 * kMiB);
  EXPECT_EQ(s->pids_limit, 50u);
  EXPECT_DOUBLE_EQ(s->cpu_quota, 0.5);
  EXPECT_EQ(s->cpuset, std::vector<unsigned>{0});
  EXPECT_EQ(s->pids_current, 0u);

  Limits none;
  none.memory = kUnlimited;
  none.pids = kUnlimited;
  none.cpus = 0;
  none.cpuset = "";
  ASSERT_TRUE(m_->apply(kVe, none));
  EXPECT_EQ(file("memory", "memory.limit_in_bytes"), "9223372036854771712\n");
  EXPECT_EQ(file("pids", "pids.max"), "max\n");
  EXPECT_EQ(file("cpu", "cpu.cfs_quota_us"), "-1\n");
  EXPECT_EQ(file("cpuset", "cpuset.cpus"), file("cpuset", "../cpuset.cpus"));
  s = m_->stats(kVe);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->memory_limit, kUnlimited);
  EXPECT_EQ(s->pids_limit, kUnlimited);
  EXPECT_EQ(s->cpu_quota, 0.0);
}

// The order of memory and memsw matters to the kernel: each of these would fail with EINVAL in
// the other order.
TEST_F(CgroupHostTest, MemoryAndSwapInEitherDirection) {
  if (!fs::exists(memory_ + "/memory.memsw.limit_in_bytes"))
    GTEST_SKIP() << "no swap accounting on this kernel";
  auto set = [&](std::uint64_t memory, std::uint64_t swap) {
    Limits l;
    l.memory = memory;
    l.memory_swap = swap;
    auto st = m_->apply(kVe, l);
    EXPECT_TRUE(st) << st.error().message;
    EXPECT_EQ(file("memory", "memory.limit_in_bytes"), std::to_string(memory) + "\n");
    EXPECT_EQ(file("memory", "memory.memsw.limit_in_bytes"), std::to_string(swap) + "\n");
  };
  set(64 * kMiB, 128 * kMiB);   // down from no limit
  set(256 * kMiB, 512 * kMiB);  // up: memory above the old memsw
  set(32 * kMiB, 64 * kMiB);    // down: memsw below the old memory
  auto s = m_->stats(kVe);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->swap_limit, 32 * kMiB);

  // The kernel's own refusal, explained: memory above memsw.
  Limits above;
  above.memory = 128 * kMiB;
  auto st = m_->apply(kVe, above);
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code, EINVAL);
  EXPECT_EQ(st.error().message,
            "--memory: the new limit 128.0 MiB is above the memory+swap limit 64.0 MiB in force; "
            "raise --memory-swap as well (the kernel refused: Invalid argument)");
}

// v1 tries to reclaim down to a new limit below the usage and, when it cannot (anonymous memory
// and no swap), refuses with EBUSY rather than OOM-killing: the limit in force stays, and so
// does the process.
TEST_F(CgroupHostTest, AMemoryLimitBelowUsageIsRefusedAndTheOldOneStays) {
  Limits before;
  before.memory = 256 * kMiB;
  ASSERT_TRUE(m_->apply(kVe, before));
  Hog hog(20 * kMiB);
  ASSERT_GT(hog.pid(), 0);
  ASSERT_TRUE(m_->attach(kVe, hog.pid()));
  ASSERT_TRUE(hog.allocate(10000));
  auto s = m_->stats(kVe);
  ASSERT_TRUE(s);
  EXPECT_GE(s->memory_usage, 20 * kMiB);
  EXPECT_EQ(s->pids_current, 1u);

  Limits tight;
  tight.memory = 4 * kMiB;
  tight.pids = 10;  // after memory in the order: never written
  auto st = m_->apply(kVe, tight);
  ASSERT_FALSE(st) << "the kernel took a limit below the VE's usage";
  EXPECT_EQ(st.error().code, EBUSY) << st.error().message;
  EXPECT_TRUE(st.error().message.starts_with("--memory: the VE already uses "))
      << st.error().message;
  EXPECT_TRUE(st.error().message.ends_with(
      ", more than the new limit 4.0 MiB (the kernel refused: Device or resource busy)"))
      << st.error().message;
  EXPECT_EQ(file("memory", "memory.limit_in_bytes"), "268435456\n");
  EXPECT_EQ(file("pids", "pids.max"), "max\n");
  EXPECT_EQ(::kill(hog.pid(), 0), 0) << "the process was killed";
  s = m_->stats(kVe);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->oom_kills, 0u);
}

TEST_F(CgroupHostTest, WatchOomFiresWhenTheKernelKillsInTheVe) {
  Limits l;
  l.memory = 16 * kMiB;
  if (fs::exists(memory_ + "/memory.memsw.limit_in_bytes")) l.memory_swap = 16 * kMiB;
  ASSERT_TRUE(m_->apply(kVe, l));
  auto fd = m_->watch_oom(kVe);
  ASSERT_TRUE(fd) << fd.error().message;

  Hog hog(64 * kMiB);
  ASSERT_GT(hog.pid(), 0);
  ASSERT_TRUE(m_->attach(kVe, hog.pid()));
  EXPECT_FALSE(hog.allocate(10000)) << "64 MiB fit under a 16 MiB limit";
  int status = hog.wait();
  ASSERT_TRUE(WIFSIGNALED(status)) << status;
  EXPECT_EQ(WTERMSIG(status), SIGKILL);

  pollfd p{fd->get(), POLLIN, 0};
  ASSERT_EQ(::poll(&p, 1, 5000), 1) << "no OOM notification";
  std::uint64_t count = 0;
  ASSERT_EQ(::read(fd->get(), &count, sizeof count), static_cast<ssize_t>(sizeof count));
  EXPECT_GE(count, 1u);
  auto s = m_->stats(kVe);
  ASSERT_TRUE(s);
  EXPECT_GE(s->oom_kills, 1u);
}

}  // namespace
}  // namespace kapsel::cgroup
