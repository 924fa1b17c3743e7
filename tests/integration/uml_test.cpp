// The UML driver end to end, through the real binary and real User-mode Linux guests (issue 8):
// exec through the guest agent, persistence in the per-VE COW file over the shared template
// image, clean and forced stops that leave nothing behind, status through the mconsole, and
// UML VEs beside a container VE. Each guest boot costs seconds, so the tests share boots.
#include <signal.h>
#include <sys/stat.h>
#include <sys/utsname.h>

#include <dirent.h>
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "harness.hpp"

namespace kapsel::testing {
namespace {

constexpr const char* kUml = "/usr/bin/linux.uml";

class UmlTest : public ::testing::Test {
 protected:
  void SetUp() override {
    KAPSEL_REQUIRE_ROOT();
    if (::access(kUml, X_OK) != 0)
      GTEST_SKIP() << kUml << " is missing (install the Debian package user-mode-linux)";
  }

  // Guest boots take seconds, more on a loaded machine.
  RunResult run(const std::vector<std::string>& args, const std::string& input = {}) {
    RunOptions o;
    o.timeout_seconds = 180;
    o.input = input;
    return k.run(args, o);
  }

  ::testing::AssertionResult create_and_start(const std::string& name,
                                              const std::vector<std::string>& extra = {}) {
    std::vector<std::string> args = {"create", name, "--kind", "uml"};
    args.insert(args.end(), extra.begin(), extra.end());
    auto c = run(args);
    if (c.exit_code != 0) return ::testing::AssertionFailure() << "create: " << c;
    auto s = run({"start", name});
    if (s.exit_code != 0) return ::testing::AssertionFailure() << "start: " << s;
    return ::testing::AssertionSuccess();
  }

  RunResult sh(const std::string& name, const std::string& script, const std::string& input = {}) {
    return run({"exec", name, "--", "sh", "-c", script}, input);
  }

  // Host processes of linux.uml that belong to VE `name` (its uml_dir is in its run dir).
  std::vector<pid_t> uml_processes(const std::string& name) {
    std::vector<pid_t> out;
    std::string needle = "uml_dir=" + k.run_dir() + "/ves/" + name;
    DIR* d = ::opendir("/proc");
    while (auto* e = d ? ::readdir(d) : nullptr) {
      pid_t pid = std::atoi(e->d_name);
      if (pid <= 0) continue;
      std::string cmdline = read_text("/proc/" + std::to_string(pid) + "/cmdline");
      std::replace(cmdline.begin(), cmdline.end(), '\0', ' ');
      if (cmdline.find(needle + " ") != std::string::npos) out.push_back(pid);
    }
    if (d) ::closedir(d);
    return out;
  }

  void expect_nothing_left(const std::string& name) {
    EXPECT_TRUE(eventually([&] { return uml_processes(name).empty(); }, 10000))
        << "linux.uml processes of " << name << " remain";
    EXPECT_TRUE(k.cgroup_dirs(name).empty()) << "cgroups of " << name << " remain";
    struct stat st {};
    EXPECT_NE(::stat((k.run_dir() + "/ves/" + name).c_str(), &st), 0) << "run dir remains";
    EXPECT_TRUE(mounts_mentioning(k.run_dir() + "/ves/" + name).empty());
  }

