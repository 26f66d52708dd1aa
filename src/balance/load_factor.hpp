// Load-aware weights: turns a backend's load signals (queue length, KV cache
// usage) into a factor in [floor, 1] that scales its configured weight, and a
// slow-start ramp for backends that just came up. Control path only.
//
// The factor. Each signal has a term in [0, 1]; the raw factor is their
// product, clamped to [floor, 1]:
//
//     queue term  q = 1 - queue_weight * (1 - 1 / (1 + waiting / target_queue))
//     KV term     k = 1 - kv_weight * clamp((kv - kv_threshold) / (1 - kv_threshold), 0, 1)
//     raw         = clamp(q * k, floor, 1)
//
// With the default weights of 1, q is 1 / (1 + waiting / target_queue): 1 for
// an empty queue, 1/2 at target_queue waiting requests, 1/3 at twice that; and
// k is 1 up to kv_threshold (0.8) of the cache, then falls linearly to 0 at a
// full cache, where the server starts preempting. A weight below 1 caps how
// much its signal can take away (queue_weight 0.5: the queue at most halves
// the factor); 0 disables it. The running batch size is not used: a big batch
// is a healthy server, and the queue shows when it cannot keep up.
//
// Smoothing and hysteresis. The raw factor is smoothed by an EWMA (starting
// from 1, "no load known"), and only the published factor is meant to change
// weights: it follows the smoothed one only when they differ by at least
// `hysteresis`, so input jittering around a level does not rebuild tables on
// every scrape. When the smoothed factor comes within hysteresis / 10 of a
// bound (floor or 1) it is set to the bound, so an idle backend ends at exactly
// 1 instead of stalling up to `hysteresis` below it.
//
// Missing signals. Each term uses the latest value seen for its signal, and a
// signal never seen counts as no load (a TGI server has no KV signal). An
// update carrying neither waiting nor kv_cache (scrape failed, metrics
// renamed) changes nothing; NaN counts as missing. Deciding that a backend
// whose scrapes keep failing is back to "unknown" is the caller's: reset().
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include "balance/prom_parser.hpp"  // LoadSignals

namespace ferry::balance {

// Tuning of LoadFactor; the defaults suit vLLM with continuous batching.
struct LoadFactorConfig {
    double floor = 0.1;         // 0..1: smallest factor, so a loaded backend keeps a trickle
    double queue_weight = 1.0;  // 0..1: how much of the factor the queue can take away
    double target_queue = 4.0;  // > 0: waiting requests at which the queue term halves
    double kv_weight = 1.0;     // 0..1: how much of the factor KV cache pressure can take away
    double kv_threshold = 0.8;  // 0..1 (excl.): KV usage where the KV term starts to fall
    double alpha = 0.3;         // (0, 1]: EWMA weight of the newest raw factor; 1 = no smoothing
    double hysteresis = 0.05;   // >= 0: publish when the smoothed factor moved this far
};

// The smoothed, hysteretic load factor of one backend (see the file comment).
// Not thread-safe: one instance per backend, owned by the control thread.
class LoadFactor {
public:
    // Throws std::invalid_argument when a field is out of its range.
    explicit LoadFactor(const LoadFactorConfig& cfg = {});

    // Folds in one scrape. Returns true when published() changed.
    bool update(const LoadSignals& signals);
    // Back to "no load known": factor 1, signals forgotten.
    void reset() noexcept;

    double published() const noexcept { return published_; }
    double smoothed() const noexcept { return smoothed_; }
    double raw() const noexcept { return raw_; }
    const LoadFactorConfig& config() const noexcept { return cfg_; }

    // Why the factor is what it is, e.g.
    // "waiting=12 running=30 kv=0.93 -> raw 0.10, smoothed 0.33, factor 0.31".
    std::string reason() const;

    // The unsmoothed factor for given signal values (waiting >= 0, kv 0..1).
    static double raw_factor(const LoadFactorConfig& cfg, double waiting, double kv) noexcept;

private:
    LoadFactorConfig cfg_;
    std::optional<double> waiting_;
    std::optional<double> running_;
    std::optional<double> kv_;
    double raw_ = 1.0;
    double smoothed_ = 1.0;
    double published_ = 1.0;
};

inline constexpr double kDefaultSlowStartShare = 0.1;

// The slow-start factor `elapsed` into a ramp of `duration`: start_share at (or
// before) the start, rising linearly, exactly 1.0 from `duration` on and
// strictly below 1.0 before it; non-decreasing in elapsed. A zero or negative
// duration means no ramp (1.0). start_share is clamped to [0, 1).
double slow_start_factor(std::chrono::nanoseconds elapsed, std::chrono::nanoseconds duration,
                         double start_share = kDefaultSlowStartShare) noexcept;

// A backend's slow-start ramp from the moment it became usable, so it is not
// flooded while its caches (and the KV cache of an AI server) are cold.
class SlowStart {
public:
    using Clock = std::chrono::steady_clock;

    // Throws std::invalid_argument when start_share is not in [0, 1) or the
    // duration is negative.
    SlowStart(Clock::time_point start, Clock::duration duration, double start_share = kDefaultSlowStartShare);

    double factor(Clock::time_point now) const noexcept {
        return slow_start_factor(now - start_, duration_, start_share_);
    }
    bool done(Clock::time_point now) const noexcept { return now - start_ >= duration_; }
    Clock::time_point end() const noexcept { return start_ + duration_; }

private:
    Clock::time_point start_;
    Clock::duration duration_;
    double start_share_;
};

// Configured weight times a factor, rounded: 0 stays 0 ("no new flows" is the
// operator's call), anything else stays in [1, configured] so a loaded backend
// keeps a trickle. A NaN factor leaves the weight as configured.
uint32_t effective_weight(uint32_t configured, double factor) noexcept;

}  // namespace ferry::balance
