// Capability names and sets, and applying a set for real in forked children (root only: the
// children drop what root has and check what the kernel then allows).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/capability.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <functional>
#include <map>
#include <sstream>

#include "common/fs.hpp"
#include "security/capabilities.hpp"

namespace kapsel::security {
namespace {

CapSet every() {
  int last = last_capability();
  return last >= 63 ? ~CapSet{0} : (CapSet{1} << (last + 1)) - 1;
}

TEST(Capabilities, NamesInEverySpelling) {
  for (const char* name :
       {"NET_ADMIN", "net_admin", "CAP_NET_ADMIN", "cap_net_admin", "Cap_Net_Admin"}) {
    auto cap = capability_from_name(name);
    ASSERT_TRUE(cap) << name << ": " << cap.error().message;
    EXPECT_EQ(*cap, CAP_NET_ADMIN) << name;
  }
  EXPECT_EQ(capability_from_name("chown").value_or(-1), CAP_CHOWN);
  EXPECT_EQ(capability_from_name("SYS_BOOT").value_or(-1), CAP_SYS_BOOT);
  EXPECT_EQ(capability_from_name("CAP_AUDIT_WRITE").value_or(-1), CAP_AUDIT_WRITE);
}

TEST(Capabilities, UnknownNamesAreUsageErrors) {
  auto foo = capability_from_name("FOO");
  ASSERT_FALSE(foo);
  EXPECT_EQ(foo.error().kind, ErrorKind::usage);
  EXPECT_EQ(foo.error().message, "unknown capability 'FOO' (see capabilities(7), e.g. NET_ADMIN)");
  // libcap reads a name only up to the first character that cannot be in one, and takes numbers.
  for (const char* name : {"", "CAP_", "cap_", "NET_ADMIN2", "chown,kill", "CHOWN ", " CHOWN", "12",
                           "0", "CAP_ALL", "CAP_CAP_CHOWN", "net-admin"}) {
    auto cap = capability_from_name(name);
    ASSERT_FALSE(cap) << "'" << name << "' became " << *cap;
    EXPECT_EQ(cap.error().kind, ErrorKind::usage);
    EXPECT_EQ(cap.error().message, "unknown capability '" + std::string(name) +
                                       "' (see capabilities(7), e.g. NET_ADMIN)");
  }
}

TEST(Capabilities, AllIsNotOneCapability) {
  for (const char* name : {"ALL", "all"}) {
    auto cap = capability_from_name(name);
    ASSERT_FALSE(cap);
    EXPECT_EQ(cap.error().kind, ErrorKind::usage);
    EXPECT_NE(cap.error().message.find("'ALL' stands for every capability"), std::string::npos)
        << cap.error().message;
  }
  auto set = capabilities_from_names({"CHOWN", "ALL"});
  EXPECT_FALSE(set);
}

TEST(Capabilities, NamesOfNumbers) {
  EXPECT_EQ(capability_name(CAP_NET_ADMIN), "CAP_NET_ADMIN");
  EXPECT_EQ(capability_name(CAP_CHOWN), "CAP_CHOWN");
  EXPECT_EQ(capability_name(CAP_SYS_BOOT), "CAP_SYS_BOOT");
  // Every capability the kernel knows has a name that reads back to it.
  for (int c = 0; c <= last_capability(); ++c) {
    auto back = capability_from_name(capability_name(c));
    ASSERT_TRUE(back) << capability_name(c) << ": " << back.error().message;
    EXPECT_EQ(*back, c);
  }
}

TEST(Capabilities, LastCapabilityIsTheKernels) {
  auto text = fs::read_file("/proc/sys/kernel/cap_last_cap");
  ASSERT_TRUE(text);
  EXPECT_EQ(last_capability(), std::stoi(*text));
  EXPECT_GE(last_capability(), CAP_AUDIT_READ);  // Linux 3.16
  EXPECT_LT(last_capability(), 64);
}

TEST(Capabilities, DefaultSet) {
  EXPECT_EQ(capability_names(default_capabilities()),
            (std::vector<std::string>{
                "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
                "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_NET_RAW",
                "CAP_SYS_CHROOT", "CAP_SYS_BOOT", "CAP_MKNOD", "CAP_AUDIT_WRITE", "CAP_SETFCAP"}));
  EXPECT_FALSE(default_capabilities() & cap_bit(CAP_SYS_ADMIN));
  EXPECT_FALSE(default_capabilities() & cap_bit(CAP_NET_ADMIN));
}

TEST(Capabilities, NoChangeIsTheDefault) {
  auto caps = resolve_capabilities({}, {});
  ASSERT_TRUE(caps);
  EXPECT_EQ(*caps, default_capabilities());
}

TEST(Capabilities, AddThenDrop) {
  auto caps = resolve_capabilities({"NET_ADMIN", "cap_sys_ptrace"}, {"chown", "CAP_MKNOD"});
  ASSERT_TRUE(caps) << caps.error().message;
  EXPECT_EQ(*caps, (default_capabilities() | cap_bit(CAP_NET_ADMIN) | cap_bit(CAP_SYS_PTRACE)) &
                       ~(cap_bit(CAP_CHOWN) | cap_bit(CAP_MKNOD)));
  // Named in both: dropped, as the drop comes after the add.
  caps = resolve_capabilities({"SYS_ADMIN", "KILL"}, {"sys_admin", "KILL"});
  ASSERT_TRUE(caps);
  EXPECT_EQ(*caps, default_capabilities() & ~cap_bit(CAP_KILL));
  // Adding what the default has, or dropping what it lacks, changes nothing.
  caps = resolve_capabilities({"CHOWN"}, {"NET_ADMIN"});
  ASSERT_TRUE(caps);
  EXPECT_EQ(*caps, default_capabilities());
}

TEST(Capabilities, AllInAdd) {
  auto caps = resolve_capabilities({"ALL"}, {});
  ASSERT_TRUE(caps);
  EXPECT_EQ(*caps, every());
  caps = resolve_capabilities({"all", "NET_ADMIN"}, {"SYS_ADMIN", "sys_module"});
  ASSERT_TRUE(caps);
  EXPECT_EQ(*caps, every() & ~(cap_bit(CAP_SYS_ADMIN) | cap_bit(CAP_SYS_MODULE)));
}

TEST(Capabilities, AllInDrop) {
  auto caps = resolve_capabilities({}, {"ALL"});
  ASSERT_TRUE(caps);
  EXPECT_EQ(*caps, 0u);
  caps = resolve_capabilities({"NET_BIND_SERVICE", "SETUID"}, {"ALL"});
  ASSERT_TRUE(caps);
  EXPECT_EQ(*caps, cap_bit(CAP_NET_BIND_SERVICE) | cap_bit(CAP_SETUID));
  // Docker's answer to the contradiction: ALL in --cap-add wins.
  caps = resolve_capabilities({"ALL"}, {"ALL"});
  ASSERT_TRUE(caps);
  EXPECT_EQ(*caps, every());
}

TEST(Capabilities, TheFirstBadNameIsReported) {
  auto caps = resolve_capabilities({"NET_ADMIN", "FOO", "BAR"}, {"BAZ"});
  ASSERT_FALSE(caps);
  EXPECT_EQ(caps.error().kind, ErrorKind::usage);
  EXPECT_EQ(caps.error().message,
            "--cap-add: unknown capability 'FOO' (see capabilities(7), e.g. NET_ADMIN)");
  caps = resolve_capabilities({"NET_ADMIN"}, {"CHOWN", "BAZ", "QUX"});
  ASSERT_FALSE(caps);
  EXPECT_EQ(caps.error().message,
            "--cap-drop: unknown capability 'BAZ' (see capabilities(7), e.g. NET_ADMIN)");
}

TEST(Capabilities, NamesRoundTrip) {
  for (CapSet set : {CapSet{0}, default_capabilities(), every(),
                     cap_bit(CAP_SYS_ADMIN) | cap_bit(CAP_CHOWN) | cap_bit(last_capability())}) {
    auto names = capability_names(set);
    auto back = capabilities_from_names(names);
    ASSERT_TRUE(back) << back.error().message;
    EXPECT_EQ(*back, set);
  }
  EXPECT_TRUE(capability_names(0).empty());
  EXPECT_EQ(capability_names(cap_bit(CAP_SYS_ADMIN) | cap_bit(CAP_CHOWN)),
            (std::vector<std::string>{"CAP_CHOWN", "CAP_SYS_ADMIN"}));
  auto bad = capabilities_from_names({"CAP_CHOWN", "CAP_NOPE"});
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().message,
            "unknown capability 'CAP_NOPE' (see capabilities(7), e.g. NET_ADMIN)");
}

TEST(Capabilities, PlanKeepsOnlyWhatTheKernelKnows) {
  auto plan = plan_capabilities(~CapSet{0});
  EXPECT_EQ(plan.last_cap, last_capability());
  EXPECT_EQ(plan.keep, every());
  EXPECT_EQ(plan_capabilities(default_capabilities()).keep, default_capabilities());
}

// --- applying, in forked children ----------------------------------------------------------

// The Cap* lines of a /proc/<pid>/status text, by name ("CapEff").
std::map<std::string, CapSet> cap_lines(const std::string& status) {
  std::map<std::string, CapSet> out;
  std::istringstream in(status);
  std::string line;
  while (std::getline(in, line)) {
    if (!line.starts_with("Cap")) continue;
    auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    out[line.substr(0, colon)] = std::stoull(line.substr(colon + 1), nullptr, 16);
  }
  return out;
}

std::string hex(CapSet set) {
  std::ostringstream out;
  out << std::hex << set;
  return out.str();
}

// Runs `body` in a forked child and returns what it reported: "" when all went well, else a
// description of what did not. The child's own output, if `capture` is set, is returned after
// its report (`body` then writes to stdout).
struct ChildResult {
  std::string report;
  std::string output;
  int status = -1;
};
ChildResult in_child(const std::function<std::string()>& body, bool capture = false) {
  int report[2], output[2];
  if (::pipe2(report, O_CLOEXEC) != 0 || ::pipe2(output, O_CLOEXEC) != 0) return {"pipe", "", -1};
  pid_t pid = ::fork();
  if (pid < 0) return {"fork failed", "", -1};
  if (pid == 0) {
    ::close(report[0]);
    ::close(output[0]);
    if (capture && ::dup2(output[1], STDOUT_FILENO) < 0) ::_exit(120);
    std::string r = body();
    if (!r.empty() && ::write(report[1], r.data(), r.size()) < 0) ::_exit(121);
    ::_exit(0);
  }
  ::close(report[1]);
  ::close(output[1]);
  auto drain = [](int fd) {
    std::string text;
    char buf[4096];
    ssize_t n;
    while ((n = ::read(fd, buf, sizeof buf)) > 0) text.append(buf, static_cast<std::size_t>(n));
    ::close(fd);
    return text;
  };
  ChildResult result;
  result.output = drain(output[0]);
  result.report = drain(report[0]);
  ::waitpid(pid, &result.status, 0);
  return result;
}

class CapabilitiesApplied : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root: the children drop capabilities root has";
    auto status = fs::read_file("/proc/self/status");
    ASSERT_TRUE(status);
    // Not necessarily all of them (a sandbox may hold some back): the default set, and
    // CAP_SETPCAP to drop from the bounding set.
    CapSet eff = cap_lines(*status)["CapEff"];
    CapSet need = default_capabilities() | cap_bit(CAP_SETPCAP);
    if ((eff & need) != need)
      GTEST_SKIP() << "needs the default capabilities to start from; this process has " << hex(eff);
  }
};

