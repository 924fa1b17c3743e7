#include "cgroup/devices.hpp"

#include <fcntl.h>
#include <linux/bpf.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <limits>

#include "common/unique_fd.hpp"

namespace kapsel::cgroup {
namespace {

// The access bits of struct bpf_cgroup_dev_ctx's access_type (linux/bpf.h), which v1 uses too.
constexpr int kMknod = BPF_DEVCG_ACC_MKNOD;
constexpr int kRead = BPF_DEVCG_ACC_READ;
constexpr int kWrite = BPF_DEVCG_ACC_WRITE;
constexpr int kAllAccess = kMknod | kRead | kWrite;

// The access as bits, or -1 if it is empty or has anything but r, w and m (each at most once).
int access_bits(const std::string& access) {
  int bits = 0;
  for (char c : access) {
    int bit = c == 'r' ? kRead : c == 'w' ? kWrite : c == 'm' ? kMknod : 0;
    if (bit == 0 || (bits & bit)) return -1;
    bits |= bit;
  }
  return bits == 0 ? -1 : bits;
}

std::string access_text(int bits) {
  std::string out;
  if (bits & kRead) out += 'r';
  if (bits & kWrite) out += 'w';
  if (bits & kMknod) out += 'm';
  return out;
}

std::string number_text(std::int64_t n) {
  return n < 0 ? "*" : std::to_string(n);
}

bool matches_everything(const DeviceRule& r) {
  return r.type == 'a' && r.major == -1 && r.minor == -1 && access_bits(r.access) == kAllAccess;
}

// --- eBPF instructions (the kernel's encoding, Documentation/bpf/standardization/) ---------

constexpr std::uint8_t R0 = BPF_REG_0, R1 = BPF_REG_1, R2 = BPF_REG_2, R3 = BPF_REG_3,
                       R4 = BPF_REG_4, R5 = BPF_REG_5;

bpf_insn insn(std::uint8_t code, std::uint8_t dst, std::uint8_t src, std::int16_t off,
              std::int32_t imm) {
  bpf_insn i{};
  i.code = code;
  i.dst_reg = dst & 0xf;
  i.src_reg = src & 0xf;
  i.off = off;
  i.imm = imm;
  return i;
}
// dst = *(u32 *)(src + off), zero-extended to 64 bits.
bpf_insn load_u32(std::uint8_t dst, std::uint8_t src, std::int16_t off) {
  return insn(BPF_LDX | BPF_MEM | BPF_W, dst, src, off, 0);
}
// 32-bit ALU operations zero the upper half of dst, so 64-bit compares below see the u32.
bpf_insn alu32_imm(std::uint8_t op, std::uint8_t dst, std::int32_t imm) {
  return insn(BPF_ALU | op | BPF_K, dst, 0, 0, imm);
}
bpf_insn mov32_reg(std::uint8_t dst, std::uint8_t src) {
  return insn(BPF_ALU | BPF_MOV | BPF_X, dst, src, 0, 0);
}
bpf_insn mov64_imm(std::uint8_t dst, std::int32_t imm) {
  return insn(BPF_ALU64 | BPF_MOV | BPF_K, dst, 0, 0, imm);
}
// if dst != imm goto pc + 1 + off (off filled in once the target is known). Plain BPF_JMP rather
// than BPF_JMP32 (Linux 5.1): the values are zero-extended u32 and the immediates non-negative.
bpf_insn jne_imm(std::uint8_t dst, std::int32_t imm) {
  return insn(BPF_JMP | BPF_JNE | BPF_K, dst, 0, 0, imm);
}
bpf_insn jeq_imm(std::uint8_t dst, std::int32_t imm) {
  return insn(BPF_JMP | BPF_JEQ | BPF_K, dst, 0, 0, imm);
}
bpf_insn jne_reg(std::uint8_t dst, std::uint8_t src) {
  return insn(BPF_JMP | BPF_JNE | BPF_X, dst, src, 0, 0);
}
bpf_insn exit_insn() {
  return insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 0);
}

// --- bpf(2) --------------------------------------------------------------------------------

std::uint64_t ptr(const void* p) {
  return reinterpret_cast<std::uintptr_t>(p);
}

int sys_bpf(int cmd, bpf_attr& attr) {
  return static_cast<int>(::syscall(SYS_bpf, cmd, &attr, sizeof attr));
}

// The license only matters for helpers the kernel reserves to GPL programs; a device program
// calls no helper at all.
constexpr char kLicense[] = "GPL";

Result<UniqueFd> load_program(const std::vector<bpf_insn>& program) {
  auto load = [&](char* log, std::uint32_t log_size) {
    bpf_attr attr{};
    attr.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE;
    attr.insn_cnt = static_cast<std::uint32_t>(program.size());
    attr.insns = ptr(program.data());
    attr.license = ptr(kLicense);
    attr.expected_attach_type = BPF_CGROUP_DEVICE;
    std::strncpy(attr.prog_name, kDeviceProgramName, sizeof attr.prog_name - 1);
    if (log != nullptr) {
      attr.log_level = 1;
      attr.log_buf = ptr(log);
      attr.log_size = log_size;
    }
    return sys_bpf(BPF_PROG_LOAD, attr);  // close-on-exec, as every bpf descriptor
  };
  int fd = load(nullptr, 0);
  if (fd >= 0) return UniqueFd(fd);
  int err = errno;
  if (err == EPERM || err == ENOSYS) return sys_fail(err, "loading the cgroup device program");
  // Asked only after a failure: a log of a program that loads can outgrow the buffer (ENOSPC),
  // which would make the load itself fail.
  std::string log(std::size_t{64} * 1024, '\0');
  fd = load(log.data(), static_cast<std::uint32_t>(log.size()));
  if (fd >= 0) return UniqueFd(fd);  // a passing failure (ENOMEM, EAGAIN)
  log.resize(std::strlen(log.c_str()));
  while (!log.empty() && log.back() == '\n') log.pop_back();
  std::string tail = log.substr(log.rfind('\n') == std::string::npos ? 0 : log.rfind('\n') + 1);
  return sys_fail(err, "loading the cgroup device program" +
                           (tail.empty() ? std::string() : " (the verifier says: " + tail + ")"));
}

Result<UniqueFd> open_cgroup(const std::string& dir) {
  UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) return errno_fail("opening cgroup " + dir);
  return fd;
}

