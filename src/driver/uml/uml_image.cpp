#include "driver/uml/uml_image.hpp"

#include <dirent.h>

#include <fcntl.h>
#include <spawn.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <sstream>
#include <vector>

#include "agent/guest_network.hpp"
#include "common/fs.hpp"
#include "common/process.hpp"

extern char** environ;

namespace kapsel::driver::uml {

Result<std::string> find_agent() {
  std::vector<std::string> candidates;
  if (const char* env = std::getenv("KAPSEL_AGENT"); env && *env) candidates.emplace_back(env);
  std::string self = proc::self_exe();
  if (auto slash = self.rfind('/'); slash != std::string::npos)
    candidates.push_back(self.substr(0, slash) + "/kapsel-agent");
  candidates.push_back(std::string(KAPSEL_PLUGIN_INSTALL_DIR) + "/kapsel-agent");
  candidates.push_back(std::string(KAPSEL_PLUGIN_BUILD_DIR) + "/kapsel-agent");
  for (const auto& c : candidates) {
    if (::access(c.c_str(), R_OK) == 0) return c;
  }
  return fail(ErrorKind::not_found,
              "the guest agent kapsel-agent is missing (looked next to kapsel and in " +
                  std::string(KAPSEL_PLUGIN_INSTALL_DIR) +
                  "; reinstall kapsel or set KAPSEL_AGENT)");
}

std::string uml_inittab(const std::string& original) {
  std::string base = original.empty() ? "::sysinit:/etc/init.d/rcS\n" : original;
  std::istringstream in(base);
  std::string out, line;
  while (std::getline(in, line)) {
    if (line.find(":ctrlaltdel:") != std::string::npos && line.rfind('#', 0) != 0)
      line = "::ctrlaltdel:/sbin/poweroff";
    // The console's shell would compete with nothing, but asks for Enter on a line that
    // `kapsel console` may never attach to; it stays, as on a real machine.
    out += line + "\n";
  }
  out +=
      "\n# kapsel: the guest agent behind `kapsel exec` and `kapsel enter`, on its serial line.\n";
  out += std::string("::respawn:") + kAgentGuestPath + " " + kAgentLine + "\n";
  return out;
}

Status run_program(const std::vector<std::string>& argv) {
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) return errno_fail("running " + argv[0]);
  UniqueFd err_read(pipe_fds[0]), err_write(pipe_fds[1]);
  posix_spawn_file_actions_t actions;
  ::posix_spawn_file_actions_init(&actions);
  ::posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  ::posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
  ::posix_spawn_file_actions_adddup2(&actions, err_write.get(), STDERR_FILENO);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = 0;
  int rc = ::posix_spawnp(&pid, argv[0].c_str(), &actions, nullptr, args.data(), environ);
  ::posix_spawn_file_actions_destroy(&actions);
  err_write.reset();
  if (rc != 0) return sys_fail(rc, "running " + argv[0]);
  std::string err = proc::read_to_eof(err_read.get());
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return errno_fail("waiting for " + argv[0]);
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    while (!err.empty() && err.back() == '\n') err.pop_back();
    return fail(ErrorKind::failure,
                argv[0] + " failed" + (err.empty() ? std::string() : ": " + err));
  }
  return {};
}

// Bytes the tree under `dir` takes (du -s), for the image's size.
static std::uint64_t tree_bytes(const std::string& dir) {
  std::uint64_t total = 0;
  std::vector<std::string> stack = {dir};
  while (!stack.empty()) {
    std::string d = stack.back();
    stack.pop_back();
    UniqueFd fd(::open(d.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW));
    if (!fd) continue;
    auto names = fs::list_dir(fd.get(), d);
    if (!names) continue;
    for (const auto& n : *names) {
      struct stat st {};
      std::string p = d + "/" + n;
      if (::lstat(p.c_str(), &st) != 0) continue;
      total += static_cast<std::uint64_t>(st.st_blocks) * 512;
      if (S_ISDIR(st.st_mode)) stack.push_back(p);
    }
  }
  return total;
}

// The UML kernel's IPv6 module and those it needs, in load order (its dependencies first, as
// modules.dep lists them, last first), from /usr/lib/uml/modules/VERSION of the package
// user-mode-linux; empty if there is none.
static std::vector<std::string> uml_ipv6_modules() {
  const std::string base = "/usr/lib/uml/modules";
  DIR* d = ::opendir(base.c_str());
  if (!d) return {};
  std::string dir;
  while (auto* e = ::readdir(d)) {
    if (e->d_name[0] != '.' && fs::exists(base + "/" + e->d_name + "/modules.dep"))
      dir = base + "/" + e->d_name;
  }
  ::closedir(d);
  if (dir.empty()) return {};
  auto dep = fs::read_file(dir + "/modules.dep");
  if (!dep) return {};
  std::istringstream lines(*dep);
  std::string line;
  while (std::getline(lines, line)) {
    if (!line.starts_with("kernel/net/ipv6/ipv6.ko:")) continue;
    std::istringstream words(line.substr(line.find(':') + 1));
    std::vector<std::string> needed;
    for (std::string w; words >> w;) needed.push_back(dir + "/" + w);
    std::reverse(needed.begin(), needed.end());
    needed.push_back(dir + "/kernel/net/ipv6/ipv6.ko");
    return needed;
  }
  return {};
}