TEST_F(CapabilitiesApplied, TheKernelShowsExactlyTheSet) {
  char tmpl[] = "/tmp/kapsel-caps-test.XXXXXX";
  int fd = ::mkstemp(tmpl);
  ASSERT_GE(fd, 0);
  ::close(fd);
  auto result = in_child([&]() -> std::string {
    // Something in the inheritable and ambient sets, so that clearing them is seen.
    __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
    __user_cap_data_struct data[2] = {};
    if (::syscall(SYS_capget, &header, data) != 0) return "capget failed";
    data[0].inheritable = 1u << CAP_CHOWN;
    if (::syscall(SYS_capset, &header, data) != 0) return "capset failed";
    if (::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_CHOWN, 0, 0) != 0)
      return std::string("raising an ambient capability: ") + std::strerror(errno);
    auto before = fs::read_file("/proc/self/status");
    if (!before || cap_lines(*before)["CapAmb"] == 0) return "no ambient capability to clear";

    int err = apply_capabilities(plan_capabilities(default_capabilities()));
    if (err != 0) return std::string("apply_capabilities: ") + std::strerror(err);
    auto status = fs::read_file("/proc/self/status");
    if (!status) return "reading /proc/self/status";
    auto caps = cap_lines(*status);
    std::string wrong;
    for (const char* set : {"CapEff", "CapPrm", "CapBnd"}) {
      if (caps[set] != default_capabilities())
        wrong += std::string(set) + " " + hex(caps[set]) + "; ";
    }
    for (const char* set : {"CapInh", "CapAmb"}) {
      if (caps[set] != 0) wrong += std::string(set) + " " + hex(caps[set]) + "; ";
    }
    if (!wrong.empty()) return wrong + "want " + hex(default_capabilities());
    // CAP_SYS_ADMIN is gone: no new namespaces.
    if (::unshare(CLONE_NEWUTS) == 0) return "unshare(CLONE_NEWUTS) worked without CAP_SYS_ADMIN";
    if (errno != EPERM) return std::string("unshare: ") + std::strerror(errno) + ", not EPERM";
    // CAP_CHOWN is kept.
    if (::chown(tmpl, 1234, 1234) != 0) return std::string("chown: ") + std::strerror(errno);
    return {};
  });
  EXPECT_EQ(result.report, "");
  EXPECT_EQ(result.status, 0);
  struct stat st {};
  ASSERT_EQ(::stat(tmpl, &st), 0);
  EXPECT_EQ(st.st_uid, 1234u);
  ::unlink(tmpl);
}

