// The cgroup manager against the host's real hierarchies, under a parent directory of the
// test's own (kapsel-test-<pid>) so it never touches real VEs. Needs root.
#include "cgroup/manager.hpp"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <string>
#include <vector>

#include "cgroup/cgroupfs.hpp"
#include "common/fs.hpp"

namespace kapsel::cgroup {
namespace {

// A forked child that sleeps until killed; killed and reaped when dropped, so a failing test
// leaves no process behind.
class SleepingChild {
 public:
  SleepingChild() {
    pid_ = ::fork();
    if (pid_ == 0) {
      for (;;) ::pause();
    }
  }
  SleepingChild(const SleepingChild&) = delete;
  SleepingChild& operator=(const SleepingChild&) = delete;
  ~SleepingChild() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      int status = 0;
      ::waitpid(pid_, &status, 0);
    }
  }
  [[nodiscard]] pid_t pid() const { return pid_; }
  // Waits for the child to end and returns its wait status.
  int reap() {
    int status = 0;
    EXPECT_EQ(::waitpid(pid_, &status, 0), pid_);
    pid_ = -1;
    return status;
  }

 private:
  pid_t pid_ = -1;
};

bool contains(const std::vector<pid_t>& pids, pid_t pid) {
  return std::find(pids.begin(), pids.end(), pid) != pids.end();
}

bool gone(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) != 0 && errno == ENOENT;
}

std::string dirname(const std::string& path) {
  return path.substr(0, path.rfind('/'));
}

class CgroupManagerIntegrationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root: creates cgroups in the host hierarchies";
    options_.parent = "kapsel-test-" + std::to_string(::getpid());
    auto m = probe(options_);
    ASSERT_TRUE(m) << m.error().message;
    m_ = std::move(*m);
  }

  void TearDown() override {
    if (!m_) return;
    // The test's VEs are destroyed by the tests; this catches failures half-way, then removes
    // the test's parent directory from every hierarchy.
    for (const char* ve : {"ve", "nested"}) EXPECT_TRUE(m_->destroy(ve)) << ve;
    for (const auto& p : m_->paths("ve")) {
      std::string parent = dirname(p);
      EXPECT_TRUE(::rmdir(parent.c_str()) == 0 || errno == ENOENT) << parent;
    }
  }

  Options options_;
  std::unique_ptr<Manager> m_;
};

TEST_F(CgroupManagerIntegrationTest, ThisHostIsHybrid) {
  EXPECT_EQ(m_->layout(), Layout::hybrid)
      << "the build machines are hybrid; got " << to_string(m_->layout());
}

TEST_F(CgroupManagerIntegrationTest, CreateAttachKillDestroy) {
  ASSERT_TRUE(m_->create("ve"));
  ASSERT_TRUE(m_->exists("ve"));
  for (const auto& p : m_->paths("ve")) ASSERT_TRUE(fs::is_dir(p)) << p;

  SleepingChild child;
  ASSERT_GT(child.pid(), 0);
  auto attached = m_->attach("ve", child.pid());
  ASSERT_TRUE(attached) << attached.error().message;

  auto pids = m_->pids("ve");
  ASSERT_TRUE(pids) << pids.error().message;
  EXPECT_TRUE(contains(*pids, child.pid()));
  // In every hierarchy, v1 and v2.
  for (const auto& p : m_->paths("ve")) {
    auto procs = read_procs(p);
    ASSERT_TRUE(procs) << procs.error().message;
    EXPECT_TRUE(contains(*procs, child.pid())) << p;
  }

  // A nested cgroup, as a container's own init might make, is removed with the VE.
  std::vector<std::string> nested;
  for (const auto& p : m_->paths("ve")) {
    nested.push_back(p + "/inner");
    ASSERT_EQ(::mkdir(nested.back().c_str(), 0755), 0) << nested.back();
  }

  auto killed = m_->kill_all("ve", 5000);
  ASSERT_TRUE(killed) << killed.error().message;
  int status = child.reap();
  ASSERT_TRUE(WIFSIGNALED(status));
  EXPECT_EQ(WTERMSIG(status), SIGKILL);
  pids = m_->pids("ve");
  ASSERT_TRUE(pids);
  EXPECT_TRUE(pids->empty());

  auto destroyed = m_->destroy("ve");
  ASSERT_TRUE(destroyed) << destroyed.error().message;
  for (const auto& p : nested) EXPECT_TRUE(gone(p)) << p;
  for (const auto& p : m_->paths("ve")) EXPECT_TRUE(gone(p)) << p;
  EXPECT_FALSE(m_->exists("ve"));
  // The parent directory stays for the next VE.
  for (const auto& p : m_->paths("ve")) EXPECT_TRUE(fs::is_dir(dirname(p))) << p;
  EXPECT_TRUE(m_->destroy("ve"));
}