  Kapsel k;
};

TEST_F(UmlTest, ExecPersistenceStopAndCleanup) {
  ASSERT_TRUE(create_and_start("u1", {"--memory", "128M"}));

  // The guest's own kernel answers, not the host's.
  auto r = run({"exec", "u1", "--", "uname", "-r"});
  ASSERT_EQ(r.exit_code, 0) << r;
  struct utsname host {};
  ::uname(&host);
  EXPECT_NE(r.out, std::string(host.release) + "\n") << r;
  EXPECT_EQ(r.out.rfind("6.", 0), 0u) << r;
  EXPECT_EQ(run({"exec", "u1", "--", "hostname"}).out, "u1\n");
  auto status = k.status("u1");
  EXPECT_EQ(status["kind"], "uml");
  ASSERT_TRUE(status.contains("details")) << status.dump();
  EXPECT_NE(status["details"]["kernel"].get<std::string>().find(r.out.substr(0, r.out.size() - 1)),
            std::string::npos)
      << status.dump();
  // mem=128M: the guest sees a little less than that (its kernel's own share).
  auto meminfo = sh("u1", "grep MemTotal /proc/meminfo");
  int kb = 0;
  std::sscanf(meminfo.out.c_str(), "MemTotal: %d kB", &kb);
  EXPECT_GT(kb, 80 * 1024) << meminfo;
  EXPECT_LE(kb, 128 * 1024) << meminfo;

  // Output, error output, stdin and exit codes pass through the agent.
  r = sh("u1", "echo out; echo err >&2; exit 7");
  EXPECT_EQ(r.exit_code, 7) << r;
  EXPECT_EQ(r.out, "out\n");
  EXPECT_EQ(r.err, "err\n");
  r = run({"exec", "u1", "--", "cat"}, std::string("line one\nline two\n"));
  EXPECT_EQ(r.exit_code, 0) << r;
  EXPECT_EQ(r.out, "line one\nline two\n");
  r = run({"exec", "u1", "--", "no-such-command"});
  EXPECT_EQ(r.exit_code, 127) << r;

  // Every host process of the kernel is in the VE's cgroup.
  auto pids = uml_processes("u1");
  ASSERT_FALSE(pids.empty());
  for (pid_t pid : pids) {
    std::string cg = read_text("/proc/" + std::to_string(pid) + "/cgroup");
    EXPECT_NE(cg.find("/" + k.cgroup_parent() + "/u1"), std::string::npos) << pid << ": " << cg;
  }

  // The template image, shared and read-only.
  std::string image = k.root() + "/templates/busybox/uml.ext4";
  struct stat before {};
  ASSERT_EQ(::stat(image.c_str(), &before), 0);
  EXPECT_EQ(before.st_mode & 0777, 0444u);

  ASSERT_EQ(sh("u1", "echo kept > /root/marker && sync").exit_code, 0);
  r = run({"stop", "u1"});
  ASSERT_EQ(r.exit_code, 0) << r;
  expect_nothing_left("u1");
  EXPECT_EQ(k.status("u1")["last_exit"]["reason"], "halted") << k.status("u1").dump();
  EXPECT_NE(read_text(k.root() + "/ves/u1/console.log").find("Linux version"), std::string::npos);

  // Changes survive a restart; a second VE of the template does not see them.
  ASSERT_EQ(run({"start", "u1"}).exit_code, 0);
  r = sh("u1", "cat /root/marker");
  EXPECT_EQ(r.out, "kept\n") << r;

  // The console: Enter activates the guest's console shell, which runs what is typed; Ctrl-]
  // detaches.
  r = run({"console", "u1"}, "\necho typed-at-console > /root/console\n\x1d");
  EXPECT_EQ(r.exit_code, 0) << r;
  EXPECT_TRUE(
      eventually([&] { return sh("u1", "cat /root/console").out == "typed-at-console\n"; }, 20000));

  // Paused, the guest's processes stand still: a counter that ticks every 0.2 s does not move.
  ASSERT_EQ(sh("u1",
               "(i=0; while true; do i=$((i+1)); echo $i > /tmp/n; sleep 0.2; done)"
               " </dev/null >/dev/null 2>&1 &")
                .exit_code,
            0);
  ::usleep(1000000);
  int n0 = std::atoi(sh("u1", "cat /tmp/n").out.c_str());
  r = run({"pause", "u1"});
  ASSERT_EQ(r.exit_code, 0) << r;
  EXPECT_EQ(k.status("u1")["state"], "paused");
  r = run({"exec", "u1", "--", "true"});
  EXPECT_NE(r.exit_code, 0) << "exec into a paused VE must be refused: " << r;
  ::usleep(3000000);  // 15 ticks, were it running
  r = run({"resume", "u1"});
  ASSERT_EQ(r.exit_code, 0) << r;
  int n1 = std::atoi(sh("u1", "cat /tmp/n").out.c_str());
  EXPECT_GT(n0, 0);
  EXPECT_LT(n1 - n0, 8) << "the guest ran while paused: " << n0 << " -> " << n1;
  ::usleep(1000000);
  int n2 = std::atoi(sh("u1", "cat /tmp/n").out.c_str());
  EXPECT_GT(n2, n1) << "the counter does not run again after resume";
  EXPECT_EQ(k.status("u1")["state"], "running");

  ASSERT_TRUE(create_and_start("u2"));
  r = sh("u2", "cat /root/marker");
  EXPECT_NE(r.exit_code, 0) << r;

  // Two UML VEs and a container side by side, each listed with its kind.
  ASSERT_TRUE(k.create_and_start("c1"));
  auto list = k.list();
  std::map<std::string, std::pair<std::string, std::string>> seen;
  for (const auto& ve : list) seen[ve["name"]] = {ve["kind"], ve["state"]};
  EXPECT_EQ(seen["u1"], std::make_pair(std::string("uml"), std::string("running")));
  EXPECT_EQ(seen["u2"], std::make_pair(std::string("uml"), std::string("running")));
  EXPECT_EQ(seen["c1"], std::make_pair(std::string("container"), std::string("running")));
  auto text = run({"list"});
  EXPECT_NE(text.out.find("uml"), std::string::npos) << text;

  // A guest that does not shut down on Ctrl-Alt-Del is halted after the timeout.
  ASSERT_EQ(sh("u2",
               "rm /sbin/poweroff; printf '#!/bin/sh\\nsleep 1000\\n' > /sbin/poweroff;"
               " chmod +x /sbin/poweroff")
                .exit_code,
            0);
  r = run({"stop", "--timeout", "2", "u2"});
  EXPECT_EQ(r.exit_code, 0) << r;
  expect_nothing_left("u2");

  struct stat after {};
  ASSERT_EQ(::stat(image.c_str(), &after), 0);
  EXPECT_EQ(after.st_mtime, before.st_mtime);
  EXPECT_EQ(after.st_size, before.st_size);

  EXPECT_EQ(run({"destroy", "--force", "u1"}).exit_code, 0);
  EXPECT_EQ(run({"destroy", "u2"}).exit_code, 0);
  EXPECT_EQ(run({"destroy", "--force", "c1"}).exit_code, 0);
  expect_nothing_left("u1");
}

TEST_F(UmlTest, WhatUmlVesCannotDoIsRefusedAtCreate) {
  auto r = run({"create", "n1", "--kind", "uml", "--network", "host"});
  EXPECT_EQ(r.exit_code, 2) << r;
  EXPECT_NE(r.err.find("not host"), std::string::npos) << r;
  r = run({"create", "n2", "--kind", "uml", "--userns"});
  EXPECT_EQ(r.exit_code, 2) << r;
  EXPECT_TRUE(k.list().empty()) << k.list().dump();
}

TEST_F(UmlTest, MissingKernelNamesThePackage) {
  auto c = run({"create", "nokernel", "--kind", "uml"});
  ASSERT_EQ(c.exit_code, 0) << c;
  RunOptions o;
  o.env = k.env();
  o.env.push_back("KAPSEL_UML=/nonexistent/linux.uml");
  auto r = k.run({"start", "nokernel"}, o);
  EXPECT_NE(r.exit_code, 0) << r;
  EXPECT_NE(r.err.find("user-mode-linux"), std::string::npos) << r;
  EXPECT_EQ(run({"destroy", "nokernel"}).exit_code, 0);
}

TEST_F(UmlTest, ADiskOfItsOwnHasTheSizeAskedForKeepsItsFilesAndMoreArePlugged) {
  auto small = run({"create", "d0", "--kind", "uml", "--disk", "1M"});
  EXPECT_EQ(small.exit_code, 2) << small;
  EXPECT_NE(small.err.find("too small"), std::string::npos) << small;
  auto container = run({"create", "c0", "--disk", "1G"});
  EXPECT_EQ(container.exit_code, 2) << container;
  EXPECT_NE(container.err.find("--disk is for UML VEs"), std::string::npos) << container;
  EXPECT_TRUE(k.list().empty()) << k.list().dump();

  ASSERT_TRUE(create_and_start("d1", {"--disk", "3G"}));
  EXPECT_EQ(k.status("d1")["disk_bytes"], 3ull << 30);
  // busybox df -m: Filesystem 1M-blocks Used Available Use% Mounted-on.
  auto df = sh("d1", "df -m / | tail -1");
  ASSERT_EQ(df.exit_code, 0) << df;
  std::istringstream fields(df.out);
  std::string device;
  long total_mib = 0;
  fields >> device >> total_mib;
  EXPECT_GT(total_mib, 2800) << df.out;  // ext4 keeps some for itself
  EXPECT_LE(total_mib, 3072) << df.out;
  ASSERT_EQ(sh("d1", "echo kept > /root-file && sync").exit_code, 0);
  ASSERT_EQ(run({"stop", "d1"}).exit_code, 0);
  ASSERT_EQ(run({"start", "d1"}).exit_code, 0);
  EXPECT_EQ(sh("d1", "cat /root-file").out, "kept\n");

  // Hot-plug through the mconsole: a host file becomes the guest's next disk, is refused to go
  // while mounted, and goes once unmounted; what the guest wrote is in the file.
  std::string data = k.root() + "/data.img";
  ASSERT_EQ(std::system(("mke2fs -q -F -t ext4 " + data + " 32M").c_str()), 0);
  auto attached = run({"--json", "disk", "attach", "d1", data});
  ASSERT_EQ(attached.exit_code, 0) << attached;
  EXPECT_EQ(nlohmann::json::parse(attached.out, nullptr, false)["device"], "/dev/ubdb") << attached;
  // ubd's major is 98, 16 minors a disk: made if the guest's /dev is static.
  auto used = sh("d1",
                 "[ -b /dev/ubdb ] || mknod /dev/ubdb b 98 16; mkdir -p /mnt/d && "
                 "mount /dev/ubdb /mnt/d && echo plugged > /mnt/d/f");
  ASSERT_EQ(used.exit_code, 0) << used;
  auto busy = run({"disk", "detach", "d1", "ubdb"});
  EXPECT_EQ(busy.exit_code, 5) << busy;
  EXPECT_NE(busy.err.find("unmount it first"), std::string::npos) << busy;
  ASSERT_EQ(sh("d1", "umount /mnt/d").exit_code, 0);
  auto detached = run({"disk", "detach", "d1", "/dev/ubdb"});
  EXPECT_EQ(detached.exit_code, 0) << detached;
  EXPECT_EQ(run({"disk", "detach", "d1", "ubdb"}).exit_code, 3);
  std::string cmd = "debugfs -R 'cat /f' " + data + " 2>/dev/null";
  std::string content;
  if (FILE* p = ::popen(cmd.c_str(), "r")) {
    char buf[256];
    while (std::fgets(buf, sizeof buf, p)) content += buf;
    ::pclose(p);
  }
  EXPECT_EQ(content, "plugged\n");

  ASSERT_EQ(run({"destroy", "--force", "d1"}).exit_code, 0);
  expect_nothing_left("d1");
  struct stat st {};
  EXPECT_NE(::stat((k.root() + "/ves/d1").c_str(), &st), 0) << "the VE's disk remains";
}

}  // namespace
}  // namespace kapsel::testing
