// Security end to end (issue #5), through the real binary on this host: the default
// capabilities, no_new_privs, seccomp filter and masked paths as a VE's processes see them, and
// the escape test suite: each known breakout attempted from inside a VE, with the error the
// kernel must give. The attempts are made by tests/probe/escape_probe.cpp, a static program
// copied into the VE, which only reports what each system call returned.
#include <fcntl.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "harness.hpp"
#include "security_expectations.hpp"

namespace kapsel::testing {
namespace {

// The probe's "ACTION: RESULT (text)" lines, by action.
std::map<std::string, std::string> probe_results(const std::string& out) {
  std::map<std::string, std::string> r;
  std::istringstream in(out);
  std::string line;
  while (std::getline(in, line)) {
    auto colon = line.find(": ");
    if (colon == std::string::npos) continue;
    auto value = line.substr(colon + 2);
    r[line.substr(0, colon)] = value.substr(0, value.find(' '));
  }
  return r;
}

std::string file_digest(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return std::to_string(std::hash<std::string>{}(s.str())) + ":" + std::to_string(s.str().size());
}

class SecurityTest : public ::testing::Test {
 protected:
  void SetUp() override { KAPSEL_REQUIRE_ROOT(); }

  // Copies the probe into the VE as /probe.
  void install_probe(const std::string& ve) {
#ifndef KAPSEL_ESCAPE_PROBE
    GTEST_SKIP() << "the escape probe is not built in this configuration (sanitizers)";
#else
    std::ifstream in(KAPSEL_ESCAPE_PROBE, std::ios::binary);
    std::ostringstream bytes;
    bytes << in.rdbuf();
    ASSERT_FALSE(bytes.str().empty()) << KAPSEL_ESCAPE_PROBE;
    auto r = k.sh(ve, "cat > /probe && chmod 755 /probe", {.input = bytes.str()});
    ASSERT_EQ(r.exit_code, 0) << r;
#endif
  }

  // Runs the probe's ACTION in the VE and returns its verdict ("ok", "EPERM", ...) for `key`.
  std::map<std::string, std::string> probe(const std::string& ve,
                                           const std::vector<std::string>& args) {
    std::vector<std::string> cmd = {"exec", ve, "--", "/probe"};
    cmd.insert(cmd.end(), args.begin(), args.end());
    auto r = k.run(cmd);
    EXPECT_EQ(r.exit_code, 0) << r;
    return probe_results(r.out);
  }

  // A directory of the test's own beside the store, for profiles and templates.
  std::string scratch() const {
    return std::filesystem::path(k.root()).parent_path().string();
  }

