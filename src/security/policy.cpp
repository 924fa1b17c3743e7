#include "security/policy.hpp"

#include <sys/prctl.h>
#include <sys/stat.h>

#include <cstring>
#include <functional>

#include "common/fs.hpp"

namespace kapsel::security {

namespace {

// The running kapsel binary, as far as a cached program is concerned: another build makes
// other programs.
std::string binary_identity() {
  struct stat exe {};
  (void)::stat("/proc/self/exe", &exe);
  return "kapsel " + std::to_string(exe.st_dev) + ":" + std::to_string(exe.st_ino) + ":" +
         std::to_string(exe.st_size) + ":" + std::to_string(exe.st_mtim.tv_sec) + "." +
         std::to_string(exe.st_mtim.tv_nsec) + "\n";
}

}  // namespace

std::string program_bytes(const std::vector<sock_filter>& program) {
  return std::string(reinterpret_cast<const char*>(program.data()),
                     program.size() * sizeof(sock_filter));
}

std::optional<std::vector<sock_filter>> program_from_bytes(std::string_view bytes) {
  if (bytes.size() % sizeof(sock_filter) != 0 || bytes.size() / sizeof(sock_filter) > BPF_MAXINSNS)
    return std::nullopt;
  std::vector<sock_filter> program(bytes.size() / sizeof(sock_filter));
  std::memcpy(program.data(), bytes.data(), bytes.size());
  return program;
}

Result<std::vector<sock_filter>> cached_program(
    const std::string& cache_dir, const std::string& what,
    const std::function<Result<std::vector<sock_filter>>()>& build) {
  // The key in full is stored at the head of the file and compared on every load, so that a
  // hash collision can never hand a VE another program.
  const std::string key = binary_identity() + what;
  char name[32];
  std::snprintf(name, sizeof name, "%016zx.bpf", std::hash<std::string>{}(key));
  const std::string path = cache_dir + "/" + name;
  if (auto bytes = fs::read_file(path)) {
    std::string_view text = *bytes;
    if (text.size() > key.size() + 1 && text.substr(0, key.size()) == key &&
        text[key.size()] == '\0') {
      if (auto program = program_from_bytes(text.substr(key.size() + 1)))
        return std::move(*program);
    }
  }
  auto program = build();
  if (!program) return program;
  // A cache that cannot be written costs the next start the build again, nothing more.
  if (fs::make_dirs(cache_dir, 0700)) {
    (void)fs::write_file_atomic(path, key + '\0' + program_bytes(*program), 0600,
                                /*durable=*/false);
  }
  return program;
}

Result<VePolicy> make_policy(const store::SecurityConfig& config, const std::string& cache_dir,
                             const std::vector<sock_filter>* seccomp,
                             const std::vector<std::string>& notified) {
  VePolicy p;
  if (config.capabilities) {
    auto caps = capabilities_from_names(*config.capabilities);
    if (!caps) return tl::unexpected(caps.error().context("the VE's capabilities"));
    p.caps = *caps;
  } else {
    p.caps = default_capabilities();
  }
  p.cap_plan = plan_capabilities(p.caps);
  if (seccomp) {
    p.seccomp = *seccomp;
    p.seccomp_notifies = !notified.empty();
  } else {
    auto spec = parse_seccomp_option(config.seccomp);
    if (!spec) return tl::unexpected(spec.error().context("the VE's seccomp setting"));
    p.seccomp_spec = *spec;
    Result<std::vector<sock_filter>> program = std::vector<sock_filter>{};
    p.seccomp_notifies = p.seccomp_spec.mode == SeccompMode::default_profile && !notified.empty();
    if (p.seccomp_spec.mode != SeccompMode::unconfined) {
      std::string what =
          "caps " + std::to_string(p.caps) + "\nprofile " + to_string(p.seccomp_spec) + "\n";
      if (p.seccomp_notifies) {
        what += "notified";
        for (const auto& call : notified) what += " " + call;
        what += "\n";
      }
      if (p.seccomp_spec.mode == SeccompMode::file) {
        auto text = fs::read_file(p.seccomp_spec.file);
        if (!text) return tl::unexpected(text.error().context("the VE's seccomp profile"));
        what += *text;
      }
      program = cached_program(cache_dir, what, [&] {
        return build_seccomp_program(p.seccomp_spec, p.caps,
                                     p.seccomp_notifies ? notified : std::vector<std::string>{});
      });
    }
    if (!program) return tl::unexpected(program.error().context("the VE's seccomp filter"));
    p.seccomp = std::move(*program);
  }
  for (const auto& d : config.devices) {
    auto dev = parse_device_option(d);
    if (!dev) return tl::unexpected(dev.error().context("the VE's devices"));
    p.devices.push_back(std::move(*dev));
  }
  p.device_rules = device_rules(p.devices);
  return p;
}

int enter_policy(const VePolicy& policy, const char** step) noexcept {
  return enter_policy(policy, nullptr, nullptr, step);
}

int enter_policy(const VePolicy& policy, const std::vector<sock_filter>* virtualiser, int* listener,
                 const char** step) noexcept {
  if (listener) *listener = -1;
  // no_new_privs first: set-uid programs in the VE gain nothing, and the filters may be loaded
  // without CAP_SYS_ADMIN once that is gone.
  if (policy.no_new_privs && ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
    *step = "setting no_new_privs";
    return errno;
  }
  if (policy.no_new_privs) {
    if (int err = apply_capabilities(policy.cap_plan); err != 0) {
      *step = "dropping capabilities";
      return err;
    }
  }
  bool notifies = listener && policy.seccomp_notifies && !policy.seccomp.empty();
  if (listener && !notifies && virtualiser && !virtualiser->empty()) {
    if (int err = load_seccomp_program(*virtualiser, listener); err != 0) {
      *step = "loading the syscall virtualiser's filter";
      return err;
    }
  }
  if (int err = load_seccomp_program(policy.seccomp, notifies ? listener : nullptr); err != 0) {
    *step = "loading the seccomp filter";
    return err;
  }
  if (!policy.no_new_privs) {
    if (int err = apply_capabilities(policy.cap_plan); err != 0) {
      *step = "dropping capabilities";
      return err;
    }
  }
  return 0;
}

}  // namespace kapsel::security
