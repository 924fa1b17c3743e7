// Device rules in cgroups: v1 lines and the order they are written in, the eBPF program run
// through a small interpreter, the backends on fake trees, and, as root, both mechanisms on this
// host's real cgroups with forked children opening devices (the v1 devices controller, and the
// eBPF program on the cgroup2 hierarchy, which a hybrid host has as well). The host tests use
// their own parents and remove them afterwards.
#include "cgroup/devices.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/bpf.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <functional>
#include <set>
#include <sstream>

#include "cgroup/cgroupfs.hpp"
#include "cgroup/hierarchy.hpp"
#include "cgroup/manager.hpp"
#include "cgroup/v2_manager.hpp"
#include "cgroup_fake_tree.hpp"
#include "common/fs.hpp"
#include "common/unique_fd.hpp"
#include "security/devices.hpp"

namespace kapsel::cgroup {
namespace {

using testing::FakeCgroupTree;
using testing::get;
using testing::put;

DeviceRule allow(char type, std::int64_t major, std::int64_t minor, std::string access = "rwm") {
  return {type, major, minor, std::move(access), true};
}
DeviceRule deny(char type, std::int64_t major, std::int64_t minor, std::string access = "rwm") {
  return {type, major, minor, std::move(access), false};
}

TEST(DeviceRules, V1Lines) {
  EXPECT_EQ(to_v1_line(allow('a', -1, -1)), "a *:* rwm");
  EXPECT_EQ(to_v1_line(allow('c', 1, 3)), "c 1:3 rwm");
  EXPECT_EQ(to_v1_line(allow('c', 136, -1)), "c 136:* rwm");
  EXPECT_EQ(to_v1_line(allow('c', -1, -1, "m")), "c *:* m");
  EXPECT_EQ(to_v1_line(allow('b', -1, -1, "m")), "b *:* m");
  EXPECT_EQ(to_v1_line(allow('b', 8, 0, "r")), "b 8:0 r");
  EXPECT_EQ(to_v1_line(allow('b', -1, 16, "rw")), "b *:16 rw");
  EXPECT_EQ(to_v1_line(deny('c', 10, 229, "w")), "c 10:229 w");
  // The access in the kernel's order, whatever the order given.
  EXPECT_EQ(to_v1_line(allow('c', 1, 5, "mwr")), "c 1:5 rwm");
  EXPECT_EQ(to_v1_line(allow('c', 1, 5, "mr")), "c 1:5 rm");
}

TEST(DeviceRules, BadRulesAreRefused) {
  for (const DeviceRule& r :
       {allow('x', 1, 3), allow('c', 1, 3, ""), allow('c', 1, 3, "rx"), allow('c', 1, 3, "rr"),
        allow('c', -2, 3), allow('c', 1, -5), allow('b', std::int64_t{1} << 31, 0)}) {
    auto st = check_rule(r);
    ASSERT_FALSE(st) << to_v1_line(r);
    EXPECT_EQ(st.error().kind, ErrorKind::usage);
    EXPECT_FALSE(v1_device_writes({allow('c', 1, 3), r}));
    EXPECT_FALSE(device_program({r}));
  }
  EXPECT_EQ(check_rule(allow('x', 1, 3)).error().message,
            "device rule 'x 1:3 rwm': the type must be 'a' (all), 'c' or 'b'");
  EXPECT_EQ(
      check_rule(allow('c', 1, 3, "rx")).error().message,
      "device rule 'c 1:3 rx': the access must be one or more of 'r', 'w' and 'm', each once");
  EXPECT_TRUE(check_rule(allow('c', 2147483647, 0)));
}

TEST(DeviceRules, V1WritesDenyAllFirstThenEachRule) {
  auto writes = v1_device_writes({allow('c', -1, -1, "m"), allow('c', 1, 3), deny('c', 1, 3, "w"),
                                  allow('a', 10, -1, "rw"), allow('a', -1, -1)});
  ASSERT_TRUE(writes) << writes.error().message;
  EXPECT_EQ(*writes, (std::vector<V1DeviceWrite>{
                         {"devices.deny", "a"},
                         {"devices.allow", "c *:* m"},
                         {"devices.allow", "c 1:3 rwm"},
                         {"devices.deny", "c 1:3 w"},
                         // The kernel reads any 'a' line as "everything": split in two.
                         {"devices.allow", "c 10:* rw"},
                         {"devices.allow", "b 10:* rw"},
                         {"devices.allow", "a *:* rwm"},
                     }));
  writes = v1_device_writes({});
  ASSERT_TRUE(writes);
  EXPECT_EQ(*writes, (std::vector<V1DeviceWrite>{{"devices.deny", "a"}}));
}

// --- the eBPF program, interpreted -----------------------------------------------------------

constexpr int kMknod = BPF_DEVCG_ACC_MKNOD, kRead = BPF_DEVCG_ACC_READ,
              kWrite = BPF_DEVCG_ACC_WRITE;

// Runs `p` as the kernel would on one access (only the instructions device_program() uses) and
// returns R0, or -1 after a failure. Also fails if an instruction can never run or a jump leaves
// the program, which the verifier refuses.
int run(const std::vector<bpf_insn>& p, char type, int access, std::uint32_t major,
        std::uint32_t minor) {
  std::vector<bool> reachable(p.size(), false);
  std::vector<std::size_t> todo{0};
  while (!todo.empty()) {
    std::size_t pc = todo.back();
    todo.pop_back();
    if (pc >= p.size()) {
      ADD_FAILURE() << "a path runs off the end at " << pc;
      return -1;
    }
    if (reachable[pc]) continue;
    reachable[pc] = true;
    const bpf_insn& i = p[pc];
    if (i.code == (BPF_JMP | BPF_EXIT)) continue;
    if (BPF_CLASS(i.code) == BPF_JMP) todo.push_back(pc + 1 + static_cast<std::size_t>(i.off));
    todo.push_back(pc + 1);
  }
  for (std::size_t pc = 0; pc < p.size(); ++pc) {
    if (!reachable[pc]) {
      ADD_FAILURE() << "instruction " << pc << " can never run";
      return -1;
    }
  }

  std::uint32_t ctx[3] = {
      static_cast<std::uint32_t>(access << 16 |
                                 (type == 'b' ? BPF_DEVCG_DEV_BLOCK : BPF_DEVCG_DEV_CHAR)),
      major, minor};
  std::uint64_t r[11] = {};
  bool r1_is_ctx = true;
  for (std::size_t pc = 0; pc < p.size();) {
    const bpf_insn& i = p[pc++];
    auto imm = static_cast<std::uint64_t>(static_cast<std::int64_t>(i.imm));
    switch (i.code) {
      case BPF_LDX | BPF_MEM | BPF_W:
        if (i.src_reg != BPF_REG_1 || !r1_is_ctx || i.off % 4 != 0 || i.off / 4 > 2) {
          ADD_FAILURE() << "a load from other than the context at " << pc - 1;
          return -1;
        }
        r[i.dst_reg] = ctx[i.off / 4];
        break;
      case BPF_ALU | BPF_AND | BPF_K:
        r[i.dst_reg] = static_cast<std::uint32_t>(r[i.dst_reg] & imm);
        break;
      case BPF_ALU | BPF_RSH | BPF_K:
        r[i.dst_reg] = static_cast<std::uint32_t>(r[i.dst_reg]) >> i.imm;
        break;
      case BPF_ALU | BPF_MOV | BPF_X:
        r[i.dst_reg] = static_cast<std::uint32_t>(r[i.src_reg]);
        break;
      case BPF_ALU64 | BPF_MOV | BPF_K:
        r[i.dst_reg] = imm;
        break;
      case BPF_JMP | BPF_JNE | BPF_K:
        if (r[i.dst_reg] != imm) pc += static_cast<std::size_t>(i.off);
        break;
      case BPF_JMP | BPF_JEQ | BPF_K:
        if (r[i.dst_reg] == imm) pc += static_cast<std::size_t>(i.off);
        break;
      case BPF_JMP | BPF_JNE | BPF_X:
        if (r[i.dst_reg] != r[i.src_reg]) pc += static_cast<std::size_t>(i.off);
        break;
      case BPF_JMP | BPF_EXIT:
        return static_cast<int>(r[BPF_REG_0]);
      default:
        ADD_FAILURE() << "unexpected instruction code " << int(i.code) << " at " << pc - 1;
        return -1;
    }
    if (i.dst_reg == BPF_REG_1 && BPF_CLASS(i.code) != BPF_JMP) r1_is_ctx = false;
  }
  ADD_FAILURE() << "no exit";
  return -1;
}

int decide(const std::vector<DeviceRule>& rules, char type, int access, std::uint32_t major,
           std::uint32_t minor) {
  auto p = device_program(rules);
  EXPECT_TRUE(p) << p.error().message;
  return p ? run(*p, type, access, major, minor) : -1;
}

TEST(DeviceProgram, NoRulesDenyEverything) {
  for (char type : {'c', 'b'}) {
    for (int access : {kRead, kWrite, kMknod, kRead | kWrite}) {
      EXPECT_EQ(decide({}, type, access, 1, 3), 0);
    }
  }
}

TEST(DeviceProgram, TheDefaultList) {
  auto rules = security::device_rules({});
  struct Case {
    char type;
    int access;
    std::uint32_t major, minor;
    int want;
  } cases[] = {
      {'c', kRead | kWrite, 1, 3, 1},    // null
      {'c', kRead, 1, 9, 1},             // urandom
      {'c', kRead | kWrite, 5, 0, 1},    // tty
      {'c', kRead | kWrite, 5, 2, 1},    // ptmx
      {'c', kRead | kWrite, 136, 7, 1},  // a pty
      {'c', kRead, 1, 11, 0},            // kmsg
      {'c', kMknod, 1, 11, 1},           // ... which may be made
      {'c', kRead, 10, 229, 0},          // fuse
      {'b', kRead, 8, 0, 0},             // sda
      {'b', kMknod, 8, 0, 1},
      {'b', kRead, 1, 3, 0},  // the right numbers, the wrong type
      {'c', kRead, 137, 0, 0},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(decide(rules, c.type, c.access, c.major, c.minor), c.want)
        << c.type << " " << c.major << ":" << c.minor << " access " << c.access;
  }
}

TEST(DeviceProgram, AnAllowRuleMustCoverTheWholeAccess) {
  std::vector<DeviceRule> rules{allow('c', 1, 3, "r"), allow('c', 1, 5, "rw")};
  EXPECT_EQ(decide(rules, 'c', kRead, 1, 3), 1);
  EXPECT_EQ(decide(rules, 'c', kWrite, 1, 3), 0);
  EXPECT_EQ(decide(rules, 'c', kRead | kWrite, 1, 3), 0);
  EXPECT_EQ(decide(rules, 'c', kRead | kWrite, 1, 5), 1);
  EXPECT_EQ(decide(rules, 'c', kMknod, 1, 5), 0);
}

TEST(DeviceProgram, TheLastMatchingRuleDecides) {
  std::vector<DeviceRule> rules{allow('a', -1, -1), deny('c', 1, 3, "w")};
  EXPECT_EQ(decide(rules, 'c', kRead, 1, 3), 1);
  EXPECT_EQ(decide(rules, 'c', kWrite, 1, 3), 0);
  EXPECT_EQ(decide(rules, 'c', kRead | kWrite, 1, 3), 0);  // any of a deny rule's access
  EXPECT_EQ(decide(rules, 'c', kWrite, 1, 5), 1);
  EXPECT_EQ(decide(rules, 'b', kWrite, 8, 0), 1);
  // And back: allowed again by a later rule.
  rules.push_back(allow('c', 1, -1));
  EXPECT_EQ(decide(rules, 'c', kWrite, 1, 3), 1);
}

TEST(DeviceProgram, TypeAllMatchesCharacterAndBlock) {
  std::vector<DeviceRule> rules{allow('a', 7, -1, "r")};
  EXPECT_EQ(decide(rules, 'c', kRead, 7, 1), 1);
  EXPECT_EQ(decide(rules, 'b', kRead, 7, 1), 1);
  EXPECT_EQ(decide(rules, 'b', kWrite, 7, 1), 0);
  EXPECT_EQ(decide(rules, 'b', kRead, 8, 1), 0);
}

// A rule that matches everything ends the program; what it hides is left out, not left as code
// that can never run (which the verifier refuses).
TEST(DeviceProgram, ARuleForEverythingEndsTheProgram) {
  auto p = device_program({allow('c', 1, 3), allow('a', -1, -1), allow('c', 1, 5)});
  ASSERT_TRUE(p);
  EXPECT_EQ(run(*p, 'b', kRead, 8, 0), 1);
  auto short_one = device_program({allow('a', -1, -1)});
  ASSERT_TRUE(short_one);
  EXPECT_LT(short_one->size(), p->size());
  EXPECT_EQ(decide({allow('a', -1, -1), deny('a', -1, -1)}, 'c', kRead, 1, 3), 0);
}

// --- the backends on fake trees --------------------------------------------------------------

class DevicesFakeTree : public FakeCgroupTree {
 protected:
  // Makes the VE's cgroup and, in the devices hierarchy, the files a real one has.
  void create_ve(Manager& m) {
    ASSERT_TRUE(m.create("ve"));
    std::string d = root_ + "/devices/kapsel/ve";
    if (fs::is_dir(d)) {
      put(d + "/devices.allow", "");
      put(d + "/devices.deny", "");
    }
  }
};

TEST_F(DevicesFakeTree, V1WritesTheLinesInOrder) {
  auto m = probe_lines(v1_line(1, "devices", "devices") + v1_line(2, "pids", "pids"));
  ASSERT_TRUE(m);
  ASSERT_EQ(m->layout(), Layout::legacy);
  create_ve(*m);
  auto st = m->set_devices("ve", security::device_rules({}));
  ASSERT_TRUE(st) << st.error().message;
  std::string d = root_ + "/devices/kapsel/ve";
  EXPECT_EQ(get(d + "/devices.deny"), "a\n");
  EXPECT_EQ(get(d + "/devices.allow"),
            "c *:* m\nb *:* m\nc 1:3 rwm\nc 1:5 rwm\nc 1:7 rwm\nc 1:8 rwm\nc 1:9 rwm\nc 5:0 rwm\n"
            "c 5:1 rwm\nc 5:2 rwm\nc 136:* rwm\n");
  EXPECT_FALSE(fs::exists(root_ + "/pids/kapsel/ve/devices.allow"));
}

TEST_F(DevicesFakeTree, V1RefusesABadRuleBeforeWritingAnything) {
  auto m = probe_lines(v1_line(1, "devices", "devices"));
  ASSERT_TRUE(m);
  create_ve(*m);
  auto st = m->set_devices("ve", {allow('c', 1, 3), allow('c', 1, 5, "x")});
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().kind, ErrorKind::usage);
  EXPECT_EQ(get(root_ + "/devices/kapsel/ve/devices.deny"), "");
}

TEST_F(DevicesFakeTree, V1NeedsTheVeAndTheController) {
  auto m = probe_lines(v1_line(1, "devices", "devices") + v1_line(2, "pids", "pids"));
  ASSERT_TRUE(m);
  auto st = m->set_devices("ve", {});
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().kind, ErrorKind::not_found);
  EXPECT_EQ(st.error().message, "VE ve has no cgroup " + root_ + "/devices/kapsel/ve");
  EXPECT_FALSE(m->set_devices("../x", {}));