  Kapsel k;
};

TEST_F(SecurityTest, DefaultCapabilitiesNoNewPrivsAndSeccompHoldForInitAndExec) {
  ASSERT_TRUE(k.create_and_start("caps"));
  for (const std::string pid : {"1", "self"}) {
    auto r = k.sh("caps", "cat /proc/" + pid + "/status");
    ASSERT_EQ(r.exit_code, 0) << r;
    auto f = status_fields(r.out);
    SCOPED_TRACE("/proc/" + pid + "/status");
    EXPECT_EQ(hex(f["CapEff"]), kDefaultCaps) << f["CapEff"];
    EXPECT_EQ(hex(f["CapPrm"]), kDefaultCaps) << f["CapPrm"];
    EXPECT_EQ(hex(f["CapBnd"]), kDefaultCaps) << f["CapBnd"];
    EXPECT_EQ(hex(f["CapInh"]), 0u);
    EXPECT_EQ(hex(f["CapAmb"]), 0u);
    EXPECT_EQ(f["NoNewPrivs"], "1");
    EXPECT_EQ(f["Seccomp"], "2");  // filter mode
    // One filter: the default profile's program also sends sysinfo(2) and
    // sched_getaffinity(2) to the monitor, which answers them with the VE's figures
    // (ResourcesTest.VeSeesItsOwnMemoryCpusAndUptime).
    EXPECT_EQ(f["Seccomp_filters"], "1");
  }
  auto status = k.run({"status", "caps"});
  EXPECT_NE(status.out.find("capabilities: default"), std::string::npos) << status;
  EXPECT_NE(status.out.find("seccomp:      default"), std::string::npos) << status;
}

TEST_F(SecurityTest, CapAddAndCapDropChangeTheSet) {
  ASSERT_TRUE(k.create_and_start("capset", {"--cap-add", "NET_ADMIN", "--cap-add", "sys_time",
                                            "--cap-drop", "NET_RAW,MKNOD"}));
  auto r = k.sh("capset", "cat /proc/self/status");
  auto f = status_fields(r.out);
  std::uint64_t want = (kDefaultCaps | bit(12) /*NET_ADMIN*/ | bit(25) /*SYS_TIME*/) &
                       ~(bit(13) /*NET_RAW*/ | bit(27) /*MKNOD*/);
  EXPECT_EQ(hex(f["CapEff"]), want) << f["CapEff"];
  EXPECT_EQ(hex(f["CapBnd"]), want) << f["CapBnd"];
  // With NET_ADMIN the VE may configure its own network namespace...
  auto up = k.sh("capset", "ip link set lo mtu 1500 && echo done");
  EXPECT_NE(up.out.find("done"), std::string::npos) << up;
  // ...and without MKNOD it may not make device nodes.
  auto mk = k.sh("capset", "mknod /tmp/n c 1 3");
  EXPECT_NE(mk.exit_code, 0) << mk;
  auto status = k.run({"status", "capset"});
  EXPECT_NE(status.out.find("CAP_NET_ADMIN"), std::string::npos) << status;
  EXPECT_EQ(status.out.find("CAP_NET_RAW"), std::string::npos) << status;
}

TEST_F(SecurityTest, MaskedAndReadOnlyPathsHideTheHostsKernelFiles) {
  ASSERT_TRUE(k.create_and_start("masks"));
  auto host_core_pattern = read_text("/proc/sys/kernel/core_pattern");
  // Files read as empty (/dev/null over them), directories as empty.
  for (const std::string f : {"/proc/keys", "/proc/timer_list", "/proc/interrupts"}) {
    auto r = k.sh("masks", "test ! -e " + f + " || wc -c < " + f);
    EXPECT_EQ(r.exit_code, 0) << r;
    EXPECT_TRUE(r.out.empty() || r.out == "0\n") << f << ": " << r;
  }
  for (const std::string d : {"/proc/acpi", "/sys/firmware"}) {
    auto r = k.sh("masks", "test ! -e " + d + " || ls -A " + d + " | wc -l");
    EXPECT_TRUE(r.out.empty() || r.out == "0\n") << d << ": " << r;
  }
  auto core = k.sh("masks", "echo '|/tmp/evil' > /proc/sys/kernel/core_pattern");
  EXPECT_NE(core.exit_code, 0);
  EXPECT_NE(core.err.find("Read-only file system"), std::string::npos) << core;
  EXPECT_EQ(read_text("/proc/sys/kernel/core_pattern"), host_core_pattern);
  auto sysfs = k.sh("masks", "echo never > /sys/kernel/mm/transparent_hugepage/enabled");
  EXPECT_NE(sysfs.err.find("Read-only file system"), std::string::npos) << sysfs;
  auto mountinfo = k.sh("masks", "cat /proc/self/mountinfo").out;
  EXPECT_NE(mountinfo.find(" /proc/sys ro,"), std::string::npos) << mountinfo;
  EXPECT_NE(mountinfo.find(" /proc/keys "), std::string::npos) << mountinfo;
}

TEST_F(SecurityTest, EscapeAttemptsFailWithTheExpectedErrors) {
  ASSERT_TRUE(k.create_and_start("escape"));
  install_probe("escape");
  if (HasFatalFailure() || IsSkipped()) return;
  struct stat root {};
  ASSERT_EQ(::stat("/", &root), 0);
  std::string disk = std::to_string(major(root.st_dev)) + ":" + std::to_string(minor(root.st_dev));
  std::string host_pid = std::to_string(::getpid());
  const std::map<std::string, std::vector<std::string>> expected_eperm = {
      {"kexec_load", {"kexec_load"}},
      {"init_module", {"init_module"}},
      {"finit_module", {"finit_module"}},
      {"bpf", {"bpf"}},
      {"perf_event_open", {"perf_event_open"}},
      {"keyctl", {"keyctl"}},
      {"add_key", {"add_key"}},
      {"open_by_handle_at", {"open_by_handle_at"}},
      {"mount_proc", {"mount_proc"}},
      {"mount_dev", {"mount_dev", "/dev/vda"}},
      {"mount_cgroup", {"mount_cgroup"}},
      {"clock_settime", {"clock_settime"}},
      {"settimeofday", {"settimeofday"}},
      {"swapon", {"swapon"}},
      {"userfaultfd", {"userfaultfd"}},
      {"unshare_user", {"unshare_user"}},
      {"unshare_mount", {"unshare_mount"}},
      {"setns", {"setns", "/proc/1/ns/mnt"}},
  };
  for (const auto& [key, args] : expected_eperm) {
    auto r = probe("escape", args);
    EXPECT_EQ(r[key], "EPERM") << key;
  }
  // The host's processes do not exist in the VE: neither to trace, nor their namespaces.
  EXPECT_EQ(probe("escape", {"ptrace", host_pid})["ptrace"], "ESRCH");
  EXPECT_EQ(probe("escape", {"setns", "/proc/" + host_pid + "/ns/mnt"})["setns_open"], "ENOENT");
  // A node of the host's disk can be made (CAP_MKNOD), but the device cgroup refuses to open it.
  auto disk_read = probe("escape", {"mknod_read", disk});
  EXPECT_EQ(disk_read["mknod"], "ok");
  EXPECT_EQ(disk_read["open_disk"], "EPERM");
  // /proc/sysrq-trigger is read-only where the kernel has it; /proc/kcore is masked or absent.
  auto sysrq = probe("escape", {"write", "/proc/sysrq-trigger"});
  EXPECT_TRUE(sysrq["write_open"] == "EROFS" || sysrq["write_open"] == "ENOENT")
      << sysrq["write_open"];
  auto kcore = probe("escape", {"read", "/proc/kcore"});
  EXPECT_TRUE(kcore["read"] == "empty" || kcore["read_open"] == "ENOENT") << kcore["read"];
  EXPECT_EQ(probe("escape", {"write", "/sys/kernel/mm/transparent_hugepage/enabled"})["write_open"],
            "EROFS");
  // No descriptor or directory of kapsel's reaches a command it starts.
  auto fds = k.run({"exec", "escape", "--", "/probe", "fds"}, {.input = ""});
  ASSERT_EQ(fds.exit_code, 0) << fds;
  std::istringstream lines(fds.out);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.rfind("fd ", 0) == 0) {
      int fd = std::stoi(line.substr(3));
      EXPECT_LE(fd, 2) << "a descriptor reached the VE: " << line;
    }
  }
  EXPECT_NE(fds.out.find("cwd: /\n"), std::string::npos) << fds;
}

