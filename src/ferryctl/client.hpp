// ferryctl's side of the control socket: one JSON line out, one JSON line back.
#pragma once

#include <stdexcept>
#include <string>

#include <nlohmann/json.hpp>

namespace ferry::ctl {

// Why no answer came back; each kind maps to one ferryctl exit code.
class ClientError : public std::runtime_error {
public:
    enum class Kind {
        not_running,  // no socket, or nobody listening on it (exit 3)
        permission,   // socket exists but we may not connect (exit 4)
        timeout,      // ferryd did not answer in time (exit 1)
        io,           // any other socket failure (exit 1)
        protocol,     // the answer was not a JSON object with "ok" (exit 1)
    };
    ClientError(Kind kind, const std::string& message) : std::runtime_error(message), kind_(kind) {}
    Kind kind() const { return kind_; }

private:
    Kind kind_;
};

// Sends `request` to ferryd at `socket_path` and returns its response object
// (which has a boolean "ok"). Throws ClientError; `timeout_s` bounds the whole call.
nlohmann::json call(const std::string& socket_path, const nlohmann::json& request, double timeout_s);

}  // namespace ferry::ctl