  auto no_devices = probe_lines(v1_line(3, "memory", "memory"));
  ASSERT_TRUE(no_devices);
  create_ve(*no_devices);
  st = no_devices->set_devices("ve", {});
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().message,
            "setting the device rules of VE ve: this host has no devices controller (no cgroup "
            "v1 hierarchy of it is mounted); mount it to run VEs");
}

TEST_F(DevicesFakeTree, HybridUsesTheV1ControllerWhenMounted) {
  auto m = probe_lines(v1_line(1, "devices", "devices") + v2_line(2, root_ + "/unified"));
  ASSERT_TRUE(m);
  ASSERT_EQ(m->layout(), Layout::hybrid);
  create_ve(*m);
  ASSERT_TRUE(m->set_devices("ve", {allow('c', 1, 3)}));
  EXPECT_EQ(get(root_ + "/devices/kapsel/ve/devices.deny"), "a\n");
  EXPECT_EQ(get(root_ + "/devices/kapsel/ve/devices.allow"), "c 1:3 rwm\n");
}

// Without a v1 devices controller, hybrid and unified go to the eBPF program on the v2 cgroup,
// which a plain directory cannot take: the error shows where it went.
TEST_F(DevicesFakeTree, HybridWithoutTheControllerAndUnifiedUseTheV2Cgroup) {
  auto hybrid = probe_lines(v1_line(1, "pids", "pids") + v2_line(2, root_ + "/unified"));
  ASSERT_TRUE(hybrid);
  ASSERT_EQ(hybrid->layout(), Layout::hybrid);
  create_ve(*hybrid);
  auto st = hybrid->set_devices("ve", {allow('c', 1, 3)});
  ASSERT_FALSE(st);
  EXPECT_TRUE(st.error().message.starts_with("VE ve: setting the device rules of cgroup " + root_ +
                                             "/unified/kapsel/ve: "))
      << st.error().message;

  auto unified = probe_lines(v2_line(3, root_ + "/v2"));
  ASSERT_TRUE(unified);
  for (const char* level : {"/v2", "/v2/kapsel"})
    fill(root_ + level, {{"cgroup.controllers", ""}, {"cgroup.subtree_control", ""}});
  ASSERT_EQ(unified->layout(), Layout::unified);
  auto made = unified->create("ve2");
  ASSERT_TRUE(made) << made.error().message;
  st = unified->set_devices("ve2", {allow('c', 1, 3)});
  ASSERT_FALSE(st);
  EXPECT_TRUE(st.error().message.starts_with("VE ve2: setting the device rules of cgroup " + root_ +
                                             "/v2/kapsel/ve2: "))
      << st.error().message;
  st = unified->set_devices("nope", {});
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().kind, ErrorKind::not_found);
}

