// PLACEHOLDER (being implemented): lets the tree build while the parts are written.
#include "cgroup/resources.hpp"

#include <nlohmann/json.hpp>

namespace kapsel::cgroup {

bool Limits::empty() const {
  return *this == Limits{};
}
Limits merge(const Limits& base, const Limits&) {
  return base;
}
void to_json(nlohmann::json& j, const Limits&) {
  j = nlohmann::json::object();
}
void from_json(const nlohmann::json&, Limits&) {}

}  // namespace kapsel::cgroup
