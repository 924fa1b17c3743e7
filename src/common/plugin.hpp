// Plugins: parts of kapsel built as shared objects and loaded on first use, so that the heavy
// libraries behind them (libarchive, libnftables) cost only the commands that need them.
#pragma once

#include <string>

#include "common/error.hpp"

namespace kapsel::plugin {

// Loads `file` (e.g. "kapsel-nft.so") from the plugin search path and calls its entry point
// `entry`, which returns the plugin's API table; `version` must match that table's first int.
// `needed_for` completes "... needs FILE" in the error when the file is missing. The plugin is
// loaded once per process and stays loaded.
[[nodiscard]] Result<const void*> load(const std::string& file, const char* entry, int version,
                                       const std::string& needed_for);

}  // namespace kapsel::plugin
