// The loopback interface of a fresh network namespace starts down; a VE needs it up.
#pragma once

#include "common/error.hpp"

namespace kapsel::net {

// Brings up `lo` in the caller's network namespace. One ioctl: the netlink library that the
// bridge and veth code will use (issue #6) is not worth loading for this.
[[nodiscard]] Status bring_up_loopback();

}  // namespace kapsel::net
