#include "security/capabilities.hpp"

#include <sys/capability.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>

#include "common/fs.hpp"

namespace kapsel::security {
namespace {

bool equals_ignoring_case(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string upper(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

bool is_all(std::string_view name) {
  return equals_ignoring_case(name, "ALL");
}

// libcap's name ("cap_net_admin"), or the number as text for a capability newer than libcap.
std::string libcap_name(int cap) {
  char* name = ::cap_to_name(static_cast<cap_value_t>(cap));
  if (name == nullptr) return std::to_string(cap);
  std::string out(name);
  ::cap_free(name);
  return out;
}

tl::unexpected<Error> unknown(std::string_view name) {
  return fail(ErrorKind::usage, "unknown capability '" + std::string(name) +
                                    "' (see capabilities(7), e.g. NET_ADMIN)");
}

// Every capability the kernel knows.
CapSet every_capability(int last_cap) {
  return last_cap >= 63 ? ~CapSet{0} : (CapSet{1} << (last_cap + 1)) - 1;
}

}  // namespace

CapSet default_capabilities() {
  // Docker's and runc's default set: what ordinary services and package managers need (file
  // ownership, setuid/setgid for daemons that drop privileges, binding ports below 1024, ping,
  // mknod of device nodes the device rules then allow or not). CAP_SYS_BOOT on top: a VE's init
  // halts and reboots through reboot(2), which in a pid namespace other than the host's only
  // ends that namespace (its init dies with the matching signal), so the host is not at risk.
  // LXC keeps it for the same reason.
  static constexpr int kDefault[] = {
      CAP_CHOWN,   CAP_DAC_OVERRIDE, CAP_FSETID,           CAP_FOWNER,
      CAP_MKNOD,   CAP_NET_RAW,      CAP_SETGID,           CAP_SETUID,
      CAP_SETFCAP, CAP_SETPCAP,      CAP_NET_BIND_SERVICE, CAP_SYS_CHROOT,
      CAP_KILL,    CAP_AUDIT_WRITE,  CAP_SYS_BOOT};
  CapSet caps = 0;
  for (int c : kDefault) caps |= cap_bit(c);
  return caps;
}

int last_capability() {
  // The kernel's answer cannot change while kapsel runs; read it once.
  static const int last = [] {
    auto text = fs::read_file("/proc/sys/kernel/cap_last_cap");
    if (text) {
      int n = -1;
      const char* end = text->data() + text->size();
      auto [ptr, ec] = std::from_chars(text->data(), end, n);
      if (ec == std::errc() && ptr != text->data() && n >= 0 && n < 64) return n;
    }
    return static_cast<int>(CAP_LAST_CAP);
  }();
  return last;
}

Result<int> capability_from_name(std::string_view name) {
  if (is_all(name)) {
    return fail(ErrorKind::usage,
                "capability 'ALL' stands for every capability, not a single one (only "
                "--cap-add and --cap-drop take it)");
  }
  std::string_view bare = name;
  if (bare.size() > 4 && equals_ignoring_case(bare.substr(0, 4), "CAP_")) bare.remove_prefix(4);
  if (bare.empty() || !std::all_of(bare.begin(), bare.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
      }))
    return unknown(name);
  int last = last_capability();

  if (std::all_of(bare.begin(), bare.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    // Only for capabilities that libcap cannot name, so that capability_names() always has an
    // inverse; a number where a name exists is more likely a typo than a wish.
    int n = -1;
    auto [ptr, ec] = std::from_chars(bare.data(), bare.data() + bare.size(), n);
    if (ec != std::errc() || ptr != bare.data() + bare.size() || n < 0 || n > last ||
        libcap_name(n) != std::to_string(n))
      return unknown(name);
    return n;
  }

  std::string wanted = "cap_" + lower(bare);
  cap_value_t value = 0;
  // libcap stops reading a name at the first character that cannot be part of one, so
  // "cap_chown2" would be CAP_CHOWN: only a name that comes back the same counts.
  if (::cap_from_name(wanted.c_str(), &value) != 0 || value < 0 || value > 63 ||
      libcap_name(value) != wanted)
    return unknown(name);
  if (value > last) {
    return fail(ErrorKind::usage, "capability " + capability_name(value) +
                                      " is unknown to this kernel (the last it knows is " +
                                      capability_name(last) + ")");
  }
  return static_cast<int>(value);
}

std::string capability_name(int cap) {
  return upper(libcap_name(cap));
}

Result<CapSet> resolve_capabilities(const std::vector<std::string>& add,
                                    const std::vector<std::string>& drop) {
  bool add_all = false, drop_all = false;
  CapSet added = 0, dropped = 0;
  struct List {
    const std::vector<std::string>& names;
    const char* option;
    bool& all;
    CapSet& set;
  };
  for (const List& list :
       {List{add, "--cap-add", add_all, added}, List{drop, "--cap-drop", drop_all, dropped}}) {
    for (const auto& name : list.names) {
      if (is_all(name)) {
        list.all = true;
        continue;
      }
      auto cap = capability_from_name(name);
      if (!cap) return tl::unexpected(cap.error().context(list.option));
      list.set |= cap_bit(*cap);
    }
  }
  CapSet every = every_capability(last_capability());
  CapSet caps = drop_all ? 0 : default_capabilities();
  caps = add_all ? every : caps | added;
  // Drops last: a capability named in both lists is dropped, the safer reading of a
  // contradiction, and "--cap-add ALL --cap-drop X" means all but X.
  caps &= ~dropped;
  return caps & every;
}

std::vector<std::string> capability_names(CapSet caps) {
  std::vector<std::string> names;
  for (int c = 0; c < 64; ++c) {
    if (caps & cap_bit(c)) names.push_back(capability_name(c));
  }
  return names;
}

Result<CapSet> capabilities_from_names(const std::vector<std::string>& names) {
  CapSet caps = 0;
  for (const auto& name : names) {
    auto cap = capability_from_name(name);
    if (!cap) return tl::unexpected(cap.error());
    caps |= cap_bit(*cap);
  }
  return caps;
}

CapabilityPlan plan_capabilities(CapSet keep) {
  CapabilityPlan plan;
  plan.last_cap = last_capability();
  // capset(2) refuses bits the kernel does not know.
  plan.keep = keep & every_capability(plan.last_cap);
  return plan;
}

int apply_capabilities(const CapabilityPlan& plan) noexcept {
  // The bounding set first: dropping from it needs CAP_SETPCAP in the effective set, which the
  // capset below may take away. It is what makes the drop last across execve for root, whose
  // permitted set after exec is the whole bounding set.
  for (int c = 0; c <= plan.last_cap; ++c) {
    if (plan.keep & cap_bit(c)) continue;
    if (::prctl(PR_CAPBSET_DROP, c, 0, 0, 0) != 0) return errno;
  }
  // Ambient capabilities (Linux 4.3) survive execve of ordinary programs; older kernels have
  // none to clear and say EINVAL.
  if (::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL)
    return errno;
  // The raw system call: libcap's cap_set_proc allocates. Version 3 carries 64 bits as two
  // 32-bit halves.
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {};
  for (int i = 0; i < _LINUX_CAPABILITY_U32S_3; ++i) {
    auto half = static_cast<std::uint32_t>(plan.keep >> (32 * i));
    data[i].effective = half;
    data[i].permitted = half;
    data[i].inheritable = 0;
  }
  if (::syscall(SYS_capset, &header, data) != 0) return errno;
  return 0;
}

}  // namespace kapsel::security