// Every device program attached to the cgroup itself, with their descriptors, that is
// kapsel's.
Result<std::vector<std::pair<std::uint32_t, UniqueFd>>> kapsel_programs(int cgroup,
                                                                        const std::string& dir) {
  std::vector<std::uint32_t> ids(8);
  for (;;) {
    bpf_attr attr{};
    attr.query.target_fd = static_cast<std::uint32_t>(cgroup);
    attr.query.attach_type = BPF_CGROUP_DEVICE;
    attr.query.prog_ids = ptr(ids.data());
    attr.query.prog_cnt = static_cast<std::uint32_t>(ids.size());
    if (sys_bpf(BPF_PROG_QUERY, attr) == 0) {
      ids.resize(attr.query.prog_cnt);
      break;
    }
    // ENOSPC: more programs than room; prog_cnt now holds how many.
    if (errno != ENOSPC || attr.query.prog_cnt <= ids.size())
      return errno_fail("listing the device programs of cgroup " + dir);
    ids.resize(attr.query.prog_cnt);
  }
  std::vector<std::pair<std::uint32_t, UniqueFd>> ours;
  for (std::uint32_t id : ids) {
    bpf_attr attr{};
    attr.prog_id = id;
    UniqueFd fd(sys_bpf(BPF_PROG_GET_FD_BY_ID, attr));
    if (!fd) {
      if (errno == ENOENT) continue;  // detached and freed since the query
      return errno_fail("opening device program " + std::to_string(id) + " of cgroup " + dir);
    }
    bpf_prog_info info{};
    bpf_attr get{};
    get.info.bpf_fd = static_cast<std::uint32_t>(fd.get());
    get.info.info_len = sizeof info;
    get.info.info = ptr(&info);
    if (sys_bpf(BPF_OBJ_GET_INFO_BY_FD, get) != 0)
      return errno_fail("inspecting device program " + std::to_string(id) + " of cgroup " + dir);
    if (std::strncmp(info.name, kDeviceProgramName, sizeof info.name) == 0)
      ours.emplace_back(id, std::move(fd));
  }
  return ours;
}

