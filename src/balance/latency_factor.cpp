// Latency factor; the header documents the formula and the rules.
#include "balance/latency_factor.hpp"

#include "balance/factor_smoothing.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <stdexcept>

namespace ferry::balance {

namespace {

void require(bool ok, const char* what) {
    if (!ok) throw std::invalid_argument(std::string("latency factor config: ") + what);
}

bool usable(double v) { return std::isfinite(v) && v >= 0; }
bool positive(const std::optional<double>& v) { return v && std::isfinite(*v) && *v > 0; }

}  // namespace

std::optional<double> IntervalMean::update(double sum, double count) noexcept {
    if (!usable(sum) || !usable(count)) return std::nullopt;
    if (!count_ || count < *count_ || sum < *sum_) {  // first call, or the server restarted
        sum_ = sum;
        count_ = count;
        return std::nullopt;
    }
    const double dc = count - *count_, ds = sum - *sum_;
    if (dc <= 0) return std::nullopt;
    sum_ = sum;
    count_ = count;
    last_count_ = dc;
    return ds / dc;
}

void IntervalMean::reset() noexcept {
    sum_.reset();
    count_.reset();
    last_count_ = 0;
}

LatencyEstimate::LatencyEstimate(double alpha) : alpha_(alpha) {
    require(alpha > 0 && alpha <= 1, "alpha must be in (0, 1]");
}

bool LatencyEstimate::update_totals(double sum, double count) noexcept {
    const auto mean = mean_.update(sum, count);
    return mean ? add(*mean) : false;
}

bool LatencyEstimate::add(double sample) noexcept {
    if (!usable(sample)) return false;
    value_ = value_ ? alpha_ * sample + (1.0 - alpha_) * *value_ : sample;
    return true;
}

void LatencyEstimate::reset() noexcept {
    mean_.reset();
    value_.reset();
}

std::optional<double> reference_latency(std::vector<double> latencies) {
    latencies.erase(std::remove_if(latencies.begin(), latencies.end(),
                                   [](double v) { return !(std::isfinite(v) && v > 0); }),
                    latencies.end());
    if (latencies.empty()) return std::nullopt;
    const auto mid = latencies.begin() + std::ptrdiff_t((latencies.size() - 1) / 2);
    std::nth_element(latencies.begin(), mid, latencies.end());
    return *mid;
}

LatencyFactor::LatencyFactor(const LatencyFactorConfig& cfg) : cfg_(cfg) {
    require(cfg.floor >= 0 && cfg.floor <= 1, "floor must be in [0, 1]");
    require(cfg.sensitivity > 0 && cfg.sensitivity <= 10, "sensitivity must be in (0, 10]");
    require(cfg.tolerance >= 0 && cfg.tolerance <= 60, "tolerance must be in [0, 60] s");
    require(cfg.alpha > 0 && cfg.alpha <= 1, "alpha must be in (0, 1]");
    require(cfg.hysteresis >= 0 && cfg.hysteresis <= 1, "hysteresis must be in [0, 1]");
}

double LatencyFactor::raw_factor(const LatencyFactorConfig& cfg, std::optional<double> reference,
                                 std::optional<double> own) noexcept {
    if (!positive(reference) || !positive(own)) return 1.0;
    const double f = std::pow((*reference + cfg.tolerance) / (*own + cfg.tolerance), cfg.sensitivity);
    return std::clamp(f, cfg.floor, 1.0);
}

bool LatencyFactor::update(std::optional<double> reference, std::optional<double> own) {
    reference_ = positive(reference) ? reference : std::nullopt;
    own_ = positive(own) ? own : std::nullopt;
    raw_ = raw_factor(cfg_, reference_, own_);
    return smooth_and_publish(raw_, cfg_.alpha, cfg_.floor, cfg_.hysteresis, smoothed_, published_);
}

void LatencyFactor::reset() noexcept {
    reference_.reset();
    own_.reset();
    raw_ = smoothed_ = published_ = 1.0;
}

std::string LatencyFactor::reason(const char* signal) const {
    char buf[160];
    if (!own_) {
        std::snprintf(buf, sizeof buf, "no %s samples -> factor %.2f", signal, published_);
    } else if (!reference_) {
        std::snprintf(buf, sizeof buf, "%s %.1f ms, no reference -> factor %.2f", signal, *own_ * 1000, published_);
    } else {
        std::snprintf(buf, sizeof buf, "%s %.1f ms, reference %.1f ms -> raw %.2f, smoothed %.2f, factor %.2f",
                      signal, *own_ * 1000, *reference_ * 1000, raw_, smoothed_, published_);
    }
    return buf;
}

}  // namespace ferry::balance
