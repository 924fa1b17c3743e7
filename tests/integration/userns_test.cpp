// VEs with a user namespace (--userns, issue #5 item 2), through the real binary on this host:
// root in the VE is an unprivileged range of host ids, checked from the host; the VE's files look
// owned by root inside; files it writes land in its private area owned by the mapped ids; VEs
// get disjoint ranges, an explicit overlapping range is refused, destroy frees the range; and
// the default capabilities, seccomp filter and masks hold as in any VE.
#include <pwd.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdlib>
#include <sstream>

#include "harness.hpp"
#include "security_expectations.hpp"

namespace kapsel::testing {
namespace {

// Where kapsel starts handing out ranges (security/userns.hpp).
constexpr std::uint64_t kRangeBase = 100'000'000;

class UsernsTest : public ::testing::Test {
 protected:
  void SetUp() override { KAPSEL_REQUIRE_ROOT(); }

  // The VE's mapping as `status --json` reports it: {host_uid, host_gid, size}.
  nlohmann::json mapping(const std::string& ve) const {
    return k.status(ve)["security"].value("userns", nlohmann::json());
  }

  Kapsel k;
};

TEST_F(UsernsTest, RootInsideIsAnUnprivilegedIdOnTheHost) {
  ASSERT_TRUE(k.create_and_start("u", {"--userns"}));
  auto map = mapping("u");
  ASSERT_TRUE(map.is_object()) << k.status("u").dump();
  const auto host_uid = map["host_uid"].get<std::uint64_t>();
  EXPECT_GE(host_uid, kRangeBase);
  EXPECT_EQ(map["size"], 65536);
  EXPECT_EQ(k.sh("u", "id -u; id -g").out, "0\n0\n");
  EXPECT_EQ(k.sh("u", "cat /proc/self/uid_map").out,
            "         0  " + std::to_string(host_uid) + "      65536\n");
  // From the host: init and what exec starts run as the mapped ids, not as root.
  ASSERT_EQ(k.sh("u", "sleep 60 >/dev/null 2>&1 &").exit_code, 0);
  int init = k.status("u")["init_pid"].get<int>();
  auto in_ve = processes_in_pid_namespace(pid_namespace_inode(init));
  EXPECT_GE(in_ve.size(), 2u);
  const std::string uid = std::to_string(host_uid),
                    gid = std::to_string(map["host_gid"].get<int>());
  for (pid_t pid : in_ve) {
    auto f = status_fields(read_text("/proc/" + std::to_string(pid) + "/status"));
    EXPECT_EQ(f["Uid"], uid + "\t" + uid + "\t" + uid + "\t" + uid) << "pid " << pid;
    EXPECT_EQ(f["Gid"], gid + "\t" + gid + "\t" + gid + "\t" + gid) << "pid " << pid;
  }
  auto status = k.run({"status", "u"});
  EXPECT_NE(status.out.find("userns:       uid 0-65535 -> " + std::to_string(host_uid)),
            std::string::npos)
      << status;
}

TEST_F(UsernsTest, FilesLookOwnedByRootInsideAndNewOnesLandAsTheMappedIds) {
  ASSERT_TRUE(k.create_and_start("files", {"--userns"}));
  const auto host_uid = mapping("files")["host_uid"].get<std::uint64_t>();
  EXPECT_EQ(k.sh("files", "stat -c %u:%g /bin/busybox /etc/hostname /etc/passwd").out,
            "0:0\n0:0\n0:0\n");
  // Every entry of / is root's (none is the overflow id 65534 of an unmapped owner), except the
  // roots of /proc and /sys: the kernel gives those to the host's root, which the VE does not
  // map, in every user namespace (as in any rootless container).
  auto ls = k.sh("files",
                 "ls -ln / | tail -n +2 | grep -v -e ' proc$' -e ' sys$' | "
                 "awk '{print $3\":\"$4}' | sort -u");
  EXPECT_EQ(ls.out, "0:0\n") << ls;
  // Made inside, as root and as another user: on disk in the private area as the mapped ids.
  ASSERT_EQ(k.sh("files",
                 "echo x > /root-made && mkdir /home/u && chown 1000:1000 /home/u && "
                 "echo y > /etc/hostname")
                .exit_code,
            0);
  const std::string upper = k.root() + "/ves/files/private/upper";
  struct stat st {};
  ASSERT_EQ(::stat((upper + "/root-made").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, host_uid);
  EXPECT_EQ(st.st_gid, mapping("files")["host_gid"].get<std::uint64_t>());
  ASSERT_EQ(::stat((upper + "/home/u").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, host_uid + 1000);
  // A template file changed inside is copied up as the mapped root; the template itself stays
  // host root's.
  ASSERT_EQ(::stat((upper + "/etc/hostname").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, host_uid);
  EXPECT_EQ(k.sh("files", "stat -c %u /home/u").out, "1000\n");
}

TEST_F(UsernsTest, VesGetDisjointRangesAnOverlapIsRefusedAndDestroyFreesThem) {
  ASSERT_EQ(k.run({"create", "a", "--userns"}).exit_code, 0);
  ASSERT_EQ(k.run({"create", "b", "--userns"}).exit_code, 0);
  auto a = mapping("a"), b = mapping("b");
  const auto a_base = a["host_uid"].get<std::uint64_t>();
  const auto b_base = b["host_uid"].get<std::uint64_t>();
  EXPECT_TRUE(a_base + 65536 <= b_base || b_base + 65536 <= a_base) << a << b;

  // An explicit range inside a's: one line, usage error, nothing created.
  auto clash = k.run({"create", "c", "--userns-range", std::to_string(a_base + 100) + ":1000"});
  EXPECT_EQ(clash.exit_code, 2) << clash;
  EXPECT_NE(clash.err.find("overlaps the ids of VE a"), std::string::npos) << clash;
  EXPECT_EQ(std::count(clash.err.begin(), clash.err.end(), '\n'), 1) << clash;
  EXPECT_EQ(k.list().size(), 2u) << k.list().dump();
  struct stat st {};
  EXPECT_NE(::stat((k.root() + "/ves/c").c_str(), &st), 0);

  // A free explicit range is taken as given, and runs.
  ASSERT_TRUE(k.create_and_start("d", {"--userns-range", "300000000:65536"}));
  EXPECT_EQ(mapping("d")["host_uid"], 300000000);
  EXPECT_EQ(k.sh("d", "id -u").out, "0\n");

  // a's range is free again once a is destroyed: the next VE gets it.
  ASSERT_EQ(k.run({"destroy", "a"}).exit_code, 0);
  ASSERT_EQ(k.run({"create", "e", "--userns"}).exit_code, 0);
  EXPECT_EQ(mapping("e")["host_uid"].get<std::uint64_t>(), a_base);
  auto table = nlohmann::json::parse(read_text(k.root() + "/userns/ranges.json"));
  EXPECT_FALSE(table.contains("a")) << table;
  EXPECT_TRUE(table.contains("b") && table.contains("d") && table.contains("e")) << table;
}

TEST_F(UsernsTest, DefaultCapabilitiesSeccompAndMasksHold) {
  ASSERT_TRUE(k.create_and_start("sec", {"--userns", "--memory", "256M", "--cpus", "1"}));
  for (const std::string pid : {"1", "self"}) {
    auto f = status_fields(k.sh("sec", "cat /proc/" + pid + "/status").out);
    SCOPED_TRACE("/proc/" + pid + "/status");
    EXPECT_EQ(hex(f["CapEff"]), kDefaultCaps) << f["CapEff"];
    EXPECT_EQ(hex(f["CapBnd"]), kDefaultCaps) << f["CapBnd"];
    EXPECT_EQ(hex(f["CapInh"]), 0u);
    EXPECT_EQ(hex(f["CapAmb"]), 0u);
    EXPECT_EQ(f["NoNewPrivs"], "1");
    EXPECT_EQ(f["Seccomp"], "2");
    EXPECT_EQ(f["Seccomp_filters"], "1");  // the profile, which also virtualises sysinfo(2)
  }
  // Masked and read-only as without a user namespace.
  EXPECT_EQ(k.sh("sec", "wc -c < /proc/keys").out, "0\n");
  auto core = k.sh("sec", "echo '|/tmp/evil' > /proc/sys/kernel/core_pattern");
  EXPECT_NE(core.err.find("Read-only file system"), std::string::npos) << core;
  auto sysfs = k.sh("sec", "echo never > /sys/kernel/mm/transparent_hugepage/enabled");
  EXPECT_NE(sysfs.err.find("Read-only file system"), std::string::npos) << sysfs;
  // Mounting is refused (no SYS_ADMIN, and the filter), though the VE owns its namespaces.
  auto mount = k.sh("sec", "mkdir -p /mnt/p && mount -t proc proc /mnt/p");
  EXPECT_NE(mount.exit_code, 0) << mount;
  // The minimal devices work (binds of the host's nodes), and no others can be made usable.
  EXPECT_EQ(k.sh("sec", "head -c 4 /dev/zero | wc -c; echo x > /dev/null && echo ok").out,
            "4\nok\n");
  auto mknod = k.sh("sec", "mknod /tmp/sda b 8 0 && head -c 1 /tmp/sda");
  EXPECT_NE(mknod.exit_code, 0) << mknod;
  // /proc and /sys are there, and the VE's limits apply and show through the /proc service's
  // files and the monitor's answer to sysinfo(2), as in any VE.
  EXPECT_EQ(k.sh("sec", "test -d /sys/class/net/lo && echo ok").out, "ok\n");
  EXPECT_NE(k.sh("sec", "grep MemTotal /proc/meminfo").out.find(" 262144 kB"), std::string::npos);
  EXPECT_EQ(k.sh("sec", "nproc").out, "1\n");
  EXPECT_NE(k.sh("sec", "free -m | grep Mem:").out.find(" 256 "), std::string::npos);
}

TEST_F(UsernsTest, RunRmWithAUsernsWorksAndLeavesNoRange) {
  auto r = k.run({"run", "--rm", "--userns", "--", "sh", "-c",
                  "id -u; stat -c %u /bin/busybox; echo x > /f; stat -c %u /f"});
  EXPECT_EQ(r.exit_code, 0) << r;
  EXPECT_EQ(r.out, "0\n0\n0\n") << r;
  auto table = nlohmann::json::parse(read_text(k.root() + "/userns/ranges.json"));
  EXPECT_TRUE(table.empty()) << table;
}

// A non-root user of the host runs a busybox VE end to end (issue #5, item 3): kapsel-test, made
// for the test if the host lacks it (with the /etc/subuid and /etc/subgid ranges useradd gives,
// or ones added here) and removed again, with a home of its own in a temporary directory.
class UsernsRootlessTest : public ::testing::Test {
 protected:
  static constexpr const char* kUser = "kapsel-test";

  void SetUp() override {
    KAPSEL_REQUIRE_ROOT();
    if (::getpwnam(kUser) == nullptr) {
      if (std::system((std::string("useradd -M -d /nonexistent -s /usr/sbin/nologin ") + kUser +
                       " >/dev/null 2>&1")
                          .c_str()) != 0)
        GTEST_SKIP() << "cannot make the test user " << kUser << " (useradd failed)";
      made_user_ = true;
    }
    struct passwd* pw = ::getpwnam(kUser);
    ASSERT_NE(pw, nullptr);
    uid_ = pw->pw_uid;
    gid_ = pw->pw_gid;
    // useradd gives new users subordinate ranges where login.defs says so; make sure.
    if (read_text("/etc/subuid").find(std::string(kUser) + ":") == std::string::npos ||
        read_text("/etc/subgid").find(std::string(kUser) + ":") == std::string::npos) {
      ASSERT_EQ(std::system((std::string("usermod --add-subuids 3000000000-3000065535 "
                                         "--add-subgids 3000000000-3000065535 ") +
                             kUser)
                                .c_str()),
                0);
      added_ranges_ = true;
    }
    char tmpl[] = "/tmp/kapsel-rootless.XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    home_ = tmpl;
    ASSERT_EQ(::chown(home_.c_str(), uid_, gid_), 0);
    user_.uid = uid_;
    user_.gid = gid_;
    user_.timeout_seconds = 120;
    // No KAPSEL_ROOT or KAPSEL_RUN_DIR: the defaults for a user are under test.
    user_.env = {"HOME=" + home_, "XDG_RUNTIME_DIR=" + home_ + "/run",
                 "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "TERM=dumb"};
    ASSERT_EQ(::mkdir((home_ + "/run").c_str(), 0700), 0);
    ASSERT_EQ(::chown((home_ + "/run").c_str(), uid_, gid_), 0);
  }

  void TearDown() override {
    if (home_.empty()) return;
    (void)as_user({"destroy", "--force", "r"});
    (void)std::system(("rm -rf '" + home_ + "'").c_str());
    if (added_ranges_)
      (void)std::system((std::string("usermod --del-subuids 3000000000-3000065535 "
                                     "--del-subgids 3000000000-3000065535 ") +
                         kUser)
                            .c_str());
    if (made_user_) (void)std::system((std::string("userdel ") + kUser).c_str());
  }

  RunResult as_user(const std::vector<std::string>& args) { return k.run(args, user_); }

  Kapsel k;  // only for its binary and run(); the user's store is its own
  std::string home_;
  uid_t uid_ = 0;
  gid_t gid_ = 0;
  RunOptions user_;
  bool made_user_ = false;
  bool added_ranges_ = false;
};

TEST_F(UsernsRootlessTest, ANonRootUserRunsABusyboxVeEndToEnd) {
  auto create = as_user({"create", "r"});
  ASSERT_EQ(create.exit_code, 0) << create;
  // The store is the user's, under its XDG data directory, with the template built there.
  const std::string store = home_ + "/.local/share/kapsel";
  struct stat st {};
  ASSERT_EQ(::stat((store + "/ves/r").c_str(), &st), 0) << store;
  EXPECT_EQ(st.st_uid, uid_);

  auto start = as_user({"start", "r"});
  ASSERT_EQ(start.exit_code, 0) << start;
  // One warning: no delegated cgroups, so no limits.
  EXPECT_NE(start.err.find("without cgroups"), std::string::npos) << start;
  EXPECT_EQ(std::count(start.err.begin(), start.err.end(), '\n'), 1) << start;

  // Root inside is the user outside; the rest of the VE's ids are its subordinate range.
  auto id = as_user({"exec", "r", "--", "sh", "-c",
                     "id -u; stat -c %u /bin/busybox; head -1 "
                     "/proc/self/uid_map"});
  ASSERT_EQ(id.exit_code, 0) << id;
  EXPECT_EQ(id.out.substr(0, 4), "0\n0\n") << id;
  EXPECT_NE(id.out.find(" " + std::to_string(uid_) + " "), std::string::npos) << id;
  auto status = as_user({"status", "--json", "r"});
  ASSERT_EQ(status.exit_code, 0) << status;
  int init = nlohmann::json::parse(status.out)["init_pid"].get<int>();
  auto f = status_fields(read_text("/proc/" + std::to_string(init) + "/status"));
  EXPECT_EQ(f["Uid"].substr(0, f["Uid"].find('\t')), std::to_string(uid_));
  // Files the VE writes are the user's on disk.
  ASSERT_EQ(as_user({"exec", "r", "--", "sh", "-c", "echo x > /made"}).exit_code, 0);
  ASSERT_EQ(::stat((store + "/ves/r/private/upper/made").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, uid_);
  // Asking for a limit is an error that says what to do, and creates nothing.
  auto limited = as_user({"create", "r2", "--memory", "256M"});
  EXPECT_NE(limited.exit_code, 0) << limited;
  EXPECT_NE(limited.err.find("run kapsel as root to limit a VE"), std::string::npos) << limited;

  // A file of another of the VE's users: on disk one of the user's subordinate ids, which the
  // user itself may not remove, yet destroy must (from inside a namespace that maps it).
  auto chowned = as_user({"exec", "r", "--", "sh", "-c",
                          "mkdir -p /home/u && echo y > /home/u/f && chown -R 1000:1000 /home/u && "
                          "chmod 700 /home/u"});
  EXPECT_EQ(chowned.exit_code, 0) << chowned;
  auto stop = as_user({"stop", "r"});
  EXPECT_EQ(stop.exit_code, 0) << stop;
  EXPECT_FALSE(process_alive(init));
  auto destroy = as_user({"destroy", "r"});
  EXPECT_EQ(destroy.exit_code, 0) << destroy;
  EXPECT_NE(::stat((store + "/ves/r").c_str(), &st), 0);
  auto list = as_user({"list", "--json"});
  EXPECT_EQ(nlohmann::json::parse(list.out), nlohmann::json::array()) << list;
  // And a throw-away one.
  auto run = as_user({"run", "--rm", "--", "sh", "-c", "id -u; echo x > /f && stat -c %u /f"});
  EXPECT_EQ(run.exit_code, 0) << run;
  EXPECT_EQ(run.out, "0\n0\n") << run;
}

// A user without /etc/subuid and /etc/subgid ranges (nobody, on Debian) still runs a VE: only its
// own ids are mapped, as the VE's root, and start says so.
TEST_F(UsernsRootlessTest, WithoutSubordinateIdsOnlyTheUsersOwnIdsAreMapped) {
  struct passwd* nobody = ::getpwnam("nobody");
  if (!nobody) GTEST_SKIP() << "no user nobody on this host";
  if (read_text("/etc/subuid").find("nobody:") != std::string::npos)
    GTEST_SKIP() << "nobody has subordinate ids on this host";
  ASSERT_EQ(::chown(home_.c_str(), nobody->pw_uid, nobody->pw_gid), 0);
  ASSERT_EQ(::chown((home_ + "/run").c_str(), nobody->pw_uid, nobody->pw_gid), 0);
  user_.uid = nobody->pw_uid;
  user_.gid = nobody->pw_gid;
  ASSERT_EQ(as_user({"create", "r"}).exit_code, 0);
  auto start = as_user({"start", "r"});
  ASSERT_EQ(start.exit_code, 0) << start;
  EXPECT_NE(start.err.find("maps only your own ids"), std::string::npos) << start;
  auto maps = as_user({"exec", "r", "--", "sh", "-c", "id -u; wc -l < /proc/self/uid_map"});
  EXPECT_EQ(maps.out, "0\n1\n") << maps;
  EXPECT_EQ(as_user({"stop", "r"}).exit_code, 0);
  EXPECT_EQ(as_user({"destroy", "r"}).exit_code, 0);
}

}  // namespace
}  // namespace kapsel::testing