TEST_F(CgroupManagerIntegrationTest, ProcessInNestedCgroupIsFoundAndKilled) {
  ASSERT_TRUE(m_->create("nested"));
  SleepingChild child;
  ASSERT_GT(child.pid(), 0);
  // Straight into a nested cgroup in every hierarchy, bypassing attach(), as a process the VE
  // moved itself would be. cpuset needs its values before a task may join.
  for (const auto& p : m_->paths("nested")) {
    std::string inner = p + "/inner";
    ASSERT_EQ(::mkdir(inner.c_str(), 0755), 0) << inner;
    for (const char* f : {"cpuset.cpus", "cpuset.mems"}) {
      if (!fs::exists(inner + "/" + f)) continue;
      auto value = fs::read_file(p + "/" + f);
      ASSERT_TRUE(value);
      ASSERT_TRUE(fs::write_existing(inner + "/" + f, words(*value).at(0)));
    }
    auto st = fs::write_existing(inner + "/cgroup.procs", std::to_string(child.pid()));
    ASSERT_TRUE(st) << st.error().message;
  }

  auto pids = m_->pids("nested");
  ASSERT_TRUE(pids) << pids.error().message;
  EXPECT_TRUE(contains(*pids, child.pid()));

  auto killed = m_->kill_all("nested", 5000);
  ASSERT_TRUE(killed) << killed.error().message;
  int status = child.reap();
  ASSERT_TRUE(WIFSIGNALED(status));
  EXPECT_EQ(WTERMSIG(status), SIGKILL);

  ASSERT_TRUE(m_->destroy("nested"));
  for (const auto& p : m_->paths("nested")) {
    EXPECT_TRUE(gone(p + "/inner")) << p;
    EXPECT_TRUE(gone(p)) << p;
  }
}

TEST_F(CgroupManagerIntegrationTest, DestroyKillsLeftoversAndIsIdempotent) {
  ASSERT_TRUE(m_->create("ve"));
  SleepingChild child;
  ASSERT_GT(child.pid(), 0);
  ASSERT_TRUE(m_->attach("ve", child.pid()));
  // As cleanup after a crashed kapsel: destroy alone must kill and remove.
  auto destroyed = m_->destroy("ve");
  ASSERT_TRUE(destroyed) << destroyed.error().message;
  int status = child.reap();
  ASSERT_TRUE(WIFSIGNALED(status));
  EXPECT_EQ(WTERMSIG(status), SIGKILL);
  for (const auto& p : m_->paths("ve")) EXPECT_TRUE(gone(p)) << p;
  EXPECT_TRUE(m_->destroy("ve"));
}

// Runs `join` in a forked child, which then reports success or failure through a pipe and
// sleeps until killed. Returns the child once it has joined, or with pid -1 after a failure.
template <class Join>
pid_t fork_joined_child(Join join) {
  int fds[2];
  if (::pipe(fds) != 0) return -1;
  pid_t pid = ::fork();
  if (pid == 0) {
    ::close(fds[0]);
    char ok = join() ? 'y' : 'n';
    (void)!::write(fds[1], &ok, 1);
    ::close(fds[1]);
    for (;;) ::pause();
  }
  ::close(fds[1]);
  char ok = 'n';
  if (pid < 0 || ::read(fds[0], &ok, 1) != 1) ok = 'n';
  ::close(fds[0]);
  if (ok != 'y' && pid > 0) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    return -1;
  }
  return pid;
}

