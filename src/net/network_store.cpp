#include "net/network_store.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "common/fs.hpp"
#include "common/unique_fd.hpp"
#include "net/ipam.hpp"

namespace kapsel::net {
namespace {

using nlohmann::json;

// Held for as long as the returned descriptor lives.
Result<UniqueFd> lock_dir(const std::string& dir) {
  KAPSEL_TRY(fs::make_dirs(dir, 0700), "preparing " + dir);
  std::string path = dir + "/.lock";
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (!fd) return errno_fail("opening " + path);
  while (::flock(fd.get(), LOCK_EX) != 0) {
    if (errno != EINTR) return errno_fail("locking " + path);
  }
  return fd;
}

// The host's IPv4 routes (/proc/net/route), as subnets, with the interface each goes out of.
// The default route is left out: every subnet is inside it, and that is no conflict.
std::vector<std::pair<std::string, Cidr>> host_routes() {
  std::vector<std::pair<std::string, Cidr>> routes;
  auto text = fs::read_file("/proc/net/route");
  if (!text) return routes;
  std::istringstream lines(*text);
  std::string line;
  std::getline(lines, line);  // header
  while (std::getline(lines, line)) {
    char ifname[32] = {};
    unsigned dest = 0, gateway = 0, flags = 0, refcnt = 0, use = 0, metric = 0, mask = 0;
    if (std::sscanf(line.c_str(), "%31s %x %x %x %u %u %u %x", ifname, &dest, &gateway, &flags,
                    &refcnt, &use, &metric, &mask) != 8 ||
        mask == 0)
      continue;
    // The kernel prints both in host byte order of the raw network-order word.
    Cidr route;
    std::memcpy(route.address.bytes.data(), &dest, 4);
    route.prefix = static_cast<unsigned>(__builtin_popcount(mask));
    routes.emplace_back(ifname, route);
  }
  return routes;
}

Result<Network> parse_network(const std::string& text, const std::string& path) {
  json j = json::parse(text, nullptr, false);
  auto bad = [&] { return fail(ErrorKind::failure, path + " is damaged"); };
  if (!j.is_object()) return bad();
  try {
    Network n;
    n.name = j.at("name").get<std::string>();
    auto subnet = parse_cidr(j.at("subnet").get<std::string>());
    auto gateway = parse_address(j.at("gateway").get<std::string>());
    if (!subnet || !gateway) return bad();
    n.subnet = *subnet;
    n.gateway = *gateway;
    if (j.contains("leases")) {
      for (const auto& [ve, address] : j.at("leases").get<std::map<std::string, std::string>>()) {
        auto a = parse_address(address);
        if (!a) return bad();
        n.leases[ve] = *a;
      }
    }
    return n;
  } catch (const json::exception&) {
    return bad();
  }
}

}  // namespace

void to_json(json& j, const Network& n) {
  json leases = json::object();
  for (const auto& [ve, address] : n.leases) leases[ve] = address.to_string();
  j = json{{"name", n.name},
           {"bridge", n.bridge()},
           {"subnet", n.subnet.to_string()},
           {"gateway", n.gateway.to_string()},
           {"leases", leases}};
}

Status validate_network_name(std::string_view name) {
  bool ok = !name.empty() && name.size() <= 15 && name != "none" && name != "host";
  for (char c : name)
    ok = ok && (std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_');
  if (ok) return {};
  return fail(ErrorKind::usage,
              "invalid network name '" + std::string(name) +
                  "' (use 1-15 letters, digits, '-' or '_'; it names the bridge)");
}

NetworkStore::NetworkStore(const std::string& root) : dir_(root + "/networks") {}

std::string NetworkStore::path_of(const std::string& name) const {
  return dir_ + "/" + name + ".json";
}

Status NetworkStore::save(const Network& n) const {
  return fs::write_file_atomic(path_of(n.name), json(n).dump(2) + "\n", 0644);
}

bool NetworkStore::exists(const std::string& name) const {
  return validate_network_name(name) && fs::exists(path_of(name));
}

Result<Network> NetworkStore::load(const std::string& name) const {
  KAPSEL_TRY(validate_network_name(name), "network");
  auto text = fs::read_file(path_of(name));
  if (!text && text.error().kind == ErrorKind::not_found)
    return fail(ErrorKind::not_found,
                "no network named '" + name + "' (see 'kapsel network list')");
  if (!text) return tl::unexpected(text.error());
  return parse_network(*text, path_of(name));
}

Result<std::vector<Network>> NetworkStore::list() const {
  std::vector<Network> networks;
  UniqueFd dir(::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dir) return networks;
  auto names = fs::list_dir(dir.get(), dir_);
  if (!names) return tl::unexpected(names.error());
  for (const auto& file : *names) {
    if (!file.ends_with(".json") || file.starts_with(".")) continue;
    auto n = load(file.substr(0, file.size() - 5));
    if (!n) return tl::unexpected(n.error());
    networks.push_back(std::move(*n));
  }
  std::sort(networks.begin(), networks.end(),
            [](const Network& a, const Network& b) { return a.name < b.name; });
  return networks;
}

Result<Network> NetworkStore::create_locked(const std::string& name, const Cidr& subnet) {
  if (exists(name)) return fail(ErrorKind::exists, "a network named '" + name + "' already exists");
  if (subnet.host_count() < 2)
    return fail(ErrorKind::usage,
                "subnet " + subnet.to_string() + " is too small: it needs a gateway and a VE");
  auto networks = list();
  if (!networks) return tl::unexpected(networks.error());
  std::set<std::string> bridges;
  for (const auto& other : *networks) {
    if (other.subnet.overlaps(subnet))
      return fail(ErrorKind::usage, "subnet " + subnet.to_string() + " overlaps network " +
                                        other.name + " (" + other.subnet.to_string() + ")");
    bridges.insert(other.bridge());
  }
  // A kapsel bridge's own route is its network's; any other is the host's.
  for (const auto& [ifname, route] : host_routes()) {
    if (!bridges.contains(ifname) && route.overlaps(subnet))
      return fail(ErrorKind::usage, "subnet " + subnet.to_string() + " overlaps the host's route " +
                                        route.to_string() + " on " + ifname);
  }
  Network n{name, Cidr{subnet.network(), subnet.prefix}, gateway_of(subnet), {}};
  KAPSEL_TRY(save(n), "creating network " + name);
  return n;
}

Result<Network> NetworkStore::create(const std::string& name, const std::string& subnet_text) {
  KAPSEL_TRY(validate_network_name(name), "network create");
  auto subnet = parse_cidr(subnet_text);
  if (!subnet) return tl::unexpected(subnet.error().context("network create"));
  auto lock = lock_dir(dir_);
  if (!lock) return tl::unexpected(lock.error());
  return with_context(create_locked(name, *subnet), "network create");
}

Result<Network> NetworkStore::ensure_default() {
  if (exists(kDefaultNetwork)) return load(kDefaultNetwork);
  auto lock = lock_dir(dir_);
  if (!lock) return tl::unexpected(lock.error());
  if (exists(kDefaultNetwork)) return load(kDefaultNetwork);
  return with_context(create_locked(kDefaultNetwork, *parse_cidr(kDefaultSubnet)),
                      "making the default network");
}

Status NetworkStore::remove(const std::string& name) {
  auto lock = lock_dir(dir_);
  if (!lock) return tl::unexpected(lock.error());
  auto n = load(name);
  if (!n) return tl::unexpected(n.error());
  if (!n->leases.empty())
    return fail(ErrorKind::state, "network " + name + " is in use by VE " +
                                      n->leases.begin()->first + " (destroy its VEs first)");
  if (::unlink(path_of(name).c_str()) != 0) return errno_fail("removing network " + name);
  return {};
}

Result<IpAddress> NetworkStore::lease(const std::string& network, const std::string& ve,
                                      const std::optional<IpAddress>& requested) {
  auto lock = lock_dir(dir_);
  if (!lock) return tl::unexpected(lock.error());
  auto n = load(network);
  if (!n) return tl::unexpected(n.error());
  if (auto held = n->leases.find(ve); held != n->leases.end() && !requested) return held->second;
  std::set<IpAddress> taken;
  for (const auto& [holder, address] : n->leases) {
    if (holder != ve) taken.insert(address);
  }
  auto address = allocate(n->subnet, taken, requested);
  if (!address) return tl::unexpected(address.error().context("network " + network));
  n->leases[ve] = *address;
  KAPSEL_TRY(save(*n), "leasing an address on network " + network);
  return *address;
}

Status NetworkStore::release(const std::string& network, const std::string& ve) {
  auto lock = lock_dir(dir_);
  if (!lock) return tl::unexpected(lock.error());
  auto n = load(network);
  if (!n && n.error().kind == ErrorKind::not_found) return {};
  if (!n) return tl::unexpected(n.error());
  if (n->leases.erase(ve) == 0) return {};
  return with_context(save(*n), "releasing the address of VE " + ve);
}

}  // namespace kapsel::net
