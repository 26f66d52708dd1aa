// Latency-aware weights: turns how slowly a backend answers, next to the other
// backends of its VIP, into a factor in [floor, 1] that scales its weight.
// Control path only; pure, so it is unit-tested without EAL.
//
// The signals. Four latencies can drive the factor (the VIP's config picks
// one): the data plane's SYN to SYN-ACK time (connect), the health probe's
// round trip (probe), and the server-reported time to first token (ttft) and
// time per output token (tpot), read from Prometheus histograms. The first and
// the last two come as cumulative (sum, count) totals: LatencyEstimate turns
// the totals' growth between two reads into the mean over that interval
// (IntervalMean) and smooths those means with an EWMA. An interval that added
// nothing keeps the estimate where it was.
//
// The reference. A VIP's reference latency is the lower median of the
// estimates of its healthy backends that have one: robust against one odd
// backend (a broken server that errors fast must not make every other one look
// slow), and with two backends it is the faster one.
//
// The factor. raw = clamp(((reference + tolerance) / (own + tolerance)) ^
// sensitivity, floor, 1): 1 for a backend at or below the reference,
// (1/2)^sensitivity for one twice as slow. The tolerance (default 1 ms) keeps
// differences far below it from counting: connect times of 30 and 50 us are
// jitter, not a slower server.
// With sensitivity 1 and a per-token time as the signal, a half-speed server's
// weight halves: its share of new connections is its share of the capacity.
// A missing reference or own latency gives raw 1 (no data is no evidence). The
// raw factor is smoothed and published with hysteresis exactly like the load
// factor (balance/load_factor.hpp): an EWMA from 1, published when it moved at
// least `hysteresis` or reached a bound.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace ferry::balance {

// The mean of what a cumulative (sum, count) pair gained since the last call.
class IntervalMean {
public:
    // Returns the interval's mean, or nullopt: the first call (no baseline),
    // nothing added (count unchanged), a counter reset (count or sum went
    // down: the server restarted; the new totals become the baseline), or a
    // NaN / infinite / negative input (ignored, the baseline stays).
    std::optional<double> update(double sum, double count) noexcept;
    void reset() noexcept;
    // Observations in the last interval that gave a mean (0 before one).
    double last_count() const noexcept { return last_count_; }

private:
    std::optional<double> sum_;
    std::optional<double> count_;
    double last_count_ = 0;
};

// EWMA weight of the newest interval mean in Ferry's latency estimates.
inline constexpr double kDefaultLatencySmoothing = 0.3;

// A smoothed latency: interval means of cumulative totals, or single samples,
// folded into an EWMA that starts at the first value seen.
class LatencyEstimate {
public:
    // alpha in (0, 1]: weight of the newest mean. Throws std::invalid_argument.
    explicit LatencyEstimate(double alpha = kDefaultLatencySmoothing);

    // Cumulative totals (e.g. a histogram's _sum and _count). Returns true when
    // the interval added observations and the estimate moved.
    bool update_totals(double sum, double count) noexcept;
    // One latency sample (e.g. a probe's round trip); NaN, infinite or
    // negative values are ignored.
    bool add(double sample) noexcept;
    void reset() noexcept;

    std::optional<double> value() const noexcept { return value_; }
    const IntervalMean& interval() const noexcept { return mean_; }

private:
    double alpha_;
    IntervalMean mean_;
    std::optional<double> value_;
};

// Tuning of LatencyFactor.
struct LatencyFactorConfig {
    double floor = 0.1;        // 0..1: smallest factor
    double sensitivity = 1.0;  // > 0: exponent of reference / own
    double tolerance = 0.001;  // >= 0, seconds: added to both latencies
    double alpha = 0.3;        // (0, 1]: EWMA weight of the newest raw factor; 1 = no smoothing
    double hysteresis = 0.05;  // 0..1: publish when the smoothed factor moved this far
};

// Lower median of the positive, finite latencies; nullopt when there is none.
std::optional<double> reference_latency(std::vector<double> latencies);

// The smoothed, hysteretic latency factor of one backend in one VIP (see the
// file comment). Not thread-safe: owned by the control thread.
class LatencyFactor {
public:
    // Throws std::invalid_argument when a field is out of its range.
    explicit LatencyFactor(const LatencyFactorConfig& cfg = {});

    // One step with the VIP's reference and this backend's latency (either may
    // be missing). Returns true when published() changed.
    bool update(std::optional<double> reference, std::optional<double> own);
    // Back to "nothing known": factor 1.
    void reset() noexcept;

    double published() const noexcept { return published_; }
    double smoothed() const noexcept { return smoothed_; }
    double raw() const noexcept { return raw_; }
    const LatencyFactorConfig& config() const noexcept { return cfg_; }

    // Why, e.g. "ttft 84.0 ms, reference 41.0 ms -> raw 0.49, smoothed 0.62,
    // factor 0.62"; latencies are in seconds and shown in ms.
    std::string reason(const char* signal) const;

    // clamp(((reference + tolerance) / (own + tolerance)) ^ sensitivity, floor,
    // 1); 1 when either is missing, not positive or not finite.
    static double raw_factor(const LatencyFactorConfig& cfg, std::optional<double> reference,
                             std::optional<double> own) noexcept;

private:
    LatencyFactorConfig cfg_;
    std::optional<double> reference_;
    std::optional<double> own_;
    double raw_ = 1.0;
    double smoothed_ = 1.0;
    double published_ = 1.0;
};

}  // namespace ferry::balance
