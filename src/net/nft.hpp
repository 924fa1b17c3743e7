// nftables through libnftables, which lives in the plugin kapsel-nft.so: it pulls in a dozen
// shared libraries (libjansson, libgmp, libxtables, ...) that would slow down every command's
// start, and only starting and stopping a VE on a bridge needs it.
#pragma once

#include <string>

#include "common/error.hpp"

namespace kapsel::net {

constexpr int kNftPluginVersion = 1;
struct NftPluginApi {
  int version;
  // Runs `commands` (nft syntax, one transaction) in the caller's network namespace.
  Status (*run)(const std::string& commands);
};

// Loads the plugin on first use and runs `commands` through it.
[[nodiscard]] Status run_nft(const std::string& commands);

}  // namespace kapsel::net
