// The framed protocol between kapsel on the host and its guest agent (kapsel-agent) inside a
// UML guest (and, later, a vm guest): a byte stream (a UML serial line, a virtio console port)
// cut into frames. Dependencies: the C++ standard library only, since the agent is a static
// binary built from this file too.
//
// Frame: a 16-byte header, all fields little-endian,
//   u32 magic   = 0x4b41504b ("KPAK" as bytes K,P,A,K read little-endian)
//   u32 session   which exec the frame belongs to (0: the agent itself)
//   u16 type      FrameType
//   u16 reserved  0
//   u32 length    of the payload that follows, at most kMaxPayload
// A reader that meets bytes that are not a header (a serial line's noise before the agent set
// it raw) skips to the next magic that starts a plausible header (known type, reserved 0, length
// in range): the stream resynchronises instead of failing for good.
//
// One session is one command: the host sends Exec, then Stdin (empty: end of input), Resize
// and Signal as needed, or Close when its caller has gone; the agent answers Stdout and
// Stderr, then Exit once the command has exited and its output is drained (Error first when
// it could not be started). The agent sends Hello (session 0) when it is ready.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kapsel::agent {

constexpr std::uint32_t kFrameMagic = 0x4b41504b;
constexpr std::size_t kHeaderSize = 16;
constexpr std::size_t kMaxPayload = 64 * 1024;

enum class FrameType : std::uint16_t {
  hello = 1,   // agent -> host: payload "kapsel-agent 1\n<kernel release>"
  exec = 2,    // host -> agent: ExecSpec
  stdin_ = 3,  // host -> agent: input bytes; empty: end of input
  stdout_ = 4,
  stderr_ = 5,
  exit = 6,    // agent -> host: i32 exit code (128+N if killed by signal N)
  error = 7,   // agent -> host: why the command could not be started
  resize = 8,  // host -> agent: u16 rows, u16 cols
  signal = 9,  // host -> agent: i32 signal for the command
  close = 10,  // host -> agent: the caller has gone; the command is killed
};

struct Frame {
  std::uint32_t session = 0;
  FrameType type = FrameType::hello;
  std::string payload;
};

// The header and payload of `frame`; a payload over kMaxPayload must be split by the caller.
[[nodiscard]] std::string encode(const Frame& frame);

// Cuts a byte stream into frames.
class FrameDecoder {
 public:
  void feed(std::string_view bytes) { buffer_.append(bytes); }
  // The next whole frame, if one has arrived. Garbage before a header is skipped (and counted).
  [[nodiscard]] std::optional<Frame> next();
  [[nodiscard]] std::size_t skipped() const { return skipped_; }

 private:
  std::string buffer_;
  std::size_t skipped_ = 0;
};

// What Exec carries.
struct ExecSpec {
  std::vector<std::string> argv;
  std::vector<std::string> env;  // KEY=VALUE
  std::string cwd = "/";
  bool tty = false;
  std::uint16_t rows = 24;
  std::uint16_t cols = 80;
};

[[nodiscard]] std::string encode_exec(const ExecSpec& spec);
// Empty if the payload is malformed.
[[nodiscard]] std::optional<ExecSpec> decode_exec(std::string_view payload);

[[nodiscard]] std::string encode_i32(std::int32_t value);
[[nodiscard]] std::optional<std::int32_t> decode_i32(std::string_view payload);
[[nodiscard]] std::string encode_size(std::uint16_t rows, std::uint16_t cols);
[[nodiscard]] bool decode_size(std::string_view payload, std::uint16_t& rows, std::uint16_t& cols);

}  // namespace kapsel::agent