// Builds an ext4 image at `image` from the template's tree with the agent and the UML inittab
// added: `size_bytes` large, or (0) twice the tree plus room, at least 1 GiB. Written to a
// temporary name and renamed, so a half-built image is never used.
static Status build_image(const image::Template& tmpl, const std::string& image,
                          std::uint64_t size_bytes, const image::ProgressFn& progress) {
  auto agent = find_agent();
  if (!agent) return tl::unexpected(agent.error());
  if (progress) progress("building the UML disk image", 0, 3);
  // A copy of the tree with the agent and the UML inittab added, since mke2fs -d takes one
  // directory. It is small next to the image, and gone when the image is made.
  std::string staging = image + ".staging";
  (void)fs::remove_tree(staging);
  auto cleanup = [&] { (void)fs::remove_tree(staging); };
  KAPSEL_TRY(run_program({"cp", "-a", tmpl.rootfs, staging}), "copying the template");
  if (progress) progress("building the UML disk image", 1, 3);
  auto agent_bytes = fs::read_file(*agent);
  if (!agent_bytes) {
    cleanup();
    return tl::unexpected(agent_bytes.error());
  }
  auto original = fs::read_file(staging + "/etc/inittab");
  Status st = fs::make_dirs(staging + "/sbin");
  if (st) st = fs::write_file_atomic(staging + kAgentGuestPath, *agent_bytes, 0755, false);
  if (st) st = fs::make_dirs(staging + "/etc");
  if (st) {
    // Debian's linux.uml has IPv6 as a module (CONFIG_IPV6=m): the guest gets it, for the agent
    // to load on an IPv6 network.
    auto modules = uml_ipv6_modules();
    std::string into = staging + agent::kIpv6ModuleDir;
    if (!modules.empty()) st = fs::make_dirs(into);
    for (std::size_t i = 0; st && i < modules.size(); ++i) {
      auto bytes = fs::read_file(modules[i]);
      if (!bytes) {
        st = tl::unexpected(bytes.error());
        break;
      }
      std::string name = modules[i].substr(modules[i].rfind('/') + 1);
      st = fs::write_file_atomic(into + "/" + std::to_string(i + 1) + "-" + name, *bytes, 0644,
                                 false);
    }
  }
  if (st)
    st = fs::write_file_atomic(staging + "/etc/inittab", uml_inittab(original ? *original : ""),
                               0644, false);
  if (!st) {
    cleanup();
    return tl::unexpected(st.error().context("preparing the UML image's tree"));
  }
  std::uint64_t used = tree_bytes(staging);
  std::uint64_t mib = size_bytes >> 20;
  if (size_bytes == 0) {
    // Room for the VEs' own files: the image is sparse, so its size costs nothing until used.
    mib = std::max<std::uint64_t>(1024, used * 2 / (1 << 20) + 256);
  } else if (std::uint64_t need = minimum_disk_bytes(used); size_bytes < need) {
    cleanup();
    return fail(ErrorKind::usage, "--disk " + std::to_string(mib) + "M is too small for template " +
                                      tmpl.spec + ": it needs at least " +
                                      std::to_string(need >> 20) + "M");
  }
  std::string tmp = image + ".tmp";
  st = run_program({"mke2fs", "-q", "-F", "-t", "ext4", "-L", "kapsel-root", "-d", staging, tmp,
                    std::to_string(mib) + "M"});
  cleanup();
  if (!st) {
    ::unlink(tmp.c_str());
    if (st.error().code == ENOENT)
      return fail(ErrorKind::not_found, "mke2fs is missing: install the Debian package e2fsprogs");
    return tl::unexpected(st.error().context("building the UML disk image"));
  }
  if (::rename(tmp.c_str(), image.c_str()) != 0) {
    ::unlink(tmp.c_str());
    return errno_fail("installing " + image);
  }
  if (progress) progress("building the UML disk image", 3, 3);
  return {};
}

std::uint64_t minimum_disk_bytes(std::uint64_t tree_bytes) {
  // ext4's own metadata (inode tables, journal) on top of the files, with a margin.
  return tree_bytes + tree_bytes / 4 + (64ull << 20);
}

Result<std::string> ensure_image(const image::Template& tmpl, const image::ProgressFn& progress) {
  std::string dir = tmpl.rootfs.substr(0, tmpl.rootfs.rfind('/'));
  std::string image = dir + "/uml.ext4";
  if (fs::exists(image)) return image;
  std::string lock_path = dir + "/uml.lock";
  UniqueFd lock(::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (!lock || ::flock(lock.get(), LOCK_EX) != 0) return errno_fail("locking " + lock_path);
  if (fs::exists(image)) return image;  // another command built it meanwhile
  if (auto st = build_image(tmpl, image, 0, progress); !st) return tl::unexpected(st.error());
  // Read-only for good: every VE's COW file records the image's mtime, which must not change.
  if (::chmod(image.c_str(), 0444) != 0) return errno_fail("making " + image + " read-only");
  return image;
}

Status build_own_image(const image::Template& tmpl, const std::string& image,
                       std::uint64_t size_bytes, const image::ProgressFn& progress) {
  return build_image(tmpl, image, size_bytes, progress);
}

}  // namespace kapsel::driver::uml
