#include "net/tap.hpp"

#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <sys/ioctl.h>

#include <cstring>

#include "common/unique_fd.hpp"

namespace kapsel::net {

Status create_tap(const std::string& name) {
  ifreq ifr{};
  if (name.empty() || name.size() >= sizeof ifr.ifr_name)
    return fail(ErrorKind::usage, "bad tap device name '" + name + "'");
  UniqueFd tun(::open("/dev/net/tun", O_RDWR | O_CLOEXEC));
  if (!tun) return errno_fail("opening /dev/net/tun for tap " + name);
  std::memcpy(ifr.ifr_name, name.data(), name.size());
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
  // TUNSETIFF takes a struct ifreq; the kernel reads the name and flags and writes the name.
  if (::ioctl(tun.get(), TUNSETIFF, &ifr) != 0) return errno_fail("creating tap " + name);
  // On failure, closing `tun` removes the device again.
  if (::ioctl(tun.get(), TUNSETPERSIST, 1) != 0)
    return errno_fail("making tap " + name + " persistent");
  return {};
}

}  // namespace kapsel::net
