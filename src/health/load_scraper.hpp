// Load-aware weights: scrapes every backend of every VIP with load_aware on for its Prometheus
// metrics (vLLM, TGI, Triton), turns them into a load factor in [floor, 1] per backend
// (balance::LoadFactor) and reports when a factor changes. One background thread, plain POSIX
// sockets multiplexed with poll(), like the health checker; no DPDK, so it is tested against
// loopback servers. Control path only: the data plane never waits on it.
//
// Targets: a target is one backend scraped with one set of load_aware settings (LoadTargetKey).
// The same backend behind several VIPs with the same settings is one target, scraped once per
// interval; with different settings it is two targets, each with its own factor.
//
// Scrapes: `GET <path>` on the backend's address and the load_aware port (0 = the backend's own),
// every interval_ms, the first one at a deterministic offset in [0, interval_ms) hashed from the
// key so many targets spread over the interval. A scrape's timeout covers everything: connect,
// request, status line, headers and the whole body. The body may come with Content-Length,
// chunked, or up to the close; a body over max_body is refused without reading the rest.
//
// Failures: a refused connect, a timeout, a status other than 200, a body too large or one with
// no queue, KV cache or latency histogram metric of the format counts as an error; the factor stays where
// it was (the last good one) and last_error says why. Nothing escapes the thread.
//
// Threads: set_targets(), take_events(), status() and all() may be called from any thread; they
// take one mutex for a short time (never held while waiting on sockets or parsing a body).
// start(), stop() and running() belong to one thread (the control thread).
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "balance/latency_factor.hpp"
#include "balance/load_factor.hpp"
#include "balance/prom_parser.hpp"
#include "common/ip_address.hpp"
#include "config/config.hpp"

namespace ferry::health {

// Identity of a scraped target: the backend and every load_aware setting (enabled is always true
// in a key). `backend` is the backend's own endpoint, the one the caller knows it by; the scrape
// connects to settings.port instead when that is not 0.
struct LoadTargetKey {
    Endpoint backend;
    LoadAwareConfig settings;

    Endpoint scrape_endpoint() const;  // backend address, settings.port or the backend's port
    std::string to_string() const;     // "vllm http://10.0.0.5:8000/metrics"
    friend bool operator==(const LoadTargetKey&, const LoadTargetKey&) = default;
    friend bool operator<(const LoadTargetKey& a, const LoadTargetKey& b);
};

// The target that scrapes `backend` of `vip` (whose load_aware is meant to be enabled).
LoadTargetKey make_load_target_key(const BackendConfig& backend, const VipConfig& vip);

// balance::LoadFactorConfig from the config's names (smoothing is the EWMA alpha).
balance::LoadFactorConfig load_factor_config(const LoadAwareConfig& cfg);

// The metric names of the format, with the config's ttft_metric / tpot_metric applied, and what
// to ask the parser for given the aggregation.
balance::MetricNames metric_names(LoadMetricsFormat format);
balance::MetricNames metric_names(const LoadAwareConfig& cfg);
std::vector<balance::WantedMetric> wanted_metrics(const LoadAwareConfig& cfg);

// When, after a target is added, its first scrape runs: in [0, interval_ms), the same for the same
// key in every process.
uint32_t first_scrape_offset_ms(const LoadTargetKey& key);

// Everything known about one target, as a copy for the caller.
struct LoadStatus {
    double factor = 1.0;      // the published factor; 1 until a scrape says otherwise
    std::string reason;       // LoadFactor::reason() after the last good scrape; empty before
    std::string last_error;   // why the latest failed scrape failed; empty if none failed yet
    uint64_t scrapes = 0;     // scrapes finished, good or not
    uint64_t errors = 0;      // scrapes that failed
    uint32_t consecutive_errors = 0;  // failed scrapes since the last good one
    balance::LoadSignals last_signals;  // of the last good scrape
    // Server-reported latencies, seconds: the mean over each scrape interval (histogram _sum and
    // _count deltas), smoothed (EWMA, weight balance::kDefaultLatencySmoothing); empty until an interval had one.
    std::optional<double> ttft_s;
    std::optional<double> tpot_s;
};


// A change of a target's published factor.
struct LoadEvent {
    Endpoint backend;   // the backend's own endpoint (as in the config)
    double factor = 1.0;  // the new published factor
    std::string reason;   // LoadFactor::reason(): the signals and the factor they gave
    LoadTargetKey target;  // the full key, when one backend has several settings
};

// Construction settings of a LoadScraper.
struct LoadScraperOptions {
    std::string source_address;   // bind scrapes to this local address; empty = kernel's choice
    std::size_t max_body = balance::kDefaultMaxMetricsBody;  // bigger bodies are refused
    std::size_t max_events = 4096;  // queued events beyond this drop the oldest (see events_dropped())
};

// Owns the targets, their load factors, the schedule and the scrape thread.
class LoadScraper {
public:
    using Options = LoadScraperOptions;
    using Clock = std::chrono::steady_clock;