int attach(int cgroup, int program, int replace) {
  bpf_attr attr{};
  attr.target_fd = static_cast<std::uint32_t>(cgroup);
  attr.attach_bpf_fd = static_cast<std::uint32_t>(program);
  attr.attach_type = BPF_CGROUP_DEVICE;
  attr.attach_flags = BPF_F_ALLOW_MULTI;
  if (replace >= 0) {
    attr.attach_flags |= BPF_F_REPLACE;
    attr.replace_bpf_fd = static_cast<std::uint32_t>(replace);
  }
  return sys_bpf(BPF_PROG_ATTACH, attr);
}

int detach(int cgroup, int program) {
  bpf_attr attr{};
  attr.target_fd = static_cast<std::uint32_t>(cgroup);
  attr.attach_bpf_fd = static_cast<std::uint32_t>(program);
  attr.attach_type = BPF_CGROUP_DEVICE;
  return sys_bpf(BPF_PROG_DETACH, attr);
}

}  // namespace

Status check_rule(const DeviceRule& r) {
  std::string what = "device rule '" + std::string(1, r.type) + " " + number_text(r.major) + ":" +
                     number_text(r.minor) + " " + r.access + "'";
  if (r.type != 'a' && r.type != 'c' && r.type != 'b')
    return fail(ErrorKind::usage, what + ": the type must be 'a' (all), 'c' or 'b'");
  if (access_bits(r.access) < 0) {
    return fail(ErrorKind::usage,
                what + ": the access must be one or more of 'r', 'w' and 'm', each once");
  }
  constexpr std::int64_t kMax = std::numeric_limits<std::int32_t>::max();
  for (std::int64_t n : {r.major, r.minor}) {
    if (n < -1 || n > kMax) {
      return fail(ErrorKind::usage,
                  what + ": a device number must be -1 (any) or 0 to " + std::to_string(kMax));
    }
  }
  return {};
}

std::string to_v1_line(const DeviceRule& r) {
  int bits = access_bits(r.access);
  return std::string(1, r.type) + " " + number_text(r.major) + ":" + number_text(r.minor) + " " +
         (bits < 0 ? r.access : access_text(bits));
}

Result<std::vector<V1DeviceWrite>> v1_device_writes(const std::vector<DeviceRule>& rules) {
  std::vector<V1DeviceWrite> writes{{"devices.deny", "a"}};
  for (const auto& r : rules) {
    KAPSEL_TRY(check_rule(r), "device rules");
    std::string file = r.allow ? "devices.allow" : "devices.deny";
    if (r.type == 'a' && !matches_everything(r)) {
      for (char type : {'c', 'b'}) {
        DeviceRule one = r;
        one.type = type;
        writes.push_back({file, to_v1_line(one)});
      }
    } else {
      writes.push_back({file, to_v1_line(r)});
    }
  }
  return writes;
}