// --- on this host's cgroups ------------------------------------------------------------------

// Forks a child that waits until `place` has put it into a cgroup, then runs `body` there and
// reports "" (all as expected) or what went wrong.
std::string in_cgroup(const std::function<Status(pid_t)>& place,
                      const std::function<std::string()>& body) {
  int go[2], report[2];
  if (::pipe2(go, O_CLOEXEC) != 0 || ::pipe2(report, O_CLOEXEC) != 0) return "pipe failed";
  pid_t pid = ::fork();
  if (pid < 0) return "fork failed";
  if (pid == 0) {
    ::close(go[1]);
    ::close(report[0]);
    char c;
    if (::read(go[0], &c, 1) != 1) ::_exit(1);
    std::string r = body();
    if (!r.empty() && ::write(report[1], r.data(), r.size()) < 0) ::_exit(2);
    ::_exit(0);
  }
  ::close(go[0]);
  ::close(report[1]);
  auto placed = place(pid);
  std::string result;
  if (placed) {
    if (::write(go[1], "g", 1) != 1) result = "could not start the child";
  } else {
    result = "placing the child: " + placed.error().message;
    ::kill(pid, SIGKILL);
  }
  ::close(go[1]);
  char buf[4096];
  ssize_t n;
  while ((n = ::read(report[0], buf, sizeof buf)) > 0)
    result.append(buf, static_cast<std::size_t>(n));
  ::close(report[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (result.empty() && !(WIFEXITED(status) && WEXITSTATUS(status) == 0))
    result = "the child ended with status " + std::to_string(status);
  return result;
}

// "" if opening `path` with `flags` gives `want` (0: it opens), else what it gave.
std::string expect_open(const std::string& path, int flags, int want) {
  int fd = ::open(path.c_str(), flags | O_CLOEXEC);
  int err = fd < 0 ? errno : 0;
  if (fd >= 0) ::close(fd);
  if (err == want) return {};
  return "open " + path + ": " + (err ? std::strerror(err) : "opened") + ", want " +
         (want ? std::strerror(want) : "opened") + "; ";
}

std::string expect_mknod(const std::string& path, unsigned major, unsigned minor, int want) {
  ::unlink(path.c_str());
  int err = ::mknod(path.c_str(), S_IFCHR | 0600, makedev(major, minor)) == 0 ? 0 : errno;
  if (err == want) return {};
  return "mknod " + path + ": " + (err ? std::strerror(err) : "made") + ", want " +
         (want ? std::strerror(want) : "made") + "; ";
}

class DevicesHostTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to make cgroups and device nodes";
    char tmpl[] = "/tmp/kapsel-devices-test.XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    tmp_ = tmpl;
  }
  void TearDown() override {
    if (!tmp_.empty()) {
      EXPECT_TRUE(fs::remove_tree(tmp_));
    }
  }
  std::string parent_ = "kapsel-unit-devices-" + std::to_string(::getpid());
  std::string tmp_;
};

