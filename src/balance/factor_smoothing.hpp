// The smoothing and hysteresis that every weight factor shares (load,
// latency), so a factor moves slowly and does not make weights flap.
#pragma once

#include <algorithm>
#include <cmath>

namespace ferry::balance {

// One step of a factor in [floor, 1]: `smoothed` follows `raw` as an
// exponentially weighted average (weight `alpha` for the new value), snapped
// to 1 or to the floor when within a tenth of `hysteresis` of them;
// `published` (what the weights use) follows only when `smoothed` moved by at
// least `hysteresis` from it, or reached a bound. Returns true when
// `published` changed.
inline bool smooth_and_publish(double raw, double alpha, double floor, double hysteresis, double& smoothed,
                               double& published) noexcept {
    constexpr double kSlack = 1e-9;  // rounding: 0.55 - 0.5 is 0.04999999999999993
    smoothed = alpha * raw + (1.0 - alpha) * smoothed;
    const double snap = hysteresis / 10;
    if (smoothed >= 1.0 - snap) smoothed = 1.0;
    if (smoothed <= floor + snap) smoothed = floor;
    smoothed = std::clamp(smoothed, floor, 1.0);
    const bool moved = std::abs(smoothed - published) >= hysteresis - kSlack;
    const bool reached_bound = (smoothed == 1.0 || smoothed == floor) && smoothed != published;
    if (smoothed != published && (moved || reached_bound)) {
        published = smoothed;
        return true;
    }
    return false;
}

}  // namespace ferry::balance
