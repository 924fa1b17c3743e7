#include "image/template.hpp"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <thread>
#include <vector>

#include "common/fs.hpp"

namespace kapsel::image {
namespace {

struct TarEntry {
  std::string name;
  unsigned type = AE_IFREG;  // AE_IFREG, AE_IFDIR, AE_IFLNK; hard links: `hardlink` set
  std::string data;          // file contents, or a symlink's target
  mode_t perm = 0644;
  std::string hardlink;
  la_int64_t uid = 0;
  la_int64_t gid = 0;
  time_t mtime = 1'600'000'000;
};

TarEntry file(std::string name, std::string data, mode_t perm = 0644) {
  TarEntry e;
  e.name = std::move(name);
  e.data = std::move(data);
  e.perm = perm;
  return e;
}

TarEntry dir(std::string name, mode_t perm = 0755) {
  TarEntry e;
  e.name = std::move(name);
  e.type = AE_IFDIR;
  e.perm = perm;
  return e;
}

TarEntry symlink_to(std::string name, std::string target) {
  TarEntry e;
  e.name = std::move(name);
  e.type = AE_IFLNK;
  e.data = std::move(target);
  e.perm = 0777;
  return e;
}

TarEntry hardlink_to(std::string name, std::string target) {
  TarEntry e;
  e.name = std::move(name);
  e.hardlink = std::move(target);
  return e;
}

// Writes a pax tar (gzip-compressed if asked) with libarchive, the way an attacker or a
// careless tool might: names are taken as given.
void write_tar(const std::string& path, const std::vector<TarEntry>& entries, bool gzip) {
  archive* a = archive_write_new();
  ASSERT_NE(a, nullptr);
  ASSERT_EQ(archive_write_set_format_pax_restricted(a), ARCHIVE_OK);
  if (gzip) {
    ASSERT_EQ(archive_write_add_filter_gzip(a), ARCHIVE_OK);
  }
  ASSERT_EQ(archive_write_open_filename(a, path.c_str()), ARCHIVE_OK) << archive_error_string(a);
  for (const auto& e : entries) {
    archive_entry* entry = archive_entry_new();
    archive_entry_set_pathname(entry, e.name.c_str());
    archive_entry_set_filetype(entry, e.type);
    archive_entry_set_perm(entry, e.perm);
    archive_entry_set_uid(entry, e.uid);
    archive_entry_set_gid(entry, e.gid);
    archive_entry_set_mtime(entry, e.mtime, 0);
    if (!e.hardlink.empty()) {
      archive_entry_set_hardlink(entry, e.hardlink.c_str());
      archive_entry_set_size(entry, 0);
    } else if (e.type == AE_IFLNK) {
      archive_entry_set_symlink(entry, e.data.c_str());
      archive_entry_set_size(entry, 0);
    } else {
      archive_entry_set_size(entry,
                             e.type == AE_IFREG ? static_cast<la_int64_t>(e.data.size()) : 0);
    }
    ASSERT_EQ(archive_write_header(a, entry), ARCHIVE_OK) << archive_error_string(a);
    if (e.type == AE_IFREG && e.hardlink.empty() && !e.data.empty()) {
      ASSERT_EQ(archive_write_data(a, e.data.data(), e.data.size()),
                static_cast<la_ssize_t>(e.data.size()));
    }
    archive_entry_free(entry);
  }
  ASSERT_EQ(archive_write_close(a), ARCHIVE_OK);
  archive_write_free(a);
}

struct stat lstat_of(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::lstat(path.c_str(), &st), 0) << path;
  return st;
}

std::string link_of(const std::string& path) {
  std::error_code ec;
  auto target = std::filesystem::read_symlink(path, ec);
  EXPECT_FALSE(ec) << path << ": " << ec.message();
  return target.string();
}

std::string read(const std::string& path) {
  auto text = fs::read_file(path);
  EXPECT_TRUE(text) << path;
  return text ? *text : "";
}

// Names directly in `dir`, sorted.
std::vector<std::string> names_in(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec))
    out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

// True if anything named `name` exists anywhere below `root` (symlinks not followed).
bool exists_below(const std::string& root, const std::string& name) {
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(root, ec);
       it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    if (ec) break;
    if (it->path().filename() == name) return true;
  }
  return false;
}

