#include "net/nft.hpp"

#include "common/plugin.hpp"

namespace kapsel::net {

Status run_nft(const std::string& commands) {
  auto api = plugin::load("kapsel-nft.so", "kapsel_nft_plugin", kNftPluginVersion,
                          "NAT and published ports");
  if (!api) return tl::unexpected(api.error());
  return static_cast<const NftPluginApi*>(*api)->run(commands);
}

}  // namespace kapsel::net
