// The minimal /dev, --device parsing and the VE's device allow list.
#include "security/devices.hpp"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include "common/fs.hpp"

namespace kapsel::security {
namespace {

using cgroup::DeviceRule;

TEST(MinimalDevices, TheTable) {
  auto devices = minimal_devices();
  ASSERT_EQ(devices.size(), 6u);
  struct Want {
    std::string name;
    unsigned major, minor;
  } want[] = {{"null", 1, 3},   {"zero", 1, 5},    {"full", 1, 7},
              {"random", 1, 8}, {"urandom", 1, 9}, {"tty", 5, 0}};
  for (std::size_t i = 0; i < devices.size(); ++i) {
    EXPECT_EQ(devices[i].name, want[i].name);
    EXPECT_EQ(devices[i].type, 'c');
    EXPECT_EQ(devices[i].major, want[i].major) << want[i].name;
    EXPECT_EQ(devices[i].minor, want[i].minor) << want[i].name;
    EXPECT_EQ(devices[i].mode, 0666u) << want[i].name;
  }
}

TEST(DeviceRulesForVe, TheDefaultList) {
  EXPECT_EQ(device_rules({}), (std::vector<DeviceRule>{
                                  {'c', -1, -1, "m", true},
                                  {'b', -1, -1, "m", true},
                                  {'c', 1, 3, "rwm", true},
                                  {'c', 1, 5, "rwm", true},
                                  {'c', 1, 7, "rwm", true},
                                  {'c', 1, 8, "rwm", true},
                                  {'c', 1, 9, "rwm", true},
                                  {'c', 5, 0, "rwm", true},
                                  {'c', 5, 1, "rwm", true},
                                  {'c', 5, 2, "rwm", true},
                                  {'c', 136, -1, "rwm", true},
                              }));
}

TEST(DeviceRulesForVe, ExtraDevicesComeLast) {
  DeviceSpec fuse{"/dev/fuse", "/dev/fuse", 'c', 10, 229, 0666, "rwm"};
  DeviceSpec disk{"/dev/sdb", "/dev/xvdb", 'b', 8, 16, 0660, "r"};
  auto rules = device_rules({fuse, disk});
  ASSERT_EQ(rules.size(), 13u);
  EXPECT_EQ(rules[11], (DeviceRule{'c', 10, 229, "rwm", true}));
  EXPECT_EQ(rules[12], (DeviceRule{'b', 8, 16, "r", true}));
}

TEST(DeviceOption, HostDevices) {
  auto spec = parse_device_option("/dev/null:/dev/mynull");
  ASSERT_TRUE(spec) << spec.error().message;
  EXPECT_EQ(*spec, (DeviceSpec{"/dev/null", "/dev/mynull", 'c', 1, 3, 0666, "rwm"}));

  spec = parse_device_option("/dev/zero:/dev/sub/dir/zero:r");
  ASSERT_TRUE(spec) << spec.error().message;
  EXPECT_EQ(*spec, (DeviceSpec{"/dev/zero", "/dev/sub/dir/zero", 'c', 1, 5, 0666, "r"}));

  // The VE's own /dev/zero is there already.
  spec = parse_device_option("/dev/zero:mw");
  ASSERT_FALSE(spec);
  EXPECT_EQ(spec.error().message,
            "--device /dev/zero:mw: /dev/zero is part of every VE's /dev; give the device another "
            "path (HOST:/dev/NAME)");

  if (fs::exists("/dev/fuse")) {
    spec = parse_device_option("/dev/fuse");
    ASSERT_TRUE(spec) << spec.error().message;
    EXPECT_EQ(spec->host_path, "/dev/fuse");
    EXPECT_EQ(spec->ve_path, "/dev/fuse");
    EXPECT_EQ(spec->type, 'c');
    EXPECT_EQ(spec->major, 10u);
    EXPECT_EQ(spec->minor, 229u);
    EXPECT_EQ(spec->access, "rwm");
    struct stat st {};
    ASSERT_EQ(::stat("/dev/fuse", &st), 0);
    EXPECT_EQ(spec->mode, st.st_mode & 07777);

    spec = parse_device_option("/dev/fuse:mr");
    ASSERT_TRUE(spec) << spec.error().message;
    EXPECT_EQ(spec->ve_path, "/dev/fuse");
    EXPECT_EQ(spec->access, "rm");
  }
}

TEST(DeviceOption, SymlinksAreFollowed) {
  char tmpl[] = "/tmp/kapsel-device-option.XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  std::string link = std::string(tmpl) + "/z";
  ASSERT_EQ(::symlink("/dev/zero", link.c_str()), 0);
  auto spec = parse_device_option(link + ":/dev/z:rw");
  ASSERT_TRUE(spec) << spec.error().message;
  EXPECT_EQ(spec->host_path, link);
  EXPECT_EQ(spec->major, 1u);
  EXPECT_EQ(spec->minor, 5u);
  // Its own path is no path in a VE's /dev.
  auto bad = parse_device_option(link);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().message,
            "--device " + link + ": the VE path '" + link +
                "' must be absolute, under /dev, and without '.' or '..' (e.g. /dev/xvdb)");
  ASSERT_TRUE(fs::remove_tree(tmpl));
}

TEST(DeviceOption, NotADevice) {
  auto spec = parse_device_option("/etc/passwd");
  ASSERT_FALSE(spec);
  EXPECT_EQ(spec.error().kind, ErrorKind::usage);
  EXPECT_EQ(spec.error().message,
            "--device /etc/passwd: not a device node (give a character or block device such as "
            "/dev/fuse)");
  spec = parse_device_option("/dev:/dev/x");
  ASSERT_FALSE(spec);
  EXPECT_EQ(spec.error().message,
            "--device /dev:/dev/x: not a device node (give a character or block device such as "
            "/dev/fuse)");

  spec = parse_device_option("/nope");
  ASSERT_FALSE(spec);
  EXPECT_EQ(spec.error().kind, ErrorKind::usage);
  EXPECT_EQ(spec.error().code, ENOENT);
  EXPECT_EQ(spec.error().message, "--device /nope: No such file or directory");
  spec = parse_device_option("/dev/nope:/dev/x:r");
  ASSERT_FALSE(spec);
  EXPECT_EQ(spec.error().message, "--device /dev/nope:/dev/x:r: No such file or directory");
}

TEST(DeviceOption, BadForms) {
  struct Case {
    const char* value;
    const char* why;
  } cases[] = {
      {"", "the host device must be an absolute path (e.g. /dev/fuse)"},
      {"dev/zero:/dev/z", "the host device must be an absolute path (e.g. /dev/fuse)"},
      {"/dev/zero:/dev/z:rx",
       "the permissions 'rx' must be one or more of r (read), w (write) and m (mknod)"},
      {"/dev/zero:/dev/z:",
       "the permissions '' must be one or more of r (read), w (write) and m "
       "(mknod)"},
      {"/dev/zero:/dev/z:rr",
       "the permissions 'rr' must be one or more of r (read), w (write) and m (mknod)"},
      {"/dev/zero:rx",
       "'rx' is neither permissions (one or more of r, w and m) nor a path under "
       "/dev"},
      {"/dev/zero:/dev/z:r:w",
       "too many ':' (the form is HOST[:VE_PATH][:PERMS], e.g. /dev/sdb:/dev/xvdb:r)"},
      {"/dev/zero:dev/z",
       "the VE path 'dev/z' must be absolute, under /dev, and without '.' or '..' (e.g. "
       "/dev/xvdb)"},
      {"/dev/zero:/dev/../etc/z",
       "the VE path '/dev/../etc/z' must be absolute, under /dev, and without '.' or '..' "
       "(e.g. /dev/xvdb)"},
      {"/dev/zero:/dev/a/../b",
       "the VE path '/dev/a/../b' must be absolute, under /dev, and without '.' or '..' (e.g. "
       "/dev/xvdb)"},
      {"/dev/zero:/dev/a/./b",
       "the VE path '/dev/a/./b' must be absolute, under /dev, and without '.' or '..' (e.g. "
       "/dev/xvdb)"},
      {"/dev/zero:/dev/",
       "the VE path '/dev/' must be absolute, under /dev, and without '.' or "
       "'..' (e.g. /dev/xvdb)"},
      {"/dev/zero:/dev//z",
       "the VE path '/dev//z' must be absolute, under /dev, and without '.' "
       "or '..' (e.g. /dev/xvdb)"},
      {"/dev/zero:/devz",
       "the VE path '/devz' must be absolute, under /dev, and without '.' or "
       "'..' (e.g. /dev/xvdb)"},
      {"/dev/zero:/tmp/z",
       "the VE path '/tmp/z' must be absolute, under /dev, and without '.' or "
       "'..' (e.g. /dev/xvdb)"},
      {"/dev/zero:/dev/null",
       "/dev/null is part of every VE's /dev; give the device another path (HOST:/dev/NAME)"},
      {"/dev/zero:/dev/pts/9",
       "/dev/pts is part of every VE's /dev; give the device another path (HOST:/dev/NAME)"},
      {"/dev/zero:/dev/console",
       "/dev/console is part of every VE's /dev; give the device another path (HOST:/dev/NAME)"},
  };
  for (const auto& c : cases) {
    auto spec = parse_device_option(c.value);
    ASSERT_FALSE(spec) << c.value;
    EXPECT_EQ(spec.error().kind, ErrorKind::usage) << c.value;
    EXPECT_EQ(spec.error().message, std::string("--device ") + c.value + ": " + c.why);
  }
}

TEST(DeviceOption, ToStringRoundTrips) {
  std::vector<std::string> values = {"/dev/null:/dev/mynull", "/dev/zero:/dev/sub/zero:r",
                                     "/dev/full:/dev/f:mw"};
  if (fs::exists("/dev/fuse")) values.push_back("/dev/fuse");
  if (fs::exists("/dev/net/tun")) values.push_back("/dev/net/tun:rwm");
  for (const auto& v : values) {
    auto spec = parse_device_option(v);
    ASSERT_TRUE(spec) << v << ": " << spec.error().message;
    std::string text = to_string(*spec);
    auto back = parse_device_option(text);
    ASSERT_TRUE(back) << text << ": " << back.error().message;
    EXPECT_EQ(*back, *spec) << text;
    EXPECT_EQ(to_string(*back), text);
  }
  auto spec = parse_device_option("/dev/full:/dev/f:mw");
  ASSERT_TRUE(spec);
  EXPECT_EQ(to_string(*spec), "/dev/full:/dev/f:wm");
}

}  // namespace
}  // namespace kapsel::security
