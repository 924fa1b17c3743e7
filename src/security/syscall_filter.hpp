// A system-call filter as data (which calls get which action, under which argument conditions,
// on which ABIs), and two compilers of it to a classic BPF seccomp program: libseccomp, and a
// compact one of kapsel's own.
//
// Why a second compiler: every process of a VE loads the VE's filter, and the kernel's load
// (JIT, then running the program once for every system call number to find the calls it always
// allows) grows with the program. An allowlist of ~350 calls compiled by libseccomp 2.5 is ~860
// instructions, one comparison per call. Allowed and refused calls come in runs of
// consecutive numbers, so a binary search over the runs' boundaries gives the same answers in
// about a third of the instructions. libseccomp stays the reference: the unit tests run both
// programs over every number and the argument values that matter, and require the same
// verdicts; and a spec the compact compiler does not handle goes to libseccomp.
#pragma once

#include <linux/filter.h>

#include <cstdint>
#include <string>
#include <vector>

#include "common/error.hpp"

namespace kapsel::security {

// (argument `arg` & mask) == value, on the full 64 bits (the high half is not looked at on a
// 32-bit ABI, whose arguments the kernel zero-extends).
struct ArgCondition {
  unsigned arg = 0;
  std::uint64_t mask = ~std::uint64_t{0};
  std::uint64_t value = 0;

  friend bool operator==(const ArgCondition&, const ArgCondition&) = default;
};

// `action` (a SECCOMP_RET_* value) for the call `name`; with conditions, only when all of one
// of the alternatives hold (otherwise the filter's default action).
struct SyscallRule {
  std::string name;
  std::uint32_t action = 0;
  std::vector<std::vector<ArgCondition>> when_any;  // empty: always
};

struct FilterSpec {
  std::uint32_t default_action = 0;    // calls without a rule, and numbers past every table
  std::uint32_t other_abi_action = 0;  // ABIs not in `abis` (and x32 calls on x86-64)
  std::vector<std::uint32_t> abis;     // libseccomp architecture tokens (SCMP_ARCH_*)
  std::vector<SyscallRule> rules;      // a name an ABI lacks (or libseccomp does not know) is
                                       // skipped on that ABI
};

// The compact program: per ABI, a binary search over runs of numbers with the same verdict.
// Fails (ErrorKind::failure) for a spec it cannot express: more than one rule per call, or
// an ABI other than x86-64 and i386.
[[nodiscard]] Result<std::vector<sock_filter>> compile_compact(const FilterSpec& spec);

// The same filter compiled by libseccomp (its binary-tree layout).
[[nodiscard]] Result<std::vector<sock_filter>> compile_with_libseccomp(const FilterSpec& spec);

}  // namespace kapsel::security