TEST_F(SecurityTest, RebootInsideRebootsTheVeNotTheHost) {
  ASSERT_TRUE(k.create_and_start("boot"));
  auto boot_id = read_text("/proc/sys/kernel/random/boot_id");
  auto before = k.status("boot")["init_pid"];
  (void)k.sh("boot", "reboot -f");
  EXPECT_TRUE(eventually(
      [&] {
        auto s = k.status("boot");
        return s["state"] == "running" && s.contains("init_pid") && s["init_pid"] != before;
      },
      10000))
      << k.status("boot").dump();
  EXPECT_EQ(read_text("/proc/sys/kernel/random/boot_id"), boot_id);
}

TEST_F(SecurityTest, DevicesAreTheMinimalSetPlusWhatDeviceAdds) {
  std::vector<std::string> extra;
  bool fuse = ::access("/dev/fuse", F_OK) == 0;
  if (fuse) extra = {"--device", "/dev/fuse"};
  ASSERT_TRUE(k.create_and_start("devs", extra));
  auto ls = k.sh("devs", "ls /dev | tr '\\n' ' '");
  std::string want = "console fd full ";
  if (fuse) want += "fuse ";
  want += "mqueue null ptmx pts random shm stderr stdin stdout tty urandom zero ";
  EXPECT_EQ(ls.out, want) << ls;
  if (fuse) {
    auto open = k.sh("devs", "exec 3<>/dev/fuse && echo opened");
    EXPECT_NE(open.out.find("opened"), std::string::npos) << open;
  }
  // The v1 devices controller holds the VE to exactly that list.
  for (const auto& dir : k.cgroup_dirs("devs")) {
    if (dir.find("/sys/fs/cgroup/devices/") != 0) continue;
    auto list = read_text(dir + "/devices.list");
    EXPECT_EQ(list.find("a *:* rwm"), std::string::npos) << list;
    EXPECT_NE(list.find("c 1:3 rwm"), std::string::npos) << list;
    if (fuse) {
      EXPECT_NE(list.find("c 10:229 rwm"), std::string::npos) << list;
    }
  }
}

