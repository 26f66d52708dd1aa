// The control thread (ferryd's main lcore): owns the config and the runtime
// state, builds snapshots off the data path and publishes them whole, frees
// old ones after an RCU grace period, and keeps next hops resolved.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "dataplane/dataplane.hpp"
#include "dataplane/snapshot.hpp"

namespace ferry::control {

// What the control thread remembers about one next hop it must keep resolved.
struct NeighbourState {
    uint16_t port = 0;
    uint64_t confirmed_ms = 0;  // last ARP reply / request seen from it
    uint64_t requested_ms = 0;  // last ARP request we sent
    uint32_t unanswered = 0;    // requests since the last confirmation
    bool resolved = false;
};

class ControlPlane {
public:
    ControlPlane(dp::Dataplane& dp, std::shared_ptr<const Config> cfg);
    ~ControlPlane();

    // Builds and publishes the first snapshot; announces addresses (gratuitous ARP).
    void start();
    // Runs until `stop` becomes true. Checks `reload` once per iteration.
    void run(const std::atomic<bool>& stop, std::atomic<bool>& reload);

    // Reloads the config file: everything or nothing. Returns the problems
    // (empty on success). Safe to call only from the control thread.
    std::vector<std::string> reload_config();

    // For readers on other threads (telemetry): a consistent view.
    struct View {
        std::shared_ptr<const Config> config;
        std::shared_ptr<const dp::Snapshot> snapshot;
        std::vector<Endpoint> backend_endpoints;  // by backend id
        std::chrono::system_clock::time_point loaded_at;
    };
    View view() const;

private:
    void publish();
    void reclaim(bool wait_all);
    void handle_messages(uint64_t now_ms);
    void tick_neighbours(uint64_t now_ms);
    void want_neighbour(uint32_t ip, uint16_t port);
    void send_arp_request(uint16_t port, uint32_t target_ip);
    void announce();
    const dp::PortInfo* port_for(uint32_t ip) const;

    dp::Dataplane& dp_;
    std::shared_ptr<const Config> cfg_;
    dp::IdRegistry ids_;
    dp::RuntimeState runtime_;
    uint64_t generation_ = 0;
    std::shared_ptr<dp::Snapshot> current_;
    std::vector<std::pair<std::shared_ptr<dp::Snapshot>, uint64_t>> retired_;
    std::map<uint32_t, NeighbourState> neighbours_;  // by IP (network order)
    mutable std::mutex view_mutex_;
    std::chrono::system_clock::time_point loaded_at_;
};

uint64_t monotonic_ms();

}  // namespace ferry::control