TemplateSpec spec_of(const std::string& text) {
  auto spec = parse_spec(text);
  EXPECT_TRUE(spec) << text;
  return spec ? *spec : TemplateSpec{};
}

class TemplateStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/kapsel-template-test.XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    store_dir_ = dir_ + "/templates";
  }
  void TearDown() override { ASSERT_TRUE(fs::remove_tree(dir_)); }

  std::string dir_;
  std::string store_dir_;
};

TEST_F(TemplateStoreTest, BusyboxBuildProducesABootableTree) {
  TemplateStore store(store_dir_);
  auto t = store.ensure(spec_of("busybox"));
  ASSERT_TRUE(t) << t.error().message;
  EXPECT_EQ(t->id, "busybox");
  EXPECT_EQ(t->spec, "busybox");
  EXPECT_EQ(t->init, "/sbin/init");
  EXPECT_EQ(t->halt_signal, SIGUSR1);
  EXPECT_EQ(t->rootfs, store_dir_ + "/busybox/rootfs");
  EXPECT_GT(t->size_bytes, 1024u * 1024u);  // the busybox binary alone is ~2 MB
  EXPECT_GT(t->created, 0);

  const std::string r = t->rootfs;
  auto bb = lstat_of(r + "/bin/busybox");
  EXPECT_TRUE(S_ISREG(bb.st_mode));
  EXPECT_EQ(bb.st_mode & 07777, 0755u);
  for (const char* applet : {"/sbin/init", "/bin/sh", "/bin/ash", "/bin/mount", "/usr/bin/env"}) {
    EXPECT_TRUE(S_ISLNK(lstat_of(r + applet).st_mode)) << applet;
    EXPECT_EQ(link_of(r + applet), "/bin/busybox") << applet;
  }
  EXPECT_FALSE(fs::exists(r + "/linuxrc"));

  EXPECT_EQ(lstat_of(r + "/tmp").st_mode & 07777, 01777u);
  EXPECT_EQ(lstat_of(r + "/root").st_mode & 07777, 0700u);
  for (const char* d :
       {"/proc", "/sys", "/dev", "/etc/init.d", "/var/log", "/home", "/mnt", "/usr/sbin", "/run"})
    EXPECT_TRUE(S_ISDIR(lstat_of(r + d).st_mode)) << d;
  EXPECT_EQ(link_of(r + "/var/run"), "/run");

  std::string inittab = read(r + "/etc/inittab");
  EXPECT_NE(inittab.find("::sysinit:/etc/init.d/rcS"), std::string::npos);
  EXPECT_NE(inittab.find("::askfirst:-/bin/sh"), std::string::npos);
  EXPECT_NE(inittab.find("::shutdown:"), std::string::npos);
  EXPECT_NE(inittab.find("::ctrlaltdel:"), std::string::npos);
  EXPECT_EQ(lstat_of(r + "/etc/init.d/rcS").st_mode & 07777, 0755u);
  EXPECT_EQ(lstat_of(r + "/etc/shadow").st_mode & 07777, 0600u);
  EXPECT_EQ(read(r + "/etc/passwd").rfind("root:x:0:0:root:/root:/bin/sh\n", 0), 0u);
  EXPECT_NE(read(r + "/etc/passwd").find("nobody:"), std::string::npos);
  EXPECT_NE(read(r + "/etc/group").find("root:x:0:"), std::string::npos);
  EXPECT_EQ(read(r + "/etc/hostname"), "localhost\n");
  EXPECT_NE(read(r + "/etc/hosts").find("127.0.0.1"), std::string::npos);
  EXPECT_NE(read(r + "/etc/profile").find("PS1="), std::string::npos);
  EXPECT_NE(read(r + "/etc/os-release").find("kapsel busybox"), std::string::npos);

  // The boot scripts at least parse.
  for (const char* script : {"/etc/init.d/rcS", "/etc/init.d/rcK"}) {
    std::string cmd = r + "/bin/busybox sh -n " + r + script;
    EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
  }

  // The metadata is in the store, next to the tree, and loads back the same.
  auto meta = read(store_dir_ + "/busybox/template.json");
  EXPECT_NE(meta.find("\"halt_signal\": " + std::to_string(SIGUSR1)), std::string::npos) << meta;
  auto loaded = store.load("busybox");
  ASSERT_TRUE(loaded) << loaded.error().message;
  EXPECT_EQ(loaded->rootfs, t->rootfs);
  EXPECT_EQ(loaded->halt_signal, SIGUSR1);
  EXPECT_EQ(loaded->size_bytes, t->size_bytes);
  EXPECT_EQ(loaded->created, t->created);
  // Nothing but the template and the lock file is left in the store.
  EXPECT_EQ(names_in(store_dir_), (std::vector<std::string>{".lock", "busybox"}));
}

