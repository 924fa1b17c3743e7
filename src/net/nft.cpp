#include "net/nft.hpp"

#include "common/plugin.hpp"
#include "common/trace.hpp"

namespace kapsel::net {

Status run_nft(const std::string& commands) {
  auto api = plugin::load("kapsel-nft.so", "kapsel_nft_plugin", kNftPluginVersion,
                          "NAT and published ports");
  if (!api) return tl::unexpected(api.error());
  trace::point("nft: plugin loaded");
  return static_cast<const NftPluginApi*>(*api)->run(commands);
}

}  // namespace kapsel::net