TEST_F(SecurityTest, SeccompUnconfinedAndAnOciProfileFile) {
  ASSERT_TRUE(k.create_and_start("loose", {"--seccomp", "unconfined"}));
  auto f = status_fields(k.sh("loose", "cat /proc/self/status").out);
  EXPECT_EQ(f["Seccomp_filters"], "1");  // only the sysinfo(2) one
  EXPECT_EQ(f["NoNewPrivs"], "1");

  std::string profile = scratch() + "/deny-mkdir.json";
  std::ofstream(profile) << R"({"defaultAction": "SCMP_ACT_ALLOW",
    "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]})";
  ASSERT_TRUE(k.create_and_start("custom", {"--seccomp", profile}));
  auto mk = k.sh("custom", "mkdir /tmp/x");
  EXPECT_NE(mk.exit_code, 0);
  EXPECT_NE(mk.err.find("Operation not permitted"), std::string::npos) << mk;
  EXPECT_EQ(k.sh("custom", "touch /tmp/y && echo ok").out, "ok\n");
}

TEST_F(SecurityTest, BadSecuritySettingsAreRefusedAndCreateNothing) {
  std::string bad_json = scratch() + "/bad.json";
  std::ofstream(bad_json) << "{ not json";
  struct Case {
    std::vector<std::string> args;
    std::string says;
  };
  const std::vector<Case> cases = {
      {{"--cap-add", "FLY"}, "unknown capability 'FLY'"},
      {{"--cap-drop", "CAP_NOPE"}, "unknown capability"},
      {{"--seccomp", "/nonexistent/profile.json"}, "/nonexistent/profile.json"},
      {{"--seccomp", bad_json}, bad_json},
      {{"--device", "/etc/passwd"}, "not a device node"},
      {{"--device", "/dev/nonexistent"}, "/dev/nonexistent"},
  };
  for (const auto& c : cases) {
    std::vector<std::string> args = {"create", "bad"};
    args.insert(args.end(), c.args.begin(), c.args.end());
    auto r = k.run(args);
    EXPECT_EQ(r.exit_code, 2) << r;
    EXPECT_NE(r.err.find(c.says), std::string::npos) << r;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << "one line: " << r;
    EXPECT_TRUE(k.list().empty()) << k.list().dump();
  }
}

// Templates with a symlink where kapsel mounts or makes device nodes: what the VE's author put
// there must not lead kapsel to a host path.
TEST_F(SecurityTest, SymlinksPlantedInTheTemplateAreRefusedOrNeutralised) {
  namespace sfs = std::filesystem;
  ASSERT_EQ(k.run({"create", "base"}).exit_code, 0);
  std::string rootfs;
  for (const auto& t : nlohmann::json::parse(k.run({"template", "list", "--json"}).out))
    if (t["id"] == "busybox") rootfs = t["rootfs"];
  ASSERT_FALSE(rootfs.empty());
  std::string base = scratch() + "/evil";
  std::string host = scratch() + "/host-files";
  sfs::create_directories(host + "/dir");
  std::ofstream(host + "/null") << "host null";
  std::ofstream(host + "/console") << "host console";
  auto host_state = [&] {
    return read_text(host + "/null") + "|" + read_text(host + "/console") + "|" +
           std::to_string(sfs::is_empty(host + "/dir"));
  };
  const auto before = host_state();
  auto make_template = [&](const std::string& name,
                           const std::function<void(const std::string&)>& plant) {
    std::string dir = base + "-" + name;
    sfs::copy(rootfs, dir, sfs::copy_options::recursive | sfs::copy_options::copy_symlinks);
    plant(dir);
    return dir;
  };

  // /dev/null and /dev/console as symlinks to host files: kapsel's own /dev covers them.
  auto devdir = make_template("dev-links", [&](const std::string& d) {
    sfs::create_directories(d + "/dev");
    sfs::create_symlink(host + "/null", d + "/dev/null");
    sfs::create_symlink(host + "/console", d + "/dev/console");
  });
  ASSERT_TRUE(k.create_and_start("devlinks", {"--template", "dir:" + devdir}));
  auto null =
      k.sh("devlinks", "stat -c '%F %t:%T' /dev/null; echo x > /dev/null; echo y > /dev/console");
  EXPECT_NE(null.out.find("character special file 1:3"), std::string::npos) << null;
  EXPECT_EQ(k.run({"stop", "devlinks"}).exit_code, 0);

  // /proc, /sys or /dev as a symlink out of the root: start refuses, and leaves nothing.
  for (const std::string which : {"proc", "sys", "dev"}) {
    auto dir = make_template(which + "-link", [&](const std::string& d) {
      sfs::remove_all(d + "/" + which);
      sfs::create_symlink(host + "/dir", d + "/" + which);
    });
    std::string ve = which + "link";
    ASSERT_EQ(k.run({"create", ve, "--template", "dir:" + dir}).exit_code, 0);
    auto s = k.run({"start", ve});
    EXPECT_EQ(s.exit_code, 1) << s;
    EXPECT_NE(s.err.find("/" + which + " in the VE's root"), std::string::npos) << s;
    EXPECT_EQ(k.status(ve)["state"], "stopped");
    EXPECT_TRUE(k.cgroup_dirs(ve).empty());
  }
  EXPECT_EQ(host_state(), before);
  EXPECT_TRUE(mounts_mentioning(host).empty());
}

