// The disk images of UML VEs: one ext4 image per template, built once from the template's
// tree with mke2fs -d (e2fsprogs; no root and no loop device needed) and shared read-only by
// every UML VE of that template, each of which writes only to a copy-on-write file of its own
// (UML's ubd0=COW,BACKING).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/error.hpp"
#include "image/template.hpp"

namespace kapsel::driver::uml {

// Where the guest agent sits in the image, and how the guest's init starts it.
constexpr const char* kAgentGuestPath = "/sbin/kapsel-agent";
constexpr const char* kAgentLine = "/dev/ttyS1";

// The host path of the kapsel-agent binary to put into images: $KAPSEL_AGENT, else next to the
// running kapsel, else in the plugin directories (install, then build). not_found if none.
[[nodiscard]] Result<std::string> find_agent();

// The template's inittab made fit for a UML guest: Ctrl-Alt-Del (mconsole "cad", which is how
// kapsel stops the guest) powers off instead of rebooting, and the agent is respawned on its
// serial line. Only busybox-style inittabs ("id:runlevels:action:process" with empty fields)
// are known; an empty input gives a minimal one.
[[nodiscard]] std::string uml_inittab(const std::string& original);

// The template's image (<template dir>/uml.ext4), built the first time (with progress, since it
// takes seconds); concurrent callers serialise on a lock next to it.
[[nodiscard]] Result<std::string> ensure_image(const image::Template& tmpl,
                                               const image::ProgressFn& progress);

// A VE's own disk of `size_bytes` (--disk), built from the template like the shared image but
// written to by the VE directly, with no COW file: a larger disk than the template's image
// cannot be a copy-on-write view of it. A size too small for the template's files is a usage
// error naming the least that fits.
[[nodiscard]] Status build_own_image(const image::Template& tmpl, const std::string& image,
                                     std::uint64_t size_bytes, const image::ProgressFn& progress);

// The least disk a tree of `tree_bytes` fits on as ext4.
[[nodiscard]] std::uint64_t minimum_disk_bytes(std::uint64_t tree_bytes);

// Runs a host program (argv[0] searched in PATH) and waits; its stderr becomes the error.
[[nodiscard]] Status run_program(const std::vector<std::string>& argv);

}  // namespace kapsel::driver::uml