// The hybrid (or legacy) manager through the v1 devices controller.
class DevicesV1HostTest : public DevicesHostTest {
 protected:
  void SetUp() override {
    DevicesHostTest::SetUp();
    if (IsSkipped()) return;
    Options o;
    o.parent = parent_;
    auto m = probe(o);
    if (!m) GTEST_SKIP() << "no cgroups here: " << m.error().message;
    if ((*m)->layout() == Layout::unified) GTEST_SKIP() << "no v1 devices controller (unified)";
    if (!fs::is_dir(o.root + "/devices")) GTEST_SKIP() << "no v1 devices controller mounted";
    m_ = std::move(*m);
    auto st = m_->create("ve");
    ASSERT_TRUE(st) << st.error().message;
    created_ = true;
    dir_ = o.root + "/devices/" + parent_ + "/ve";
    ASSERT_TRUE(fs::is_dir(dir_));
  }
  void TearDown() override {
    if (created_) {
      ::rmdir((dir_ + "/nested").c_str());
      auto paths = m_->paths("ve");
      EXPECT_TRUE(m_->destroy("ve"));
      for (const auto& p : paths) {
        std::string parent = p.substr(0, p.rfind('/'));
        EXPECT_EQ(::rmdir(parent.c_str()), 0) << parent << ": " << std::strerror(errno);
      }
    }
    DevicesHostTest::TearDown();
  }
  std::string run(const std::function<std::string()>& body) {
    return in_cgroup([this](pid_t pid) { return m_->attach("ve", pid); }, body);
  }

