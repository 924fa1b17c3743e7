// The version-independent half of the cgroup limits: the parsers behind the command-line
// options, merge(), validate(), the JSON form in a VE's config, and the weight conversions.
#include "cgroup/resources.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <nlohmann/json.hpp>

namespace kapsel::cgroup {
namespace {

using json = nlohmann::json;

constexpr std::uint64_t kKiB = 1024, kMiB = kKiB * 1024, kGiB = kMiB * 1024;

// The error's message, for refusals that must be a one-line usage error naming the option.
template <class T>
std::string usage_message(const Result<T>& r) {
  EXPECT_FALSE(r);
  if (r) return {};
  EXPECT_EQ(r.error().kind, ErrorKind::usage) << r.error().message;
  EXPECT_EQ(r.error().message.find('\n'), std::string::npos) << r.error().message;
  return r.error().message;
}

TEST(CgroupResources, ParseSizeAcceptsSuffixesCaseAndMax) {
  EXPECT_EQ(parse_size("--memory", "256M"), 256 * kMiB);
  EXPECT_EQ(parse_size("--memory", "1g"), kGiB);
  EXPECT_EQ(parse_size("--memory", "512k"), 512 * kKiB);
  EXPECT_EQ(parse_size("--memory", "512KB"), 512 * kKiB);
  EXPECT_EQ(parse_size("--memory", "2T"), 2 * kGiB * 1024);
  EXPECT_EQ(parse_size("--memory", "1.5G"), kGiB + kGiB / 2);
  EXPECT_EQ(parse_size("--memory", "4096"), 4096u);
  EXPECT_EQ(parse_size("--memory", "4096b"), 4096u);
  EXPECT_EQ(parse_size("--memory", "max"), kUnlimited);
  EXPECT_EQ(parse_size("--memory", "MAX"), kUnlimited);
  EXPECT_EQ(parse_size("--memory", "unlimited"), kUnlimited);
  EXPECT_EQ(parse_size("--memory", "-1"), kUnlimited);
}

TEST(CgroupResources, ParseSizeRefusesWithTheOptionAndTheForm) {
  EXPECT_EQ(usage_message(parse_size("--memory", "12X")),
            "--memory: \"12X\" is not a size; use a number with an optional K, M, G or T suffix "
            "(e.g. 256M) or \"max\"");
  for (const char* bad : {"", "M", "-5", "1.2.3", "0x10", "1e6", " 5M", "5 M", "1.5"}) {
    auto msg = usage_message(parse_size("--memory-swap", bad));
    EXPECT_TRUE(msg.starts_with("--memory-swap: \"")) << bad << ": " << msg;
  }
  EXPECT_NE(usage_message(parse_size("--memory", "0")).find("\"0\" is not a usable limit"),
            std::string::npos);
  EXPECT_NE(usage_message(parse_size("--memory", "0k")).find("not a usable limit"),
            std::string::npos);
  EXPECT_NE(usage_message(parse_size("--memory", "99999999999T")).find("too large"),
            std::string::npos);
  EXPECT_NE(usage_message(parse_size("--memory", "99999999999999999999")).find("too large"),
            std::string::npos);
}

TEST(CgroupResources, ParseCpus) {
  EXPECT_EQ(parse_cpus("--cpus", "0.5"), 0.5);
  EXPECT_EQ(parse_cpus("--cpus", "2"), 2.0);
  EXPECT_EQ(parse_cpus("--cpus", "1.25"), 1.25);
  EXPECT_EQ(parse_cpus("--cpus", ".5"), 0.5);
  EXPECT_EQ(parse_cpus("--cpus", "0.01"), 0.01);
  // 0 and the words remove the limit.
  EXPECT_EQ(parse_cpus("--cpus", "0"), 0.0);
  EXPECT_EQ(parse_cpus("--cpus", "0.0"), 0.0);
  EXPECT_EQ(parse_cpus("--cpus", "max"), 0.0);
  EXPECT_EQ(parse_cpus("--cpus", "unlimited"), 0.0);

  EXPECT_EQ(usage_message(parse_cpus("--cpus", "-1")),
            "--cpus: \"-1\" is negative; use a positive decimal such as 0.5 or 2, or 0 or \"max\" "
            "for no limit");
  EXPECT_NE(usage_message(parse_cpus("--cpus", "-0.5")).find("negative"), std::string::npos);
  EXPECT_NE(usage_message(parse_cpus("--cpus", "0.001")).find("minimum of 0.01"),
            std::string::npos);
  for (const char* bad : {"", "abc", "1,5", "1e2", "nan", "inf", "2 ", "."})
    EXPECT_NE(usage_message(parse_cpus("--cpus", bad)).find("is not a number of CPUs"),
              std::string::npos)
        << bad;
  EXPECT_NE(usage_message(parse_cpus("--cpus", "99999999")).find("too large"), std::string::npos);
}

TEST(CgroupResources, CpuListsParseAndFormat) {
  EXPECT_EQ(parse_cpu_list("0-3,5"), (std::vector<unsigned>{0, 1, 2, 3, 5}));
  EXPECT_EQ(parse_cpu_list("0-1\n"), (std::vector<unsigned>{0, 1}));
  EXPECT_EQ(parse_cpu_list("5,1,1,0"), (std::vector<unsigned>{0, 1, 5}));
  EXPECT_EQ(parse_cpu_list(""), std::vector<unsigned>{});
  EXPECT_EQ(parse_cpu_list("\n"), std::vector<unsigned>{});
  for (const char* bad : {"a", "1-", "-1", "3-1", "1,,2", "1 2", "0-99999999", "1;2"})
    EXPECT_FALSE(parse_cpu_list(bad)) << bad;

  EXPECT_EQ(format_cpu_list({0, 1, 2, 3, 5}), "0-3,5");
  EXPECT_EQ(format_cpu_list({7, 0, 1}), "0-1,7");
  EXPECT_EQ(format_cpu_list({4}), "4");
  EXPECT_EQ(format_cpu_list({}), "");
}

TEST(CgroupResources, ParseCpusetChecksTheHostsCpus) {
  std::vector<unsigned> host = {0, 1};
  EXPECT_EQ(parse_cpuset("--cpuset", "0-1", host), "0-1");
  EXPECT_EQ(parse_cpuset("--cpuset", "1,0", host), "0-1");
  EXPECT_EQ(parse_cpuset("--cpuset", "0", host), "0");
  EXPECT_EQ(parse_cpuset("--cpuset", "", host), "");
  EXPECT_EQ(usage_message(parse_cpuset("--cpuset", "7", host)),
            "--cpuset: CPU 7 does not exist on this host (it has 0-1)");
  EXPECT_EQ(usage_message(parse_cpuset("--cpuset", "0-3", host)),
            "--cpuset: CPUs 2-3 do not exist on this host (it has 0-1)");
  EXPECT_EQ(usage_message(parse_cpuset("--cpuset", "x", host)),
            "--cpuset: \"x\" is not a CPU list; use CPU numbers and ranges such as 0-2,5");
}

TEST(CgroupResources, HostOnlineCpusReadsSysfs) {
  auto cpus = host_online_cpus();
  ASSERT_TRUE(cpus) << cpus.error().message;
  EXPECT_FALSE(cpus->empty());
  EXPECT_EQ(cpus->front(), 0u);  // the boot CPU cannot be taken offline on x86
}

TEST(CgroupResources, ParseCountRangeAndMax) {
  EXPECT_EQ(parse_count("--pids", "50", 1, 4194304, true), 50u);
  EXPECT_EQ(parse_count("--pids", "1", 1, 4194304, true), 1u);
  EXPECT_EQ(parse_count("--pids", "4194304", 1, 4194304, true), 4194304u);
  EXPECT_EQ(parse_count("--pids", "max", 1, 4194304, true), kUnlimited);
  EXPECT_EQ(parse_count("--pids", "unlimited", 1, 4194304, true), kUnlimited);
  EXPECT_EQ(usage_message(parse_count("--pids", "0", 1, 4194304, true)),
            "--pids: \"0\" is out of range; use a whole number from 1 to 4194304 or \"max\"");
  EXPECT_NE(usage_message(parse_count("--pids", "4194305", 1, 4194304, true)).find("out of range"),
            std::string::npos);
  EXPECT_EQ(usage_message(parse_count("--cpu-shares", "max", 2, 262144)),
            "--cpu-shares: \"max\" is not a whole number; use a whole number from 2 to 262144");
  for (const char* bad : {"", "-5", "1.5", "12X", "99999999999999999999999"})
    EXPECT_FALSE(parse_count("--pids", bad, 1, 100, true)) << bad;
}

TEST(CgroupResources, ParseDeviceRateStatsTheNode) {
  // A block device node made for the test (mknod needs root), else one of the host's.
  char tmpl[] = "/tmp/kapsel-blk-test.XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  std::string node = std::string(tmpl) + "/blk";
  bool made = ::mknod(node.c_str(), S_IFBLK | 0600, ::makedev(7, 42)) == 0;
  if (!made) {
    node.clear();
    for (const char* candidate : {"/dev/loop0", "/dev/vda", "/dev/sda", "/dev/nvme0n1"}) {
      struct stat st {};
      if (::stat(candidate, &st) == 0 && S_ISBLK(st.st_mode)) {
        node = candidate;
        break;
      }
    }
  }
  struct stat st {};
  if (node.empty() || ::stat(node.c_str(), &st) != 0) {
    ::rmdir(tmpl);
    GTEST_SKIP() << "no block device node to test with";
  }
  const std::uint32_t major = ::major(st.st_rdev), minor = ::minor(st.st_rdev);

  auto r = parse_device_rate("--device-read-bps", node + ":10M", false);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(*r, (DeviceRate{major, minor, 10 * kMiB}));
  auto iops = parse_device_rate("--device-write-iops", node + ":1000", true);
  ASSERT_TRUE(iops) << iops.error().message;
  EXPECT_EQ(*iops, (DeviceRate{major, minor, 1000}));
  EXPECT_EQ(parse_device_rate("--device-read-bps", node + ":0", false)->rate, 0u);

  EXPECT_NE(usage_message(parse_device_rate("--device-write-iops", node + ":10M", true))
                .find("not a rate"),
            std::string::npos);
  EXPECT_EQ(usage_message(parse_device_rate("--device-read-bps", "/dev/null:1M", false)),
            "--device-read-bps: /dev/null is not a block device; name one (e.g. /dev/vda:10M)");
  EXPECT_NE(usage_message(parse_device_rate("--device-read-bps", "/nonexistent:1M", false))
                .find("/nonexistent: No such file or directory"),
            std::string::npos);
  EXPECT_NE(usage_message(parse_device_rate("--device-read-bps", node, false))
                .find("is not of the form DEVICE:RATE"),
            std::string::npos);
  if (made) ::unlink(node.c_str());
  ::rmdir(tmpl);
}

TEST(CgroupResources, FormatBytes) {
  EXPECT_EQ(format_bytes(0), "0 B");
  EXPECT_EQ(format_bytes(1023), "1023 B");
  EXPECT_EQ(format_bytes(1024), "1.0 KiB");
  EXPECT_EQ(format_bytes(64 * kMiB), "64.0 MiB");
  EXPECT_EQ(format_bytes(80 * kMiB + 10), "80.0 MiB");
  EXPECT_EQ(format_bytes(kGiB + kGiB / 2), "1.5 GiB");
  EXPECT_EQ(format_bytes(kMiB - 1), "1.0 MiB");
  EXPECT_EQ(format_bytes(kUnlimited), "unlimited");
}

TEST(CgroupResources, SharesAndWeightConvertLikeRuncAndCrun) {
  EXPECT_EQ(shares_to_weight(2), 1u);
  EXPECT_EQ(shares_to_weight(262144), 10000u);
  EXPECT_EQ(shares_to_weight(1024), 39u);
  EXPECT_EQ(shares_to_weight(512), 20u);
  EXPECT_EQ(weight_to_shares(1), 2u);
  EXPECT_EQ(weight_to_shares(10000), 262144u);
  EXPECT_EQ(weight_to_shares(100), 2597u);
  // Out of range: clamped to the ends.
  EXPECT_EQ(shares_to_weight(0), 1u);
  EXPECT_EQ(weight_to_shares(20000), 262144u);
  // Round trips land within one step of the start.
  for (std::uint64_t w : {1u, 39u, 100u, 5000u, 10000u})
    EXPECT_NEAR(static_cast<double>(shares_to_weight(weight_to_shares(w))), w, 1.0) << w;
  EXPECT_EQ(blkio_weight_to_io_weight(10), 1u);
  EXPECT_EQ(blkio_weight_to_io_weight(1000), 10000u);
  EXPECT_EQ(blkio_weight_to_io_weight(500), 4950u);
}

TEST(CgroupResources, MergeReplacesWhatIsSetAndDropsZeroRates) {
  Limits base;
  base.memory = 256 * kMiB;
  base.cpus = 1;
  base.cpu_shares = 512;
  base.pids = 100;
  base.read_bps = {{8, 0, 1000}, {8, 16, 2000}};
  base.write_iops = {{8, 0, 50}};

  Limits change;
  change.memory = kUnlimited;
  change.cpu_weight = 200;
  change.cpuset = "0";
  change.read_bps = {{8, 16, 0}, {8, 32, 3000}, {8, 0, 1500}};

  Limits m = merge(base, change);
  EXPECT_EQ(m.memory, kUnlimited);
  EXPECT_EQ(m.cpus, 1.0);
  EXPECT_FALSE(m.cpu_shares);  // replaced by its other spelling
  EXPECT_EQ(m.cpu_weight, 200u);
  EXPECT_EQ(m.cpuset, "0");
  EXPECT_EQ(m.pids, 100u);
  EXPECT_EQ(m.read_bps, (std::vector<DeviceRate>{{8, 0, 1500}, {8, 32, 3000}}));
  EXPECT_EQ(m.write_iops, base.write_iops);

  EXPECT_EQ(merge(base, Limits{}), base);
  EXPECT_TRUE(Limits{}.empty());
  EXPECT_FALSE(base.empty());
  Limits shares;
  shares.cpu_shares = 2048;
  EXPECT_FALSE(merge(m, shares).cpu_weight);
  EXPECT_EQ(merge(m, shares).cpu_shares, 2048u);
}

TEST(CgroupResources, JsonRoundTripWithStableKeys) {
  Limits l;
  l.memory = 64 * kMiB;
  l.memory_swap = kUnlimited;
  l.cpus = 0.5;
  l.cpu_weight = 300;
  l.cpuset = "0-1";
  l.pids = kUnlimited;
  l.blkio_weight = 500;
  l.read_bps = {{8, 0, 10 * kMiB}};
  l.write_iops = {{253, 1, 100}};

  json j = l;
  EXPECT_EQ(j, json::parse(R"({
    "memory": 67108864, "memory_swap": "max", "cpus": 0.5, "cpu_weight": 300,
    "cpuset": "0-1", "pids": "max", "blkio_weight": 500,
    "read_bps": [{"major": 8, "minor": 0, "rate": 10485760}],
    "write_iops": [{"major": 253, "minor": 1, "rate": 100}]})"));
  EXPECT_EQ(j.get<Limits>(), l);

  // Unset fields are left out; cpus 0 (no limit) is kept as 0.
  EXPECT_EQ(json(Limits{}), json::object());
  Limits unlimited_cpus;
  unlimited_cpus.cpus = 0;
  EXPECT_EQ(json(unlimited_cpus), json::parse(R"({"cpus": 0.0})"));
  EXPECT_EQ(json(unlimited_cpus).get<Limits>(), unlimited_cpus);

  // Unknown keys are ignored (a newer kapsel's config); wrong types are json errors.
  EXPECT_EQ(json::parse(R"({"pids": 5, "future": true})").get<Limits>().pids, 5u);
  EXPECT_THROW((void)json::parse(R"({"memory": "lots"})").get<Limits>(), json::exception);
  EXPECT_THROW((void)json::parse(R"({"cpus": "1"})").get<Limits>(), json::exception);
  EXPECT_THROW((void)json::parse(R"({"read_bps": [{"major": 8}]})").get<Limits>(), json::exception);
  EXPECT_THROW((void)json::parse("[1]").get<Limits>(), json::exception);
}

TEST(CgroupResources, ValidateRefusesWhatNoHostCouldEnforce) {
  Limits ok;
  ok.memory = 256 * kMiB;
  ok.memory_swap = 512 * kMiB;
  ok.cpus = 0;
  EXPECT_TRUE(validate(ok));

  Limits l = ok;
  l.memory_swap = 128 * kMiB;
  EXPECT_EQ(usage_message(validate(l)),
            "--memory-swap: 128.0 MiB is less than --memory 256.0 MiB; it counts memory plus "
            "swap, so it must be at least as large");
  l = ok;
  l.memory = kUnlimited;
  EXPECT_NE(usage_message(validate(l)).find("needs a --memory limit"), std::string::npos);
  l = ok;
  l.cpus = -1;
  EXPECT_TRUE(usage_message(validate(l)).starts_with("--cpus: -1 is not a CPU limit"));
  l = ok;
  l.cpu_shares = 1;
  EXPECT_TRUE(usage_message(validate(l)).starts_with("--cpu-shares: 1 is out of range"));
  l = ok;
  l.cpu_weight = 10001;
  EXPECT_TRUE(usage_message(validate(l)).starts_with("--cpu-weight: 10001 is out of range"));
  l = ok;
  l.cpu_weight = 100;
  l.cpu_shares = 1024;
  EXPECT_TRUE(usage_message(validate(l)).starts_with("--cpu-shares: give either it or"));
  l = ok;
  l.blkio_weight = 5;
  EXPECT_TRUE(usage_message(validate(l)).starts_with("--blkio-weight: 5 is out of range"));
  l = ok;
  l.pids = 0;
  EXPECT_TRUE(usage_message(validate(l)).starts_with("--pids: 0"));
  l = ok;
  l.cpuset = "1-";
  EXPECT_TRUE(usage_message(validate(l)).starts_with("--cpuset: \"1-\" is not a CPU list"));
}

}  // namespace
}  // namespace kapsel::cgroup
