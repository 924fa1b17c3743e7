#include "net/netlink_socket.hpp"

#include <libmnl/libmnl.h>
#include <sched.h>

#include <ctime>
#include <thread>

namespace kapsel::net {

NetlinkMessage::NetlinkMessage(std::uint16_t type, std::uint16_t flags)
    : buffer_(MNL_SOCKET_BUFFER_SIZE) {
  header_ = mnl_nlmsg_put_header(buffer_.data());
  header_->nlmsg_type = type;
  header_->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | flags;
}

void* NetlinkMessage::put_extra_header(std::size_t size) {
  return mnl_nlmsg_put_extra_header(header_, size);
}

void NetlinkSocket::Closer::operator()(mnl_socket* s) const {
  mnl_socket_close(s);
}

Result<NetlinkSocket> NetlinkSocket::open() {
  mnl_socket* s = mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC);
  if (!s) return errno_fail("opening a netlink socket");
  NetlinkSocket sock(s);
  if (mnl_socket_bind(s, 0, MNL_SOCKET_AUTOPID) < 0) return errno_fail("binding a netlink socket");
  return sock;
}

Status NetlinkSocket::request(NetlinkMessage& message, const std::string& what,
                              const std::function<void(const nlmsghdr*)>& on_reply) {
  nlmsghdr* nlh = message.header();
  nlh->nlmsg_seq = next_seq_++;
  if (mnl_socket_sendto(socket_.get(), nlh, nlh->nlmsg_len) < 0) return errno_fail(what);
  std::vector<char> buffer(MNL_SOCKET_BUFFER_SIZE);
  auto callback = [](const nlmsghdr* reply, void* data) -> int {
    auto* handler = static_cast<const std::function<void(const nlmsghdr*)>*>(data);
    if (*handler) (*handler)(reply);
    return MNL_CB_OK;
  };
  unsigned portid = mnl_socket_get_portid(socket_.get());
  for (;;) {
    ssize_t n = mnl_socket_recvfrom(socket_.get(), buffer.data(), buffer.size());
    if (n < 0) return errno_fail(what);
    // The acknowledgement ends the exchange (MNL_CB_STOP); an error reply sets errno.
    int rc = mnl_cb_run(buffer.data(), static_cast<std::size_t>(n), nlh->nlmsg_seq, portid,
                        callback, const_cast<std::function<void(const nlmsghdr*)>*>(&on_reply));
    if (rc == MNL_CB_ERROR) return errno_fail(what);
    if (rc == MNL_CB_STOP) return {};
  }
}

Status run_in_netns(int netns_fd, const std::function<Status()>& work) {
  Status result;
  std::thread worker([&] {
    if (::setns(netns_fd, CLONE_NEWNET) != 0) {
      result = errno_fail("entering the VE's network namespace");
      return;
    }
    result = work();
  });
  worker.join();
  return result;
}

}  // namespace kapsel::net
