// The monitor's side of the guest agent: it owns the host end of the agent's byte stream (for
// UML, a socketpair whose other end is the guest's serial line) and a Unix socket on which
// `kapsel exec` connects. Each connection is one session: the relay gives it a session number,
// passes its frames to the agent with that number, and routes the agent's frames back by it.
// The relay reads frames only as far as the header; it knows nothing of what an exec means, so
// the same relay serves any kind whose guest runs kapsel-agent.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "agent/protocol.hpp"
#include "common/error.hpp"
#include "common/unique_fd.hpp"

namespace kapsel::agent {

class AgentRelay {
 public:
  // `line`: the host end of the agent's stream; `listener`: a listening SOCK_STREAM socket.
  AgentRelay(UniqueFd line, UniqueFd listener);

  // Descriptors to poll for reading, and what to do when one is ready (monitor::Watch's shape).
  struct Ready {
    int fd;
    std::function<void()> on_ready;
  };
  [[nodiscard]] std::vector<Ready> watches();

  // True once the agent has said hello; its text ("kapsel-agent 1\n<kernel release>").
  [[nodiscard]] bool agent_ready() const { return !hello_.empty(); }
  [[nodiscard]] const std::string& hello() const { return hello_; }
  [[nodiscard]] int line_fd() const { return line_.get(); }
  // Reads what the line has (used while waiting for the hello, before the relay is polled).
  void on_line();

 private:
  struct Conn {
    UniqueFd fd;
    FrameDecoder decoder;
  };
  void on_accept();
  void on_conn(std::uint32_t session);
  void drop(std::uint32_t session, bool tell_agent);
  void to_agent(const Frame& f);

  UniqueFd line_;
  UniqueFd listener_;
  FrameDecoder line_decoder_;
  std::map<std::uint32_t, Conn> conns_;
  std::uint32_t next_session_ = 1;
  std::string hello_;
};

}  // namespace kapsel::agent
