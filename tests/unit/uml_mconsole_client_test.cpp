#include "driver/uml/mconsole_client.hpp"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstddef>
#include <cstring>
#include <filesystem>
#include <functional>
#include <thread>
#include <vector>

namespace kapsel::driver::uml {
namespace {

// A stand-in for a UML kernel's mconsole: a datagram socket at a temporary path that answers
// each request with the chunks `answer` returns (or with nothing).
class FakeMconsole {
 public:
  using Answer = std::function<std::vector<MconsoleReply>(const MconsoleRequest&, std::size_t)>;

  explicit FakeMconsole(Answer answer) : answer_(std::move(answer)) {
    char tmpl[] = "/tmp/kapsel-mconsole-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    path_ = dir_ + "/mconsole";
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strcpy(a.sun_path, path_.c_str());
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    thread_ = std::thread([this] { serve(); });
  }
  ~FakeMconsole() {
    ::shutdown(fd_, SHUT_RDWR);
    thread_.join();
    ::close(fd_);
    std::filesystem::remove_all(dir_);
  }
  [[nodiscard]] const std::string& path() const { return path_; }
  std::vector<std::string> seen;  // commands received, read after the client is done

 private:
  void serve() {
    for (;;) {
      MconsoleRequest req{};
      sockaddr_un from{};
      socklen_t len = sizeof from;
      ssize_t n = ::recvfrom(fd_, &req, sizeof req, 0, reinterpret_cast<sockaddr*>(&from), &len);
      if (n <= 0) return;
      seen.emplace_back(req.data, req.len);
      for (const auto& r : answer_(req, static_cast<std::size_t>(n))) {
        std::size_t size = offsetof(MconsoleReply, data) + r.len;
        (void)::sendto(fd_, &r, size, 0, reinterpret_cast<sockaddr*>(&from), len);
      }
    }
  }

  Answer answer_;
  std::string dir_, path_;
  int fd_ = -1;
  std::thread thread_;
};

// One reply chunk as the kernel builds it (mconsole_reply_len): text plus NUL.
MconsoleReply chunk(std::string_view text, bool more, std::uint32_t err = 0) {
  MconsoleReply r{};
  r.err = err;
  r.more = more ? 1 : 0;
  std::memcpy(r.data, text.data(), text.size());
  r.data[text.size()] = '\0';
  r.len = static_cast<std::uint32_t>(text.size() + 1);
  return r;
}

TEST(UmlMconsoleClient, SendsMagicVersionAndCommand) {
  bool well_formed = false;
  FakeMconsole fake([&](const MconsoleRequest& req, std::size_t size) {
    well_formed = req.magic == 0xcafebabe && req.version == 2 && req.len == 7 &&
                  size == offsetof(MconsoleRequest, data) + 7;
    return std::vector<MconsoleReply>{chunk("Linux (none) 6.1.0 #1 x86_64", false)};
  });
  auto client = MconsoleClient::open(fake.path());
  ASSERT_TRUE(client) << client.error().message;
  auto reply = client->command("version");
  ASSERT_TRUE(reply) << reply.error().message;
  EXPECT_EQ(*reply, "Linux (none) 6.1.0 #1 x86_64");
  EXPECT_TRUE(well_formed);
  ASSERT_EQ(fake.seen.size(), 1u);
  EXPECT_EQ(fake.seen[0], "version");
}

TEST(UmlMconsoleClient, JoinsChunkedReplies) {
  std::string big(1500, 'x');
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>('a' + i % 26);
  FakeMconsole fake([&](const MconsoleRequest&, std::size_t) {
    // As the kernel splits it: 511 bytes of text per chunk, then an empty last one.
    std::vector<MconsoleReply> out;
    for (std::size_t at = 0; at < big.size(); at += 511)
      out.push_back(chunk(std::string_view(big).substr(at, 511), true));
    out.push_back(chunk("", false));
    return out;
  });
  auto client = MconsoleClient::open(fake.path());
  ASSERT_TRUE(client);
  auto reply = client->command("proc meminfo");
  ASSERT_TRUE(reply) << reply.error().message;
  EXPECT_EQ(*reply, big);
}

TEST(UmlMconsoleClient, ErrorReplyIsAnErrorWithTheKernelsText) {
  FakeMconsole fake([&](const MconsoleRequest& req, std::size_t) {
    if (std::string_view(req.data, req.len) == "bogus")
      return std::vector<MconsoleReply>{chunk("Unknown command", true, 1), chunk("", false)};
    return std::vector<MconsoleReply>{chunk("OK", false)};
  });
  auto client = MconsoleClient::open(fake.path());
  ASSERT_TRUE(client);
  auto reply = client->command("bogus");
  ASSERT_FALSE(reply);
  EXPECT_NE(reply.error().message.find("Unknown command"), std::string::npos);
  // The error's last chunk was consumed: the next command gets its own reply.
  auto next = client->command("version");
  ASSERT_TRUE(next) << next.error().message;
  EXPECT_EQ(*next, "OK");
}

TEST(UmlMconsoleClient, NoReplyTimesOut) {
  FakeMconsole fake(
      [](const MconsoleRequest&, std::size_t) { return std::vector<MconsoleReply>{}; });
  auto client = MconsoleClient::open(fake.path(), 200);
  ASSERT_TRUE(client);
  auto reply = client->command("stop");
  ASSERT_FALSE(reply);
  EXPECT_EQ(reply.error().code, ETIMEDOUT);
}

TEST(UmlMconsoleClient, MissingSocketIsNotFound) {
  auto client = MconsoleClient::open("/nonexistent/kapsel/mconsole", 200);
  ASSERT_TRUE(client);
  auto reply = client->command("version");
  ASSERT_FALSE(reply);
  EXPECT_EQ(reply.error().kind, ErrorKind::not_found);
}

TEST(UmlMconsoleClient, RefusesOverlongCommands) {
  auto client = MconsoleClient::open("/nonexistent/kapsel/mconsole", 200);
  ASSERT_TRUE(client);
  auto reply = client->command(std::string(600, 'a'));
  ASSERT_FALSE(reply);
  EXPECT_EQ(reply.error().kind, ErrorKind::usage);
}

}  // namespace
}  // namespace kapsel::driver::uml