    // Throws std::invalid_argument if options.source_address is not an address, std::system_error
    // if the wake-up eventfd cannot be made.
    explicit LoadScraper(Options options = {});
    ~LoadScraper();  // stops the thread
    LoadScraper(const LoadScraper&) = delete;
    LoadScraper& operator=(const LoadScraper&) = delete;

    // Replaces the targets with the backends of every VIP whose load_aware is enabled or whose
    // latency_aware reads a server-reported latency (then with the load_aware group's settings). Unchanged
    // targets keep their factor, counters and schedule; removed ones are dropped (a scrape in
    // flight for them is ignored); new ones (an edited setting makes a new key) start at factor 1.
    // No events for added or removed targets. Throws std::invalid_argument for settings that
    // balance::LoadFactor refuses (a loaded Config never has them); the targets are then unchanged.
    void set_targets(const Config& cfg);
    void set_targets(std::vector<LoadTargetKey> keys);

    // Starts / stops the scrape thread. stop() returns promptly (scrapes in flight are dropped).
    // Both are idempotent; start() after stop() resumes the schedule.
    void start();
    void stop();
    bool running() const { return thread_.joinable(); }

    // Factor changes since the last call, oldest first.
    std::vector<LoadEvent> take_events();
    uint64_t events_dropped() const;

    // nullopt for a key that is not a current target.
    std::optional<LoadStatus> status(const LoadTargetKey& key) const;
    // The target of this backend; if several settings scrape it, the one with the lowest factor.
    std::optional<LoadStatus> status(const Endpoint& backend) const;
    std::vector<std::pair<LoadTargetKey, LoadStatus>> all() const;

private:
    class Fetcher;  // the non-blocking HTTP client, used by the scrape thread only

    // One scraped target and what the thread knows about it.
    struct Target {
        uint64_t id = 0;  // tag of its scrapes in the Fetcher
        balance::LoadFactor factor;
        balance::LatencyEstimate ttft;
        balance::LatencyEstimate tpot;
        LoadStatus counters;  // all but factor, which lives in `factor`
        Clock::time_point next_due;
        bool in_flight = false;
    };

    void run();
    void loop_once();
    void push_event(LoadEvent event);

    Options options_;
    std::unique_ptr<Fetcher> fetcher_;  // used by the scrape thread only (wake() by any)
    mutable std::mutex mu_;
    std::map<LoadTargetKey, Target> targets_;  // guarded by mu_
    std::map<uint64_t, LoadTargetKey> by_id_;  // scrape tag -> target, guarded by mu_
    uint64_t next_id_ = 1;                     // guarded by mu_
    std::deque<LoadEvent> events_;             // guarded by mu_
    uint64_t events_dropped_ = 0;              // guarded by mu_
    std::atomic<bool> stop_{false};
    std::thread thread_;
};

}  // namespace ferry::health
