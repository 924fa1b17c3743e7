#include "agent/protocol.hpp"

#include <gtest/gtest.h>

namespace kapsel::agent {
namespace {

TEST(AgentProtocol, FrameRoundTrips) {
  Frame f{42, FrameType::stdout_, std::string("hello\0world", 11)};
  std::string bytes = encode(f);
  EXPECT_EQ(bytes.size(), kHeaderSize + 11);
  // Little-endian magic first, as the spec table says.
  EXPECT_EQ(bytes.substr(0, 4), "KPAK");
  FrameDecoder d;
  d.feed(bytes);
  auto out = d.next();
  ASSERT_TRUE(out);
  EXPECT_EQ(out->session, 42u);
  EXPECT_EQ(out->type, FrameType::stdout_);
  EXPECT_EQ(out->payload, f.payload);
  EXPECT_FALSE(d.next());
}

TEST(AgentProtocol, DecoderWaitsForWholeFramesFedByteByByte) {
  std::string bytes =
      encode(Frame{1, FrameType::stdin_, "abc"}) + encode(Frame{2, FrameType::exit, encode_i32(3)});
  FrameDecoder d;
  std::vector<Frame> got;
  for (char c : bytes) {
    d.feed(std::string_view(&c, 1));
    while (auto f = d.next()) got.push_back(*f);
  }
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].payload, "abc");
  EXPECT_EQ(got[1].session, 2u);
  EXPECT_EQ(decode_i32(got[1].payload), 3);
  EXPECT_EQ(d.skipped(), 0u);
}

TEST(AgentProtocol, DecoderSkipsNoiseBeforeAHeader) {
  // What a serial line may carry before the agent made it raw: echoed bytes, a partial magic.
  std::string noise = "\r\nlogin: KPA";
  FrameDecoder d;
  d.feed(noise + encode(Frame{7, FrameType::hello, "kapsel-agent 1\n6.1.0"}));
  auto f = d.next();
  ASSERT_TRUE(f);
  EXPECT_EQ(f->type, FrameType::hello);
  EXPECT_EQ(f->payload, "kapsel-agent 1\n6.1.0");
  EXPECT_EQ(d.skipped(), noise.size());
}

TEST(AgentProtocol, DecoderRejectsOversizedLengthAndResynchronises) {
  std::string bogus = encode(Frame{1, FrameType::stdout_, ""});
  bogus[12] = '\xff';
  bogus[13] = '\xff';
  bogus[14] = '\xff';  // length far over kMaxPayload: not a real header
  FrameDecoder d;
  d.feed(bogus + encode(Frame{3, FrameType::stderr_, "x"}));
  auto f = d.next();
  ASSERT_TRUE(f);
  EXPECT_EQ(f->session, 3u);
  EXPECT_EQ(f->payload, "x");
}

TEST(AgentProtocol, ExecSpecRoundTrips) {
  ExecSpec spec;
  spec.argv = {"sh", "-c", "echo $X"};
  spec.env = {"X=1", "EMPTY="};
  spec.cwd = "/tmp";
  spec.tty = true;
  spec.rows = 50;
  spec.cols = 132;
  auto back = decode_exec(encode_exec(spec));
  ASSERT_TRUE(back);
  EXPECT_EQ(back->argv, spec.argv);
  EXPECT_EQ(back->env, spec.env);
  EXPECT_EQ(back->cwd, "/tmp");
  EXPECT_TRUE(back->tty);
  EXPECT_EQ(back->rows, 50);
  EXPECT_EQ(back->cols, 132);
}

TEST(AgentProtocol, MalformedExecIsRefused) {
  ExecSpec spec;
  spec.argv = {"true"};
  std::string good = encode_exec(spec);
  EXPECT_TRUE(decode_exec(good));
  EXPECT_FALSE(decode_exec(good.substr(0, good.size() - 1)));  // truncated
  EXPECT_FALSE(decode_exec(good + "x"));                       // trailing bytes
  ExecSpec none;
  EXPECT_FALSE(decode_exec(encode_exec(none)));  // no command
  EXPECT_FALSE(decode_exec(""));
}

TEST(AgentProtocol, SizesAndCodes) {
  std::uint16_t r = 0, c = 0;
  EXPECT_TRUE(decode_size(encode_size(40, 120), r, c));
  EXPECT_EQ(r, 40);
  EXPECT_EQ(c, 120);
  EXPECT_EQ(decode_i32(encode_i32(-1)), -1);
  EXPECT_FALSE(decode_i32("abc"));
}

}  // namespace
}  // namespace kapsel::agent
