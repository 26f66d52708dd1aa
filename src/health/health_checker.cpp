#include "health/health_checker.hpp"

#include <algorithm>
#include <chrono>

#include "health/net_util.hpp"

namespace ferry::health {

namespace {

using std::chrono::milliseconds;

ProbeSpec spec_of(const TargetKey& key) {
    ProbeSpec s;
    s.kind = key.kind;
    s.target = key.endpoint;
    s.path = key.path;
    s.expect_status = key.expect_status;
    s.timeout_ms = key.timeout_ms;
    return s;
}

}  // namespace

std::string TargetKey::to_string() const {
    switch (kind) {
    case HealthCheckKind::none: return "none " + endpoint.to_string();
    case HealthCheckKind::tcp: return "tcp " + endpoint.to_string();
    case HealthCheckKind::http: return "http " + endpoint.to_string() + path;
    }
    return endpoint.to_string();
}

TargetKey make_target_key(const BackendConfig& backend, const VipConfig& vip) {
    const HealthCheckConfig& hc = backend.health ? *backend.health : vip.health;
    TargetKey k;
    k.kind = hc.kind;
    k.endpoint = backend.endpoint;
    if (hc.kind == HealthCheckKind::none) return k;
    if (hc.port != 0) k.endpoint.port = hc.port;
    if (hc.kind == HealthCheckKind::http) {
        k.path = hc.path;
        k.expect_status = hc.expect_status;
    }
    k.interval_ms = hc.interval_ms;
    k.timeout_ms = hc.timeout_ms;
    k.rise = hc.rise;
    k.fall = hc.fall;
    return k;
}

uint32_t first_probe_offset_ms(const TargetKey& key) {
    sched::OffsetHash f;
    f.bytes(key.endpoint.addr.bytes.data(), key.endpoint.addr.bytes.size());
    f.value(uint8_t(key.endpoint.addr.family));
    f.value(key.endpoint.port);
    f.value(uint8_t(key.kind));
    f.bytes(key.path.data(), key.path.size());
    f.value(key.expect_status);
    f.value(key.interval_ms);
    f.value(key.timeout_ms);
    f.value(key.rise);
    f.value(key.fall);
    return f.offset_ms(key.interval_ms);
}

HealthChecker::HealthChecker(Options options)
    : options_(std::move(options)), prober_(options_.source_address) {}

HealthChecker::~HealthChecker() { stop(); }

void HealthChecker::set_targets(const Config& cfg) {
    std::vector<TargetKey> keys;
    for (const VipConfig& vip : cfg.vips)
        for (const BackendConfig& b : vip.backends) keys.push_back(make_target_key(b, vip));
    set_targets(std::move(keys));
}

void HealthChecker::set_targets(std::vector<TargetKey> keys) {
    std::sort(keys.begin(), keys.end());
    keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
    const auto now = Clock::now();
    {
        std::lock_guard lock(mu_);
        // What an edited target may start from: the worst known state of the
        // same endpoint probed the same way (unknown < up < draining < down).
        std::map<std::pair<Endpoint, HealthCheckKind>, State> known;
        for (const auto& [key, t] : targets_) {
            if (!t.probed || t.sm.state() == State::unknown) continue;
            State& s = known[{key.endpoint, key.kind}];
            s = std::max(s, t.sm.state());
        }

        std::map<TargetKey, Target> next;
        for (TargetKey& key : keys) {
            if (auto it = targets_.find(key); it != targets_.end()) {
                next.insert(targets_.extract(it));
                continue;
            }
            Target t;
            t.id = next_id_++;
            t.spec = spec_of(key);
            t.probed = key.kind != HealthCheckKind::none;
            State initial = t.probed ? State::unknown : State::up;
            auto k = known.find({key.endpoint, key.kind});
            if (t.probed && k != known.end()) initial = k->second;
            t.sm = HealthState(key.rise, key.fall, initial);
            t.next_due = now + milliseconds(first_probe_offset_ms(key));
            next.emplace(std::move(key), std::move(t));
        }
        targets_ = std::move(next);
        by_id_.clear();
        for (const auto& [key, t] : targets_) by_id_.emplace(t.id, key);
    }
    prober_.wake();  // new targets may be due before the thread meant to wake
}

void HealthChecker::start() {
    if (thread_.joinable()) return;
    stop_.store(false, std::memory_order_release);
    thread_ = std::thread([this] { run(); });
}

void HealthChecker::stop() {
    if (!thread_.joinable()) return;
    stop_.store(true, std::memory_order_release);
    prober_.wake();
    thread_.join();
    // The thread is gone: the Prober is ours now. Drop what was in flight so a
    // later start() probes those targets afresh.
    prober_.cancel_all();
    std::lock_guard lock(mu_);
    for (auto& [key, t] : targets_) t.in_flight = false;
}

void HealthChecker::run() {
    while (!stop_.load(std::memory_order_acquire)) {
        try {
            loop_once();
        } catch (...) {
            // Nothing may escape the thread (bad_alloc is the likely one). Forget
            // the probes in flight so no target stays marked busy, then back off
            // so a lasting error does not spin.
            try {
                prober_.cancel_all();
                std::lock_guard lock(mu_);
                for (auto& [key, t] : targets_) t.in_flight = false;
            } catch (...) {
            }
            std::this_thread::sleep_for(milliseconds(50));
        }
    }
}

void HealthChecker::loop_once() {
    std::vector<std::pair<uint64_t, ProbeSpec>> due;
    const auto now = Clock::now();
    auto wake_at = now + std::chrono::hours(1);  // set_targets() and stop() wake the thread sooner
    {
        std::lock_guard lock(mu_);
        for (auto& [key, t] : targets_) {
            if (!t.probed || t.in_flight) continue;
            if (t.next_due <= now) {
                due.emplace_back(t.id, t.spec);
                t.in_flight = true;
                // Keep the phase; if the thread fell behind by a whole interval, skip ahead.
                sched::advance_due(t.next_due, key.interval_ms, now);
            } else {
                wake_at = std::min(wake_at, t.next_due);
            }
        }
    }
    for (const auto& [id, spec] : due) prober_.start(id, spec);

    auto results = prober_.poll(wake_at);
    if (results.empty()) return;
    std::lock_guard lock(mu_);
    for (auto& [id, r] : results) {
        auto k = by_id_.find(id);
        if (k == by_id_.end()) continue;  // target removed while its probe ran
        auto it = targets_.find(k->second);
        if (it == targets_.end()) continue;
        it->second.in_flight = false;
        ++it->second.counters.probes;
        apply(it->second, it->first, r.outcome, std::move(r.detail), r.rtt_us);
    }
}

void HealthChecker::apply(Target& t, const TargetKey& key, Outcome outcome, std::string detail,
                          uint32_t rtt_us) {
    if (outcome != Outcome::ok) ++t.counters.failures;
    if (outcome != Outcome::fail) t.counters.last_rtt_us = rtt_us;
    const State from = t.sm.state();
    if (t.sm.apply(outcome))
        sched::push_bounded(events_, HealthEvent{key, from, t.sm.state(), detail, rtt_us},
                            options_.max_events, events_dropped_);
    t.counters.last_result = std::move(detail);
}

std::vector<HealthEvent> HealthChecker::take_events() {
    std::lock_guard lock(mu_);
    return sched::take_all(events_);
}

uint64_t HealthChecker::events_dropped() const {
    std::lock_guard lock(mu_);
    return events_dropped_;
}

namespace {

HealthStatus status_of(const HealthState& sm, const HealthStatus& counters) {
    HealthStatus s = counters;
    s.state = sm.state();
    s.consecutive_ok = sm.consecutive_ok();
    s.consecutive_fail = sm.consecutive_fail();
    return s;
}

}  // namespace

std::optional<HealthStatus> HealthChecker::status(const TargetKey& key) const {
    std::lock_guard lock(mu_);
    auto it = targets_.find(key);
    if (it == targets_.end()) return std::nullopt;
    return status_of(it->second.sm, it->second.counters);
}

std::vector<std::pair<TargetKey, HealthStatus>> HealthChecker::all() const {
    std::lock_guard lock(mu_);
    std::vector<std::pair<TargetKey, HealthStatus>> out;
    out.reserve(targets_.size());
    for (const auto& [key, t] : targets_) out.emplace_back(key, status_of(t.sm, t.counters));
    return out;
}

bool HealthChecker::report_passive_failure(const TargetKey& key, std::string reason) {
    std::lock_guard lock(mu_);
    auto it = targets_.find(key);
    if (it == targets_.end()) return false;
    if (!it->second.probed) return true;  // kind none: always up
    ++it->second.counters.passive_failures;
    apply(it->second, it->first, Outcome::fail, std::move(reason), 0);
    return true;
}

}  // namespace ferry::health
