#include "balance/round_robin.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <random>
#include <stdexcept>
#include <vector>

namespace ferry::balance {
namespace {

std::vector<uint64_t> counts_of(const std::vector<uint32_t>& seq, size_t n) {
    std::vector<uint64_t> c(n, 0);
    for (const uint32_t i : seq) ++c.at(i);
    return c;
}

uint64_t sum_of(const std::vector<uint32_t>& w) {
    uint64_t s = 0;
    for (const uint32_t x : w) s += x;
    return s;
}

// The brief's smoothness test, checked exactly: the largest
// count - ceil(k * w_i / W) over every index and every window of k entries,
// windows wrapping around the cycle (workers start anywhere and wrap). For c
// appearances the shortest window holding them is the tightest case, so it
// suffices to look at windows from one appearance to a later one. O(sum w_i^2).
int64_t max_window_excess(const std::vector<uint32_t>& seq, const std::vector<uint32_t>& reduced) {
    const uint64_t total = seq.size();
    int64_t worst = INT64_MIN;
    for (uint32_t i = 0; i < reduced.size(); ++i) {
        std::vector<uint64_t> pos;
        for (uint64_t t = 0; t < total; ++t) {
            if (seq[t] == i) pos.push_back(t);
        }
        const uint64_t w = pos.size();
        for (uint64_t j = 0; j < w; ++j) {
            for (uint64_t c = 1; c <= w; ++c) {
                const uint64_t e = j + c - 1;
                const uint64_t last = e < w ? pos[e] : pos[e - w] + total;
                const uint64_t k = last - pos[j] + 1;
                const uint64_t fair_ceil = (reduced[i] * k + total - 1) / total;
                worst = std::max(worst, int64_t(c) - int64_t(fair_ceil));
            }
        }
    }
    return worst;
}

// The stronger property the builder promises: after m entries from position 0,
// |count_i - m * w_i / W| < 1 for every i and m. Returns false on a breach.
bool prefix_within_one(const std::vector<uint32_t>& seq, const std::vector<uint32_t>& reduced) {
    const int64_t total = int64_t(seq.size());
    std::vector<int64_t> count(reduced.size(), 0);
    for (int64_t m = 1; m <= total; ++m) {
        ++count[seq[size_t(m - 1)]];
        for (size_t i = 0; i < reduced.size(); ++i) {
            const int64_t dev = count[i] * total - m * int64_t(reduced[i]);  // (count - fair) * W
            if (dev >= total || dev <= -total) return false;
        }
    }
    return true;
}

// nginx's smooth weighted round robin, as a reference for the regression test.
std::vector<uint32_t> nginx_swrr(const std::vector<uint32_t>& w) {
    const int64_t total = int64_t(sum_of(w));
    std::vector<int64_t> current(w.size(), 0);
    std::vector<uint32_t> out;
    for (int64_t t = 0; t < total; ++t) {
        size_t best = w.size();
        for (size_t i = 0; i < w.size(); ++i) {
            if (w[i] == 0) continue;
            current[i] += w[i];
            if (best == w.size() || current[i] > current[best]) best = i;
        }
        current[best] -= total;
        out.push_back(uint32_t(best));
    }
    return out;
}

std::vector<uint32_t> heavy_and_light() {
    std::vector<uint32_t> w(9, 1);
    w.push_back(500);
    w.push_back(750);
    return w;
}

TEST(SwrrSequence, EmptyAndAllZero) {
    EXPECT_TRUE(build_swrr_sequence({}).empty());
    EXPECT_TRUE(build_swrr_sequence({0, 0, 0}).empty());
    EXPECT_EQ(reduce_swrr_weights({0, 0}), (std::vector<uint32_t>{0, 0}));
}

TEST(SwrrSequence, SingleBackend) {
    EXPECT_EQ(build_swrr_sequence({5}), (std::vector<uint32_t>{0}));
    EXPECT_EQ(build_swrr_sequence({0, 7, 0}), (std::vector<uint32_t>{1}));
    EXPECT_EQ(build_swrr_sequence({65535}), (std::vector<uint32_t>{0}));
}

TEST(SwrrSequence, EqualWeightsArePlainRoundRobin) {
    EXPECT_EQ(build_swrr_sequence({100, 100, 100, 100}), (std::vector<uint32_t>{0, 1, 2, 3}));
}

TEST(SwrrSequence, ExactSharesOverOneCycle) {
    const std::vector<std::vector<uint32_t>> cases = {
        {1, 2, 3, 4}, {5, 1, 1}, {7, 0, 3}, {100, 1}, {13, 17, 19, 23, 29}, heavy_and_light()};
    for (const auto& w : cases) {
        const auto seq = build_swrr_sequence(w);
        ASSERT_EQ(seq.size(), sum_of(w));
        const auto c = counts_of(seq, w.size());
        for (size_t i = 0; i < w.size(); ++i) EXPECT_EQ(c[i], w[i]) << "index " << i;
    }
}

TEST(SwrrSequence, DividesByGcd) {
    EXPECT_EQ(reduce_swrr_weights({200, 400, 600, 0}), (std::vector<uint32_t>{1, 2, 3, 0}));
    const auto seq = build_swrr_sequence({200, 400, 600, 0});
    ASSERT_EQ(seq.size(), 6u);
    EXPECT_EQ(counts_of(seq, 4), (std::vector<uint64_t>{1, 2, 3, 0}));
}

TEST(SwrrSequence, ZeroWeightsNeverAppear) {
    const std::vector<uint32_t> w = {0, 3, 0, 5, 0, 1, 0};
    for (const uint32_t i : build_swrr_sequence(w)) EXPECT_NE(w[i], 0u) << "index " << i;
}

TEST(SwrrSequence, NoBurstsInAnyWindow) {
    const std::vector<std::vector<uint32_t>> cases = {
        {5, 1, 1}, {1, 2, 3, 4}, {100, 1}, {1, 1, 1, 1, 1, 1, 1, 1, 60}, {3, 7, 11, 13}, heavy_and_light()};
    for (const auto& w : cases) {
        const auto seq = build_swrr_sequence(w);
        EXPECT_LE(max_window_excess(seq, reduce_swrr_weights(w)), 1) << "weights of size " << w.size();
    }
}

// nginx's algorithm breaks the window bound on this set (the reason the builder
// is not nginx's); ours keeps it.
TEST(SwrrSequence, SmootherThanNginxOnHeavyAndLight) {
    const auto w = heavy_and_light();
    EXPECT_EQ(max_window_excess(nginx_swrr(w), w), 2);
    EXPECT_LE(max_window_excess(build_swrr_sequence(w), w), 1);
}

TEST(SwrrSequence, RandomWeightsStayWithinOneOfFair) {
    std::mt19937_64 rng(42);
    for (int round = 0; round < 300; ++round) {
        const uint32_t n = 1 + uint32_t(rng() % 40);
        std::vector<uint32_t> w(n);
        for (uint32_t& x : w) {
            switch (round % 4) {
                case 0: x = uint32_t(rng() % 101); break;
                case 1: x = rng() % 5 == 0 ? 1000 : 1; break;
                case 2: x = 1u << (rng() % 9); break;
                default: x = rng() % 20 == 0 ? 1 + uint32_t(rng() % 3000) : 1 + uint32_t(rng() % 10); break;
            }
        }
        const auto reduced = reduce_swrr_weights(w);
        const auto seq = build_swrr_sequence(w);
        ASSERT_EQ(seq.size(), sum_of(reduced));
        ASSERT_TRUE(prefix_within_one(seq, reduced)) << "round " << round;
        // Within one of fair from position 0 in both directions means any
        // window, wrapped or not, is within two: the brief's bound.
        if (seq.size() <= 400) {
            ASSERT_LE(max_window_excess(seq, reduced), 1) << "round " << round;
        }
    }
}

TEST(SwrrSequence, HugeWeightsScaleWithinOnePercent) {
    const std::vector<uint32_t> w = {4000000000u, 3000000001u, 2000000003u, 1000000007u, 123456789u, 1u};
    const auto reduced = reduce_swrr_weights(w);
    const auto seq = build_swrr_sequence(w);
    EXPECT_LE(seq.size(), kDefaultSwrrMaxLen);
    EXPECT_EQ(seq.size(), sum_of(reduced));
    double total = 0;
    for (const uint32_t x : w) total += x;
    const auto c = counts_of(seq, w.size());
    for (size_t i = 0; i + 1 < w.size(); ++i) {
        const double want = w[i] / total;
        const double got = double(c[i]) / double(seq.size());
        EXPECT_NEAR(got, want, want * 0.01) << "index " << i;
    }
    EXPECT_EQ(c.back(), 1u);  // a tiny non-zero weight still appears once
    EXPECT_TRUE(prefix_within_one(seq, reduced));
}

TEST(SwrrSequence, ScalingKeepsNonZeroWeightsAtLeastOne) {
    EXPECT_EQ(reduce_swrr_weights({1, 1000000}, 100), (std::vector<uint32_t>{1, 99}));
    EXPECT_EQ(reduce_swrr_weights({0, 1, 2, 1000000}, 100), (std::vector<uint32_t>{0, 1, 1, 98}));
    const auto r = reduce_swrr_weights({3, 5, 1000, 2000, 3000}, 60);
    EXPECT_EQ(sum_of(r), 60u);
    EXPECT_EQ(r[0], 1u);
    EXPECT_EQ(r[1], 1u);
    EXPECT_EQ(build_swrr_sequence({3, 5, 1000, 2000, 3000}, 60).size(), 60u);
}

TEST(SwrrSequence, ReductionNeverRaisesAWeight) {
    std::mt19937_64 rng(7);
    for (int round = 0; round < 200; ++round) {
        std::vector<uint32_t> w(1 + rng() % 50);
        for (uint32_t& x : w) x = rng() % 3 == 0 ? 0 : uint32_t(rng() >> (32 + rng() % 32));
        const uint32_t max_len = 1 + uint32_t(rng() % 5000);
        const auto r = reduce_swrr_weights(w, max_len);
        const auto nonzero = uint64_t(std::count_if(w.begin(), w.end(), [](uint32_t x) { return x != 0; }));
        EXPECT_LE(sum_of(r), std::max<uint64_t>(max_len, nonzero));
        for (size_t i = 0; i < w.size(); ++i) {
            EXPECT_LE(r[i], w[i]);
            EXPECT_EQ(r[i] == 0, w[i] == 0);
        }
    }
}

TEST(SwrrSequence, MoreBackendsThanMaxLenGetOneEach) {
    EXPECT_EQ(reduce_swrr_weights({5, 0, 9, 2, 7}, 3), (std::vector<uint32_t>{1, 0, 1, 1, 1}));
    EXPECT_EQ(build_swrr_sequence({5, 0, 9, 2, 7}, 3).size(), 4u);
}

TEST(SwrrSequence, ZeroMaxLenThrows) {
    EXPECT_THROW(build_swrr_sequence({1, 2}, 0), std::invalid_argument);
    EXPECT_THROW(reduce_swrr_weights({1, 2}, 0), std::invalid_argument);
}

TEST(SwrrSequence, Deterministic) {
    const std::vector<uint32_t> w = {17, 3, 0, 250, 9, 9, 1};
    EXPECT_EQ(build_swrr_sequence(w), build_swrr_sequence(w));
}

TEST(SwrrCursor, WalksAndWraps) {
    const std::vector<uint32_t> seq = {0, 1, 0, 2};
    SwrrCursor c(seq, 3);
    EXPECT_EQ(c.size(), 4u);
    EXPECT_EQ(c.next(), 2u);
    EXPECT_EQ(c.next(), 0u);
    EXPECT_EQ(c.next(), 1u);
    EXPECT_EQ(c.next(), 0u);
    EXPECT_EQ(c.next(), 2u);
    EXPECT_EQ(c.position(), 0u);

    SwrrCursor far(seq, 4 * 1000 + 1);  // start reduced modulo the length
    EXPECT_EQ(far.next(), 1u);
}

TEST(SwrrCursor, EmptyGivesNoPick) {
    SwrrCursor none;
    EXPECT_TRUE(none.empty());
    EXPECT_EQ(none.next(), kNoPick);
    const std::vector<uint32_t> empty;
    SwrrCursor also(empty, 5);
    EXPECT_EQ(also.next(), kNoPick);
}

TEST(SwrrCursor, StartOffsetsSpreadWorkers) {
    EXPECT_EQ(swrr_start_offset(0, 4, 10), 0u);
    EXPECT_EQ(swrr_start_offset(1, 4, 10), 2u);
    EXPECT_EQ(swrr_start_offset(2, 4, 10), 5u);
    EXPECT_EQ(swrr_start_offset(3, 4, 10), 7u);
    EXPECT_EQ(swrr_start_offset(1, 0, 10), 0u);
    EXPECT_EQ(swrr_start_offset(1, 4, 0), 0u);
    EXPECT_LT(swrr_start_offset(7, 8, 65536), 65536u);
}

// Several workers walking one sequence from spread offsets still split each
// backend's share exactly over a cycle each.
TEST(SwrrCursor, WorkersTogetherKeepShares) {
    const std::vector<uint32_t> w = {1, 2, 3, 4};
    const auto seq = build_swrr_sequence(w);
    const uint32_t len = uint32_t(seq.size());
    std::vector<uint64_t> c(w.size(), 0);
    for (uint32_t worker = 0; worker < 3; ++worker) {
        SwrrCursor cur(seq, swrr_start_offset(worker, 3, len));
        for (uint32_t k = 0; k < len; ++k) ++c[cur.next()];
    }
    for (size_t i = 0; i < w.size(); ++i) EXPECT_EQ(c[i], 3u * w[i]);
}

}  // namespace
}  // namespace ferry::balance
