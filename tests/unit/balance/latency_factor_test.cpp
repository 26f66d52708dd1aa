// Latency factor: interval means of cumulative totals, the reference, the
// bounded factor, smoothing, hysteresis and missing data.
#include "balance/latency_factor.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <stdexcept>

namespace ferry::balance {
namespace {

constexpr double kNan = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

TEST(IntervalMean, MeanOfWhatWasAddedSinceTheLastRead) {
    IntervalMean m;
    EXPECT_FALSE(m.update(10.0, 100));        // first read: a baseline only
    auto v = m.update(10.0 + 2.0, 100 + 10);  // 10 observations, 2 s in all
    ASSERT_TRUE(v);
    EXPECT_DOUBLE_EQ(*v, 0.2);
    EXPECT_DOUBLE_EQ(m.last_count(), 10);
    EXPECT_FALSE(m.update(12.0, 110));        // nothing new
    v = m.update(12.5, 115);
    ASSERT_TRUE(v);
    EXPECT_DOUBLE_EQ(*v, 0.1);
}

TEST(IntervalMean, CounterResetStartsAFreshBaseline) {
    IntervalMean m;
    m.update(100, 1000);
    EXPECT_FALSE(m.update(1.0, 5));   // the server restarted
    auto v = m.update(2.0, 10);
    ASSERT_TRUE(v);
    EXPECT_DOUBLE_EQ(*v, 0.2);
    // A sum that went down alone is a reset too.
    EXPECT_FALSE(m.update(1.0, 12));
    // Bad input is ignored and keeps the baseline.
    EXPECT_FALSE(m.update(kNan, 20));
    EXPECT_FALSE(m.update(2.0, kInf));
    EXPECT_FALSE(m.update(-1.0, 20));
    v = m.update(1.4, 14);
    ASSERT_TRUE(v);
    EXPECT_DOUBLE_EQ(*v, 0.2);
}

TEST(LatencyEstimate, SmoothsIntervalMeansAndStartsAtTheFirst) {
    LatencyEstimate e(0.5);
    EXPECT_FALSE(e.value());
    EXPECT_FALSE(e.update_totals(0, 0));
    EXPECT_TRUE(e.update_totals(1.0, 10));  // mean 0.1: the first value is taken as is
    EXPECT_DOUBLE_EQ(*e.value(), 0.1);
    EXPECT_TRUE(e.update_totals(4.0, 20));  // mean 0.3
    EXPECT_DOUBLE_EQ(*e.value(), 0.2);
    EXPECT_FALSE(e.update_totals(4.0, 20));  // an empty interval keeps the estimate
    EXPECT_DOUBLE_EQ(*e.value(), 0.2);
    EXPECT_FALSE(e.add(kNan));
    EXPECT_FALSE(e.add(-1));
    EXPECT_TRUE(e.add(0.4));
    EXPECT_DOUBLE_EQ(*e.value(), 0.3);
    e.reset();
    EXPECT_FALSE(e.value());
    EXPECT_THROW(LatencyEstimate(0.0), std::invalid_argument);
    EXPECT_THROW(LatencyEstimate(1.5), std::invalid_argument);
}

TEST(ReferenceLatency, LowerMedianOfKnownLatencies) {
    EXPECT_FALSE(reference_latency({}));
    EXPECT_FALSE(reference_latency({0.0, kNan, -1.0, kInf}));
    EXPECT_DOUBLE_EQ(*reference_latency({0.3}), 0.3);
    EXPECT_DOUBLE_EQ(*reference_latency({0.2, 0.1}), 0.1);                  // two: the faster
    EXPECT_DOUBLE_EQ(*reference_latency({0.1, 0.1, 0.1, 0.2}), 0.1);        // one slow of four
    EXPECT_DOUBLE_EQ(*reference_latency({0.001, 0.1, 0.1, 0.2, 0.3}), 0.1); // one odd fast one
    EXPECT_DOUBLE_EQ(*reference_latency({0.4, kNan, 0.2, 0.0, 0.3}), 0.3);
}

TEST(LatencyFactor, ToleranceKeepsJitterFromCounting) {
    LatencyFactorConfig c;  // tolerance 1 ms
    // 30 us against 50 us: jitter of a handshake, factor ~0.98, not 0.6.
    EXPECT_NEAR(LatencyFactor::raw_factor(c, 30e-6, 50e-6), 1.03 / 1.05, 1e-9);
    EXPECT_NEAR(LatencyFactor::raw_factor(c, 0.020, 0.040), 0.021 / 0.041, 1e-9);
    c.tolerance = 0.1;
    EXPECT_NEAR(LatencyFactor::raw_factor(c, 0.020, 0.040), 0.12 / 0.14, 1e-9);
    c.tolerance = 61;
    EXPECT_THROW(LatencyFactor{c}, std::invalid_argument);
}

TEST(LatencyFactor, RawIsBoundedPowerOfTheRatio) {
    LatencyFactorConfig c;
    c.tolerance = 0;
    EXPECT_DOUBLE_EQ(LatencyFactor::raw_factor(c, 0.1, 0.2), 0.5);
    EXPECT_DOUBLE_EQ(LatencyFactor::raw_factor(c, 0.1, 0.1), 1.0);
    EXPECT_DOUBLE_EQ(LatencyFactor::raw_factor(c, 0.2, 0.1), 1.0);  // faster than the reference: 1
    EXPECT_DOUBLE_EQ(LatencyFactor::raw_factor(c, 0.1, 100.0), c.floor);
    c.sensitivity = 2;
    EXPECT_DOUBLE_EQ(LatencyFactor::raw_factor(c, 0.1, 0.2), 0.25);
    c.sensitivity = 0.5;
    EXPECT_NEAR(LatencyFactor::raw_factor(c, 0.1, 0.2), std::sqrt(0.5), 1e-12);
    c.floor = 0.6;
    c.sensitivity = 1;
    EXPECT_DOUBLE_EQ(LatencyFactor::raw_factor(c, 0.1, 0.2), 0.6);
    // Missing or meaningless data is no evidence: 1.
    EXPECT_DOUBLE_EQ(LatencyFactor::raw_factor(c, std::nullopt, 0.2), 1.0);
    EXPECT_DOUBLE_EQ(LatencyFactor::raw_factor(c, 0.1, std::nullopt), 1.0);
    EXPECT_DOUBLE_EQ(LatencyFactor::raw_factor(c, 0.1, 0.0), 1.0);
    EXPECT_DOUBLE_EQ(LatencyFactor::raw_factor(c, kNan, 0.2), 1.0);
    EXPECT_DOUBLE_EQ(LatencyFactor::raw_factor(c, 0.1, kInf), 1.0);
}

TEST(LatencyFactor, NoSamplesStaysAtOne) {
    LatencyFactor f;
    for (int i = 0; i < 20; ++i) {
        EXPECT_FALSE(f.update(std::nullopt, 0.5));
        EXPECT_FALSE(f.update(std::nullopt, std::nullopt));
        EXPECT_FALSE(f.update(0.1, std::nullopt));
    }
    EXPECT_EQ(f.published(), 1.0);
    EXPECT_NE(f.reason("ttft").find("no ttft samples"), std::string::npos) << f.reason("ttft");
}

TEST(LatencyFactor, SmoothsTowardsTheRawFactorAndNeverLeavesTheBounds) {
    LatencyFactorConfig c;
    c.tolerance = 0;
    c.alpha = 0.5;
    c.hysteresis = 0.0;
    LatencyFactor f(c);
    EXPECT_TRUE(f.update(0.1, 0.2));  // raw 0.5: smoothed 0.75
    EXPECT_DOUBLE_EQ(f.smoothed(), 0.75);
    EXPECT_DOUBLE_EQ(f.published(), 0.75);
    f.update(0.1, 0.2);
    EXPECT_DOUBLE_EQ(f.smoothed(), 0.625);
    for (int i = 0; i < 60; ++i) f.update(0.1, 10.0);  // far slower: down to the floor, not below
    EXPECT_DOUBLE_EQ(f.published(), c.floor);
    for (int i = 0; i < 60; ++i) {
        f.update(0.1, 0.1);
        EXPECT_GE(f.published(), c.floor);
        EXPECT_LE(f.published(), 1.0);
    }
    EXPECT_DOUBLE_EQ(f.published(), 1.0);  // back at exactly 1
    EXPECT_NE(f.reason("tpot").find("tpot 100.0 ms, reference 100.0 ms"), std::string::npos) << f.reason("tpot");
}

TEST(LatencyFactor, HysteresisHoldsSmallMoves) {
    LatencyFactorConfig c;
    c.tolerance = 0;
    c.alpha = 1.0;  // no smoothing: the raw factor is the smoothed one
    c.hysteresis = 0.1;
    LatencyFactor f(c);
    EXPECT_TRUE(f.update(0.1, 0.2));     // 0.5: moved 0.5
    EXPECT_DOUBLE_EQ(f.published(), 0.5);
    EXPECT_FALSE(f.update(0.1, 0.19));   // 0.526: held
    EXPECT_DOUBLE_EQ(f.published(), 0.5);
    EXPECT_FALSE(f.update(0.1, 0.21));   // 0.476: held
    EXPECT_TRUE(f.update(0.1, 0.25));    // 0.4: moved 0.1
    EXPECT_DOUBLE_EQ(f.published(), 0.4);
    EXPECT_TRUE(f.update(0.1, 0.101));   // 0.990 is within hysteresis/10 of 1: snaps to 1
    EXPECT_DOUBLE_EQ(f.published(), 1.0);
    f.reset();
    EXPECT_DOUBLE_EQ(f.published(), 1.0);
}

TEST(LatencyFactor, MissingDataAfterSamplesDriftsBackToOne) {
    LatencyFactorConfig c;
    c.tolerance = 0;
    c.alpha = 0.5;
    LatencyFactor f(c);
    for (int i = 0; i < 30; ++i) f.update(0.1, 0.4);
    EXPECT_NEAR(f.published(), 0.25, 0.05);
    for (int i = 0; i < 30; ++i) f.update(std::nullopt, 0.4);  // the reference went away
    EXPECT_DOUBLE_EQ(f.published(), 1.0);
}

TEST(LatencyFactor, RefusesBadConfig) {
    const auto make = [](auto edit) {
        LatencyFactorConfig c;
        edit(c);
        return LatencyFactor(c);
    };
    EXPECT_THROW(make([](auto& c) { c.floor = -0.1; }), std::invalid_argument);
    EXPECT_THROW(make([](auto& c) { c.floor = 1.1; }), std::invalid_argument);
    EXPECT_THROW(make([](auto& c) { c.sensitivity = 0; }), std::invalid_argument);
    EXPECT_THROW(make([](auto& c) { c.sensitivity = 11; }), std::invalid_argument);
    EXPECT_THROW(make([](auto& c) { c.sensitivity = kNan; }), std::invalid_argument);
    EXPECT_THROW(make([](auto& c) { c.alpha = 0; }), std::invalid_argument);
    EXPECT_THROW(make([](auto& c) { c.hysteresis = 2; }), std::invalid_argument);
    EXPECT_NO_THROW(make([](auto& c) { c.floor = 0; }));
}

}  // namespace
}  // namespace ferry::balance
