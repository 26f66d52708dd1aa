// The control thread (ferryd's main lcore): owns the config and the runtime
// state, builds snapshots off the data path and publishes them whole, frees
// old ones after an RCU grace period, and keeps next hops resolved.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "config/config.hpp"
#include "balance/latency_factor.hpp"
#include "dataplane/dataplane.hpp"
#include "dataplane/log.hpp"
#include "dataplane/snapshot.hpp"
#include "health/health_checker.hpp"
#include "health/load_scraper.hpp"
#include "ops/control_server.hpp"
#include "ops/metrics_server.hpp"

namespace ferry::control {

// What the control thread remembers about one next hop it must keep resolved.
struct NeighbourState {
    uint16_t port = 0;
    uint64_t confirmed_ms = 0;  // last ARP reply / request seen from it
    uint64_t requested_ms = 0;  // last ARP request we sent
    uint32_t unanswered = 0;    // requests since the last confirmation
    bool resolved = false;
};

// Outcome of a reload, for the log and for the caller of the control API.
struct ReloadResult {
    bool ok = false;
    std::vector<std::string> errors;   // why it was refused
    std::vector<std::string> changes;  // what it changed
    uint64_t apply_ms = 0;             // file read to new snapshot live
};

class ControlPlane {
public:
    ControlPlane(dp::Dataplane& dp, std::shared_ptr<const Config> cfg);
    ~ControlPlane();

    // Builds and publishes the first snapshot; announces addresses (gratuitous
    // ARP); starts health checks and the control socket. Throws on failure.
    void start();
    // Runs until `stop` becomes true. Checks `reload` once per iteration.
    void run(const std::atomic<bool>& stop, std::atomic<bool>& reload);

    // Reloads the config file: everything or nothing. On refusal the running
    // config stays and `errors` says why (file:line: reason). Control thread only.
    ReloadResult reload_config();

    // One backend in one VIP as readers on other threads see it.
    struct BackendRow {
        std::string vip, backend, state;
        uint32_t weight = 0, effective_weight = 0;
        double load_factor = 1.0, latency_factor = 1.0;  // 1 when off or nothing known
    };
    // Latencies of one backend, seconds; empty when not measured (yet).
    struct BackendLatency {
        std::optional<double> connect_s;  // SYN to SYN-ACK through the data plane, smoothed
        std::optional<double> ttft_s;     // server-reported time to first token, smoothed
        std::optional<double> tpot_s;     // server-reported time per output token, smoothed
    };
    // For readers on other threads (telemetry, metrics): a consistent view,
    // refreshed by the control thread whenever it publishes.
    struct View {
        std::shared_ptr<const Config> config;
        std::shared_ptr<const dp::Snapshot> snapshot;
        std::vector<Endpoint> backend_endpoints;  // by backend id
        std::map<std::string, uint32_t> vip_ids;  // by VIP name
        std::vector<BackendRow> backends;
        std::map<uint32_t, BackendLatency> latency;  // by backend id
        uint64_t generation = 0;
        std::chrono::system_clock::time_point loaded_at;
    };
    View view() const;
    // Prometheus text exposition of every counter and state. Thread-safe.
    std::string render_metrics() const;

    // One control API request (see docs/CONTROL_API.md). Control thread only.
    nlohmann::json handle(const nlohmann::json& request);

private:
    void publish();
    void set_config(std::shared_ptr<const Config> cfg);
    void on_config_applied(const Config& old);
    void tick_health(uint64_t now_ms);
    void tick_passive(uint64_t now_ms);
    void tick_drains(uint64_t now_ms);
    void tick_drop_warnings(uint64_t now_ms);
    void tick_factors(uint64_t now_ms);
    void tick_load(uint64_t now_ms);
    void tick_latency(uint64_t now_ms);
    std::optional<double> latency_of(LatencySignal signal, const VipConfig& v, const BackendConfig& b) const;
    BackendLatency latency_of(const BackendConfig& b) const;
    void begin_slow_start(dp::VipBackend pair, const char* why);
    const VipConfig* vip_config(uint32_t vid) const;
    std::vector<dp::VipBackend> pairs_of(const health::TargetKey& key) const;
    const VipConfig& find_vip_config(const std::string& name) const;
    const BackendConfig& find_backend_config(const VipConfig& vip, const std::string& backend) const;
    nlohmann::json backend_json(const VipConfig& v, uint32_t vid, const BackendConfig& b);
    std::string reason_of(uint32_t vid, uint32_t bid) const;
    std::optional<double> rtt_ms_of(uint32_t vid, uint32_t bid) const;  // none until a probe measured one
    void reclaim(bool wait_all);
    // Returns how many worker messages it handled.
    unsigned handle_messages(uint64_t now_ms);
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
    std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();

    health::HealthChecker checker_;
    health::LoadScraper load_scraper_;
    std::map<uint32_t, double> load_factor_;                 // by backend id: published load factor
    std::map<uint32_t, std::string> load_reason_;            // ... and why
    std::map<dp::VipBackend, uint64_t> slow_start_since_;    // ramps in progress, ms
    std::map<uint32_t, balance::LatencyEstimate> connect_;  // by backend id: SYN to SYN-ACK, seconds
    struct LatencyState {
        LatencyAwareConfig cfg;
        balance::LatencyFactor factor;
        std::string reason;
    };
    std::map<dp::VipBackend, LatencyState> latency_;         // VIPs with latency_aware on
    std::map<uint32_t, BackendLatency> latency_view_;        // guarded by view_mutex_
    uint64_t last_factor_ms_ = 0;
    std::map<dp::VipBackend, std::string> health_reason_;    // last transition's cause
    std::map<dp::VipBackend, uint64_t> drain_started_;       // operator drains and removals, ms
    std::map<uint32_t, uint64_t> removed_since_;             // backends in no VIP: since when (ms)
    std::map<uint32_t, uint32_t> removed_timeout_s_;         // ... and their drain timeout
    struct PassiveSample {
        uint64_t syn_sent = 0, synack_seen = 0, rst_on_syn = 0;
    };
    std::map<uint32_t, PassiveSample> passive_;              // by backend id
    uint64_t last_passive_ms_ = 0;
    uint64_t last_drop_check_ms_ = 0;
    std::array<uint64_t, dp::kDropCount> last_drop_totals_{};
    std::unique_ptr<ops::ControlServer> server_;
    std::unique_ptr<ops::MetricsServer> metrics_;
    std::vector<BackendRow> rows_;             // guarded by view_mutex_
};

uint64_t monotonic_ms();

}  // namespace ferry::control
