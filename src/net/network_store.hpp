// kapsel's bridge networks and their address leases, on disk:
//   <root>/networks/<name>.json   subnet, gateway and leases (VE name -> address), atomic writes
//   <root>/networks/.lock         flock'ed by every change, so concurrent creates never collide
// The store only records; bridge_network.hpp makes the kernel objects.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "common/error.hpp"
#include "net/cidr.hpp"

namespace kapsel::net {

// The network a VE joins when it asks for a bridge without naming one; made on first use.
inline constexpr const char* kDefaultNetwork = "kapsel0";
inline constexpr const char* kDefaultSubnet = "10.88.0.0/16";

struct Network {
  std::string name;  // also the bridge's interface name
  Cidr subnet;
  IpAddress gateway;
  std::map<std::string, IpAddress> leases;  // VE name -> its address

  [[nodiscard]] const std::string& bridge() const { return name; }
  // The gateway with the subnet's prefix: the bridge's own interface address.
  [[nodiscard]] Cidr gateway_cidr() const { return Cidr{gateway, subnet.prefix}; }
};
void to_json(nlohmann::json& j, const Network& n);

// Network names become interface names: 1-15 letters, digits, '-' or '_'.
[[nodiscard]] Status validate_network_name(std::string_view name);

class NetworkStore {
 public:
  explicit NetworkStore(const std::string& root);

  // Records a new network. Refused, with nothing written: a bad name or subnet, a name in use,
  // a subnet that overlaps another kapsel network's or a route of the host's.
  [[nodiscard]] Result<Network> create(const std::string& name, const std::string& subnet);
  [[nodiscard]] Result<Network> load(const std::string& name) const;
  [[nodiscard]] bool exists(const std::string& name) const;
  [[nodiscard]] Result<std::vector<Network>> list() const;
  // Refused while a VE holds a lease on it.
  [[nodiscard]] Status remove(const std::string& name);
  // The default network, recorded now if it is not yet.
  [[nodiscard]] Result<Network> ensure_default();

  // Leases an address on `network` to `ve` (`requested`, or the lowest free one). A VE that
  // already holds one keeps it.
  [[nodiscard]] Result<IpAddress> lease(const std::string& network, const std::string& ve,
                                        const std::optional<IpAddress>& requested);
  // Gives `ve`'s address back; no lease (or no network) is success.
  [[nodiscard]] Status release(const std::string& network, const std::string& ve);

 private:
  [[nodiscard]] std::string path_of(const std::string& name) const;
  [[nodiscard]] Status save(const Network& n) const;
  [[nodiscard]] Result<Network> create_locked(const std::string& name, const Cidr& subnet);
  std::string dir_;
};

}  // namespace kapsel::net
