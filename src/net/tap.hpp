// Tap devices: the host end of a UML (later vm) guest's network interface. The guest kernel's
// frames come out of the tap as the host sees them from a veth, so a tap is put on a kapsel
// bridge exactly where a container VE's host veth goes.
#pragma once

#include <string>

#include "common/error.hpp"

namespace kapsel::net {

// Creates persistent tap `name` (IFF_TAP | IFF_NO_PI: plain Ethernet frames, no packet-info
// header), down and on no bridge. Persistent, so that it outlives the file descriptor used to
// make it: the guest kernel opens it by name later (UML's tuntap transport does its own
// TUNSETIFF), and delete_link removes it like any other link.
[[nodiscard]] Status create_tap(const std::string& name);

}  // namespace kapsel::net