Result<std::vector<bpf_insn>> device_program(const std::vector<DeviceRule>& rules) {
  for (const auto& r : rules) KAPSEL_TRY(check_rule(r), "device rules");
  std::vector<bpf_insn> p;
  // R1 holds the context, struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; },
  // where access_type is (access << 16) | type.
  p.push_back(load_u32(R2, R1, offsetof(bpf_cgroup_dev_ctx, access_type)));
  p.push_back(alu32_imm(BPF_AND, R2, 0xffff));  // R2: type
  p.push_back(load_u32(R3, R1, offsetof(bpf_cgroup_dev_ctx, access_type)));
  p.push_back(alu32_imm(BPF_RSH, R3, 16));  // R3: access
  p.push_back(load_u32(R4, R1, offsetof(bpf_cgroup_dev_ctx, major)));
  p.push_back(load_u32(R5, R1, offsetof(bpf_cgroup_dev_ctx, minor)));

  // The last rule that matches decides, so the rules are tried from the last one.
  bool decided = false;
  for (auto it = rules.rbegin(); it != rules.rend() && !decided; ++it) {
    const DeviceRule& r = *it;
    std::vector<std::size_t> to_next;  // the jumps to the next rule, once it is placed
    if (r.type != 'a') {
      to_next.push_back(p.size());
      p.push_back(jne_imm(R2, r.type == 'c' ? BPF_DEVCG_DEV_CHAR : BPF_DEVCG_DEV_BLOCK));
    }
    int bits = access_bits(r.access);
    if (bits != kAllAccess) {
      p.push_back(mov32_reg(R1, R3));
      p.push_back(alu32_imm(BPF_AND, R1, bits));
      to_next.push_back(p.size());
      // An allow rule matches when it allows every access asked for, (access & rule) ==
      // access; a deny rule when it denies any of them, (access & rule) != 0. v1 matches its
      // exceptions the same way.
      p.push_back(r.allow ? jne_reg(R1, R3) : jeq_imm(R1, 0));
    }
    if (r.major >= 0) {
      to_next.push_back(p.size());
      p.push_back(jne_imm(R4, static_cast<std::int32_t>(r.major)));
    }
    if (r.minor >= 0) {
      to_next.push_back(p.size());
      p.push_back(jne_imm(R5, static_cast<std::int32_t>(r.minor)));
    }
    p.push_back(mov64_imm(R0, r.allow ? 1 : 0));
    p.push_back(exit_insn());
    for (std::size_t j : to_next) {
      std::size_t off = p.size() - (j + 1);
      if (off > static_cast<std::size_t>(std::numeric_limits<std::int16_t>::max()))
        return fail(ErrorKind::usage, "device rules: too many for one program");
      p[j].off = static_cast<std::int16_t>(off);
    }
    // A rule that matches every access ends the program: the verifier refuses code that can
    // never run, such as the rules before it.
    decided = to_next.empty();
  }
  if (!decided) {
    p.push_back(mov64_imm(R0, 0));  // no rule matched: deny
    p.push_back(exit_insn());
  }
  return p;
}

Status attach_device_program(const std::string& cgroup2_dir, const std::vector<DeviceRule>& rules) {
  std::string context = "setting the device rules of cgroup " + cgroup2_dir;
  auto program = device_program(rules);
  if (!program) return tl::unexpected(program.error().context(context));
  auto cgroup = open_cgroup(cgroup2_dir);
  if (!cgroup) return tl::unexpected(cgroup.error().context(context));
  auto old = kapsel_programs(cgroup->get(), cgroup2_dir);
  if (!old) return tl::unexpected(old.error().context(context));
  auto fd = load_program(*program);
  if (!fd) return tl::unexpected(fd.error().context(context));

  if (old->size() == 1) {
    // One program swapped for the other in the kernel: no moment with neither or both.
    if (attach(cgroup->get(), fd->get(), (*old)[0].second.get()) == 0) return {};
    // EINVAL: a kernel before BPF_F_REPLACE (5.6); done the other way below.
    if (errno != EINVAL) return errno_fail(context + ": replacing the device program");
  }
  // The new one first: while both are attached an access needs both to allow it, so nothing
  // is allowed that one of the two rule sets denies.
  if (attach(cgroup->get(), fd->get(), -1) != 0)
    return errno_fail(context + ": attaching the device program");
  for (const auto& [id, old_fd] : *old) {
    if (detach(cgroup->get(), old_fd.get()) != 0 && errno != ENOENT)
      return errno_fail(context + ": detaching the previous device program " + std::to_string(id));
  }
  return {};
}

Result<std::vector<std::uint32_t>> attached_device_programs(const std::string& cgroup2_dir) {
  auto cgroup = open_cgroup(cgroup2_dir);
  if (!cgroup) return tl::unexpected(cgroup.error());
  auto programs = kapsel_programs(cgroup->get(), cgroup2_dir);
  if (!programs) return tl::unexpected(programs.error());
  std::vector<std::uint32_t> ids;
  for (const auto& [id, fd] : *programs) ids.push_back(id);
  return ids;
}

}  // namespace kapsel::cgroup
