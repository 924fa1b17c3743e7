// The libnftables side of kapsel's NAT, built as the plugin kapsel-nft.so (see nft.hpp).
#include <nftables/libnftables.h>

#include <memory>

#include "net/nft.hpp"

namespace kapsel::net {
namespace {

struct ContextFree {
  void operator()(nft_ctx* ctx) const { nft_ctx_free(ctx); }
};

Status run_impl(const std::string& commands) {
  std::unique_ptr<nft_ctx, ContextFree> ctx(nft_ctx_new(NFT_CTX_DEFAULT));
  if (!ctx) return fail(ErrorKind::failure, "nftables: cannot create a context");
  // Errors into a buffer, for the one-line message, rather than onto our stderr.
  nft_ctx_buffer_output(ctx.get());
  nft_ctx_buffer_error(ctx.get());
  if (nft_run_cmd_from_buffer(ctx.get(), commands.c_str()) == 0) return {};
  std::string why = nft_ctx_get_error_buffer(ctx.get());
  auto first_line = why.substr(0, why.find('\n'));
  return fail(ErrorKind::failure, "nftables: " + first_line);
}

}  // namespace
}  // namespace kapsel::net

// The plugin's entry point. The plugin and kapsel are built together, by one compiler, so C++
// types may cross this boundary.
extern "C" __attribute__((visibility("default"))) const kapsel::net::NftPluginApi*
kapsel_nft_plugin() {
  static const kapsel::net::NftPluginApi api = {kapsel::net::kNftPluginVersion,
                                                kapsel::net::run_impl};
  return &api;
}