TEST_F(CgroupManagerIntegrationTest, ProcessesJoinThemselvesWithPid0AndOpenProcs) {
  ASSERT_TRUE(m_->create("ve"));
  // attach(ve, 0) from inside the process that joins.
  pid_t self = fork_joined_child([this] { return static_cast<bool>(m_->attach("ve", 0)); });
  ASSERT_GT(self, 0) << "attach(ve, 0) failed in the child";
  // open_procs() first, "0" written later, as exec does after it has left the host's mount
  // namespace.
  auto fds = m_->open_procs("ve");
  ASSERT_TRUE(fds) << fds.error().message;
  EXPECT_EQ(fds->size(), m_->paths("ve").size());
  pid_t via_fd = fork_joined_child([&fds] {
    for (const auto& fd : *fds)
      if (::write(fd.get(), "0", 1) != 1) return false;
    return true;
  });
  ASSERT_GT(via_fd, 0) << "writing 0 to the opened cgroup.procs failed in the child";
  fds->clear();

  for (const auto& p : m_->paths("ve")) {
    auto procs = read_procs(p);
    ASSERT_TRUE(procs);
    EXPECT_TRUE(contains(*procs, self)) << p;
    EXPECT_TRUE(contains(*procs, via_fd)) << p;
  }
  ASSERT_TRUE(m_->destroy("ve"));
  for (pid_t pid : {self, via_fd}) {
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  }
}

TEST_F(CgroupManagerIntegrationTest, KillAllFallsBackToTheFreezerInV1Only) {
  // The legacy backend alone (the host's v1 hierarchies without the v2 tree): freezer, kill,
  // thaw.
  auto text = fs::read_file(options_.mountinfo);
  ASSERT_TRUE(text);
  std::string v1_only;
  size_t pos = 0;
  while (pos < text->size()) {
    size_t end = text->find('\n', pos);
    if (end == std::string::npos) end = text->size();
    std::string line = text->substr(pos, end - pos);
    if (line.find(" - cgroup2 ") == std::string::npos) v1_only += line + "\n";
    pos = end + 1;
  }
  char tmpl[] = "/tmp/kapsel-cgroup-mountinfo.XXXXXX";
  int fd = ::mkstemp(tmpl);
  ASSERT_GE(fd, 0);
  ::close(fd);
  ASSERT_TRUE(fs::write_file_atomic(tmpl, v1_only));
  Options legacy = options_;
  legacy.mountinfo = tmpl;
  auto m = probe(legacy);
  ::unlink(tmpl);
  ASSERT_TRUE(m) << m.error().message;
  ASSERT_EQ((*m)->layout(), Layout::legacy);

  ASSERT_TRUE((*m)->create("ve"));
  SleepingChild child;
  ASSERT_GT(child.pid(), 0);
  ASSERT_TRUE((*m)->attach("ve", child.pid()));
  auto killed = (*m)->kill_all("ve", 5000);
  ASSERT_TRUE(killed) << killed.error().message;
  int status = child.reap();
  ASSERT_TRUE(WIFSIGNALED(status));
  EXPECT_EQ(WTERMSIG(status), SIGKILL);
  ASSERT_TRUE((*m)->destroy("ve"));
  for (const auto& p : (*m)->paths("ve")) {
    EXPECT_TRUE(gone(p)) << p;
    if (p.find("/freezer/") != std::string::npos) {
      // Nothing was left frozen: the parent is thawed.
      auto state = fs::read_file(dirname(p) + "/freezer.state");
      ASSERT_TRUE(state);
      EXPECT_EQ(*state, "THAWED\n");
    }
  }
}

}  // namespace
}  // namespace kapsel::cgroup
