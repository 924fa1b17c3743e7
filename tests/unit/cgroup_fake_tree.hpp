// A fake cgroupfs in a temporary directory for the limits and statistics tests: regular files
// stand in for the kernel's interface files, and a fake mountinfo makes probe() find them.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>

#include <fstream>
#include <memory>
#include <string>

#include "cgroup/manager.hpp"
#include "common/fs.hpp"

namespace kapsel::cgroup::testing {

inline void put(const std::string& path, const std::string& contents) {
  std::ofstream out(path, std::ios::trunc);
  out << contents;
  ASSERT_TRUE(out.good()) << path;
}

inline std::string get(const std::string& path) {
  auto r = fs::read_file(path);
  EXPECT_TRUE(r) << path << ": " << r.error().message;
  return r ? *r : std::string();
}

class FakeCgroupTree : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/kapsel-cgroup-limits-test.XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    base_ = tmpl;
    root_ = base_ + "/cgroup";
    mountinfo_ = base_ + "/mountinfo";
    ASSERT_TRUE(fs::make_dirs(root_));
  }
  void TearDown() override { ASSERT_TRUE(fs::remove_tree(base_)); }

  // A v1 hierarchy of `controllers` ("cpu,cpuacct") at root_/<name>, mounted from `mount_root`.
  std::string v1_line(int id, const std::string& name, const std::string& controllers,
                      const std::string& mount_root = "/") {
    EXPECT_TRUE(fs::make_dirs(root_ + "/" + name));
    return std::to_string(id) + " 1 0:" + std::to_string(id) + " " + mount_root + " " + root_ +
           "/" + name + " rw,relatime - cgroup cgroup rw," + controllers + "\n";
  }
  std::string v2_line(int id, const std::string& at, const std::string& mount_root = "/") {
    EXPECT_TRUE(fs::make_dirs(at));
    return std::to_string(id) + " 1 0:" + std::to_string(id) + " " + mount_root + " " + at +
           " rw,relatime - cgroup2 cgroup2 rw\n";
  }

  std::unique_ptr<Manager> probe_lines(const std::string& lines) {
    put(mountinfo_, lines);
    Options o;
    o.root = root_;
    o.mountinfo = mountinfo_;
    auto m = probe(o);
    EXPECT_TRUE(m) << m.error().message;
    return m ? std::move(*m) : nullptr;
  }

  // Writes each "file=contents" of `files` into `dir`, making `dir` first.
  void fill(const std::string& dir,
            std::initializer_list<std::pair<const char*, const char*>> files) {
    ASSERT_TRUE(fs::make_dirs(dir));
    for (const auto& [file, contents] : files) put(dir + "/" + file, contents);
  }

  std::string base_, root_, mountinfo_;
};

}  // namespace kapsel::cgroup::testing
