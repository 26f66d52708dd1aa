// What a reload changes, in words an operator reads in the log and in
// `ferryctl reload`: VIPs and backends added, removed, re-weighted, and
// settings changed. Also tells which changes need a restart.
#pragma once

#include <string>
#include <vector>

#include "config/config.hpp"

namespace ferry {

// The difference between the running config and a new one.
struct ConfigDiff {
    std::vector<std::string> changes;          // applied by a reload, one line each
    std::vector<std::string> restart_needed;   // refused by a reload, one line each
    bool empty() const { return changes.empty() && restart_needed.empty(); }
};

ConfigDiff diff_configs(const Config& running, const Config& next);

}  // namespace ferry