// Root's permitted set after execve is its bounding set, so only the bounding set's drop makes
// a drop last: a child that keeps nothing and execs a shell as root has nothing in the shell.
TEST_F(CapabilitiesApplied, DroppingEverythingLastsAcrossExecForRoot) {
  auto exec_grep = [](CapSet keep) {
    return in_child(
        [keep]() -> std::string {
          int err = apply_capabilities(plan_capabilities(keep));
          if (err != 0) return std::string("apply_capabilities: ") + std::strerror(err);
          ::execl("/bin/sh", "sh", "-c", "grep Cap /proc/self/status", nullptr);
          return std::string("exec /bin/sh: ") + std::strerror(errno);
        },
        true);
  };
  auto none = exec_grep(0);
  ASSERT_EQ(none.report, "");
  ASSERT_TRUE(WIFEXITED(none.status) && WEXITSTATUS(none.status) == 0) << none.output;
  auto caps = cap_lines(none.output);
  ASSERT_EQ(caps.size(), 5u) << none.output;
  for (const auto& [set, value] : caps) EXPECT_EQ(value, 0u) << set << "\n" << none.output;

  auto some = exec_grep(default_capabilities());
  ASSERT_EQ(some.report, "");
  caps = cap_lines(some.output);
  EXPECT_EQ(caps["CapEff"], default_capabilities()) << some.output;
  EXPECT_EQ(caps["CapPrm"], default_capabilities()) << some.output;
  EXPECT_EQ(caps["CapBnd"], default_capabilities()) << some.output;
  EXPECT_EQ(caps["CapInh"], 0u) << some.output;
}

}  // namespace
}  // namespace kapsel::security
