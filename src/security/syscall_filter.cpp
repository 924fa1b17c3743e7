#include "security/syscall_filter.hpp"

#include <linux/audit.h>
#include <linux/seccomp.h>
#include <seccomp.h>

#include <algorithm>
#include <cstddef>
#include <cstdlib>
#include <map>
#include <optional>

#include "security/seccomp_policy.hpp"

namespace kapsel::security {
namespace {

constexpr std::uint32_t kX32SyscallBit = 0x40000000;
// Past every ABI's table (x86-64 and i386 end below 500 in Linux 6.x).
constexpr std::uint32_t kMaxSyscallNumber = 1024;

// What the filter answers for one number of one ABI.
struct Verdict {
  std::uint32_t action = 0;
  std::vector<std::vector<ArgCondition>> when_any;  // empty: always `action`
  std::uint32_t otherwise = 0;                      // when no alternative holds

  friend bool operator==(const Verdict&, const Verdict&) = default;
};

// Numbers [start, next run's start) share one verdict.
struct Run {
  std::uint32_t start = 0;
  Verdict verdict;
};

struct Abi {
  std::uint32_t token;  // libseccomp's
  std::uint32_t audit;  // what seccomp_data.arch says
  bool is_64bit;
  bool has_x32_bit;  // x86-64, whose section sees x32 calls too
};

std::optional<Abi> abi_of(std::uint32_t token) {
  switch (token) {
    case SCMP_ARCH_X86_64:
      return Abi{token, AUDIT_ARCH_X86_64, true, true};
    case SCMP_ARCH_X86:
      return Abi{token, AUDIT_ARCH_I386, false, false};
    default:
      return std::nullopt;
  }
}

sock_filter stmt(std::uint16_t code, std::uint32_t k) {
  return sock_filter{code, 0, 0, k};
}

sock_filter jump(std::uint16_t code, std::uint32_t k, std::uint8_t jt, std::uint8_t jf) {
  return sock_filter{code, jt, jf, k};
}

void append(std::vector<sock_filter>& to, const std::vector<sock_filter>& code) {
  to.insert(to.end(), code.begin(), code.end());
}

// The offset of a 32-bit half of argument `arg` in struct seccomp_data (little-endian: the low
// half first).
std::uint32_t arg_offset(unsigned arg, bool high) {
  return static_cast<std::uint32_t>(offsetof(seccomp_data, args) + arg * sizeof(std::uint64_t) +
                                    (high ? 4 : 0));
}

// The code for one verdict. The accumulator holds the number on entry; it may be clobbered.
Result<std::vector<sock_filter>> verdict_code(const Verdict& v, const Abi& abi) {
  std::vector<sock_filter> code;
  if (v.when_any.empty()) {
    code.push_back(stmt(BPF_RET | BPF_K, v.action));
    return code;
  }
  // Each alternative: its comparisons, each jumping to the next alternative when it fails,
  // then the action. After the last alternative: `otherwise`.
  for (const auto& alternative : v.when_any) {
    std::vector<sock_filter> checks;
    for (const ArgCondition& c : alternative) {
      if (c.arg >= 6) return fail(ErrorKind::failure, "argument index past the sixth");
      for (bool high : {false, true}) {
        if (high && !abi.is_64bit) continue;
        auto mask = static_cast<std::uint32_t>(high ? c.mask >> 32 : c.mask);
        auto value = static_cast<std::uint32_t>(high ? c.value >> 32 : c.value);
        if (mask == 0) {
          // Nothing to compare; a value outside the mask can never match.
          if (value != 0) checks.push_back(stmt(BPF_JMP | BPF_JA, 0xFFFFFFFF));  // patched
          continue;
        }
        checks.push_back(stmt(BPF_LD | BPF_W | BPF_ABS, arg_offset(c.arg, high)));
        if (mask != 0xFFFFFFFF) checks.push_back(stmt(BPF_ALU | BPF_AND | BPF_K, mask));
        checks.push_back(jump(BPF_JMP | BPF_JEQ | BPF_K, value, 0, 0xFF));  // jf patched
      }
    }
    checks.push_back(stmt(BPF_RET | BPF_K, v.action));
    // A failed comparison goes past this alternative's return.
    for (std::size_t i = 0; i < checks.size(); ++i) {
      std::size_t to_next = checks.size() - i - 1;
      if (to_next > 255) return fail(ErrorKind::failure, "argument conditions too long");
      if (checks[i].code == (BPF_JMP | BPF_JEQ | BPF_K))
        checks[i].jf = static_cast<std::uint8_t>(to_next);
      if (checks[i].code == (BPF_JMP | BPF_JA)) checks[i].k = static_cast<std::uint32_t>(to_next);
    }
    append(code, checks);
  }
  code.push_back(stmt(BPF_RET | BPF_K, v.otherwise));
  return code;
}

// The simple verdicts of a section, each a return instruction at the section's end that the
// search jumps to (one instruction less per run than a return of its own).
struct Pool {
  std::vector<std::uint32_t> actions;
  std::size_t index(std::uint32_t action) const {
    return static_cast<std::size_t>(std::find(actions.begin(), actions.end(), action) -
                                    actions.begin());
  }
};

bool is_simple(const Run& run) {
  return run.verdict.when_any.empty();
}

// A binary search over runs[lo, hi) with the number in the accumulator, for code that ends
// `tail` instructions before the pool.
Result<std::vector<sock_filter>> search_code(const std::vector<Run>& runs, std::size_t lo,
                                             std::size_t hi, std::size_t tail, const Pool& pool,
                                             const Abi& abi) {
  if (hi - lo == 1) return verdict_code(runs[lo].verdict, abi);
  std::size_t mid = lo + (hi - lo) / 2;
  // The runs at and above runs[mid] come last, so are made first: the code below them must know
  // how far the pool is.
  bool above_in_pool = hi - mid == 1 && is_simple(runs[mid]);
  std::vector<sock_filter> above;
  if (!above_in_pool) {
    auto code = search_code(runs, mid, hi, tail, pool, abi);
    if (!code) return code;
    above = std::move(*code);
  }
  bool below_in_pool = mid - lo == 1 && is_simple(runs[lo]);
  std::vector<sock_filter> below;
  if (!below_in_pool) {
    auto code = search_code(runs, lo, mid, tail + above.size(), pool, abi);
    if (!code) return code;
    below = std::move(*code);
  }
  // Where each side starts, counted from the node's first instruction; the node is one
  // instruction, or two when the way up is longer than a jump can go (then via a BPF_JA).
  for (;;) {
    for (std::size_t node = 1; node <= 2; ++node) {
      std::size_t pool_at = node + below.size() + above.size() + tail;
      std::size_t below_at = below_in_pool ? pool_at + pool.index(runs[lo].verdict.action) : node;
      std::size_t above_at =
          above_in_pool ? pool_at + pool.index(runs[mid].verdict.action) : node + below.size();
      if (below_at - 1 > 255) {
        // Too far to the pool: the run gets a return of its own.
        below_in_pool = false;
        below = {stmt(BPF_RET | BPF_K, runs[lo].verdict.action)};
        break;
      }
      std::vector<sock_filter> code;
      if (node == 1 && above_at - 1 <= 255) {
        code.push_back(jump(BPF_JMP | BPF_JGE | BPF_K, runs[mid].start,
                            static_cast<std::uint8_t>(above_at - 1),
                            static_cast<std::uint8_t>(below_at - 1)));
      } else if (node == 2) {
        code.push_back(jump(BPF_JMP | BPF_JGE | BPF_K, runs[mid].start, 0,
                            static_cast<std::uint8_t>(below_at - 1)));
        code.push_back(stmt(BPF_JMP | BPF_JA, static_cast<std::uint32_t>(above_at - 2)));
      } else {
        continue;
      }
      append(code, below);
      append(code, above);
      return code;
    }
  }
}

// The runs of one ABI: every number its rules name, the numbers between them, and the rest.
// The numbers of an ABI's calls, by name. Asked number by number: by name, libseccomp answers
// for i386's socket and SysV IPC calls with a pseudo-number, as they also exist multiplexed
// through socketcall(2) and ipc(2), and it filters both ways in; the direct numbers are what
// its number lookup gives.
std::map<std::string, std::uint32_t> numbers_of(const Abi& abi) {
  std::map<std::string, std::uint32_t> numbers;
  for (std::uint32_t nr = 0; nr < kMaxSyscallNumber; ++nr) {
    char* name = seccomp_syscall_resolve_num_arch(abi.token, static_cast<int>(nr));
    if (!name) continue;
    numbers.emplace(name, nr);
    std::free(name);
  }
  return numbers;
}

// Whether a call that libseccomp also filters as a multiplexed one (see numbers_of) is judged
// the same either way: only when socketcall(2) and ipc(2) themselves get its action, without
// conditions. Otherwise the multiplexed form needs conditions on their first argument, which
// the compact program does not write.
bool multiplexers_agree(const FilterSpec& spec, const SyscallRule& rule) {
  for (const char* multiplexer : {"socketcall", "ipc"}) {
    auto it = std::find_if(spec.rules.begin(), spec.rules.end(),
                           [&](const SyscallRule& r) { return r.name == multiplexer; });
    if (it == spec.rules.end() ? rule.action != spec.default_action
                               : it->action != rule.action || !it->when_any.empty())
      return false;
  }
  return true;
}

Result<std::vector<Run>> runs_of(const FilterSpec& spec, const Abi& abi) {
  const auto numbers = numbers_of(abi);
  std::map<std::uint32_t, Verdict> by_number;
  for (const SyscallRule& rule : spec.rules) {
    auto known = numbers.find(rule.name);
    if (known == numbers.end()) continue;  // not a call of this ABI, or newer than libseccomp
    if (seccomp_syscall_resolve_name_arch(abi.token, rule.name.c_str()) < 0 &&
        !multiplexers_agree(spec, rule))
      return fail(ErrorKind::failure, rule.name + " is also a multiplexed call");
    auto [it, added] =
        by_number.emplace(known->second, Verdict{rule.action, rule.when_any, spec.default_action});
    if (!added) return fail(ErrorKind::failure, "two rules for " + rule.name);
  }
  const Verdict refused{spec.default_action, {}, spec.default_action};
  std::vector<Run> runs;
  auto add = [&](std::uint32_t nr, const Verdict& v) {
    if (runs.empty() || !(runs.back().verdict == v)) runs.push_back(Run{nr, v});
  };
  std::uint32_t next = 0;
  for (const auto& [nr, verdict] : by_number) {
    if (nr > next) add(next, refused);
    add(nr, verdict);
    next = nr + 1;
  }
  add(next, refused);
  if (abi.has_x32_bit) {
    // The x86-64 section sees x32 calls too, which belong to another ABI; but not -1, the
    // number of a call a tracer has cancelled, which is judged as libseccomp judges it.
    add(kX32SyscallBit, Verdict{spec.other_abi_action, {}, spec.other_abi_action});
    add(0xFFFFFFFF, refused);
  }
  return runs;
}

}  // namespace

Result<std::vector<sock_filter>> compile_compact(const FilterSpec& spec) {
  // Each ABI's section: the number into the accumulator, then the search.
  std::vector<std::pair<Abi, std::vector<sock_filter>>> sections;
  for (std::uint32_t token : spec.abis) {
    auto abi = abi_of(token);
    if (!abi) return fail(ErrorKind::failure, "compact seccomp program: unsupported ABI");
    auto runs = runs_of(spec, *abi);
    if (!runs) return tl::unexpected(runs.error());
    Pool pool;
    for (const Run& run : *runs) {
      if (is_simple(run) && pool.index(run.verdict.action) == pool.actions.size())
        pool.actions.push_back(run.verdict.action);
    }
    auto search = search_code(*runs, 0, runs->size(), 0, pool, *abi);
    if (!search) return tl::unexpected(search.error());
    std::vector<sock_filter> code = {stmt(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr))};
    append(code, *search);
    for (std::uint32_t action : pool.actions) code.push_back(stmt(BPF_RET | BPF_K, action));
    sections.emplace_back(*abi, std::move(code));
  }

