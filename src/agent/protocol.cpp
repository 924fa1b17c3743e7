#include "agent/protocol.hpp"

#include <cstring>

namespace kapsel::agent {
namespace {

void put_u16(std::string& out, std::uint16_t v) {
  out.push_back(static_cast<char>(v & 0xff));
  out.push_back(static_cast<char>(v >> 8));
}

void put_u32(std::string& out, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

std::uint32_t get_u32(std::string_view s, std::size_t at) {
  std::uint32_t v = 0;
  for (int i = 0; i < 4; ++i)
    v |= static_cast<std::uint32_t>(static_cast<unsigned char>(s[at + i])) << (8 * i);
  return v;
}

std::uint16_t get_u16(std::string_view s, std::size_t at) {
  return static_cast<std::uint16_t>(static_cast<unsigned char>(s[at]) |
                                    static_cast<unsigned char>(s[at + 1]) << 8);
}

void put_strings(std::string& out, const std::vector<std::string>& list) {
  put_u32(out, static_cast<std::uint32_t>(list.size()));
  for (const auto& s : list) {
    put_u32(out, static_cast<std::uint32_t>(s.size()));
    out.append(s);
  }
}

bool get_strings(std::string_view in, std::size_t& at, std::vector<std::string>& list) {
  if (in.size() - at < 4) return false;
  std::uint32_t n = get_u32(in, at);
  at += 4;
  if (n > in.size()) return false;  // every string takes at least 4 bytes
  for (std::uint32_t i = 0; i < n; ++i) {
    if (in.size() - at < 4) return false;
    std::uint32_t len = get_u32(in, at);
    at += 4;
    if (in.size() - at < len) return false;
    list.emplace_back(in.substr(at, len));
    at += len;
  }
  return true;
}

}  // namespace

std::string encode(const Frame& frame) {
  std::string out;
  out.reserve(kHeaderSize + frame.payload.size());
  put_u32(out, kFrameMagic);
  put_u32(out, frame.session);
  put_u16(out, static_cast<std::uint16_t>(frame.type));
  put_u16(out, 0);
  put_u32(out, static_cast<std::uint32_t>(frame.payload.size()));
  out.append(frame.payload);
  return out;
}

std::optional<Frame> FrameDecoder::next() {
  for (;;) {
    // Resynchronise on the magic: drop everything before its first possible start.
    std::size_t start = 0;
    while (start + 4 <= buffer_.size() && get_u32(buffer_, start) != kFrameMagic) ++start;
    if (start + 4 > buffer_.size()) {
      // Keep a tail that may be the beginning of a magic.
      start = buffer_.size() > 3 ? buffer_.size() - 3 : 0;
    }
    if (start > 0) {
      skipped_ += start;
      buffer_.erase(0, start);
    }
    if (buffer_.size() < kHeaderSize) return std::nullopt;
    std::uint32_t len = get_u32(buffer_, 12);
    std::uint16_t type = get_u16(buffer_, 8);
    std::uint16_t reserved = get_u16(buffer_, 10);
    if (len > kMaxPayload || reserved != 0 || type < static_cast<std::uint16_t>(FrameType::hello) ||
        type > static_cast<std::uint16_t>(FrameType::close)) {
      // Not a real header after all (noise that happens to hold the magic, perhaps overlapping
      // the real one): skip one byte and look again.
      skipped_ += 1;
      buffer_.erase(0, 1);
      continue;
    }
    if (buffer_.size() < kHeaderSize + len) return std::nullopt;
    Frame f;
    f.session = get_u32(buffer_, 4);
    f.type = static_cast<FrameType>(get_u16(buffer_, 8));
    f.payload = buffer_.substr(kHeaderSize, len);
    buffer_.erase(0, kHeaderSize + len);
    return f;
  }
}

std::string encode_exec(const ExecSpec& spec) {
  std::string out;
  out.push_back(spec.tty ? 1 : 0);
  put_u16(out, spec.rows);
  put_u16(out, spec.cols);
  put_strings(out, {spec.cwd});
  put_strings(out, spec.argv);
  put_strings(out, spec.env);
  return out;
}

std::optional<ExecSpec> decode_exec(std::string_view payload) {
  if (payload.size() < 5) return std::nullopt;
  ExecSpec spec;
  spec.tty = payload[0] != 0;
  spec.rows = get_u16(payload, 1);
  spec.cols = get_u16(payload, 3);
  std::size_t at = 5;
  std::vector<std::string> cwd;
  if (!get_strings(payload, at, cwd) || cwd.size() != 1) return std::nullopt;
  spec.cwd = cwd[0];
  if (!get_strings(payload, at, spec.argv) || !get_strings(payload, at, spec.env))
    return std::nullopt;
  if (spec.argv.empty() || at != payload.size()) return std::nullopt;
  return spec;
}

std::string encode_i32(std::int32_t value) {
  std::string out;
  put_u32(out, static_cast<std::uint32_t>(value));
  return out;
}

std::optional<std::int32_t> decode_i32(std::string_view payload) {
  if (payload.size() != 4) return std::nullopt;
  return static_cast<std::int32_t>(get_u32(payload, 0));
}

std::string encode_size(std::uint16_t rows, std::uint16_t cols) {
  std::string out;
  put_u16(out, rows);
  put_u16(out, cols);
  return out;
}

bool decode_size(std::string_view payload, std::uint16_t& rows, std::uint16_t& cols) {
  if (payload.size() != 4) return false;
  rows = get_u16(payload, 0);
  cols = get_u16(payload, 2);
  return true;
}

}  // namespace kapsel::agent
