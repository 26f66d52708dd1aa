#include "balance/load_factor.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <limits>
#include <random>
#include <stdexcept>

namespace ferry::balance {
namespace {

using namespace std::chrono_literals;

LoadSignals sig(std::optional<double> waiting, std::optional<double> kv = std::nullopt,
                std::optional<double> running = std::nullopt) {
    LoadSignals s;
    s.waiting = waiting;
    s.running = running;
    s.kv_cache = kv;
    return s;
}

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kNan = std::numeric_limits<double>::quiet_NaN();

TEST(LoadFactor, StartsAtOneAndIgnoresEmptyUpdates) {
    LoadFactor lf;
    EXPECT_EQ(lf.published(), 1.0);
    EXPECT_EQ(lf.smoothed(), 1.0);
    EXPECT_FALSE(lf.update({}));
    EXPECT_FALSE(lf.update(sig(std::nullopt, std::nullopt, 50.0)));  // running alone is no load signal
    EXPECT_FALSE(lf.update(sig(kNan, kNan)));
    EXPECT_EQ(lf.published(), 1.0);
    EXPECT_EQ(lf.reason(), "running=50 no load signals -> factor 1.00");
}

TEST(LoadFactor, RawFactorFormula) {
    const LoadFactorConfig c;
    EXPECT_DOUBLE_EQ(LoadFactor::raw_factor(c, 0, 0), 1.0);
    EXPECT_DOUBLE_EQ(LoadFactor::raw_factor(c, 4, 0), 0.5);    // target_queue halves it
    EXPECT_DOUBLE_EQ(LoadFactor::raw_factor(c, 8, 0), 1.0 / 3);
    EXPECT_DOUBLE_EQ(LoadFactor::raw_factor(c, 0, 0.8), 1.0);  // up to the threshold: no effect
    EXPECT_DOUBLE_EQ(LoadFactor::raw_factor(c, 0, 0.9), 0.5);
    EXPECT_DOUBLE_EQ(LoadFactor::raw_factor(c, 0, 1.0), c.floor);
    EXPECT_DOUBLE_EQ(LoadFactor::raw_factor(c, 4, 0.85), 0.5 * 0.75);
    EXPECT_DOUBLE_EQ(LoadFactor::raw_factor(c, 1000, 0), c.floor);

    LoadFactorConfig half;
    half.queue_weight = 0.5;
    half.kv_weight = 0;
    EXPECT_DOUBLE_EQ(LoadFactor::raw_factor(half, kInf, 1.0), 0.5);  // the queue can take at most half
    EXPECT_DOUBLE_EQ(LoadFactor::raw_factor(half, 4, 1.0), 0.75);
}

TEST(LoadFactor, AlwaysWithinFloorAndOne) {
    std::mt19937_64 rng(1);
    std::uniform_real_distribution<double> any(-100, 1000);
    LoadFactorConfig cfg;
    cfg.floor = 0.2;
    LoadFactor lf(cfg);
    for (int k = 0; k < 5000; ++k) {
        LoadSignals s;
        switch (k % 7) {
            case 0: s = sig(kInf, kInf); break;
            case 1: s = sig(-kInf, -kInf); break;
            case 2: s = sig(any(rng), any(rng) / 500); break;
            default: s = sig(any(rng) / 50, std::uniform_real_distribution<double>(0, 1)(rng)); break;
        }
        lf.update(s);
        EXPECT_GE(lf.raw(), 0.2);
        EXPECT_LE(lf.raw(), 1.0);
        EXPECT_GE(lf.smoothed(), 0.2);
        EXPECT_LE(lf.smoothed(), 1.0);
        EXPECT_GE(lf.published(), 0.2);
        EXPECT_LE(lf.published(), 1.0);
    }
}

TEST(LoadFactor, HeavyLoadEndsExactlyAtFloorAndRecoversToOne) {
    LoadFactor lf;
    for (int k = 0; k < 40; ++k) lf.update(sig(200, 0.99));
    EXPECT_EQ(lf.smoothed(), 0.1);
    EXPECT_EQ(lf.published(), 0.1);
    for (int k = 0; k < 40; ++k) lf.update(sig(0, 0.1));
    EXPECT_EQ(lf.smoothed(), 1.0);
    EXPECT_EQ(lf.published(), 1.0);
}

TEST(LoadFactor, SmoothingConvergesToTheRawFactor) {
    LoadFactor lf;
    lf.update(sig(4));
    EXPECT_NEAR(lf.smoothed(), 0.3 * 0.5 + 0.7 * 1.0, 1e-12);  // one EWMA step from 1
    for (int k = 0; k < 60; ++k) lf.update(sig(4));
    EXPECT_NEAR(lf.smoothed(), 0.5, 1e-6);
    EXPECT_NEAR(lf.published(), 0.5, 0.05);

    LoadFactorConfig raw_only;
    raw_only.alpha = 1;
    raw_only.hysteresis = 0;
    LoadFactor direct(raw_only);
    EXPECT_TRUE(direct.update(sig(12)));
    EXPECT_DOUBLE_EQ(direct.published(), 0.25);
}

TEST(LoadFactor, UpdateReturnsTrueExactlyWhenPublishedChanges) {
    LoadFactor lf;
    std::mt19937_64 rng(2);
    for (int k = 0; k < 2000; ++k) {
        const double before = lf.published();
        const bool changed = lf.update(sig(double(rng() % 20), double(rng() % 100) / 100));
        EXPECT_EQ(changed, lf.published() != before);
        if (changed) {
            // A change is a move of at least the hysteresis, or the last step onto a bound.
            const bool at_bound = lf.published() == 1.0 || lf.published() == 0.1;
            EXPECT_TRUE(std::abs(lf.published() - before) >= 0.05 - 1e-9 || at_bound);
        }
    }
}

TEST(LoadFactor, HysteresisSuppressesFlapping) {
    // A queue jittering around the target: raw alternates 0.57 / 0.44.
    LoadFactor lf;
    int settle_changes = 0;
    for (int k = 0; k < 50; ++k) settle_changes += lf.update(sig(k % 2 ? 5.0 : 3.0));
    EXPECT_GE(settle_changes, 1);  // it did come down from 1
    int changes = 0;
    for (int k = 0; k < 1000; ++k) changes += lf.update(sig(k % 2 ? 5.0 : 3.0));
    EXPECT_EQ(changes, 0);
    EXPECT_NEAR(lf.published(), 0.5, 0.06);

    // The same input without hysteresis publishes on every scrape.
    LoadFactorConfig none;
    none.hysteresis = 0;
    LoadFactor jumpy(none);
    int jumpy_changes = 0;
    for (int k = 0; k < 1000; ++k) jumpy_changes += jumpy.update(sig(k % 2 ? 5.0 : 3.0));
    EXPECT_GT(jumpy_changes, 900);
}

TEST(LoadFactor, MissingSignalKeepsItsLastValue) {
    LoadFactorConfig c;
    c.alpha = 1;
    c.hysteresis = 0;
    LoadFactor lf(c);
    lf.update(sig(4, 0.9));  // 0.5 * 0.5
    EXPECT_DOUBLE_EQ(lf.published(), 0.25);
    lf.update(sig(0));  // the KV term stays at 0.5
    EXPECT_DOUBLE_EQ(lf.published(), 0.5);
    lf.update(sig(std::nullopt, 0.8));  // the queue term stays at 1
    EXPECT_DOUBLE_EQ(lf.published(), 1.0);
    lf.update(sig(kNan, 0.9));  // NaN waiting: as missing
    EXPECT_DOUBLE_EQ(lf.published(), 0.5);
}

TEST(LoadFactor, ReasonText) {
    LoadFactor lf;
    EXPECT_EQ(lf.reason(), "no load signals -> factor 1.00");
    lf.update(sig(12, 0.93, 30));
    // raw = 1/(1 + 12/4) * (1 - (0.93 - 0.8) / 0.2) = 0.25 * 0.35, below the floor
    EXPECT_EQ(lf.reason(), "waiting=12 running=30 kv=0.93 -> raw 0.10, smoothed 0.73, factor 0.73");
    for (int k = 0; k < 3; ++k) lf.update(sig(12, 0.93, 30));
    EXPECT_EQ(lf.reason(), "waiting=12 running=30 kv=0.93 -> raw 0.10, smoothed 0.32, factor 0.32");
}

TEST(LoadFactor, ResetForgetsEverything) {
    LoadFactor lf;
    for (int k = 0; k < 20; ++k) lf.update(sig(50, 1.0));
    EXPECT_LT(lf.published(), 0.2);
    lf.reset();
    EXPECT_EQ(lf.published(), 1.0);
    EXPECT_EQ(lf.smoothed(), 1.0);
    EXPECT_EQ(lf.reason(), "no load signals -> factor 1.00");
}

TEST(LoadFactor, ConfigIsValidated) {
    const auto bad = [](auto mutate) {
        LoadFactorConfig c;
        mutate(c);
        return c;
    };
    EXPECT_NO_THROW({ LoadFactor ok{LoadFactorConfig{}}; });
    EXPECT_THROW(LoadFactor(bad([](LoadFactorConfig& c) { c.floor = 1.5; })), std::invalid_argument);
    EXPECT_THROW(LoadFactor(bad([](LoadFactorConfig& c) { c.floor = kNan; })), std::invalid_argument);
    EXPECT_THROW(LoadFactor(bad([](LoadFactorConfig& c) { c.alpha = 0; })), std::invalid_argument);
    EXPECT_THROW(LoadFactor(bad([](LoadFactorConfig& c) { c.target_queue = 0; })), std::invalid_argument);
    EXPECT_THROW(LoadFactor(bad([](LoadFactorConfig& c) { c.kv_threshold = 1; })), std::invalid_argument);
    EXPECT_THROW(LoadFactor(bad([](LoadFactorConfig& c) { c.kv_weight = -0.1; })), std::invalid_argument);
    EXPECT_THROW(LoadFactor(bad([](LoadFactorConfig& c) { c.queue_weight = 2; })), std::invalid_argument);
    EXPECT_THROW(LoadFactor(bad([](LoadFactorConfig& c) { c.hysteresis = -1; })), std::invalid_argument);
}

TEST(SlowStart, ExactEndpoints) {
    EXPECT_EQ(slow_start_factor(0s, 60s), 0.1);
    EXPECT_EQ(slow_start_factor(-5s, 60s), 0.1);  // before the start
    EXPECT_EQ(slow_start_factor(60s, 60s), 1.0);
    EXPECT_EQ(slow_start_factor(3600s, 60s), 1.0);
    EXPECT_LT(slow_start_factor(60s - 1ns, 60s), 1.0);
    EXPECT_DOUBLE_EQ(slow_start_factor(30s, 60s), 0.55);
    EXPECT_DOUBLE_EQ(slow_start_factor(30s, 60s, 0.0), 0.5);
    // So long a ramp that the last nanosecond rounds to 1: still below 1.
    const std::chrono::nanoseconds year = std::chrono::hours(24 * 365 * 100);
    EXPECT_LT(slow_start_factor(year - 1ns, year), 1.0);
    EXPECT_EQ(slow_start_factor(year, year), 1.0);
    // No ramp.
    EXPECT_EQ(slow_start_factor(0s, 0s), 1.0);
    EXPECT_EQ(slow_start_factor(-1s, 0s), 1.0);
}

TEST(SlowStart, Monotonic) {
    const std::chrono::nanoseconds d = 10s;
    double prev = 0;
    for (std::chrono::nanoseconds e = -1s; e <= 11s; e += 7919us) {
        const double f = slow_start_factor(e, d);
        EXPECT_GE(f, prev);
        EXPECT_EQ(f == 1.0, e >= d);
        prev = f;
    }
}

TEST(SlowStart, ClassWrapsTheClock) {
    const auto t0 = SlowStart::Clock::now();
    const SlowStart ss(t0, 20s, 0.2);
    EXPECT_EQ(ss.factor(t0), 0.2);
    EXPECT_DOUBLE_EQ(ss.factor(t0 + 10s), 0.6);
    EXPECT_FALSE(ss.done(t0 + 19s));
    EXPECT_LT(ss.factor(t0 + 19s), 1.0);
    EXPECT_TRUE(ss.done(t0 + 20s));
    EXPECT_EQ(ss.factor(t0 + 20s), 1.0);
    EXPECT_EQ(ss.end(), t0 + 20s);
    EXPECT_THROW(SlowStart(t0, 1s, 1.0), std::invalid_argument);
    EXPECT_THROW(SlowStart(t0, 1s, -0.1), std::invalid_argument);
    EXPECT_THROW(SlowStart(t0, -1s), std::invalid_argument);
}

TEST(EffectiveWeight, ScalesAndKeepsATrickle) {
    EXPECT_EQ(effective_weight(0, 0.5), 0u);
    EXPECT_EQ(effective_weight(100, 1.0), 100u);
    EXPECT_EQ(effective_weight(100, 0.5), 50u);
    EXPECT_EQ(effective_weight(100, 0.333), 33u);
    EXPECT_EQ(effective_weight(100, 0.001), 1u);
    EXPECT_EQ(effective_weight(100, 0.0), 1u);
    EXPECT_EQ(effective_weight(100, 7.0), 100u);
    EXPECT_EQ(effective_weight(100, kNan), 100u);
    EXPECT_EQ(effective_weight(65535, 0.1), 6554u);
}

}  // namespace
}  // namespace ferry::balance