TEST_F(TemplateStoreTest, SecondEnsureIsAFastNoOp) {
  TemplateStore store(store_dir_);
  auto first = store.ensure(spec_of("busybox"));
  ASSERT_TRUE(first) << first.error().message;
  auto meta_before = lstat_of(store_dir_ + "/busybox/template.json");

  int calls = 0;
  auto start = std::chrono::steady_clock::now();
  auto second =
      TemplateStore(store_dir_).ensure(spec_of("busybox"), [&](std::string_view, auto, auto) {
        ++calls;
      });
  auto elapsed = std::chrono::steady_clock::now() - start;
  ASSERT_TRUE(second) << second.error().message;
  EXPECT_EQ(second->created, first->created);
  EXPECT_EQ(second->size_bytes, first->size_bytes);
  EXPECT_EQ(calls, 0);  // nothing was built
  // Reading one small file; generous, since a loaded machine must not fail the test.
  EXPECT_LT(elapsed, std::chrono::milliseconds(500));
  auto meta_after = lstat_of(store_dir_ + "/busybox/template.json");
  EXPECT_EQ(meta_after.st_ino, meta_before.st_ino);
  EXPECT_EQ(meta_after.st_mtim.tv_nsec, meta_before.st_mtim.tv_nsec);
}

TEST_F(TemplateStoreTest, ProgressIsReportedAndThrottled) {
  std::vector<std::string> phases;
  std::uint64_t last_done = 0;
  std::uint64_t last_total = 0;
  auto t = TemplateStore(store_dir_)
               .ensure(spec_of("busybox"),
                       [&](std::string_view phase, std::uint64_t done, std::uint64_t total) {
                         phases.emplace_back(phase);
                         last_done = done;
                         last_total = total;
                       });
  ASSERT_TRUE(t) << t.error().message;
  ASSERT_FALSE(phases.empty());
  EXPECT_EQ(phases.front(), "building busybox");
  EXPECT_GT(last_total, 100u);  // one unit per applet
  EXPECT_EQ(last_done, last_total);
  // A few hundred applets, reported at most ten times a second plus start and end.
  EXPECT_LT(phases.size(), 30u);
}

TEST_F(TemplateStoreTest, ConcurrentEnsureFromThreadsBuildsOnce) {
  std::atomic<int> builds{0};
  auto count_builds = [&](std::string_view phase, std::uint64_t done, std::uint64_t) {
    if (phase == "building busybox" && done == 0) ++builds;
  };
  std::vector<Result<Template>> results(4, fail(ErrorKind::failure, "not run"));
  std::vector<std::thread> threads;
  for (auto& r : results)
    threads.emplace_back(
        [&] { r = TemplateStore(store_dir_).ensure(spec_of("busybox"), count_builds); });
  for (auto& t : threads) t.join();
  EXPECT_EQ(builds.load(), 1);
  for (const auto& r : results) {
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->created, results[0]->created);
  }
  EXPECT_EQ(names_in(store_dir_), (std::vector<std::string>{".lock", "busybox"}));
}

TEST_F(TemplateStoreTest, ConcurrentEnsureFromProcessesBuildsOnce) {
  // Each child exits 10 if it built the template, 0 if it found it built, 1 on error.
  std::vector<pid_t> children;
  for (int i = 0; i < 3; ++i) {
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      bool built = false;
      auto t = TemplateStore(store_dir_)
                   .ensure(spec_of("busybox"),
                           [&](std::string_view phase, std::uint64_t, std::uint64_t) {
                             if (phase == "building busybox") built = true;
                           });
      ::_exit(!t ? 1 : built ? 10 : 0);
    }
    children.push_back(pid);
  }
  int builders = 0;
  for (pid_t pid : children) {
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status));
    ASSERT_NE(WEXITSTATUS(status), 1);
    if (WEXITSTATUS(status) == 10) ++builders;
  }
  EXPECT_EQ(builders, 1);
  EXPECT_EQ(names_in(store_dir_), (std::vector<std::string>{".lock", "busybox"}));
}

