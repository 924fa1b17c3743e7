// The paravirtualised driver: each VE is a User-mode Linux kernel (/usr/bin/linux.uml from
// Debian's user-mode-linux) run as host processes under the VE's monitor, in the VE's cgroup,
// booting a copy-on-write file over its template's shared ext4 image. The host drives it
// through its management console (mconsole_client.hpp) and runs commands in it through the
// guest agent (src/agent) on the guest's second serial line.
#pragma once

#include "driver/driver.hpp"

namespace kapsel::driver::uml {

// The kernel binary ($KAPSEL_UML overrides it, for tests of its absence).
[[nodiscard]] std::string uml_binary();

// The kernel's arguments for the VE's network (none unless it is on a bridge): eth0 on the tap
// that the monitor makes, and the guest agent's settings (agent/guest_network.hpp) with the
// nameservers of the host's resolv.conf `host_resolv_conf` that a VE on a bridge can reach.
[[nodiscard]] std::vector<std::string> uml_network_args(const std::string& ve,
                                                        const store::NetworkConfig& network,
                                                        std::string_view host_resolv_conf);

class UmlDriver final : public Driver {
 public:
  explicit UmlDriver(Context& ctx) : ctx_(ctx) {}

  [[nodiscard]] Status create(const store::VeConfig& config) override;
  [[nodiscard]] Result<store::RuntimeState> start(const store::VeConfig& config,
                                                  const store::VeLock& lock) override;
  [[nodiscard]] Status stop(const store::VeConfig& config, const store::RuntimeState& state,
                            const StopOptions& options) override;
  [[nodiscard]] Result<int> exec(const store::VeConfig& config, const store::RuntimeState& state,
                                 const ExecRequest& request) override;
  // mconsole stop and go: the guest kernel stops scheduling (its processes and timers stand
  // still) and serves only its mconsole until it is told to go on.
  [[nodiscard]] Status pause(const store::VeConfig& config,
                             const store::RuntimeState& state) override;
  [[nodiscard]] Status resume(const store::VeConfig& config,
                              const store::RuntimeState& state) override;
  [[nodiscard]] bool paused(const store::VeConfig& config,
                            const store::RuntimeState& state) override;
  [[nodiscard]] Result<std::string> attach_disk(const store::VeConfig& config,
                                                const store::RuntimeState& state,
                                                const std::string& path, bool read_only) override;
  [[nodiscard]] Status detach_disk(const store::VeConfig& config, const store::RuntimeState& state,
                                   const std::string& device) override;
  [[nodiscard]] Status cleanup(const store::VeConfig& config) override;
  [[nodiscard]] Result<std::size_t> process_count(const store::VeConfig& config,
                                                  const store::RuntimeState& state) override;
  [[nodiscard]] Status check_limits(const cgroup::Limits& limits) override;
  [[nodiscard]] Status apply_limits(const store::VeConfig& config, const store::RuntimeState& state,
                                    const cgroup::Limits& change) override;
  [[nodiscard]] Result<Usage> usage(const store::VeConfig& config,
                                    const store::RuntimeState& state) override;
  [[nodiscard]] Result<std::vector<std::pair<std::string, std::string>>> details(
      const store::VeConfig& config, const store::RuntimeState& state) override;
  [[nodiscard]] Status console(const store::VeConfig& config,
                               const store::RuntimeState& state) override;

  // The VE's mconsole socket and agent socket, under its runtime directory.
  [[nodiscard]] std::string mconsole_path(const std::string& name) const;
  [[nodiscard]] std::string agent_socket(const std::string& name) const;
  [[nodiscard]] std::string console_socket(const std::string& name) const;
  // Present while the guest is paused: the mconsole has no command that tells.
  [[nodiscard]] std::string paused_marker(const std::string& name) const;

 private:
  // The disk of a VE made with --disk, which it boots from instead of a COW file.
  [[nodiscard]] std::string own_disk(const std::string& ve) const;
  [[noreturn]] void run_monitor(const store::VeConfig& config, const std::string& image,
                                UniqueFd report, UniqueFd lock);

  Context& ctx_;
};

}  // namespace kapsel::driver::uml