  std::unique_ptr<Manager> m_;
  bool created_ = false;
  std::string dir_;
};

TEST_F(DevicesV1HostTest, OnlyTheListedDevicesOpen) {
  auto rules = security::device_rules({});
  auto st = m_->set_devices("ve", rules);
  ASSERT_TRUE(st) << st.error().message;
  // The kernel's own account of the exceptions.
  auto list = fs::read_file(dir_ + "/devices.list");
  ASSERT_TRUE(list);
  std::set<std::string> shown, wanted;
  std::istringstream in(*list);
  for (std::string line; std::getline(in, line);) shown.insert(line);
  for (const auto& r : rules) wanted.insert(to_v1_line(r));
  EXPECT_EQ(shown, wanted) << *list;

  std::string node = tmp_ + "/kmsg";
  EXPECT_EQ(run([&] {
              // One statement each: the operands of + are not evaluated in order.
              std::string r = expect_open("/dev/null", O_RDWR, 0);
              r += expect_open("/dev/zero", O_RDONLY, 0);
              r += expect_open("/dev/urandom", O_RDONLY, 0);
              r += expect_open("/dev/kmsg", O_RDONLY, EPERM);
              r += expect_open("/dev/fuse", O_RDWR, fs::exists("/dev/fuse") ? EPERM : ENOENT);
              // "c *:* m": the node can be made, and still not opened.
              r += expect_mknod(node, 1, 11, 0);
              r += expect_open(node, O_RDONLY, EPERM);
              return r;
            }),
            "");

  // Replaced while nothing is nested: /dev/kmsg readable, not writable.
  rules.push_back(allow('c', 1, 11, "r"));
  st = m_->set_devices("ve", rules);
  ASSERT_TRUE(st) << st.error().message;
  EXPECT_EQ(run([&] {
              std::string r = expect_open("/dev/kmsg", O_RDONLY, 0);
              r += expect_open("/dev/kmsg", O_WRONLY, EPERM);
              r += expect_open("/dev/null", O_RDWR, 0);
              return r;
            }),
            "");
}