TEST_F(TemplateStoreTest, StaleBuildDirectoriesAreRemoved) {
  ASSERT_TRUE(fs::make_dirs(store_dir_ + "/.tmp-busybox-999999/rootfs/bin"));
  ASSERT_TRUE(fs::write_file_atomic(store_dir_ + "/.tmp-busybox-999999/rootfs/bin/x", "junk"));
  ASSERT_TRUE(fs::make_dirs(store_dir_ + "/.tmp-dir-0123456789abcdef-42"));
  // An old build that never got its metadata is not a template, and is replaced.
  ASSERT_TRUE(fs::make_dirs(store_dir_ + "/busybox/rootfs"));
  TemplateStore store(store_dir_);
  auto list = store.list();
  ASSERT_TRUE(list);
  EXPECT_TRUE(list->empty());

  auto t = store.ensure(spec_of("busybox"));
  ASSERT_TRUE(t) << t.error().message;
  EXPECT_EQ(names_in(store_dir_), (std::vector<std::string>{".lock", "busybox"}));
}

TEST_F(TemplateStoreTest, ListAndRemove) {
  TemplateStore store(store_dir_);
  auto empty = store.list();
  ASSERT_TRUE(empty) << empty.error().message;  // a store that does not exist yet is empty
  EXPECT_TRUE(empty->empty());

  std::string src = dir_ + "/src";
  ASSERT_TRUE(fs::make_dirs(src + "/etc"));
  ASSERT_TRUE(fs::write_file_atomic(src + "/etc/hostname", "x\n"));
  auto dir_t = store.ensure(spec_of("dir:" + src));
  ASSERT_TRUE(dir_t) << dir_t.error().message;
  auto bb = store.ensure(spec_of("busybox"));
  ASSERT_TRUE(bb) << bb.error().message;
  ASSERT_TRUE(fs::make_dirs(store_dir_ + "/.tmp-busybox-1"));  // not listed

  auto list = store.list();
  ASSERT_TRUE(list) << list.error().message;
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[0].id, "busybox");
  EXPECT_EQ((*list)[1].id, dir_t->id);
  EXPECT_EQ((*list)[1].spec, "dir:" + src);
  EXPECT_EQ((*list)[1].rootfs, dir_t->rootfs);

  for (const char* bad : {"", ".", "..", "../x", "a/b", ".lock", ".tmp-busybox-1"}) {
    auto st = store.remove(bad);
    ASSERT_FALSE(st) << bad;
    EXPECT_EQ(st.error().kind, ErrorKind::usage) << bad;
    EXPECT_EQ(store.load(bad).error().kind, ErrorKind::usage) << bad;
  }
  EXPECT_TRUE(fs::exists(store_dir_ + "/.lock"));
  auto unknown = store.remove("nope");
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().kind, ErrorKind::not_found);

  ASSERT_TRUE(store.remove(dir_t->id));
  EXPECT_FALSE(fs::exists(store_dir_ + "/" + dir_t->id));
  EXPECT_EQ(store.load(dir_t->id).error().kind, ErrorKind::not_found);
  list = store.list();
  ASSERT_TRUE(list);
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ((*list)[0].id, "busybox");
  EXPECT_TRUE(fs::exists(src + "/etc/hostname"));  // the source is untouched
}

TEST_F(TemplateStoreTest, CorruptMetadataIsAnErrorNotACrash) {
  ASSERT_TRUE(fs::make_dirs(store_dir_ + "/broken/rootfs"));
  ASSERT_TRUE(fs::write_file_atomic(store_dir_ + "/broken/template.json", "{\"id\": 3"));
  TemplateStore store(store_dir_);
  auto t = store.load("broken");
  ASSERT_FALSE(t);
  EXPECT_NE(t.error().message.find("template.json"), std::string::npos);
  ASSERT_TRUE(fs::write_file_atomic(store_dir_ + "/broken/template.json", "{\"id\": 3}"));
  EXPECT_FALSE(store.load("broken"));
  EXPECT_FALSE(store.list());  // reported, so that the user can remove it
  EXPECT_TRUE(store.remove("broken"));
}

