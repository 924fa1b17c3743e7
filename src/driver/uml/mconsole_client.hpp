// A client of User-mode Linux's management console (mconsole): the host's way to drive a
// running UML kernel (version, cad, halt, stop/go, proc FILE, ...).
//
// The protocol (arch/um/include/shared/mconsole.h in Linux): datagrams over a Unix socket,
// <uml_dir>/<umid>/mconsole. A request is {u32 magic = 0xcafebabe, u32 version = 2, u32 len,
// char data[512]} in host byte order; the kernel answers to the sender's address with one or
// more replies {u32 err, u32 more, u32 len, char data[512]}, where `len` counts a trailing NUL
// and `more` is non-zero on every chunk but the last. `err` is non-zero (on the first chunk
// only) when the command failed; the data then says why.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/error.hpp"
#include "common/unique_fd.hpp"

namespace kapsel::driver::uml {

constexpr std::uint32_t kMconsoleMagic = 0xcafebabe;
constexpr std::uint32_t kMconsoleVersion = 2;
constexpr std::size_t kMconsoleMaxData = 512;

struct MconsoleRequest {
  std::uint32_t magic;
  std::uint32_t version;
  std::uint32_t len;
  char data[kMconsoleMaxData];
};

struct MconsoleReply {
  std::uint32_t err;
  std::uint32_t more;
  std::uint32_t len;
  char data[kMconsoleMaxData];
};

class MconsoleClient {
 public:
  // A client of the console at `socket_path`. Its own socket is autobound to an abstract
  // address (nothing to clean up in the file system), which is where the kernel replies.
  [[nodiscard]] static Result<MconsoleClient> open(std::string socket_path, int timeout_ms = 5000);

  // Sends `command` and returns the whole reply, its chunks joined (without the NULs). A
  // reply with err set is an ErrorKind::failure carrying the kernel's text; no reply within the
  // timeout (between chunks) is ETIMEDOUT; a missing socket is ErrorKind::not_found.
  [[nodiscard]] Result<std::string> command(std::string_view command);

  [[nodiscard]] const std::string& path() const { return path_; }

 private:
  MconsoleClient(UniqueFd fd, std::string path, int timeout_ms)
      : fd_(std::move(fd)), path_(std::move(path)), timeout_ms_(timeout_ms) {}

  UniqueFd fd_;
  std::string path_;
  int timeout_ms_;
};

}  // namespace kapsel::driver::uml