TEST_F(DevicesV1HostTest, NestedCgroupsStopAReplacement) {
  ASSERT_TRUE(m_->set_devices("ve", security::device_rules({})));
  ASSERT_EQ(::mkdir((dir_ + "/nested").c_str(), 0755), 0) << std::strerror(errno);
  auto st = m_->set_devices("ve", {allow('a', -1, -1)});
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code, EINVAL);
  EXPECT_EQ(st.error().message,
            "setting the device rules of VE ve: the kernel refuses to replace them once the VE's "
            "cgroup has nested cgroups (" +
                dir_ + "); restart the VE to change them: Invalid argument");
  // The rules in force are still the old ones.
  auto list = fs::read_file(dir_ + "/devices.list");
  ASSERT_TRUE(list);
  EXPECT_TRUE(list->starts_with("c *:* m\n")) << *list;
}

// The eBPF program on the real cgroup2 hierarchy (/sys/fs/cgroup/unified on a hybrid host).
class DevicesV2HostTest : public DevicesHostTest {
 protected:
  void SetUp() override {
    DevicesHostTest::SetUp();
    if (IsSkipped()) return;
    auto text = fs::read_file("/proc/self/mountinfo");
    ASSERT_TRUE(text);
    auto found = parse_mountinfo(*text, "/sys/fs/cgroup");
    ASSERT_TRUE(found) << found.error().message;
    for (const auto& h : *found) {
      if (h.v2) mount_ = h.mount;
    }
    if (mount_.empty()) GTEST_SKIP() << "no cgroup2 hierarchy mounted";
    v2_ = std::make_unique<V2Manager>(mount_, parent_, V2Manager::Controllers::leave);
    auto st = v2_->create("ve");
    ASSERT_TRUE(st) << st.error().message;
    created_ = true;
    dir_ = v2_->dir("ve");
    // Whether this kernel lets us use bpf(2) at all.
    st = attach_device_program(dir_, {allow('a', -1, -1)});
    if (!st && (st.error().code == EPERM || st.error().code == ENOSYS))
      GTEST_SKIP() << "bpf(2) is not available here: " << st.error().message;
    ASSERT_TRUE(st) << st.error().message;
  }
  void TearDown() override {
    if (created_) {
      EXPECT_TRUE(v2_->destroy("ve"));
      std::string parent = mount_ + "/" + parent_;
      EXPECT_EQ(::rmdir(parent.c_str()), 0) << parent << ": " << std::strerror(errno);
    }
    DevicesHostTest::TearDown();
  }
  std::string run(const std::function<std::string()>& body) {
    return in_cgroup([this](pid_t pid) { return v2_->attach("ve", pid); }, body);
  }
  std::vector<std::uint32_t> attached() {
    auto ids = attached_device_programs(dir_);
    EXPECT_TRUE(ids) << ids.error().message;
    return ids ? *ids : std::vector<std::uint32_t>{};
  }

