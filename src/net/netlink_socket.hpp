// A route netlink socket (rtnetlink(7)) over libmnl, and the message buffer requests are built
// in. Every request asks for an acknowledgement, so a refusal comes back as an errno.
#pragma once

#include <linux/netlink.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/error.hpp"

struct mnl_socket;

namespace kapsel::net {

// One netlink request: a header, the family's fixed header (`Extra`: ifinfomsg, ifaddrmsg,
// rtmsg) and attributes appended through libmnl's mnl_attr_put_* on header().
class NetlinkMessage {
 public:
  NetlinkMessage(std::uint16_t type, std::uint16_t flags);
  [[nodiscard]] nlmsghdr* header() { return header_; }
  [[nodiscard]] const nlmsghdr* header() const { return header_; }
  // The fixed header after nlmsghdr, zeroed; call once, before any attribute.
  template <class Extra>
  Extra* put_extra() {
    return static_cast<Extra*>(put_extra_header(sizeof(Extra)));
  }

 private:
  void* put_extra_header(std::size_t size);
  std::vector<char> buffer_;
  nlmsghdr* header_;
};

class NetlinkSocket {
 public:
  // A socket in the calling thread's network namespace. A netlink socket stays in the
  // namespace it was opened in, whichever thread uses it later.
  [[nodiscard]] static Result<NetlinkSocket> open();

  // Sends `message` and waits for the kernel's answer; `on_reply` sees each reply message
  // (for a GET), and a refusal is returned as its errno with `what` as context.
  [[nodiscard]] Status request(NetlinkMessage& message, const std::string& what,
                               const std::function<void(const nlmsghdr*)>& on_reply = {});

 private:
  struct Closer {
    void operator()(mnl_socket* s) const;
  };
  explicit NetlinkSocket(mnl_socket* s) : socket_(s) {}
  std::unique_ptr<mnl_socket, Closer> socket_;
  std::uint32_t next_seq_ = 1;
};

// Runs `work` on a short-lived thread that has entered the network namespace open as
// `netns_fd`. A thread rather than a forked child: setns(CLONE_NEWNET) changes only the
// calling thread, so the caller stays where it is, and no process is copied (a fork costs
// ~1.5 ms on the hosts kapsel is built on, and VE start-up is measured).
[[nodiscard]] Status run_in_netns(int netns_fd, const std::function<Status()>& work);

}  // namespace kapsel::net