TEST_F(TemplateStoreTest, MissingSourcesAreNotFoundErrorsNamingThePath) {
  TemplateStore store(store_dir_);
  for (const std::string& text : {"dir:" + dir_ + "/no-such-dir", "tar:" + dir_ + "/no.tar.gz"}) {
    auto t = store.ensure(spec_of(text));
    ASSERT_FALSE(t) << text;
    EXPECT_EQ(t.error().kind, ErrorKind::not_found) << t.error().message;
    EXPECT_NE(t.error().message.find(text.substr(4)), std::string::npos) << t.error().message;
  }
  EXPECT_FALSE(fs::exists(store_dir_));  // nothing was created for them

  ASSERT_TRUE(fs::write_file_atomic(dir_ + "/file", "x"));
  auto not_dir = store.ensure(spec_of("dir:" + dir_ + "/file"));
  ASSERT_FALSE(not_dir);
  EXPECT_EQ(not_dir.error().kind, ErrorKind::usage);
  auto not_file = store.ensure(spec_of("tar:" + dir_));
  ASSERT_FALSE(not_file);
  EXPECT_EQ(not_file.error().kind, ErrorKind::usage);

  auto bad_builtin = store.ensure(TemplateSpec{TemplateSpec::Type::builtin, "debian"});
  ASSERT_FALSE(bad_builtin);
  EXPECT_EQ(bad_builtin.error().kind, ErrorKind::usage);
}

