// Active health checks for every backend of every VIP, run by one background
// thread and read by ferryd's control thread.
//
// Targets: a target is what gets probed, keyed by the probe's address:port and
// the effective check settings (TargetKey). Backends that share both (the same
// AI server behind several VIPs) share one target, probed once per interval.
// The caller maps each (VIP, backend) to its target with make_target_key() and
// reads the target's state. A backend listed with different check settings in
// two VIPs is two targets; the caller combines them (e.g. worst state wins).
//
// Schedule: each target is probed every interval_ms; its first probe comes at
// a deterministic offset in [0, interval_ms) hashed from its key, so 500 targets
// spread over the interval instead of firing at once (and keep the same phase
// across restarts).
//
// Threads: set_targets(), take_events(), status(), all() and
// report_passive_failure() may be called from any thread; they take one mutex
// for a short time. The probe thread never holds it while waiting on sockets.
// start(), stop() and running() belong to one thread (the control thread).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "common/ip_address.hpp"
#include "config/config.hpp"
#include "health/health_state.hpp"
#include "health/prober.hpp"

namespace ferry::health {

// Identity of a probed target: where the probe connects and every setting that
// changes what it does. Settings that do not apply to the kind are zeroed
// (path and expect_status for tcp; everything but the endpoint for none), so
// they do not split targets.
struct TargetKey {
    Endpoint endpoint;  // backend address and the effective check port
    HealthCheckKind kind = HealthCheckKind::tcp;
    std::string path;   // http only
    uint16_t expect_status = 0;  // http only
    uint32_t interval_ms = 0;
    uint32_t timeout_ms = 0;
    uint32_t rise = 0;
    uint32_t fall = 0;

    std::string to_string() const;  // "http 10.0.0.5:8000/health", "tcp 10.0.0.5:8000", "none 10.0.0.5:8000"
    friend bool operator==(const TargetKey&, const TargetKey&) = default;
    friend auto operator<=>(const TargetKey&, const TargetKey&) = default;
};

// The target that checks `backend` of `vip`: the backend's own health settings
// if it has them, else the VIP's; check port 0 means the backend's port.
TargetKey make_target_key(const BackendConfig& backend, const VipConfig& vip);

// When, after a target is added, its first probe runs: in [0, interval_ms),
// the same for the same key in every process.
uint32_t first_probe_offset_ms(const TargetKey& key);

// Everything known about one target, as a copy for the caller.
struct HealthStatus {
    State state = State::unknown;  // kind none: always up
    uint32_t consecutive_ok = 0;
    uint32_t consecutive_fail = 0;  // HTTP 503 and passive failures count too
    // RTT of the latest probe that got an answer (ok or 503): connect time for
    // tcp, time to the status line for http. 0 until then.
    uint32_t last_rtt_us = 0;
    std::string last_result;        // detail of the latest probe or passive failure
    uint64_t probes = 0;            // active probes finished
    uint64_t failures = 0;          // probes that were not ok (503 included) plus passive failures
    uint64_t passive_failures = 0;  // reported by the data plane
};

// A change of a target's state.
struct HealthEvent {
    TargetKey target;
    State from = State::unknown;
    State to = State::unknown;
    std::string reason;   // the result that caused it: "http GET /health: status 503", ...
    uint32_t rtt_us = 0;  // of that probe (time until failure for failures); 0 for passive failures
};

// Construction settings of a HealthChecker.
struct CheckerOptions {
    std::string source_address;    // bind probes to this local address; empty = kernel's choice
    std::size_t max_events = 4096;  // queued events beyond this drop the oldest (see events_dropped())
};

// Owns the targets, the schedule and the probe thread.
class HealthChecker {
public:
    using Options = CheckerOptions;

    // Throws std::invalid_argument if options.source_address is not an address.
    explicit HealthChecker(Options options = {});
    ~HealthChecker();  // stops the thread
    HealthChecker(const HealthChecker&) = delete;
    HealthChecker& operator=(const HealthChecker&) = delete;

    // Replaces the set of targets with those of every (VIP, backend) in cfg.
    // Unchanged targets keep their state, counters and schedule; removed ones
    // are dropped (a probe in flight for them is ignored). A new target that
    // probes the same endpoint with the same kind as an existing one (say the
    // interval was edited) starts in that one's state rather than unknown, so a
    // reload never turns a down backend into an assumed-up one; it then needs
    // `rise` oks as usual. No events for added or removed targets.
    void set_targets(const Config& cfg);
    void set_targets(std::vector<TargetKey> keys);

    // Starts / stops the probe thread. stop() returns promptly (it does not
    // wait for probes in flight, it drops them). Both are idempotent; start()
    // after stop() resumes the schedule.
    void start();
    void stop();
    bool running() const { return thread_.joinable(); }

    // State changes since the last call, oldest first.
    std::vector<HealthEvent> take_events();
    uint64_t events_dropped() const;

    // nullopt for a key that is not a current target.
    std::optional<HealthStatus> status(const TargetKey& key) const;
    std::vector<std::pair<TargetKey, HealthStatus>> all() const;

    // The data plane saw the target fail (e.g. RSTs or SYN timeouts): counts as
    // one failed probe. Ignored for kind none. False if the key is not a target.
    bool report_passive_failure(const TargetKey& key, std::string reason);

private:
    // One probed target and what the thread knows about it.
    struct Target {
        uint64_t id = 0;        // tag of its probes in the Prober
        ProbeSpec spec;
        bool probed = true;     // false for kind none: always up
        HealthState sm{1, 1};
        HealthStatus counters;  // all but state and consecutive_*, which live in sm
        Clock::time_point next_due;
        bool in_flight = false;
    };

    void run();
    void loop_once();
    void apply(Target& t, const TargetKey& key, Outcome outcome, std::string detail, uint32_t rtt_us);

    Options options_;
    Prober prober_;  // used by the probe thread only (wake() by any)
    mutable std::mutex mu_;
    std::map<TargetKey, Target> targets_;  // guarded by mu_
    std::map<uint64_t, TargetKey> by_id_;  // probe tag -> target, guarded by mu_
    uint64_t next_id_ = 1;                 // guarded by mu_
    std::deque<HealthEvent> events_;       // guarded by mu_
    uint64_t events_dropped_ = 0;          // guarded by mu_
    std::atomic<bool> stop_{false};
    std::thread thread_;
};

}  // namespace ferry::health
