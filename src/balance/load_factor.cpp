// Load factor and slow start; the header documents the formula and the rules.
#include "balance/load_factor.hpp"

#include "balance/factor_smoothing.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <stdexcept>

namespace ferry::balance {

namespace {

// A range check that also refuses NaN.
void require(bool ok, const char* what) {
    if (!ok) throw std::invalid_argument(std::string("load factor config: ") + what);
}

bool in(double v, double lo, double hi) { return v >= lo && v <= hi; }


}  // namespace

LoadFactor::LoadFactor(const LoadFactorConfig& cfg) : cfg_(cfg) {
    require(in(cfg.floor, 0.0, 1.0), "floor must be in [0, 1]");
    require(in(cfg.queue_weight, 0.0, 1.0), "queue_weight must be in [0, 1]");
    require(cfg.target_queue > 0 && std::isfinite(cfg.target_queue), "target_queue must be > 0");
    require(in(cfg.kv_weight, 0.0, 1.0), "kv_weight must be in [0, 1]");
    require(cfg.kv_threshold >= 0 && cfg.kv_threshold < 1, "kv_threshold must be in [0, 1)");
    require(cfg.alpha > 0 && cfg.alpha <= 1, "alpha must be in (0, 1]");
    require(cfg.hysteresis >= 0 && cfg.hysteresis <= 1, "hysteresis must be in [0, 1]");
}

double LoadFactor::raw_factor(const LoadFactorConfig& cfg, double waiting, double kv) noexcept {
    // NaN reads as no load; +Inf waiting drives the queue term to 1 - queue_weight.
    const double w = waiting > 0 ? waiting : 0.0;
    const double q = 1.0 - cfg.queue_weight * (1.0 - 1.0 / (1.0 + w / cfg.target_queue));
    const double pressure =
        kv > cfg.kv_threshold ? std::min(1.0, (kv - cfg.kv_threshold) / (1.0 - cfg.kv_threshold)) : 0.0;
    const double k = 1.0 - cfg.kv_weight * pressure;
    return std::clamp(q * k, cfg.floor, 1.0);
}

bool LoadFactor::update(const LoadSignals& s) {
    bool any = false;
    if (s.waiting && !std::isnan(*s.waiting)) {
        waiting_ = std::max(0.0, *s.waiting);
        any = true;
    }
    if (s.kv_cache && !std::isnan(*s.kv_cache)) {
        kv_ = std::clamp(*s.kv_cache, 0.0, 1.0);
        any = true;
    }
    if (s.running && !std::isnan(*s.running)) running_ = *s.running;  // reported, not used
    if (!any) return false;

    raw_ = raw_factor(cfg_, waiting_.value_or(0.0), kv_.value_or(0.0));
    return smooth_and_publish(raw_, cfg_.alpha, cfg_.floor, cfg_.hysteresis, smoothed_, published_);
}

void LoadFactor::reset() noexcept {
    waiting_.reset();
    running_.reset();
    kv_.reset();
    raw_ = smoothed_ = published_ = 1.0;
}

std::string LoadFactor::reason() const {
    std::string r;
    char buf[64];
    const auto add = [&](const char* text) {
        if (!r.empty()) r += ' ';
        r += text;
    };
    if (waiting_) {
        std::snprintf(buf, sizeof buf, "waiting=%g", *waiting_);
        add(buf);
    }
    if (running_) {
        std::snprintf(buf, sizeof buf, "running=%g", *running_);
        add(buf);
    }
    if (kv_) {
        std::snprintf(buf, sizeof buf, "kv=%.2f", *kv_);
        add(buf);
    }
    if (!waiting_ && !kv_) {
        std::snprintf(buf, sizeof buf, "no load signals -> factor %.2f", published_);
        add(buf);
        return r;
    }
    std::snprintf(buf, sizeof buf, "-> raw %.2f, smoothed %.2f, factor %.2f", raw_, smoothed_, published_);
    add(buf);
    return r;
}

double slow_start_factor(std::chrono::nanoseconds elapsed, std::chrono::nanoseconds duration,
                         double start_share) noexcept {
    if (duration.count() <= 0 || elapsed >= duration) return 1.0;
    const double below_one = std::nextafter(1.0, 0.0);
    const double start =
        std::isnan(start_share) ? kDefaultSlowStartShare : std::clamp(start_share, 0.0, below_one);
    if (elapsed.count() <= 0) return start;
    const double progress = static_cast<double>(elapsed.count()) / static_cast<double>(duration.count());
    // Rounding can reach 1.0 a hair before the end; "never 1.0 before the end" wins.
    return std::min(start + (1.0 - start) * progress, below_one);
}

SlowStart::SlowStart(Clock::time_point start, Clock::duration duration, double start_share)
    : start_(start), duration_(duration), start_share_(start_share) {
    if (!(start_share >= 0 && start_share < 1)) {
        throw std::invalid_argument("slow start: start_share must be in [0, 1)");
    }
    if (duration.count() < 0) throw std::invalid_argument("slow start: negative duration");
}

uint32_t effective_weight(uint32_t configured, double factor) noexcept {
    if (configured == 0 || std::isnan(factor)) return configured;
    const double scaled = std::round(static_cast<double>(configured) * std::clamp(factor, 0.0, 1.0));
    return std::clamp(static_cast<uint32_t>(scaled), uint32_t{1}, configured);
}

}  // namespace ferry::balance