  std::string mount_, dir_;
  std::unique_ptr<V2Manager> v2_;
  bool created_ = false;
};

TEST_F(DevicesV2HostTest, OnlyTheListedDevicesOpenAndUpdatesReplaceTheProgram) {
  auto before = attached();
  ASSERT_EQ(before.size(), 1u);

  auto st = attach_device_program(dir_, {allow('c', 1, 3)});
  ASSERT_TRUE(st) << st.error().message;
  auto now = attached();
  ASSERT_EQ(now.size(), 1u);
  EXPECT_NE(now, before);
  std::string node = tmp_ + "/zero";
  EXPECT_EQ(run([&] {
              std::string r = expect_open("/dev/null", O_RDWR, 0);
              r += expect_open("/dev/zero", O_RDONLY, EPERM);
              r += expect_mknod(node, 1, 5, EPERM);  // no "m" rule this time
              return r;
            }),
            "");

  // Through the manager: an update that adds /dev/zero.
  st = v2_->set_devices("ve", {allow('c', 1, 3), allow('c', 1, 5)});
  ASSERT_TRUE(st) << st.error().message;
  EXPECT_EQ(attached().size(), 1u);
  EXPECT_EQ(run([&] {
              std::string r = expect_open("/dev/null", O_RDWR, 0);
              r += expect_open("/dev/zero", O_RDONLY, 0);
              r += expect_open("/dev/full", O_RDONLY, EPERM);
              return r;
            }),
            "");

  // kapsel's default list, as a VE gets it.
  st = v2_->set_devices("ve", security::device_rules({}));
  ASSERT_TRUE(st) << st.error().message;
  node = tmp_ + "/kmsg";
  EXPECT_EQ(run([&] {
              std::string r = expect_open("/dev/null", O_RDWR, 0);
              r += expect_open("/dev/full", O_RDWR, 0);
              r += expect_open("/dev/kmsg", O_RDONLY, EPERM);
              r += expect_mknod(node, 1, 11, 0);
              r += expect_open(node, O_RDONLY, EPERM);
              return r;
            }),
            "");
}

