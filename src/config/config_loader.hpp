// Reads a libconfig file into a validated Config, collecting every problem.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "config/config.hpp"

namespace ferry {

// One problem found in a config file, reported as "file:line: message".
struct ConfigError {
    std::string file;
    int line = 0;         // 0 when the problem has no line (file missing)
    std::string message;
    std::string to_string() const;
};

// Outcome of a load: either a config (errors empty) or every problem found.
struct ConfigLoadResult {
    std::shared_ptr<const Config> config;  // null when errors is not empty
    std::vector<ConfigError> errors;
    bool ok() const { return errors.empty(); }
};

// Never throws; a missing or unreadable file is an error like any other.
ConfigLoadResult load_config_file(const std::string& path);
// Same, from text (tests, control API); `file_label` is used in messages.
ConfigLoadResult load_config_text(const std::string& text, const std::string& file_label);

}  // namespace ferry
