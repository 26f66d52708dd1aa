#include "balance/least_load.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <random>
#include <stdexcept>
#include <vector>

namespace ferry::balance {
namespace {

using Picker = uint32_t (*)(const std::vector<uint32_t>& weights, const std::vector<uint32_t>& cumulative,
                            const std::vector<int64_t>& active, std::mt19937_64& rng);

uint32_t least_conn(const std::vector<uint32_t>& weights, const std::vector<uint32_t>&,
                    const std::vector<int64_t>& active, std::mt19937_64& rng) {
    return pick_least_conn(weights.data(), active.data(), uint32_t(weights.size()), uint32_t(rng()));
}

uint32_t two_choices(const std::vector<uint32_t>& weights, const std::vector<uint32_t>& cumulative,
                     const std::vector<int64_t>& active, std::mt19937_64& rng) {
    return pick_two_choices(cumulative.data(), weights.data(), active.data(), uint32_t(weights.size()),
                            rng());
}

// Connections arrive through the picker and leave at random (each live one
// equally likely), with about `live` open at a time. Returns the picks per
// backend after a warm-up.
std::vector<uint64_t> simulate(Picker pick, const std::vector<uint32_t>& weights, uint32_t live,
                               uint32_t picks, uint64_t seed) {
    std::mt19937_64 rng(seed);
    const auto cumulative = build_cumulative_weights(weights);
    std::vector<int64_t> active(weights.size(), 0);
    std::vector<uint32_t> open;  // backend of each live connection
    std::vector<uint64_t> count(weights.size(), 0);
    const uint32_t warmup = live * 4;
    for (uint32_t k = 0; k < warmup + picks; ++k) {
        if (open.size() >= live) {
            const size_t victim = rng() % open.size();
            --active[open[victim]];
            open[victim] = open.back();
            open.pop_back();
        }
        const uint32_t b = pick(weights, cumulative, active, rng);
        EXPECT_LT(b, weights.size());
        if (b >= weights.size()) return count;
        ++active[b];
        open.push_back(b);
        if (k >= warmup) ++count[b];
    }
    return count;
}

void expect_weight_shares(const std::vector<uint64_t>& count, const std::vector<uint32_t>& weights,
                          double rel_tol) {
    double total_w = 0;
    double total_c = 0;
    for (size_t i = 0; i < weights.size(); ++i) {
        total_w += weights[i];
        total_c += double(count[i]);
    }
    for (size_t i = 0; i < weights.size(); ++i) {
        const double want = weights[i] / total_w;
        EXPECT_NEAR(double(count[i]) / total_c, want, want * rel_tol + 1e-12) << "backend " << i;
    }
}

TEST(LeastConn, EmptyAndAllZero) {
    EXPECT_EQ(pick_least_conn(nullptr, nullptr, 0, 123), kNoPick);
    const uint32_t w[] = {0, 0, 0};
    const int64_t a[] = {0, 5, 9};
    for (uint32_t r : {0u, 1u << 31, 0xffffffffu}) EXPECT_EQ(pick_least_conn(w, a, 3, r), kNoPick);
}

TEST(LeastConn, PicksLowestLoadPerWeight) {
    const uint32_t w[] = {1, 2};
    const int64_t a1[] = {0, 2};  // 1/1 vs 3/2
    const int64_t a2[] = {1, 2};  // 2/1 vs 3/2
    for (uint32_t r : {0u, 1u << 31, 0xffffffffu}) {
        EXPECT_EQ(pick_least_conn(w, a1, 2, r), 0u);
        EXPECT_EQ(pick_least_conn(w, a2, 2, r), 1u);
    }
    const uint32_t w3[] = {100, 300, 50};
    const int64_t a3[] = {10, 40, 4};  // 11/100 = .11, 41/300 = .137, 5/50 = .1
    EXPECT_EQ(pick_least_conn(w3, a3, 3, 0), 2u);
}

TEST(LeastConn, ZeroWeightNeverPickedEvenWhenIdle) {
    const uint32_t w[] = {0, 5, 0, 5};
    const int64_t a[] = {0, 1000, 0, 999};
    std::mt19937 rng(1);
    for (int k = 0; k < 1000; ++k) {
        const uint32_t p = pick_least_conn(w, a, 4, uint32_t(rng()));
        EXPECT_EQ(p, 3u);
    }
}

TEST(LeastConn, TiesSpreadEvenly) {
    const std::vector<uint32_t> w(8, 10);
    const std::vector<int64_t> a(8, 3);
    std::vector<uint32_t> count(8, 0);
    std::mt19937 rng(2);
    constexpr uint32_t kPicks = 80000;
    for (uint32_t k = 0; k < kPicks; ++k) ++count.at(pick_least_conn(w.data(), a.data(), 8, uint32_t(rng())));
    for (const uint32_t c : count) EXPECT_NEAR(c, kPicks / 8, kPicks / 8 * 0.05);
}

TEST(LeastConn, NegativeActiveCountsAsZero) {
    const uint32_t w[] = {1, 1};
    const int64_t a[] = {-5, 0};  // both (0 + 1) / 1: a tie
    std::vector<uint32_t> count(2, 0);
    for (uint32_t r = 0; r < 1000; ++r) ++count.at(pick_least_conn(w, a, 2, r * 4294967u));
    EXPECT_GT(count[0], 300u);
    EXPECT_GT(count[1], 300u);
}

TEST(LeastConn, HugeCountsDoNotOverflow) {
    constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
    const uint32_t w[] = {65535, 65535, 0xffffffffu};
    const int64_t a[] = {kMax, kMax - 1, kMax};
    // kMax / 2^32-1 is far below (kMax - 1) / 65535.
    EXPECT_EQ(pick_least_conn(w, a, 3, 0), 2u);
    const uint32_t w2[] = {65535, 65535};
    const int64_t a2[] = {kMax, kMax - 1};
    EXPECT_EQ(pick_least_conn(w2, a2, 2, 0), 1u);
}

TEST(LeastConn, SharesFollowWeightsUnderChurn) {
    const std::vector<uint32_t> w = {1, 2, 3, 4};
    expect_weight_shares(simulate(least_conn, w, 2000, 200000, 3), w, 0.05);
    const std::vector<uint32_t> w2 = {100, 0, 300, 600, 50};
    const auto c2 = simulate(least_conn, w2, 1000, 200000, 4);
    EXPECT_EQ(c2[1], 0u);
    expect_weight_shares(c2, w2, 0.05);
}

TEST(LeastConn, BusyBackendGetsFewerPicks) {
    const std::vector<uint32_t> w(4, 1);
    const std::vector<int64_t> a = {1000, 0, 0, 0};
    std::mt19937 rng(5);
    for (int k = 0; k < 1000; ++k) EXPECT_NE(pick_least_conn(w.data(), a.data(), 4, uint32_t(rng())), 0u);
}

TEST(CumulativeWeights, RunningSums) {
    EXPECT_TRUE(build_cumulative_weights({}).empty());
    EXPECT_EQ(build_cumulative_weights({3, 0, 2, 5}), (std::vector<uint32_t>{3, 3, 5, 10}));
    EXPECT_EQ(build_cumulative_weights({0xffffffffu}), (std::vector<uint32_t>{0xffffffffu}));
    EXPECT_THROW(build_cumulative_weights({0xffffffffu, 1}), std::overflow_error);
    // 65537 * 65535 is exactly 2^32 - 1: just fits.
    EXPECT_EQ(build_cumulative_weights(std::vector<uint32_t>(65537, 65535)).back(), 0xffffffffu);
    EXPECT_THROW(build_cumulative_weights(std::vector<uint32_t>(65538, 65535)), std::overflow_error);
}

TEST(CumulativeWeights, WeightedIndexMatchesUpperBound) {
    const std::vector<std::vector<uint32_t>> cases = {{1}, {0, 4}, {3, 0, 0, 2, 5, 0}, {1, 1, 1, 1, 1, 1, 1}};
    for (const auto& w : cases) {
        const auto cum = build_cumulative_weights(w);
        for (uint32_t t = 0; t < cum.back(); ++t) {
            const auto want = uint32_t(std::upper_bound(cum.begin(), cum.end(), t) - cum.begin());
            const uint32_t got = detail::weighted_index(cum.data(), uint32_t(cum.size()), t);
            EXPECT_EQ(got, want) << "target " << t;
            EXPECT_NE(w[got], 0u);
        }
    }
}

TEST(TwoChoices, EmptyAndAllZero) {
    EXPECT_EQ(pick_two_choices(nullptr, nullptr, nullptr, 0, 99), kNoPick);
    const std::vector<uint32_t> w = {0, 0};
    const auto cum = build_cumulative_weights(w);
    const int64_t a[] = {0, 0};
    EXPECT_EQ(pick_two_choices(cum.data(), w.data(), a, 2, 0x123456789abcdefull), kNoPick);
}

TEST(TwoChoices, ZeroWeightNeverPicked) {
    const std::vector<uint32_t> w = {0, 7, 0, 1, 0};
    const auto cum = build_cumulative_weights(w);
    const std::vector<int64_t> a = {0, 50, 0, 50, 0};
    std::mt19937_64 rng(6);
    for (int k = 0; k < 10000; ++k) {
        const uint32_t p = pick_two_choices(cum.data(), w.data(), a.data(), 5, rng());
        EXPECT_TRUE(p == 1 || p == 3) << p;
    }
}

TEST(TwoChoices, EqualLoadIsWeightedRandom) {
    // Every backend at the same load per weight ((active + 1) / weight = 10):
    // every comparison is a tie, the first draw wins, and the picks follow the
    // weights exactly in expectation.
    const std::vector<uint32_t> w = {1, 2, 3, 4, 0, 10};
    const auto cum = build_cumulative_weights(w);
    const std::vector<int64_t> a = {9, 19, 29, 39, 0, 99};
    std::vector<uint64_t> count(w.size(), 0);
    std::mt19937_64 rng(7);
    for (int k = 0; k < 400000; ++k) ++count.at(pick_two_choices(cum.data(), w.data(), a.data(), 6, rng()));
    EXPECT_EQ(count[4], 0u);
    expect_weight_shares(count, w, 0.03);
}

TEST(TwoChoices, IdleHeavierBackendWins) {
    // Both idle: (0 + 1) / 4 beats (0 + 1) / 1, whichever was drawn first.
    const std::vector<uint32_t> w = {1, 4};
    const auto cum = build_cumulative_weights(w);
    const std::vector<int64_t> a = {0, 0};
    const uint64_t r01 = uint64_t(0xffffffffu) << 32;  // low half draws 0, high half 1
    EXPECT_EQ(pick_two_choices(cum.data(), w.data(), a.data(), 2, r01), 1u);
}

TEST(TwoChoices, PicksTheLighterOfTheTwo) {
    const std::vector<uint32_t> w = {1, 1};
    const auto cum = build_cumulative_weights(w);
    const std::vector<int64_t> a = {5, 1};
    // Low half draws index 0, high half index 1 (and the reverse).
    const uint64_t r01 = (uint64_t(0xffffffffu) << 32) | 0u;
    const uint64_t r10 = uint64_t(0xffffffffu);
    EXPECT_EQ(pick_two_choices(cum.data(), w.data(), a.data(), 2, r01), 1u);
    EXPECT_EQ(pick_two_choices(cum.data(), w.data(), a.data(), 2, r10), 1u);
    // Both draws on 0: nothing to compare.
    EXPECT_EQ(pick_two_choices(cum.data(), w.data(), a.data(), 2, 0), 0u);
}

TEST(TwoChoices, SharesFollowWeightsUnderChurn) {
    const std::vector<uint32_t> w = {1, 2, 3, 4};
    expect_weight_shares(simulate(two_choices, w, 2000, 200000, 8), w, 0.05);
    const std::vector<uint32_t> w2 = {100, 0, 300, 600, 50};
    const auto c2 = simulate(two_choices, w2, 1000, 200000, 9);
    EXPECT_EQ(c2[1], 0u);
    expect_weight_shares(c2, w2, 0.05);
}

TEST(TwoChoices, BusyBackendGetsFewerPicks) {
    const std::vector<uint32_t> w(4, 1);
    const auto cum = build_cumulative_weights(w);
    const std::vector<int64_t> a = {1000, 0, 0, 0};
    std::vector<uint64_t> count(4, 0);
    std::mt19937_64 rng(10);
    constexpr int kPicks = 100000;
    for (int k = 0; k < kPicks; ++k) ++count.at(pick_two_choices(cum.data(), w.data(), a.data(), 4, rng()));
    // Only when both draws land on it: 1/16 of the time, against 1/4 unloaded.
    EXPECT_NEAR(double(count[0]) / kPicks, 1.0 / 16, 0.01);
    for (int i = 1; i < 4; ++i) EXPECT_GT(count[size_t(i)], 3 * count[0]);  // 15/48 each against 1/16
}

}  // namespace
}  // namespace ferry::balance