  // The dispatch on seccomp_data.arch: "jeq ABI; ja its section" for each, then the action for
  // every other ABI. The sections follow in order.
  std::vector<sock_filter> program = {stmt(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, arch))};
  std::size_t dispatch = 2 * sections.size() + 1;
  std::size_t offset = 0;  // of the section, counted from the end of the dispatch
  for (std::size_t i = 0; i < sections.size(); ++i) {
    program.push_back(jump(BPF_JMP | BPF_JEQ | BPF_K, sections[i].first.audit, 0, 1));
    // From the instruction after this BPF_JA to the end of the dispatch, then to the section.
    std::size_t after_ja = 2 * i + 2;
    program.push_back(
        stmt(BPF_JMP | BPF_JA, static_cast<std::uint32_t>(dispatch - after_ja + offset)));
    offset += sections[i].second.size();
  }
  program.push_back(stmt(BPF_RET | BPF_K, spec.other_abi_action));
  for (auto& [abi, code] : sections) append(program, code);
  if (program.size() > BPF_MAXINSNS)
    return fail(ErrorKind::failure, "compact seccomp program: too many instructions");
  return program;
}

Result<std::vector<sock_filter>> compile_with_libseccomp(const FilterSpec& spec) {
  SeccompContext ctx(seccomp_init(spec.default_action));
  if (!ctx) return fail(ErrorKind::failure, "creating the seccomp filter: libseccomp failed");
  scmp_filter_ctx c = ctx.get();
  if (int rc = seccomp_attr_set(c, SCMP_FLTATR_ACT_BADARCH, spec.other_abi_action); rc < 0)
    return sys_fail(-rc, "setting the seccomp filter's action for other ABIs");
  // Its binary tree: the layout of its that the kernel loads fastest.
  if (int rc = seccomp_attr_set(c, SCMP_FLTATR_CTL_OPTIMIZE, 2); rc < 0)
    return sys_fail(-rc, "sorting the seccomp filter");
  bool native_wanted = false;
  for (std::uint32_t token : spec.abis) {
    if (token == seccomp_arch_native()) {
      native_wanted = true;
      continue;
    }
    int rc = seccomp_arch_add(c, token);
    if (rc < 0 && rc != -EEXIST) return sys_fail(-rc, "adding an ABI to the seccomp filter");
  }
  if (!native_wanted) {
    if (int rc = seccomp_arch_remove(c, seccomp_arch_native()); rc < 0)
      return sys_fail(-rc, "removing the native ABI from the seccomp filter");
  }
  for (const SyscallRule& rule : spec.rules) {
    int nr = seccomp_syscall_resolve_name(rule.name.c_str());
    if (nr == __NR_SCMP_ERROR) continue;  // newer than libseccomp's tables
    std::vector<std::vector<ArgCondition>> alternatives = rule.when_any;
    if (alternatives.empty()) alternatives.emplace_back();
    for (const auto& alternative : alternatives) {
      std::vector<scmp_arg_cmp> args;
      for (const ArgCondition& a : alternative) {
        args.push_back(a.mask == ~std::uint64_t{0}
                           ? scmp_arg_cmp{a.arg, SCMP_CMP_EQ, a.value, 0}
                           : scmp_arg_cmp{a.arg, SCMP_CMP_MASKED_EQ, a.mask, a.value});
      }
      int rc = seccomp_rule_add_array(c, rule.action, nr, static_cast<unsigned>(args.size()),
                                      args.empty() ? nullptr : args.data());
      if (rc < 0) return sys_fail(-rc, "adding " + rule.name + " to the seccomp filter");
    }
  }
  return export_seccomp_program(c, "the seccomp filter");
}

}  // namespace kapsel::security