// CVE-2019-5736: a process in the VE opens /proc/<pid>/exe of the kapsel process that `exec`
// starts in the VE, and writes the kapsel binary through it once kapsel has exec'd the command.
// The window is held open here: the test traces `kapsel exec` and keeps its child stopped,
// inside the VE's pid namespace and still kapsel's binary, while the VE's root tries.
TEST_F(SecurityTest, AnExecdKapselCannotBeOverwrittenFromInside) {
  ASSERT_TRUE(k.create_and_start("cve"));
  const std::string binary = KAPSEL_BINARY;
  const auto before = file_digest(binary);
  auto env = k.env();
  pid_t cli = ::fork();
  ASSERT_GE(cli, 0);
  if (cli == 0) {
    ::ptrace(PTRACE_TRACEME, 0, nullptr, nullptr);
    exec_kapsel({"exec", "cve", "--", "true"}, env);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(cli, &status, 0), cli);  // stopped at its execve
  ASSERT_TRUE(WIFSTOPPED(status));
  ASSERT_EQ(::ptrace(PTRACE_SETOPTIONS, cli, nullptr, PTRACE_O_TRACEVFORK | PTRACE_O_EXITKILL), 0);
  ASSERT_EQ(::ptrace(PTRACE_CONT, cli, nullptr, nullptr), 0);
  pid_t child = 0;
  while (child == 0) {
    ASSERT_EQ(::waitpid(cli, &status, 0), cli);
    ASSERT_TRUE(WIFSTOPPED(status)) << "kapsel exec ended before it forked: " << status;
    if (status >> 8 == (SIGTRAP | (PTRACE_EVENT_VFORK << 8))) {
      unsigned long msg = 0;
      ASSERT_EQ(::ptrace(PTRACE_GETEVENTMSG, cli, nullptr, &msg), 0);
      child = static_cast<pid_t>(msg);
    } else {
      int sig = WSTOPSIG(status) == SIGTRAP ? 0 : WSTOPSIG(status);
      ASSERT_EQ(::ptrace(PTRACE_CONT, cli, nullptr, sig), 0);
    }
  }
  ASSERT_EQ(::waitpid(child, &status, __WALL), child);  // its first stop, before it runs
  // Its pid as the VE sees it: the last of NSpid.
  auto nspid = status_fields(read_text("/proc/" + std::to_string(child) + "/status"))["NSpid"];
  std::string vpid = nspid.substr(nspid.find_last_of(" \t") + 1);
  ASSERT_NE(vpid, std::to_string(child)) << "the child is not in the VE's pid namespace";
  auto attack =
      k.sh("cve", "ls -l /proc/" + vpid + "/exe; echo pwned >> /proc/" + vpid +
                      "/exe && echo WROTE; cat /proc/" + vpid + "/maps > /dev/null && echo READ");
  EXPECT_EQ(attack.out.find("WROTE"), std::string::npos) << attack;
  EXPECT_EQ(attack.out.find("READ"), std::string::npos) << attack;
  EXPECT_NE(attack.err.find("Permission denied"), std::string::npos) << attack;
  // Let both go: the command runs as usual.
  ASSERT_EQ(::ptrace(PTRACE_DETACH, child, nullptr, nullptr), 0);
  ASSERT_EQ(::ptrace(PTRACE_DETACH, cli, nullptr, nullptr), 0);
  ASSERT_EQ(::waitpid(cli, &status, 0), cli);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  EXPECT_EQ(file_digest(binary), before);
}

}  // namespace
}  // namespace kapsel::testing