TEST_F(TemplateStoreTest, DirImportCopiesTheTreeFaithfully) {
  const bool root = ::geteuid() == 0;
  const std::string src = dir_ + "/src";
  ASSERT_TRUE(fs::make_dirs(src + "/etc"));
  ASSERT_TRUE(fs::make_dirs(src + "/bin"));
  ASSERT_TRUE(fs::make_dirs(src + "/sbin"));
  ASSERT_TRUE(fs::make_dirs(src + "/secret"));
  ASSERT_EQ(::chmod(src.c_str(), 0750), 0);
  ASSERT_EQ(::chmod((src + "/secret").c_str(), 0700), 0);
  ASSERT_TRUE(fs::write_file_atomic(src + "/etc/config", "value=1\n", 0640));
  ASSERT_EQ(::chmod((src + "/etc/config").c_str(), 0640), 0);
  ASSERT_TRUE(fs::write_file_atomic(src + "/bin/tool", "#!/bin/sh\n", 0755));
  ASSERT_EQ(::chmod((src + "/bin/tool").c_str(), 04755), 0);
  ASSERT_TRUE(fs::write_file_atomic(src + "/bin/busybox",
                                    "\x7f"
                                    "ELF... BusyBox v1.35.0 ..."));
  ASSERT_EQ(::link((src + "/etc/config").c_str(), (src + "/etc/config.hard").c_str()), 0);
  ASSERT_EQ(::symlink("/bin/busybox", (src + "/sbin/init").c_str()), 0);
  ASSERT_EQ(::symlink("/etc/passwd", (src + "/etc/abs-link").c_str()),
            0);  // host file: not followed
  ASSERT_EQ(::symlink("../..", (src + "/etc/up").c_str()), 0);
  ASSERT_EQ(::mkfifo((src + "/fifo").c_str(), 0620), 0);
  ASSERT_EQ(::chmod((src + "/fifo").c_str(), 0620), 0);
  const timespec times[2] = {{1'000'000'000, 0}, {1'234'567'890, 0}};
  ASSERT_EQ(::utimensat(AT_FDCWD, (src + "/etc/config").c_str(), times, AT_SYMLINK_NOFOLLOW), 0);
  if (root) {
    ASSERT_EQ(::lchown((src + "/etc/config").c_str(), 1234, 5678), 0);
  }
  bool xattrs = ::setxattr((src + "/bin/tool").c_str(), "user.kapsel", "yes", 3, 0) == 0;

  TemplateStore store(store_dir_);
  auto t = store.ensure(spec_of("dir:" + src));
  ASSERT_TRUE(t) << t.error().message;
  EXPECT_EQ(t->id.rfind("dir-", 0), 0u);
  EXPECT_EQ(t->id.size(), 4u + 16u);
  EXPECT_EQ(t->spec, "dir:" + src);
  EXPECT_EQ(t->halt_signal, SIGUSR1);  // sbin/init -> /bin/busybox inside the tree
  EXPECT_EQ(t->init, "/sbin/init");
  const std::string r = t->rootfs;

  EXPECT_EQ(lstat_of(r).st_mode & 07777, 0750u);
  EXPECT_EQ(lstat_of(r + "/secret").st_mode & 07777, 0700u);
  EXPECT_EQ(read(r + "/etc/config"), "value=1\n");
  auto config = lstat_of(r + "/etc/config");
  EXPECT_EQ(config.st_mode & 07777, 0640u);
  EXPECT_EQ(config.st_mtim.tv_sec, 1'234'567'890);
  if (root) {
    EXPECT_EQ(config.st_uid, 1234u);
    EXPECT_EQ(config.st_gid, 5678u);
  }
  EXPECT_EQ(lstat_of(r + "/bin/tool").st_mode & 07777, 04755u);
  // Hard links stay hard links, within the copy only.
  auto hard = lstat_of(r + "/etc/config.hard");
  EXPECT_EQ(hard.st_ino, config.st_ino);
  EXPECT_EQ(config.st_nlink, 2u);
  EXPECT_NE(config.st_ino, lstat_of(src + "/etc/config").st_ino);
  // Symlinks are copied as they are, never followed.
  EXPECT_TRUE(S_ISLNK(lstat_of(r + "/etc/abs-link").st_mode));
  EXPECT_EQ(link_of(r + "/etc/abs-link"), "/etc/passwd");
  EXPECT_EQ(link_of(r + "/etc/up"), "../..");
  EXPECT_EQ(link_of(r + "/sbin/init"), "/bin/busybox");
  auto fifo = lstat_of(r + "/fifo");
  EXPECT_TRUE(S_ISFIFO(fifo.st_mode));
  EXPECT_EQ(fifo.st_mode & 07777, 0620u);
  if (xattrs) {
    char value[8] = {};
    EXPECT_EQ(::getxattr((r + "/bin/tool").c_str(), "user.kapsel", value, sizeof value), 3);
    EXPECT_STREQ(value, "yes");
  }
  EXPECT_GT(t->size_bytes, 0u);
}

TEST_F(TemplateStoreTest, DirTemplateIsASnapshotIndependentOfItsSource) {
  const std::string src = dir_ + "/src";
  ASSERT_TRUE(fs::make_dirs(src));
  ASSERT_TRUE(fs::write_file_atomic(src + "/file", "before"));
  TemplateStore store(store_dir_);
  auto t = store.ensure(spec_of("dir:" + src));
  ASSERT_TRUE(t) << t.error().message;

  ASSERT_TRUE(fs::write_file_atomic(src + "/file", "after"));
  ASSERT_TRUE(fs::write_file_atomic(src + "/new", "x"));
  auto again = store.ensure(spec_of("dir:" + src));
  ASSERT_TRUE(again);
  EXPECT_EQ(again->id, t->id);
  EXPECT_EQ(read(t->rootfs + "/file"), "before");
  EXPECT_FALSE(fs::exists(t->rootfs + "/new"));

  ASSERT_TRUE(fs::remove_tree(src));
  EXPECT_EQ(read(t->rootfs + "/file"), "before");
  EXPECT_EQ(t->halt_signal, SIGTERM);  // no /sbin/init at all
  EXPECT_EQ(t->init, "/sbin/init");
}

TEST_F(TemplateStoreTest, DirIdsFollowTheCanonicalPath) {
  ASSERT_TRUE(fs::make_dirs(dir_ + "/a"));
  ASSERT_TRUE(fs::make_dirs(dir_ + "/b"));
  ASSERT_EQ(::symlink("a", (dir_ + "/link").c_str()), 0);
  TemplateStore store(store_dir_);
  auto a = store.id_for(spec_of("dir:" + dir_ + "/a"));
  auto a2 = store.id_for(spec_of("dir:" + dir_ + "/link/"));
  auto a3 = store.id_for(spec_of("dir:" + dir_ + "/b/../a/."));
  auto b = store.id_for(spec_of("dir:" + dir_ + "/b"));
  ASSERT_TRUE(a && a2 && a3 && b);
  EXPECT_EQ(*a, *a2);
  EXPECT_EQ(*a, *a3);
  EXPECT_NE(*a, *b);
  EXPECT_EQ(*store.id_for(spec_of("busybox")), "busybox");
}

TEST_F(TemplateStoreTest, ImportingAParentOfTheStoreDoesNotCopyTheStore) {
  ASSERT_TRUE(fs::write_file_atomic(dir_ + "/file", "x"));
  TemplateStore store(store_dir_);  // inside dir_
  auto t = store.ensure(spec_of("dir:" + dir_));
  ASSERT_TRUE(t) << t.error().message;
  EXPECT_TRUE(fs::exists(t->rootfs + "/file"));
  EXPECT_FALSE(fs::exists(t->rootfs + "/templates"));
}

TEST_F(TemplateStoreTest, RelativeStoreDirectoryGivesAbsoluteRootfs) {
  std::string cwd = std::filesystem::current_path().string();
  ASSERT_EQ(::chdir(dir_.c_str()), 0);
  TemplateStore store("templates/");
  ASSERT_EQ(::chdir(cwd.c_str()), 0);
  ASSERT_TRUE(fs::make_dirs(dir_ + "/src"));
  auto t = store.ensure(spec_of("dir:" + dir_ + "/src"));
  ASSERT_TRUE(t) << t.error().message;
  EXPECT_EQ(t->rootfs, store_dir_ + "/" + t->id + "/rootfs");
  EXPECT_EQ(store.dir(), store_dir_);
}

std::vector<TarEntry> sample_tar() {
  TarEntry hello = file("./etc/hello", "hello\n", 0640);
  hello.uid = 1000;
  hello.gid = 1001;
  hello.mtime = 1'111'111'111;
  return {
      dir("./"),
      dir("./etc/"),
      hello,
      hardlink_to("./etc/hello.hard", "./etc/hello"),
      file("./usr/lib/systemd/systemd", "not really systemd", 0755),
      symlink_to("./usr/sbin/init", "../lib/systemd/systemd"),
      symlink_to("./sbin", "usr/sbin"),
      dir("./tmp/", 01777),
  };
}

void check_sample(const Template& t) {
  const std::string r = t.rootfs;
  EXPECT_EQ(read(r + "/etc/hello"), "hello\n");
  auto hello = lstat_of(r + "/etc/hello");
  EXPECT_EQ(hello.st_mode & 07777, 0640u);
  EXPECT_EQ(hello.st_mtim.tv_sec, 1'111'111'111);
  if (::geteuid() == 0) {
    EXPECT_EQ(hello.st_uid, 1000u);  // by number: names are not looked up on the host
    EXPECT_EQ(hello.st_gid, 1001u);
  }
  EXPECT_EQ(lstat_of(r + "/etc/hello.hard").st_ino, hello.st_ino);
  EXPECT_EQ(link_of(r + "/sbin"), "usr/sbin");
  EXPECT_EQ(lstat_of(r + "/tmp").st_mode & 07777, 01777u);
  EXPECT_EQ(t.halt_signal, SIGRTMIN + 3);  // sbin -> usr/sbin, init -> ../lib/systemd/systemd
  EXPECT_EQ(t.init, "/sbin/init");
  EXPECT_EQ(t.spec.rfind("tar:" + std::string("/"), 0), 0u);
}

TEST_F(TemplateStoreTest, TarImportPlainAndGzip) {
  TemplateStore store(store_dir_);
  for (bool gzip : {false, true}) {
    std::string tar = dir_ + (gzip ? "/rootfs.tar.gz" : "/rootfs.tar");
    write_tar(tar, sample_tar(), gzip);
    std::vector<std::tuple<std::string, std::uint64_t, std::uint64_t>> reports;
    auto t = store.ensure(spec_of("tar:" + tar),
                          [&](std::string_view phase, std::uint64_t done, std::uint64_t total) {
                            reports.emplace_back(std::string(phase), done, total);
                          });
    ASSERT_TRUE(t) << t.error().message;
    EXPECT_EQ(t->id.rfind("tar-", 0), 0u);
    check_sample(*t);
    // Progress in bytes of the file, ending at its size.
    ASSERT_FALSE(reports.empty());
    auto size = static_cast<std::uint64_t>(lstat_of(tar).st_size);
    EXPECT_EQ(reports.back(), std::make_tuple(std::string("extracting"), size, size));
  }
  auto list = store.list();
  ASSERT_TRUE(list);
  EXPECT_EQ(list->size(), 2u);
}

TEST_F(TemplateStoreTest, ChangedTarballGetsANewId) {
  std::string tar = dir_ + "/rootfs.tar";
  write_tar(tar, sample_tar(), false);
  TemplateStore store(store_dir_);
  auto before = store.id_for(spec_of("tar:" + tar));
  ASSERT_TRUE(before);
  auto entries = sample_tar();
  entries.push_back(file("./etc/new", "new"));
  write_tar(tar, entries, false);
  const timespec times[2] = {{1, 0}, {2, 0}};
  ASSERT_EQ(::utimensat(AT_FDCWD, tar.c_str(), times, 0), 0);
  auto after = store.id_for(spec_of("tar:" + tar));
  ASSERT_TRUE(after);
  EXPECT_NE(*before, *after);
}

TEST_F(TemplateStoreTest, TarEntriesReachingOutsideTheTreeAreRefused) {
  // Where a ../ entry would land from <store>/.tmp-<id>-<pid>/rootfs: dir_ itself.
  const std::string outside = dir_ + "/escape";
  struct Attack {
    std::vector<TarEntry> entries;
    std::string refusal;  // part of the error message
  };
  const std::vector<Attack> attacks = {
      {{dir("./etc/"), file("../../../escape", "pwned")},
       "refusing entry '../../../escape': '..' leads outside the tree"},
      {{dir("./etc/"), file("etc/../../../../escape", "pwned")}, "'..' leads outside the tree"},
      {{file(outside, "pwned")}, "refusing entry '" + outside + "': absolute path"},
      {{symlink_to("./link", dir_), file("./link/escape", "pwned")}, "symlink"},
      {{hardlink_to("./hard", dir_ + "/victim")},
       "refusing entry './hard': hard link to '" + dir_ + "/victim': absolute path"},
      {{hardlink_to("./hard", "../../../victim")}, "'..' leads outside the tree"},
  };
  ASSERT_TRUE(fs::write_file_atomic(dir_ + "/victim", "keep"));
  TemplateStore store(store_dir_);
  int n = 0;
  for (const auto& attack : attacks) {
    for (bool gzip : {false, true}) {
      std::string tar = dir_ + "/attack" + std::to_string(n++) + (gzip ? ".tar.gz" : ".tar");
      SCOPED_TRACE(tar);
      write_tar(tar, attack.entries, gzip);
      auto t = store.ensure(spec_of("tar:" + tar));
      ASSERT_FALSE(t);
      EXPECT_NE(t.error().message.find("extracting " + tar + ": "), std::string::npos)
          << t.error().message;
      EXPECT_NE(t.error().message.find(attack.refusal), std::string::npos) << t.error().message;
      EXPECT_FALSE(fs::exists(outside));
      EXPECT_FALSE(exists_below(dir_, "escape"));
      EXPECT_EQ(read(dir_ + "/victim"), "keep");
      EXPECT_EQ(lstat_of(dir_ + "/victim").st_nlink, 1u);
      // A failed build leaves nothing behind.
      EXPECT_EQ(names_in(store_dir_), std::vector<std::string>{".lock"});
    }
  }
}

TEST_F(TemplateStoreTest, NotATarballIsAnError) {
  ASSERT_TRUE(fs::write_file_atomic(dir_ + "/junk.tar", std::string(4096, 'x')));
  TemplateStore store(store_dir_);
  auto t = store.ensure(spec_of("tar:" + dir_ + "/junk.tar"));
  ASSERT_FALSE(t);
  EXPECT_NE(t.error().message.find("junk.tar"), std::string::npos);
  EXPECT_EQ(names_in(store_dir_), std::vector<std::string>{".lock"});
}

}  // namespace
}  // namespace kapsel::image