// Two kapsel programs on one cgroup (left by a crash between attaching the new one and
// detaching the old): the next update leaves one, and only its rules count.
TEST_F(DevicesV2HostTest, AnUpdateRemovesEveryEarlierKapselProgram) {
  auto program = device_program({allow('c', 1, 3), allow('c', 1, 5)});
  ASSERT_TRUE(program);
  bpf_attr load{};
  load.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE;
  load.insn_cnt = static_cast<std::uint32_t>(program->size());
  load.insns = reinterpret_cast<std::uintptr_t>(program->data());
  load.license = reinterpret_cast<std::uintptr_t>("GPL");
  std::strncpy(load.prog_name, kDeviceProgramName, sizeof load.prog_name - 1);
  UniqueFd fd(static_cast<int>(::syscall(SYS_bpf, BPF_PROG_LOAD, &load, sizeof load)));
  ASSERT_TRUE(fd) << std::strerror(errno);
  UniqueFd cgroup(::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  ASSERT_TRUE(cgroup);
  bpf_attr attach{};
  attach.target_fd = static_cast<std::uint32_t>(cgroup.get());
  attach.attach_bpf_fd = static_cast<std::uint32_t>(fd.get());
  attach.attach_type = BPF_CGROUP_DEVICE;
  attach.attach_flags = BPF_F_ALLOW_MULTI;
  ASSERT_EQ(::syscall(SYS_bpf, BPF_PROG_ATTACH, &attach, sizeof attach), 0) << std::strerror(errno);
  ASSERT_EQ(attached().size(), 2u);
  // An access needs both to allow it: /dev/full passes the first (everything), not the second.
  EXPECT_EQ(run([&] {
              std::string r = expect_open("/dev/zero", O_RDONLY, 0);
              r += expect_open("/dev/full", O_RDONLY, EPERM);
              return r;
            }),
            "");

  auto st = v2_->set_devices("ve", {allow('c', 1, 7)});
  ASSERT_TRUE(st) << st.error().message;
  EXPECT_EQ(attached().size(), 1u);
  EXPECT_EQ(run([&] {
              std::string r = expect_open("/dev/full", O_RDONLY, 0);
              r += expect_open("/dev/zero", O_RDONLY, EPERM);
              return r;
            }),
            "");
}

}  // namespace
}  // namespace kapsel::cgroup
