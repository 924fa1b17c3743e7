#include "agent/agent_relay.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/fs.hpp"
#include "common/unix_socket.hpp"

namespace kapsel::agent {

AgentRelay::AgentRelay(UniqueFd line, UniqueFd listener)
    : line_(std::move(line)), listener_(std::move(listener)) {}

std::vector<AgentRelay::Ready> AgentRelay::watches() {
  std::vector<Ready> w;
  w.push_back({line_.get(), [this] { on_line(); }});
  if (listener_) w.push_back({listener_.get(), [this] { on_accept(); }});
  for (auto& [session, conn] : conns_) {
    std::uint32_t s = session;
    w.push_back({conn.fd.get(), [this, s] { on_conn(s); }});
  }
  return w;
}

// Writes to a connection or the line block: a client that stops reading stalls its own
// session's output only after the socket buffer is full. (Known limit: it then stalls the
// monitor; a per-connection queue would lift it.)
static bool write_frame(int fd, const Frame& f) {
  return static_cast<bool>(fs::write_all(fd, encode(f), "agent stream"));
}

void AgentRelay::to_agent(const Frame& f) {
  (void)write_frame(line_.get(), f);
}

void AgentRelay::on_line() {
  char buf[16384];
  ssize_t n = ::read(line_.get(), buf, sizeof buf);
  if (n <= 0) return;
  line_decoder_.feed(std::string_view(buf, static_cast<std::size_t>(n)));
  while (auto f = line_decoder_.next()) {
    if (f->type == FrameType::hello) {
      hello_ = f->payload.empty() ? "kapsel-agent" : f->payload;
      continue;
    }
    auto it = conns_.find(f->session);
    if (it == conns_.end()) continue;  // its caller has gone
    bool ok = write_frame(it->second.fd.get(), *f);
    if (!ok) {
      drop(f->session, true);
    } else if (f->type == FrameType::exit) {
      drop(f->session, false);
    }
  }
}

void AgentRelay::on_accept() {
  // Only the host's root (the socket is in the VE's root-only run directory as well) may run
  // commands in the guest.
  UniqueFd conn = unix_socket::accept_own_user(listener_.get());
  if (!conn) return;
  std::uint32_t session = next_session_++;
  if (next_session_ == 0) next_session_ = 1;
  conns_[session] = Conn{std::move(conn), {}};
}

void AgentRelay::on_conn(std::uint32_t session) {
  auto it = conns_.find(session);
  if (it == conns_.end()) return;
  char buf[16384];
  ssize_t n = ::read(it->second.fd.get(), buf, sizeof buf);
  if (n <= 0) {
    drop(session, true);
    return;
  }
  it->second.decoder.feed(std::string_view(buf, static_cast<std::size_t>(n)));
  while (auto f = it->second.decoder.next()) {
    // The session is the relay's to give: a client cannot reach another's command.
    f->session = session;
    if (f->type == FrameType::hello) continue;
    to_agent(*f);
  }
}

void AgentRelay::drop(std::uint32_t session, bool tell_agent) {
  if (tell_agent) to_agent(Frame{session, FrameType::close, {}});
  conns_.erase(session);
}

}  // namespace kapsel::agent
